"""The meeting server: audio conference rooms mixed on the application-server frame."""

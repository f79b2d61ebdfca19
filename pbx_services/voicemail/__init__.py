"""Voicemail on the application-server frame: messages left, the *97 menu, email of new messages."""

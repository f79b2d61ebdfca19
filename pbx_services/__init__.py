"""A clustered, self-hosted SIP PBX."""

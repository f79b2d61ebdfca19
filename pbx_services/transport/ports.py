"""Errors of binding a daemon's listening ports."""


class PortInUseError(OSError):
    """A port the daemon must listen on is taken by another process; `strerror` says which."""

"""The two kinds of SIP protocol error.

`LocalProtocolError` is our own misuse of the API (a bug here); `RemoteProtocolError`
is a peer's broken message and carries the status code to answer it with.
"""


class SipError(Exception):
    """Base of every error raised by the SIP core."""


class LocalProtocolError(SipError):
    """We asked the SIP core to do something the protocol does not allow."""


class RemoteProtocolError(SipError):
    """A peer sent something we cannot accept.

    `status_code` is the response to send back when the offending message is a
    request (400 for a malformed message, 420, 481, ...); `reason` says exactly
    what is wrong and is safe to put in a Warning or the reason phrase.
    """

    def __init__(self, reason: str, *, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code

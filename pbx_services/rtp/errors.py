"""The one error of the RTP core: a peer's packet that cannot be read.

Our own misuse of the API (a payload type out of range, a digit that is not DTMF)
raises a plain ValueError instead, so the two are never confused.
"""


class RtpParseError(ValueError):
    """A peer sent an RTP, RTCP or telephone-event packet we cannot accept.

    The message says exactly what is wrong ("RTP packet has truncated CSRC list"): it is
    what gets logged and counted, since RTP has no way to answer a broken packet.
    """

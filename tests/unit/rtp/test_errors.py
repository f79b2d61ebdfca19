"""The RTP core's one error type."""

import pytest

from pbx_services.rtp.errors import RtpParseError
from pbx_services.rtp.packet import RtpPacket


def test_a_broken_packet_is_a_value_error_with_the_reason_as_message() -> None:
    with pytest.raises(ValueError) as caught:
        RtpPacket.parse(b"\x80")
    assert isinstance(caught.value, RtpParseError)
    assert str(caught.value) == "RTP packet is too short: 1 bytes, the header needs 12"

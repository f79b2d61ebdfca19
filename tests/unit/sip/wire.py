"""Helpers shared by the SIP unit tests: messages written with plain newlines, parsed back."""

from __future__ import annotations

from pbx_services.sip.message import SipRequest, SipResponse, parse_message


def crlf(text: str) -> bytes:
    """A message written with plain newlines, as it goes on the wire."""
    return text.replace("\n", "\r\n").encode()


def parse_request(data: bytes) -> SipRequest:
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    return message


def parse_response(data: bytes) -> SipResponse:
    message = parse_message(data)
    assert isinstance(message, SipResponse)
    return message

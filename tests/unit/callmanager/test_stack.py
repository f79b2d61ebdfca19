"""The Call Manager's SIP stack: what becomes of garbage, broken and oversized input."""

from __future__ import annotations

import re

import pytest

from pbx_services.callmanager.b2bua import ALLOW
from pbx_services.sip.message import SipResponse

from .conftest import Pbx, Received, crlf, redact

WARNING_VALUE = re.compile(r'399 pbx-services "(?:[^"\\]|\\.)*"')
PHONE = ("10.0.0.1", 5062)


def options(*, via: str = "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKopt1;rport\n",
            start: str = "OPTIONS sip:pbx.local SIP/2.0", call_id: str = "Call-ID: opt-1@10.0.0.1\n",
            cseq: str = "CSeq: 1 OPTIONS\n", extra: str = "", body: str = "") -> bytes:
    return crlf(
        f"{start}\n"
        f"{via}"
        "Max-Forwards: 70\n"
        "From: <sip:100@pbx.local>;tag=opt\n"
        "To: <sip:pbx.local>\n"
        f"{call_id}"
        f"{cseq}"
        f"{extra}"
        f"Content-Length: {len(body)}\n\n{body}")


@pytest.fixture(autouse=True)
def inbox(pbx: Pbx) -> list[Received]:
    """What the phone at PHONE received."""
    return pbx.inboxes.setdefault(PHONE, [])


def only_response(pbx: Pbx) -> SipResponse:
    [received] = pbx.inboxes[PHONE]
    assert received.transmit.destination == PHONE
    assert isinstance(received.message, SipResponse)
    return received.message


# -- garbage is dropped and counted -------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"\x00\x01\x02\x03hello\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: pbx\r\n\r\n",
    b"SIP/2.0 9999 Nonsense\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKx\r\n\r\n",
    b"\xff" * 200,
    b"INVITE\r\n\r\n",
])
def test_garbage_is_dropped_and_counted(pbx: Pbx, inbox: list[Received], data: bytes) -> None:
    pbx.receive(data, PHONE)

    assert inbox == []
    assert pbx.unrouted == []
    assert pbx.core.stack.counters["dropped_garbage"] == 1
    assert pbx.core.stack.counters["refused_requests"] == 0


def test_a_request_without_via_cannot_be_answered_and_is_dropped(pbx: Pbx, inbox: list[Received]) -> None:
    pbx.receive(options(via=""), PHONE)

    assert inbox == []
    assert pbx.core.stack.counters["dropped_garbage"] == 1


def test_a_broken_ack_is_dropped_not_answered(pbx: Pbx, inbox: list[Received]) -> None:
    pbx.receive(options(start="ACK sip:pbx.local SIP/2.0", cseq="CSeq: 1 ACK\n", call_id=""), PHONE)

    assert inbox == []
    assert pbx.core.stack.counters["dropped_garbage"] == 1


def test_keepalives_are_counted_and_not_answered(pbx: Pbx, inbox: list[Received]) -> None:
    for keepalive in (b"\r\n\r\n", b"\r\n", b"\x00\x00\x00\x00"):
        pbx.receive(keepalive, PHONE)

    assert inbox == []
    assert pbx.core.stack.counters["keepalive"] == 3
    assert pbx.core.stack.counters["dropped_garbage"] == 0


def test_a_stray_response_is_ignored(pbx: Pbx, inbox: list[Received]) -> None:
    pbx.receive(crlf(
        "SIP/2.0 200 OK\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnotours\n"
        "From: <sip:100@pbx.local>;tag=a\n"
        "To: <sip:200@pbx.local>;tag=b\n"
        "Call-ID: stray@10.0.0.1\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n\n"), PHONE)

    assert inbox == []
    assert pbx.core.stack.counters["received_responses"] == 1


# -- broken requests are answered ---------------------------------------------------------------


def test_a_request_without_call_id_is_dropped_and_counted(pbx: Pbx) -> None:
    # A response needs the request's Call-ID (RFC 3261 8.2.6.2): without one, nothing valid can answer it.
    pbx.core.receive(options(call_id=""), PHONE, "UDP", pbx.now)

    assert pbx.core.take_transmits() == []
    assert pbx.core.stack.counters["dropped_garbage"] == 1


def test_a_cseq_method_that_does_not_match_gets_400(pbx: Pbx) -> None:
    pbx.receive(options(cseq="CSeq: 1 INVITE\n"), PHONE)

    response = only_response(pbx)
    assert redact(response.serialize()) == (
        "SIP/2.0 400 Bad Request\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:pbx.local>\r\n"
        "Call-ID: opt-1@10.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        'Warning: 399 pbx-services "CSeq method INVITE does not match the request method OPTIONS"\r\n'
        "Content-Length: 0\r\n\r\n"
    )


def test_a_content_length_beyond_the_datagram_gets_400(pbx: Pbx) -> None:
    pbx.receive(options(body="abc").replace(b"Content-Length: 3", b"Content-Length: 50"), PHONE)

    response = only_response(pbx)
    assert response.status_code == 400
    assert response.headers.get("Warning") == (
        '399 pbx-services "Content-Length 50 is larger than the body (3 bytes)"')


def test_a_warning_quoting_the_peers_text_stays_a_valid_quoted_string(pbx: Pbx) -> None:
    pbx.receive(options(extra='Bad"Header\n'), PHONE)

    response = only_response(pbx)
    assert response.status_code == 400
    warning = response.headers.get("Warning") or ""
    assert WARNING_VALUE.fullmatch(warning), warning
    assert "malformed header line" in warning


def test_an_unsupported_sip_version_gets_505(pbx: Pbx) -> None:
    pbx.receive(options(start="OPTIONS sip:pbx.local SIP/3.0"), PHONE)

    response = only_response(pbx)
    assert (response.status_code, response.reason) == (505, "Version Not Supported")
    assert response.headers.get("Warning") == '399 pbx-services "SIP version SIP/3.0 is not supported"'


def test_the_answer_to_a_broken_request_goes_where_rport_says(pbx: Pbx) -> None:
    nat = ("203.0.113.5", 31000)
    pbx.inboxes[nat] = []

    pbx.receive(options(cseq="CSeq: 1 INVITE\n"), nat)

    [received] = pbx.inboxes[nat]
    assert received.transmit.destination == nat
    assert received.message.status_code == 400  # type: ignore[union-attr]


def test_an_oversized_request_gets_513(pbx: Pbx) -> None:
    body = "x" * pbx.settings.max_message_size
    data = options(extra="Content-Type: text/plain\n", body=body)
    assert len(data) > pbx.settings.max_message_size

    pbx.receive(data, PHONE)

    response = only_response(pbx)
    assert redact(response.serialize()) == (
        "SIP/2.0 513 Message Too Large\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:pbx.local>\r\n"
        "Call-ID: opt-1@10.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        f'Warning: 399 pbx-services "message is larger than {pbx.settings.max_message_size} bytes"\r\n'
        "Content-Length: 0\r\n\r\n"
    )
    assert pbx.core.stack.counters["oversized"] == 1
    assert pbx.core.stack.counters["refused_requests"] == 1


def test_oversized_garbage_is_dropped(pbx: Pbx, inbox: list[Received]) -> None:
    pbx.receive(b"\x00" * 10 + b"A" * (pbx.settings.max_message_size + 1), PHONE)

    assert inbox == []
    assert pbx.core.stack.counters["oversized"] == 1
    assert pbx.core.stack.counters["dropped_garbage"] == 1


def test_a_message_of_exactly_the_maximum_size_is_accepted(pbx: Pbx) -> None:
    size = pbx.settings.max_message_size
    data = next(d for n in range(size) if len(d := options(extra="Content-Type: text/plain\n",
                                                            body="x" * n)) >= size)
    assert len(data) == size

    pbx.receive(data, PHONE)

    assert only_response(pbx).status_code == 200
    assert pbx.core.stack.counters["oversized"] == 0


# -- what the transaction user answers before any routing ---------------------------------------


def test_options_is_answered_with_what_we_support(pbx: Pbx) -> None:
    pbx.receive(options(), PHONE)

    response = only_response(pbx)
    assert redact(response.serialize()) == (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:pbx.local>;tag=<tag>\r\n"
        "Call-ID: opt-1@10.0.0.1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY, SUBSCRIBE\r\n"
        "Accept: application/sdp\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert pbx.core.stack.counters["received_requests"] == 1


def test_an_unknown_method_gets_501_with_allow(pbx: Pbx) -> None:
    pbx.receive(options(start="FROBNICATE sip:pbx.local SIP/2.0", cseq="CSeq: 1 FROBNICATE\n"), PHONE)

    response = only_response(pbx)
    assert (response.status_code, response.reason) == (501, "Not Implemented")
    assert response.headers.get("Allow") == ALLOW


def test_a_known_method_we_do_not_handle_gets_405(pbx: Pbx) -> None:
    pbx.receive(options(start="MESSAGE sip:200@pbx.local SIP/2.0", cseq="CSeq: 1 MESSAGE\n"), PHONE)

    response = only_response(pbx)
    assert response.status_code == 405
    assert response.headers.get("Allow") == ALLOW


def test_an_unsupported_extension_gets_420(pbx: Pbx) -> None:
    pbx.receive(options(extra="Require: 100rel, path\nProxy-Require: foo\n"), PHONE)

    response = only_response(pbx)
    assert response.status_code == 420
    # Path (RFC 3327) is not implemented either: claiming it would mislead the phone.
    assert response.headers.get("Unsupported") == "100rel, path, foo"


def test_a_request_uri_that_is_not_sip_gets_416(pbx: Pbx) -> None:
    pbx.receive(options(start="OPTIONS tel:+15551234 SIP/2.0"), PHONE)

    assert only_response(pbx).status_code == 416


def test_a_retransmitted_request_is_answered_from_the_transaction(pbx: Pbx) -> None:
    pbx.receive(options(), PHONE)
    pbx.receive(options(), PHONE)

    first, second = pbx.inboxes[PHONE]
    assert first.data == second.data
    assert pbx.core.stack.counters["received_requests"] == 2

"""SIP messages: device captures, round trips, the parsing rules, exact errors, responses, fuzzing.

Captures are in tests/data/sip/<device>_<message>.txt; broken variants of them in
tests/data/sip/invalid/, each with the exact reason the parser gives.
"""

import timeit
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pbx_services.sip.errors import RemoteProtocolError
from pbx_services.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
)
from pbx_services.sip.uri import SipUri

DATA = Path(__file__).resolve().parents[2] / "data" / "sip"

# Captures that are already in the form serialize() writes: they come back byte for byte.
CANONICAL = [
    "baresip_register.txt", "baresip_invite.txt", "baresip_200_invite.txt", "sipp_uac_bye.txt",
    "linphone_register.txt", "linphone_bye.txt", "yealink_register_auth.txt", "yealink_200_options.txt",
    "polycom_invite.txt", "kamailio_options.txt",
]
# The others, and the (only) differences serialize() makes to them.
NORMALIZED = {
    "pjsua2_register_auth.txt": [(b"Content-Length:  0", b"Content-Length: 0")],
    "pjsua2_ack.txt": [(b"Content-Length:  0", b"Content-Length: 0")],
    "pjsua2_subscribe_message_summary.txt": [(b"Content-Length:  0", b"Content-Length: 0")],
    "pjsua2_invite.txt": [(b"Content-Length:   471", b"Content-Length: 471")],
    "sipp_uac_invite.txt": [(b"Content-Length:   129", b"Content-Length: 129")],
    "sipp_compact_options.txt": [(b"\r\nv: ", b"\r\nVia: "), (b"\r\nf: ", b"\r\nFrom: "),
                                 (b"\r\nt: ", b"\r\nTo: "), (b"\r\ni: ", b"\r\nCall-ID: "),
                                 (b"\r\nm: ", b"\r\nContact: "), (b"\r\nk: ", b"\r\nSupported: "),
                                 (b"\r\nl: ", b"\r\nContent-Length: ")],
}

# Broken captures and what the parser says about each (all answered with 400).
INVALID = {
    "bare_cr": "message has a bare CR in its header",
    "contact_star_and_uri": "Contact: * must be the only Contact",
    "cseq_method_missing": "malformed CSeq: '29281'",
    "cseq_not_a_number": "malformed CSeq: '29281a REGISTER'",
    "empty_call_id": "malformed Call-ID ''",
    "expires_not_a_number": "Expires is not a valid number: 'soon'",
    "from_unterminated_uri": "From header has an unterminated <URI>",
    "header_without_colon": "malformed header line 'Max-Forwards 70'",
    "lowercase_method_in_cseq": "CSeq method register does not match the request method REGISTER",
    "max_forwards_too_big": "Max-Forwards out of range: 256",
    "missing_call_id": "missing Call-ID header",
    "missing_via": "missing Via header",
    "request_uri_with_space": "malformed request line 'REGISTER sip:pbx.example.com SIP/2.0 extra'",
    "space_in_header_name": "malformed header line 'User Agent: baresip v1.0.0 (x86_64/linux)'",
    "to_bad_host": "To header has a bad URI: SIP URI has a malformed host: 'sip:1003@pbx..example.com'",
    "two_cseq": "more than one CSeq header",
    "via_bad_rport": "Via has a non-numeric rport: "
                     "'SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bK1a2b3c4d5e6f7a8b;rport=abc'",
    "via_port_out_of_range": "Via has a malformed port in sent-by: "
                             "'SIP/2.0/UDP 192.0.2.20:65536;branch=z9hG4bK1a2b3c4d5e6f7a8b;rport'",
    "via_without_sent_by": "malformed Via: 'SIP/2.0/UDP ;branch=z9hG4bK1a2b3c4d5e6f7a8b;rport'",
}


def _capture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _parse(name: str) -> SipRequest | SipResponse:
    return parse_message(_capture(name))


def _request(name: str) -> SipRequest:
    message = _parse(name)
    assert isinstance(message, SipRequest)
    return message


def _response(name: str) -> SipResponse:
    message = _parse(name)
    assert isinstance(message, SipResponse)
    return message


def _message(start: str, *headers: str, body: bytes = b"") -> bytes:
    return ("\r\n".join([start, *headers]) + "\r\n\r\n").encode() + body


_DIALOG = ("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds",
           "From: <sip:1001@pbx.example.com>;tag=1928301774", "To: <sip:1002@pbx.example.com>",
           "Call-ID: a84b4c76e66710", "CSeq: 314159 INVITE")


def _invite(*extra: str, body: bytes = b"") -> bytes:
    return _message("INVITE sip:1002@pbx.example.com SIP/2.0", *_DIALOG, *extra, body=body)


# --- device captures -----------------------------------------------------------------


def test_every_capture_is_covered():
    assert sorted(p.name for p in DATA.glob("*.txt")) == sorted([*CANONICAL, *NORMALIZED])
    assert sorted(p.stem for p in (DATA / "invalid").glob("*.txt")) == sorted(INVALID)


@pytest.mark.parametrize("name", CANONICAL)
def test_canonical_captures_round_trip_byte_for_byte(name):
    data = _capture(name)
    assert parse_message(data).serialize() == data


@pytest.mark.parametrize("name", sorted(NORMALIZED))
def test_other_captures_serialize_in_canonical_form(name):
    data = _capture(name)
    expected = data
    for old, new in NORMALIZED[name]:
        assert old in expected
        expected = expected.replace(old, new)
    serialized = parse_message(data).serialize()
    assert serialized == expected
    assert parse_message(serialized).serialize() == serialized


@pytest.mark.parametrize("name, start, call_id, cseq, branch, from_tag, to_tag, body_length", [
    ("pjsua2_register_auth.txt", "REGISTER sip:pbx.example.com SIP/2.0",
     "4f1c2e8a-9b3d-4c6e-8a0f-1d2e3c4b5a69", "46519 REGISTER",
     "z9hG4bKPjb7c0a6d1-2f4e-4a63-9a0e-3d2b5c7e8f10", "9d3b1f52-6a7c-4e08-b1d2-0c5f7a9e3b46", None, 0),
    ("pjsua2_invite.txt", "INVITE sip:1002@pbx.example.com SIP/2.0", "8e2d4c6a-1b3f-4e5d-a7c9-0f1e2d3c4b5a",
     "8512 INVITE", "z9hG4bKPj3c8e1a47-5d2f-4b90-8e6a-1f0d9c7b5a32", "0a6f3e21-7c4d-4b8e-9f10-2d3c4b5a6e7f",
     None, 471),
    ("pjsua2_ack.txt", "ACK sip:1002@192.0.2.20:5060 SIP/2.0", "8e2d4c6a-1b3f-4e5d-a7c9-0f1e2d3c4b5a",
     "8512 ACK", "z9hG4bKPj5e0f8c1d-3a2b-4c6d-8e9f-0a1b2c3d4e5f", "0a6f3e21-7c4d-4b8e-9f10-2d3c4b5a6e7f",
     "as5d3f2a1b", 0),
    ("baresip_register.txt", "REGISTER sip:pbx.example.com SIP/2.0", "0d9b8c7a6f5e4d3c", "29281 REGISTER",
     "z9hG4bK1a2b3c4d5e6f7a8b", "6a1f0c2d3e4b5a69", None, 0),
    ("baresip_invite.txt", "INVITE sip:1001@pbx.example.com SIP/2.0", "9e8d7c6b5a4f3e2d", "15870 INVITE",
     "z9hG4bKb0c1d2e3f4a5b6c7", "3c2b1a0f9e8d7c6b", None, 277),
    ("baresip_200_invite.txt", "SIP/2.0 200 OK", "3f8a6e1d2c4b5a69@pbx.example.com", "102 INVITE",
     "z9hG4bK7f3a2c1e9d8b", "as7d1e2f3a", "5e0b6a2f4c1d3e7a", 180),
    ("sipp_uac_invite.txt", "INVITE sip:service@127.0.0.1:5060 SIP/2.0", "1-4242@127.0.1.1", "1 INVITE",
     "z9hG4bK-4242-1-0", "4242SIPpTag001", None, 129),
    ("sipp_uac_bye.txt", "BYE sip:service@127.0.0.1:5060 SIP/2.0", "1-4242@127.0.1.1", "2 BYE",
     "z9hG4bK-4242-1-7", "4242SIPpTag001", "as1a2b3c4d", 0),
    ("sipp_compact_options.txt", "OPTIONS sip:pbx.example.com SIP/2.0", "1-9001@127.0.1.1", "1 OPTIONS",
     "z9hG4bK-9001-1-0", "9001SIPpTag001", None, 0),
    ("linphone_register.txt", "REGISTER sip:sip.example.com SIP/2.0", "p~8lS0iGfL", "20 REGISTER",
     "z9hG4bK.Yq2~4uJtO", "e8kGmMPfn", None, 0),
    ("linphone_bye.txt", "BYE sip:1001@192.0.2.10:5060;ob SIP/2.0", "VHiqfkWUdS", "22 BYE",
     "z9hG4bK.3lR~6kPq1", "Xk2ra8Jtq", "9d3b1f52", 0),
    ("yealink_register_auth.txt", "REGISTER sip:pbx.example.com:5060 SIP/2.0", "1846542416@192.0.2.50",
     "2 REGISTER", "z9hG4bK1830651474", "2543267013", None, 0),
    ("yealink_200_options.txt", "SIP/2.0 200 OK", "7a9b8c7d6e5f@192.0.2.1", "1 OPTIONS", "z9hG4bK3c4d5e6f",
     "8f1e2d3c", "1290431237", 0),
    ("polycom_invite.txt", "INVITE sip:1002@pbx.example.com;user=phone SIP/2.0",
     "7f3c2a1b-9e8d7c6b-5a4f3e2d@192.0.2.60", "1 INVITE", "z9hG4bK2e3a7b1c4d5F9A8", "8A1B2C3D-4E5F6A7B", None,
     290),
    ("kamailio_options.txt", "OPTIONS sip:192.0.2.5:5060 SIP/2.0", "5c1b2a3f4e5d6c7b-3012@192.0.2.1",
     "10 OPTIONS", "z9hG4bKb1f4.4a0cbd52000000000000000000000000.0", "c3e7d1a0b5f2a4e6c8d9e0f1a2b3c4d5-1a2b",
     None, 0),
])
def test_capture_fields(name, start, call_id, cseq, branch, from_tag, to_tag, body_length):
    message = _parse(name)
    assert message.start_line() == start
    assert message.call_id == call_id
    assert str(message.cseq) == cseq
    assert message.top_via.branch == branch
    assert message.from_.tag == from_tag
    assert message.to.tag == to_tag
    assert len(message.body) == body_length


def test_pjsua2_register_with_digest_credentials():
    message = _request("pjsua2_register_auth.txt")
    assert message.top_via.params == {"rport": None,
                                      "branch": "z9hG4bKPjb7c0a6d1-2f4e-4a63-9a0e-3d2b5c7e8f10"}
    [contact] = message.contacts
    assert contact.uri == SipUri(host="192.0.2.10", user="1001", port=5060, params={"ob": None})
    assert message.expires == 300
    assert message.max_forwards == 70
    authorization = message.headers.get("Authorization", "")
    assert authorization.startswith('Digest username="1001", realm="pbx.example.com"')
    assert len(message.headers.get_all("Allow")) == 12


def test_pjsua2_invite_with_sdp():
    message = _request("pjsua2_invite.txt")
    assert message.from_.display_text == "Alice"
    assert message.headers.get_all("Route") == ["<sip:pbx.example.com;lr>"]
    assert message.headers.get_all("Supported") == ["replaces", "100rel", "timer", "norefersub",
                                                    "trickle-ice"]
    assert message.content_type == "application/sdp"
    assert message.body.startswith(b"v=0\r\no=- 3929442334")
    assert message.body.endswith(b"cname:4b1a2c3d4e5f6a7b\r\n")


def test_baresip_register_and_200():
    register = _request("baresip_register.txt")
    assert register.contacts[0].params == {"expires": "3600"}
    assert register.headers.get_all("Allow") == ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "NOTIFY",
                                                 "SUBSCRIBE", "INFO", "MESSAGE", "UPDATE"]
    ok = _response("baresip_200_invite.txt")
    assert (ok.status_code, ok.reason) == (200, "OK")
    assert ok.top_via.params == {"branch": "z9hG4bK7f3a2c1e9d8b", "rport": "5060", "received": "192.0.2.1"}
    assert ok.headers.get_all("Record-Route") == ["<sip:192.0.2.1;lr>"]


def test_sipp_token_display_names_and_addr_spec_contact():
    message = _request("sipp_uac_invite.txt")
    assert message.from_.display_name == "sipp"
    assert message.to.display_name == "service"
    assert str(message.contacts[0]) == "<sip:sipp@127.0.1.1:5061>"
    assert message.headers.get("Subject") == "Performance Test"


def test_sipp_compact_forms():
    message = _request("sipp_compact_options.txt")
    assert [name for name, _ in message.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Contact",
                                                     "Supported", "Max-Forwards", "Content-Length"]
    assert message.headers.get("k") == message.headers.get("Supported") == "replaces"


def test_linphone_register_over_tls():
    message = _request("linphone_register.txt")
    assert (message.top_via.transport, message.top_via.params["alias"]) == ("TLS", None)
    assert message.headers.get_lines("Accept") == ["application/sdp", "text/plain",
                                                   "application/vnd.gsma.rcs-ft-http+xml"]
    [contact] = message.contacts
    assert contact.sip_uri.transport == "tls"
    assert contact.params == {"+sip.instance": '"<urn:uuid:5a3e1c2b-8d4f-4a6b-9c0e-1f2a3b4c5d6e>"'}
    assert str(message.to) == "<sip:dave@sip.example.com>"


def test_yealink_register_and_options_answer():
    message = _request("yealink_register_auth.txt")
    assert message.uri == SipUri(host="pbx.example.com", port=5060)
    assert message.from_.display_text == "Reception"
    assert message.contacts[0].params["reg-id"] == "1"
    assert message.headers.get("X-Yealink-Network") == "lan=100M"
    ok = _response("yealink_200_options.txt")
    assert ok.headers.get_all("Allow-Events") == ["talk", "hold", "conference", "refer", "check-sync"]


def test_polycom_user_phone_parameter():
    message = _request("polycom_invite.txt")
    assert isinstance(message.uri, SipUri)
    assert message.uri.params == {"user": "phone"}
    assert message.to.sip_uri.params == {"user": "phone"}
    assert message.from_.display_text == "Front Desk"


@pytest.mark.parametrize("name", sorted(INVALID))
def test_broken_captures_say_exactly_what_is_wrong(name):
    with pytest.raises(SipParseError) as error:
        parse_message((DATA / "invalid" / f"{name}.txt").read_bytes())
    assert error.value.reason == INVALID[name]
    assert error.value.status_code == 400
    assert isinstance(error.value.partial, SipRequest)


# --- parsing rules -------------------------------------------------------------------


def test_folded_lines_are_joined_by_one_space():
    message = parse_message(_invite(
        "Subject: I know you're there,\r\n\tpick up the phone\r\n   and talk to me!",
        "Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>"))
    assert message.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert message.headers.get_all("Route") == ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]


def test_the_start_line_cannot_be_folded():
    with pytest.raises(SipParseError) as error:
        parse_message(_message("OPTIONS sip:a@example.com SIP/2.0", " Via: SIP/2.0/UDP h", *_DIALOG[1:]))
    assert error.value.reason == "malformed header line ' Via: SIP/2.0/UDP h'"


def test_several_values_in_one_line_or_several_lines_mean_the_same():
    one_line = parse_message(_invite(
        "Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/TCP p2:5070;branch=z9hG4bK2",
        "Contact: \"Smith, J\" <sip:j@h1>, <sip:k@h2>"))
    lines = parse_message(_invite("Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
                                  "Via: SIP/2.0/TCP p2:5070;branch=z9hG4bK2",
                                  "Contact: \"Smith, J\" <sip:j@h1>", "Contact: <sip:k@h2>"))
    assert one_line.vias == lines.vias
    assert [str(v) for v in one_line.vias][1:] == ["SIP/2.0/UDP p1.example.com;branch=z9hG4bK1",
                                                   "SIP/2.0/TCP p2:5070;branch=z9hG4bK2"]
    assert one_line.contacts == lines.contacts
    assert one_line.contacts[0].display_text == "Smith, J"
    assert len(one_line.headers.get_lines("Contact")) == 1 and len(lines.headers.get_lines("Contact")) == 2


def test_quoted_display_names_and_escaped_user_parts():
    message = parse_message(_message(
        "MESSAGE sip:%61lice@pbx.example.com SIP/2.0", _DIALOG[0],
        'From: "Bob \\"The Builder\\" \\\\o/" <sip:bob%40home@pbx.example.com>;tag=9',
        "To: <sip:alice@pbx.example.com>",
        "Call-ID: x1", "CSeq: 1 MESSAGE"))
    assert message.from_.display_text == 'Bob "The Builder" \\o/'
    assert message.from_.sip_uri.user == "bob%40home"
    assert message.from_.sip_uri.user_unescaped == "bob@home"
    assert isinstance(message.uri, SipUri) and message.uri.user_unescaped == "alice"


def test_header_names_are_case_insensitive():
    message = parse_message(_message("OPTIONS sip:a@example.com SIP/2.0",
                                     "vIA: SIP/2.0/UDP h;branch=z9hG4bK1", "FROM: <sip:b@example.com>;tag=1",
                                     "tO: <sip:a@example.com>", "CALL-id: c1", "cSeQ: 1 OPTIONS",
                                     "max-FORWARDS: 9"))
    assert message.call_id == "c1"
    assert message.headers.get("call-id") == message.headers.get("i") == "c1"
    assert [name for name, _ in message.headers] == ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards"]
    assert isinstance(message, SipRequest) and message.max_forwards == 9


def test_methods_are_case_sensitive():
    lower = parse_message(_message("invite sip:a@example.com SIP/2.0", *_DIALOG[:4], "CSeq: 1 invite"))
    assert isinstance(lower, SipRequest) and lower.method == "invite"  # an unknown method, not INVITE
    with pytest.raises(SipParseError) as error:
        parse_message(_message("INVITE sip:a@example.com SIP/2.0", *_DIALOG[:4], "CSeq: 1 invite"))
    assert error.value.reason == "CSeq method invite does not match the request method INVITE"


def test_uri_scheme_host_and_parameter_names_are_case_insensitive():
    message = parse_message(_message("OPTIONS SIP:Alice@PBX.EXAMPLE.COM;Transport=TCP SIP/2.0", *_DIALOG[:4],
                                     "CSeq: 1 OPTIONS"))
    assert isinstance(message, SipRequest)
    assert message.uri == SipUri(host="pbx.example.com", user="Alice", params={"transport": "TCP"})
    assert message.start_line() == "OPTIONS sip:Alice@pbx.example.com;transport=TCP SIP/2.0"


def test_sip_version_is_case_insensitive_and_other_versions_are_a_505():
    message = parse_message(_message("OPTIONS sip:a@example.com sip/2.0", *_DIALOG[:4], "CSeq: 1 OPTIONS"))
    assert isinstance(message, SipRequest) and message.version == "sip/2.0"
    with pytest.raises(SipParseError) as error:
        parse_message(_message("OPTIONS sip:a@example.com SIP/2.1", *_DIALOG[:4], "CSeq: 1 OPTIONS"))
    assert (error.value.status_code, error.value.reason) == (505, "SIP version SIP/2.1 is not supported")
    assert isinstance(error.value.partial, SipRequest) and error.value.partial.method == "OPTIONS"


@pytest.mark.parametrize("data", [
    _invite(body=b"v=0\r\n"),
    _invite().replace(b"\r\n", b"\n") + b"v=0\r\n",
    b"\r\n\r\n" + _invite(body=b"v=0\r\n"),
])
def test_missing_content_length_on_a_datagram_means_the_rest(data):
    assert parse_message(data).body == b"v=0\r\n"


def test_content_length_smaller_than_the_body_truncates_it():
    assert parse_message(_invite("Content-Length: 3", body=b"v=0\r\nignored")).body == b"v=0"
    assert parse_message(_invite("l: 0", body=b"INVITE sip:x SIP/2.0\r\n")).body == b""


@pytest.mark.parametrize("extra, reason", [
    (("Content-Length: 10",), "Content-Length 10 is larger than the body (5 bytes)"),
    (("Content-Length: -5",), "malformed Content-Length '-5'"),
    (("Content-Length: 5 ",), None),
    (("Content-Length: 0x5",), "malformed Content-Length '0x5'"),
    (("Content-Length: 5", "l: 3"), "conflicting Content-Length headers"),
    (("Content-Length: 5", "l: 5"), None),
    (("Content-Length: 0000000000005",), None),
    (("Content-Length: 99999999999",), "malformed Content-Length '99999999999'"),
])
def test_content_length_rules(extra, reason):
    data = _invite(*extra, body=b"v=0\r\n")
    if reason is None:
        assert parse_message(data).body == b"v=0\r\n"
        return
    with pytest.raises(SipParseError) as error:
        parse_message(data)
    assert error.value.reason == reason


def test_line_end_variants():
    crlf = parse_message(_invite("Content-Length: 5", body=b"v=0\r\n"))
    bare_lf = parse_message(_invite("Content-Length: 5").replace(b"\r\n", b"\n") + b"v=0\r\n")
    mixed = parse_message(_invite("Content-Length: 5")[:-2] + b"\n" + b"v=0\r\n")
    no_empty_line = parse_message(_invite()[:-4])
    for message in (bare_lf, mixed, no_empty_line):
        assert list(message.headers)[:5] == list(crlf.headers)[:5]
    assert bare_lf.body == mixed.body == b"v=0\r\n"
    assert no_empty_line.body == b""


@pytest.mark.parametrize("data, reason", [
    (b"", "message has no start line"),
    (b"\r\n\r\n", "message has no start line"),
    (b"INV@TE sip:a@b SIP/2.0\r\n\r\n", "malformed method 'INV@TE'"),
    (b"INVITE sip:a@b SIP/2\r\n\r\n", "malformed SIP version 'SIP/2'"),
    (b"INVITE\tsip:a@b SIP/2.0\r\n\r\n", "malformed request line 'INVITE\\tsip:a@b SIP/2.0'"),
    (b"SIP/2.0 099 Odd\r\n\r\n", "status code out of range: 99"),
    (b"SIP/2.0 2000 OK\r\n\r\n", "malformed status line 'SIP/2.0 2000 OK'"),
    (b"SIP/2.0 200 O\x01K\r\n\r\n", "reason phrase has control characters: 'O\\x01K'"),
    (b"SIP/2.1 200 OK\r\n\r\n", "SIP version SIP/2.1 is not supported"),
    (_invite("Date: Sat, 15 Oct 2005 04:44:56 CET"),
     "malformed Date 'Sat, 15 Oct 2005 04:44:56 CET': RFC 1123 form in GMT required"),
    (_invite("Content-Type: sdp"), "malformed media type 'sdp'"),
    (_invite("Max-Forwards: -1"), "Max-Forwards is not a valid number: '-1'"),
    (_invite("Contact: *", "Contact: *"), "Contact: * must be the only Contact"),
    (_message("INVITE sip:a@b?Subject=x SIP/2.0", *_DIALOG), "Request-URI has headers: 'sip:a@b?Subject=x'"),
])
def test_malformed_messages(data, reason):
    with pytest.raises(SipParseError) as error:
        parse_message(data)
    assert error.value.reason == reason


def test_a_response_parses_with_or_without_a_reason_phrase():
    headers = ("Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:b@x>;tag=1", "To: <sip:a@x>;tag=2",
               "Call-ID: c", "CSeq: 1 INVITE")
    ringing = parse_message(_message("SIP/2.0 180 Ringing", *headers))
    assert isinstance(ringing, SipResponse) and (ringing.status_code, ringing.reason) == (180, "Ringing")
    bare = parse_message(_message("SIP/2.0 200", *headers))
    assert isinstance(bare, SipResponse) and (bare.status_code, bare.reason) == (200, "")
    assert parse_message(_message("SIP/2.0 200 OK", *headers[:4], "CSeq: 1 BYE")).cseq.method == "BYE"


def test_contact_star():
    message = parse_message(_message("REGISTER sip:pbx.example.com SIP/2.0", *_DIALOG[:4], "CSeq: 2 REGISTER",
                                     "Contact: *", "Expires: 0"))
    assert message.contact_is_star
    assert message.contacts == []
    assert message.expires == 0


def test_a_request_with_a_broken_header_line_still_yields_what_a_400_needs():
    with pytest.raises(SipParseError) as error:
        parse_message(_invite("this is not a header"))
    partial = error.value.partial
    assert isinstance(partial, SipRequest) and partial.method == "INVITE"
    response = make_response(partial, 400, error.value.reason, to_tag="t1")
    assert response.headers.get("Via") == _DIALOG[0].removeprefix("Via: ")
    assert response.to.tag == "t1"
    assert response.reason == "malformed header line 'this is not a header'"


def test_typed_values_follow_header_changes():
    message = parse_message(_invite())
    assert message.to.tag is None
    message.headers.set("To", "<sip:1002@pbx.example.com>;tag=xyz")
    assert message.to.tag == "xyz"
    message.headers.prepend("Via", "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp")
    assert message.top_via.host == "proxy.example.com"
    assert message.headers.pop_first("Via") == "SIP/2.0/TCP proxy.example.com;branch=z9hG4bKp"
    assert message.top_via.host == "192.0.2.10"
    message.headers.remove("CSeq")
    with pytest.raises(RemoteProtocolError, match="missing CSeq header"):
        _ = message.cseq


def test_serialize_builds_a_message_and_writes_content_length():
    request = SipRequest("MESSAGE", SipUri(host="pbx.example.com", user="1002"),
                         [("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"),
                          ("From", "<sip:1001@pbx.example.com>;tag=a"), ("To", "<sip:1002@pbx.example.com>"),
                          ("Call-ID", "m1"), ("CSeq", "1 MESSAGE"), ("Content-Type", "text/plain"),
                          ("Content-Length", "999"), ("l", "1")],
                         body="héllo".encode())
    assert request.serialize() == (
        b"MESSAGE sip:1002@pbx.example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:1001@pbx.example.com>;tag=a\r\nTo: <sip:1002@pbx.example.com>\r\nCall-ID: m1\r\n"
        b"CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nh\xc3\xa9llo")
    assert parse_message(request.serialize()).body == "héllo".encode()
    assert SipResponse(486).serialize() == b"SIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n\r\n"
    assert SipResponse(299).reason == "Unknown"


# --- make_response -------------------------------------------------------------------


def test_make_response_copies_the_dialog_headers_and_adds_a_to_tag():
    invite = parse_message(_message(
        "INVITE sip:1002@pbx.example.com SIP/2.0",
        "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp, SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK776",
        "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0", *_DIALOG[1:],
        "Record-Route: <sip:proxy.example.com;lr>", "Record-Route: <sip:edge.example.com;lr>",
        "Contact: <sip:1001@192.0.2.10>"))
    assert isinstance(invite, SipRequest)
    ok = make_response(invite, 200, to_tag="b7c9", headers=[("Contact", "<sip:1002@192.0.2.20>")],
                       body=b"v=0\r\n")
    assert ok.serialize() == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp, SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK776\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bK0\r\n"
        b"From: <sip:1001@pbx.example.com>;tag=1928301774\r\nTo: <sip:1002@pbx.example.com>;tag=b7c9\r\n"
        b"Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n"
        b"Record-Route: <sip:proxy.example.com;lr>\r\nRecord-Route: <sip:edge.example.com;lr>\r\n"
        b"Contact: <sip:1002@192.0.2.20>\r\nContent-Length: 5\r\n\r\nv=0\r\n")
    trying = make_response(invite, 100, to_tag="b7c9")
    assert trying.to.tag is None  # RFC 3261 8.2.6.2: no tag in a 100
    assert "Record-Route" not in trying.headers
    busy = make_response(invite, 486, to_tag="b7c9")
    assert (busy.reason, busy.to.tag) == ("Busy Here", "b7c9")
    assert "Record-Route" not in busy.headers


def test_make_response_keeps_an_existing_to_tag():
    bye = parse_message(_message("BYE sip:1002@192.0.2.20 SIP/2.0", *_DIALOG[:2],
                                 "To: <sip:1002@pbx.example.com>;tag=x", "Call-ID: a84b4c76e66710",
                                 "CSeq: 314160 BYE"))
    assert isinstance(bye, SipRequest)
    assert make_response(bye, 200, to_tag="other").headers.get("To") == "<sip:1002@pbx.example.com>;tag=x"


def test_make_response_to_a_request_whose_to_is_broken():
    with pytest.raises(SipParseError) as error:
        parse_message(_message("OPTIONS sip:a@b SIP/2.0", _DIALOG[0], _DIALOG[1], "To: Bell, A <sip:a@b>",
                               "Call-ID: c", "CSeq: 1 OPTIONS"))
    partial = error.value.partial
    assert isinstance(partial, SipRequest)
    response = make_response(partial, 400, error.value.reason, to_tag="t")
    assert response.headers.get("To") == "Bell, A <sip:a@b>"


# --- robustness: what a peer can send must only ever be a SipParseError ----------------

_TORTURE = Path(__file__).resolve().parents[2] / "data" / "sip" / "rfc4475"
_SEEDS = [p.read_bytes() for p in [*sorted(DATA.glob("*.txt")), *sorted(_TORTURE.glob("*.dat"))]]
_INTERESTING = [b"\r\n", b"\n", b"\r", b" ", b"\t", b"\r\n ", b":", b";", b",", b"=", b"<", b">", b'"', b"\\",
                b"%", b"%0", b"@", b"?", b"&", b"[", b"]", b"/", b"\x00", b"\x7f", b"\xff", b"\xc3", b"0",
                b"99999999999", b"-1", b"SIP/2.0", b"sip:", b"z9hG4bK", b"*", b"Content-Length: 0\r\n",
                b"l: 100000\r\n", b"Via: SIP/2.0/UDP [::1\r\n", b"\xef\xbb\xbf", b"\xed\xa0\x80"]


def _check_only_parse_errors(data: bytes) -> None:
    """parse_message raises SipParseError or returns a message that re-serializes and re-parses."""
    try:
        message = parse_message(data)
    except SipParseError:
        return
    # the typed accessors either work or say why (RemoteProtocolError), nothing else
    for accessor in ("vias", "from_", "to", "cseq", "call_id", "contacts", "contact_is_star", "content_type",
                     "expires", "max_forwards"):
        try:
            getattr(message, accessor, None)
        except RemoteProtocolError:
            pass
    canonical = message.serialize()
    again = parse_message(canonical)
    assert again.serialize() == canonical
    assert again.body == message.body


@given(st.binary(max_size=1500))
@example(b"INVITE sip:a@b SIP/2.0\r\n")
@example(b"SIP/2.0 200 OK\r\n\r\n")
def test_arbitrary_bytes(data):
    _check_only_parse_errors(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete", "flip", "duplicate_line", "truncate"]))
        if action == "insert":
            data[position:position] = draw(st.sampled_from(_INTERESTING))
        elif action == "replace":
            data[position:position + draw(st.integers(1, 8))] = draw(st.sampled_from(_INTERESTING))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 20))]
        elif action == "flip" and data:
            data[min(position, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif action == "duplicate_line":
            start = data.rfind(b"\n", 0, position) + 1
            end = data.find(b"\n", position)
            line = bytes(data[start:end + 1 if end >= 0 else len(data)])
            data[start:start] = line
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_captures(data):
    _check_only_parse_errors(data)


# --- speed ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pjsua2_register_auth.txt", "pjsua2_invite.txt"])
def test_parse_speed(name):
    """The Call Manager parses thousands of messages per second per core (about 25-30 µs each here)."""
    data = _capture(name)
    rounds = 2000
    best = min(timeit.repeat(lambda: parse_message(data), number=rounds, repeat=5)) / rounds
    assert best < 60e-6, f"{name}: {best * 1e6:.1f} µs per message"

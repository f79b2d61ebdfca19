"""RFC 3261 section 12 dialogs: creation on both sides, requests they build, what they accept."""

from __future__ import annotations

import itertools
import json

import pytest

from pbx_services.sip import dialog as dialog_module
from pbx_services.sip.dialog import (
    Dialog,
    DialogState,
    request_dialog_id,
    response_dialog_id,
)
from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError
from pbx_services.sip.headers import Address
from pbx_services.sip.message import SipRequest, SipResponse
from pbx_services.sip.uri import SipUri
from tests.unit.sip.wire import crlf, parse_request, parse_response

PBX_CONTACT = Address.parse("<sip:200@203.0.113.1:5060>")


@pytest.fixture(autouse=True)
def fixed_branches(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count(1)
    monkeypatch.setattr(dialog_module, "make_branch", lambda: f"z9hG4bKfixed{next(counter)}")


# -- we answer (UAS) ------------------------------------------------------------------------------

PHONE_INVITE = crlf(
    "INVITE sip:200@203.0.113.1:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKprx2\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKphone01;rport\n"
    "Max-Forwards: 69\n"
    "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\n"
    'From: "Alice" <sip:100@pbx.example.com>;tag=ph1\n'
    "To: <sip:200@pbx.example.com>\n"
    "Call-ID: dlg-1@10.0.0.5\n"
    "CSeq: 20 INVITE\n"
    "Contact: <sip:100@10.0.0.5:5062;transport=udp>\n"
    "Content-Length: 0\n\n"
)


def from_phone(method: str, cseq: int, *, contact: str | None = None, to_tag: str = "pbx1",
               from_tag: str = "ph1") -> SipRequest:
    """A request the phone sends in the dialog."""
    contact_line = f"Contact: {contact}\n" if contact else ""
    return parse_request(crlf(
        f"{method} sip:200@203.0.113.1:5060 SIP/2.0\n"
        f"Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKin{cseq}{method};rport\n"
        "Max-Forwards: 70\n"
        f'From: "Alice" <sip:100@pbx.example.com>;tag={from_tag}\n'
        f"To: <sip:200@pbx.example.com>;tag={to_tag}\n"
        "Call-ID: dlg-1@10.0.0.5\n"
        f"CSeq: {cseq} {method}\n"
        f"{contact_line}"
        "Content-Length: 0\n\n"
    ))


def uas_dialog() -> Dialog:
    return Dialog.from_uas(parse_request(PHONE_INVITE), local_tag="pbx1", local_contact=PBX_CONTACT)


def test_from_uas_takes_the_dialog_state_from_the_invite() -> None:
    dialog = uas_dialog()
    assert dialog.id == ("dlg-1@10.0.0.5", "pbx1", "ph1")
    assert dialog.state is DialogState.EARLY
    assert str(dialog.local_uri) == "<sip:200@pbx.example.com>"
    assert str(dialog.remote_uri) == '"Alice" <sip:100@pbx.example.com>'
    assert dialog.remote_target == SipUri.parse("sip:100@10.0.0.5:5062;transport=udp")
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert (dialog.local_seq, dialog.remote_seq) == (0, 20)
    assert dialog.local_contact is PBX_CONTACT
    dialog.confirm()
    assert dialog.state is DialogState.CONFIRMED


def test_a_dialog_goes_to_json_and_comes_back_the_same() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    dialog.create_request("INFO", via_host="203.0.113.1", via_port=5060, transport="udp")

    again = Dialog.from_json(json.loads(json.dumps(dialog.to_json())))

    assert again.to_json() == dialog.to_json()
    assert (again.id, again.state, again.local_seq, again.remote_seq) == (
        ("dlg-1@10.0.0.5", "pbx1", "ph1"), DialogState.CONFIRMED, 1, 20)
    bye = again.create_request("BYE", via_host="203.0.113.1", via_port=5060, transport="udp")
    assert bye.cseq.seq == 2 and bye.headers.get_all("Route") == dialog.route_set


@pytest.mark.parametrize(("change", "message"), [
    ({"remote_target": "tel:+15551234"}, "remote_target is not a SIP URI"),
    ({"state": "lost"}, "'lost' is not a valid DialogState"),
    ({"local_seq": None}, "not a dialog"),
])
def test_a_json_that_is_not_a_dialog_is_refused(change: dict[str, object], message: str) -> None:
    data = {**uas_dialog().to_json(), **change}
    with pytest.raises(ValueError, match=message):
        Dialog.from_json(data)


def test_from_uas_needs_a_contact() -> None:
    invite = parse_request(PHONE_INVITE.replace(b"Contact: <sip:100@10.0.0.5:5062;transport=udp>\r\n", b""))
    with pytest.raises(RemoteProtocolError, match="no Contact") as error:
        Dialog.from_uas(invite, local_tag="pbx1", local_contact=PBX_CONTACT)
    assert error.value.status_code == 400


def test_from_uas_refuses_a_non_sip_contact_with_416() -> None:
    invite = parse_request(PHONE_INVITE.replace(b"<sip:100@10.0.0.5:5062;transport=udp>", b"<tel:+15551234>"))
    with pytest.raises(RemoteProtocolError) as error:
        Dialog.from_uas(invite, local_tag="pbx1", local_contact=PBX_CONTACT)
    assert error.value.status_code == 416


def test_uas_bye_follows_the_record_route_in_order() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    bye = dialog.create_request("BYE", via_host="203.0.113.1", via_port=5060, transport="udp")
    assert bye.serialize() == crlf(
        "BYE sip:100@10.0.0.5:5062;transport=udp SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKfixed1;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:p2.example.com;lr>\n"
        "Route: <sip:p1.example.com;lr>\n"
        "From: <sip:200@pbx.example.com>;tag=pbx1\n"
        'To: "Alice" <sip:100@pbx.example.com>;tag=ph1\n'
        "Call-ID: dlg-1@10.0.0.5\n"
        "CSeq: 1 BYE\n"
        "Content-Length: 0\n\n"
    )
    assert dialog.local_seq == 1
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(LocalProtocolError, match="terminated"):
        dialog.create_request("BYE", via_host="203.0.113.1", via_port=5060, transport="UDP")


def test_uas_reinvite_carries_the_local_contact_and_a_body() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    sdp = b"v=0\r\no=- 1 2 IN IP4 203.0.113.1\r\ns=-\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n"
    reinvite = dialog.create_request("INVITE", via_host="203.0.113.1", via_port=5060, transport="UDP",
                                     body=sdp, content_type="application/sdp",
                                     extra_headers=[("Supported", "timer")])
    assert reinvite.serialize() == crlf(
        "INVITE sip:100@10.0.0.5:5062;transport=udp SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKfixed1;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:p2.example.com;lr>\n"
        "Route: <sip:p1.example.com;lr>\n"
        "From: <sip:200@pbx.example.com>;tag=pbx1\n"
        'To: "Alice" <sip:100@pbx.example.com>;tag=ph1\n'
        "Call-ID: dlg-1@10.0.0.5\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:200@203.0.113.1:5060>\n"
        "Supported: timer\n"
        "Content-Type: application/sdp\n"
        f"Content-Length: {len(sdp)}\n\n"
    ) + sdp
    info = dialog.create_request("INFO", via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert info.cseq.seq == 2 and info.headers.get("Contact") is None
    notify = dialog.create_request("NOTIFY", via_host="203.0.113.1", via_port=5060, transport="TCP",
                                   contact=Address.parse("<sip:200@203.0.113.1:5060;transport=tcp>"))
    assert notify.headers.get("Contact") == "<sip:200@203.0.113.1:5060;transport=tcp>"
    assert notify.headers.get("Via") == "SIP/2.0/TCP 203.0.113.1:5060;branch=z9hG4bKfixed3;rport"


def test_ipv6_via_host_is_bracketed() -> None:
    dialog = uas_dialog()
    request = dialog.create_request("OPTIONS", via_host="2001:db8::1", via_port=5060, transport="UDP")
    assert request.headers.get("Via") == "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKfixed1;rport"
    assert request.top_via.host == "[2001:db8::1]"


def test_create_request_refuses_ack_and_cancel() -> None:
    dialog = uas_dialog()
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError, match=f"{method} is not made by create_request"):
            dialog.create_request(method, via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert dialog.local_seq == 0


def test_remote_cseq_must_not_go_back() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    dialog.receive_request(from_phone("ACK", 20))
    dialog.receive_request(from_phone("UPDATE", 21))
    assert dialog.remote_seq == 21
    dialog.receive_request(from_phone("ACK", 20))  # the ACK keeps its INVITE's number
    with pytest.raises(RemoteProtocolError, match="CSeq 19 is lower than 21") as error:
        dialog.receive_request(from_phone("INFO", 19))
    assert error.value.status_code == 500
    assert dialog.remote_seq == 21
    dialog.receive_request(from_phone("INFO", 30))  # gaps are allowed
    assert dialog.remote_seq == 30


def test_target_refresh_requests_replace_the_remote_target() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    dialog.receive_request(from_phone("INVITE", 21, contact="<sip:100@198.51.100.7:40000>"))
    assert dialog.remote_target == SipUri.parse("sip:100@198.51.100.7:40000")
    dialog.receive_request(from_phone("UPDATE", 22, contact="<sip:100@198.51.100.8:40000>"))
    assert dialog.remote_target == SipUri.parse("sip:100@198.51.100.8:40000")
    dialog.receive_request(from_phone("INFO", 23, contact="<sip:100@192.0.2.99>"))
    dialog.receive_request(from_phone("INVITE", 24))  # a re-INVITE without Contact keeps it
    assert dialog.remote_target == SipUri.parse("sip:100@198.51.100.8:40000")


def test_a_received_bye_ends_the_dialog() -> None:
    dialog = uas_dialog()
    dialog.confirm()
    bye = from_phone("BYE", 21)
    assert request_dialog_id(bye) == dialog.id
    dialog.receive_request(bye)
    assert dialog.state is DialogState.TERMINATED
    with pytest.raises(RemoteProtocolError) as error:
        dialog.receive_request(from_phone("INFO", 22))
    assert error.value.status_code == 481


def test_a_request_of_another_dialog_is_our_mistake() -> None:
    dialog = uas_dialog()
    with pytest.raises(LocalProtocolError, match="another dialog"):
        dialog.receive_request(from_phone("BYE", 21, to_tag="other"))
    with pytest.raises(LocalProtocolError, match="another dialog"):
        dialog.receive_request(from_phone("BYE", 21, from_tag="other"))


def test_uas_terminate() -> None:
    dialog = uas_dialog()
    dialog.terminate()
    assert dialog.state is DialogState.TERMINATED
    dialog.confirm()
    assert dialog.state is DialogState.TERMINATED


# -- we call (UAC) --------------------------------------------------------------------------------

OUR_INVITE = crlf(
    "INVITE sip:bob@example.com SIP/2.0\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport\n"
    "Max-Forwards: 70\n"
    'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
    "To: <sip:bob@example.com>\n"
    "Call-ID: call-1@pbx\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@203.0.113.1:5060>\n"
    "Content-Length: 0\n\n"
)


def bob_answers(code: int, *, record_route: str = "", contact: str | None = "<sip:bob@192.0.2.20:5060>",
                to_tag: str | None = "bobtag", cseq: str = "1 INVITE") -> SipResponse:
    tag = f";tag={to_tag}" if to_tag else ""
    contact_line = f"Contact: {contact}\n" if contact else ""
    return parse_response(crlf(
        f"SIP/2.0 {code} Whatever\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport=5060;received=203.0.113.1\n"
        f"{record_route}"
        'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        f"To: <sip:bob@example.com>{tag}\n"
        "Call-ID: call-1@pbx\n"
        f"CSeq: {cseq}\n"
        f"{contact_line}"
        "Content-Length: 0\n\n"
    ))


RINGING_ROUTES = "Record-Route: <sip:p1.example.com;lr>\nRecord-Route: <sip:p2.example.com;lr>\n"
OK_ROUTES = "Record-Route: <sip:p1.example.com;lr>, <sip:p3.example.com;lr>\n"


def test_from_uac_early_then_confirmed_by_the_2xx() -> None:
    invite = parse_request(OUR_INVITE)
    ringing = bob_answers(180, record_route=RINGING_ROUTES)
    dialog = Dialog.from_uac(invite, ringing)
    assert dialog.id == response_dialog_id(ringing) == ("call-1@pbx", "pbxtag1", "bobtag")
    assert dialog.state is DialogState.EARLY
    assert str(dialog.local_uri) == '"PBX" <sip:alice@pbx.example.com>'
    assert str(dialog.remote_uri) == "<sip:bob@example.com>"
    assert dialog.route_set == ["<sip:p2.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert (dialog.local_seq, dialog.remote_seq) == (1, None)
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.20:5060")
    assert str(dialog.local_contact) == "<sip:alice@203.0.113.1:5060>"
    # the 2xx confirms it, and its Record-Route and Contact win
    dialog.receive_response(bob_answers(200, record_route=OK_ROUTES, contact="<sip:bob@192.0.2.21:5070>"))
    assert dialog.state is DialogState.CONFIRMED
    assert dialog.route_set == ["<sip:p3.example.com;lr>", "<sip:p1.example.com;lr>"]
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.21:5070")
    ack = dialog.create_ack(1, via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert ack.serialize() == crlf(
        "ACK sip:bob@192.0.2.21:5070 SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKfixed1;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:p3.example.com;lr>\n"
        "Route: <sip:p1.example.com;lr>\n"
        'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        "To: <sip:bob@example.com>;tag=bobtag\n"
        "Call-ID: call-1@pbx\n"
        "CSeq: 1 ACK\n"
        "Content-Length: 0\n\n"
    )
    assert dialog.local_seq == 1  # an ACK takes no new number
    # a retransmitted 2xx changes nothing
    dialog.receive_response(bob_answers(200, record_route=RINGING_ROUTES,
                                        contact="<sip:bob@192.0.2.21:5070>"))
    assert dialog.route_set == ["<sip:p3.example.com;lr>", "<sip:p1.example.com;lr>"]


def test_uac_ack_with_a_late_offer_and_no_route_set() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(200))
    assert dialog.state is DialogState.CONFIRMED and dialog.route_set == []
    sdp = b"v=0\r\n"
    ack = dialog.create_ack(1, via_host="203.0.113.1", via_port=5060, transport="UDP", body=sdp,
                            content_type="application/sdp")
    assert ack.serialize() == crlf(
        "ACK sip:bob@192.0.2.20:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKfixed1;rport\n"
        "Max-Forwards: 70\n"
        'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        "To: <sip:bob@example.com>;tag=bobtag\n"
        "Call-ID: call-1@pbx\n"
        "CSeq: 1 ACK\n"
        "Content-Type: application/sdp\n"
        "Content-Length: 5\n\n"
    ) + sdp


def test_uac_bye_to_a_strict_router() -> None:
    routes = "Record-Route: <sip:p1.example.com;lr>, <sip:strict.example.com;x=1>\n"
    ok = bob_answers(200, record_route=routes)
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), ok)
    assert dialog.route_set == ["<sip:strict.example.com;x=1>", "<sip:p1.example.com;lr>"]
    bye = dialog.create_request("BYE", via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert bye.serialize() == crlf(
        "BYE sip:strict.example.com;x=1 SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKfixed1;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:p1.example.com;lr>\n"
        "Route: <sip:bob@192.0.2.20:5060>\n"
        'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        "To: <sip:bob@example.com>;tag=bobtag\n"
        "Call-ID: call-1@pbx\n"
        "CSeq: 2 BYE\n"
        "Content-Length: 0\n\n"
    )


def test_from_uac_needs_a_to_tag_on_a_1xx_and_a_contact_on_a_2xx() -> None:
    invite = parse_request(OUR_INVITE)
    with pytest.raises(LocalProtocolError, match="100 response"):
        Dialog.from_uac(invite, bob_answers(100, to_tag=None))
    with pytest.raises(LocalProtocolError, match="183 response without a To tag"):
        Dialog.from_uac(invite, bob_answers(183, to_tag=None))
    with pytest.raises(LocalProtocolError, match="486"):
        Dialog.from_uac(invite, bob_answers(486))
    with pytest.raises(RemoteProtocolError, match="no Contact"):
        Dialog.from_uac(invite, bob_answers(200, contact=None))
    untagged = parse_request(OUR_INVITE.replace(b";tag=pbxtag1", b""))
    with pytest.raises(LocalProtocolError, match="no From tag"):
        Dialog.from_uac(untagged, bob_answers(200))


def test_from_uac_early_without_contact_targets_the_request_uri_until_the_2xx() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(183, contact=None))
    assert dialog.remote_target == SipUri.parse("sip:bob@example.com")
    dialog.receive_response(bob_answers(183, contact="<sip:bob@192.0.2.30>"))
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.30")
    dialog.receive_response(bob_answers(200))
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.20:5060")


def test_from_uac_rfc2543_2xx_without_to_tag() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(200, to_tag=None))
    assert dialog.id == ("call-1@pbx", "pbxtag1", None)
    bye = dialog.create_request("BYE", via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert bye.headers.get("To") == "<sip:bob@example.com>"


def test_early_dialog_ends_with_a_failure() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(180))
    dialog.receive_response(bob_answers(486))
    assert dialog.state is DialogState.TERMINATED


def test_a_failed_reinvite_keeps_the_dialog_but_481_and_408_end_it() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(200))
    reinvite = dialog.create_request("INVITE", via_host="203.0.113.1", via_port=5060, transport="UDP")
    assert reinvite.cseq.seq == 2 and reinvite.headers.get("Contact") == "<sip:alice@203.0.113.1:5060>"
    dialog.receive_response(bob_answers(488, cseq="2 INVITE"))
    assert dialog.state is DialogState.CONFIRMED
    dialog.receive_response(bob_answers(200, cseq="2 INVITE", contact="<sip:bob@192.0.2.40>"))
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.40")  # 2xx to a target refresh
    dialog.receive_response(bob_answers(200, cseq="3 INFO", contact="<sip:bob@192.0.2.41>"))
    assert dialog.remote_target == SipUri.parse("sip:bob@192.0.2.40")  # INFO refreshes nothing
    dialog.receive_response(bob_answers(481, cseq="4 INFO"))
    assert dialog.state is DialogState.TERMINATED
    other = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(200))
    other.receive_response(bob_answers(408, cseq="2 BYE"))
    assert other.state is DialogState.TERMINATED


def test_a_response_from_another_fork_is_our_mistake() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(180))
    with pytest.raises(LocalProtocolError, match="another dialog"):
        dialog.receive_response(bob_answers(200, to_tag="forked"))
    assert dialog.state is DialogState.EARLY


def test_uac_receives_requests_from_the_callee() -> None:
    dialog = Dialog.from_uac(parse_request(OUR_INVITE), bob_answers(200))
    info = parse_request(crlf(
        "INFO sip:alice@203.0.113.1:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.20:5060;branch=z9hG4bKbob1\n"
        "From: <sip:bob@example.com>;tag=bobtag\n"
        'To: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        "Call-ID: call-1@pbx\n"
        "CSeq: 5000 INFO\n"
        "Content-Length: 0\n\n"
    ))
    assert request_dialog_id(info) == dialog.id
    dialog.receive_request(info)
    assert dialog.remote_seq == 5000

"""RFC 3261 section 17 transactions (with RFC 6026 and RFC 3581), driven by an injected clock."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pbx_services.sip.errors import LocalProtocolError
from pbx_services.sip.events import (
    AckTimedOut,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransactionTimedOut,
    TransactionTimedOut,
    Transmit,
)
from pbx_services.sip.message import SipRequest, SipResponse, make_response
from pbx_services.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TransactionLayer,
    TransactionState,
    make_branch,
    make_cancel,
    make_tag,
)
from tests.unit.sip.wire import crlf, parse_request, parse_response

PHONE = ("198.51.100.7", 40000)  # a phone behind NAT: its Via says 10.0.0.5:5062
BOB = ("192.0.2.20", 5060)
YEALINK = ("192.0.2.50", 5062)
YEALINK_REGISTER_AUTH = (Path(__file__).resolve().parents[2] / "data" / "sip" / "yealink_register_auth.txt"
                         ).read_bytes()


def answer(request: SipRequest, code: int, to_tag: str | None = "bobtag") -> SipResponse:
    """A response to `request` as the peer would send it: built, serialized, parsed back."""
    return parse_response(make_response(request, code, to_tag=to_tag).serialize())


def incoming(method: str = "INVITE", *, branch: str | None = "z9hG4bKphone01", via_host: str = "10.0.0.5",
             via_port: int = 5062, via_params: str = ";rport", transport: str = "UDP", cseq: int = 20,
             to_tag: str | None = None, uri: str = "sip:200@pbx.example.com",
             call_id: str = "inv-1@10.0.0.5", extra: str = "") -> SipRequest:
    """A request from the phone, as bytes on the wire, parsed."""
    branch_param = f";branch={branch}" if branch else ""
    to_param = f";tag={to_tag}" if to_tag else ""
    return parse_request(crlf(
        f"{method} {uri} SIP/2.0\n"
        f"Via: SIP/2.0/{transport} {via_host}:{via_port}{branch_param}{via_params}\n"
        "Max-Forwards: 70\n"
        "From: <sip:100@pbx.example.com>;tag=ph1\n"
        f"To: <sip:200@pbx.example.com>{to_param}\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: {cseq} {method}\n"
        "Contact: <sip:100@10.0.0.5:5062>\n"
        f"{extra}"
        "Content-Length: 0\n\n"
    ))


OUR_INVITE = crlf(
    "INVITE sip:bob@192.0.2.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport\n"
    "Max-Forwards: 70\n"
    "Route: <sip:proxy.example.com;lr>\n"
    'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
    "To: <sip:bob@example.com>\n"
    "Call-ID: call-1@pbx\n"
    "CSeq: 1 INVITE\n"
    "Contact: <sip:alice@203.0.113.1:5060>\n"
    "Content-Length: 0\n\n"
)

BUSY_HERE = crlf(
    "SIP/2.0 486 Busy Here\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport=5060;received=203.0.113.1\n"
    'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
    "To: <sip:bob@example.com>;tag=bobtag\n"
    "Call-ID: call-1@pbx\n"
    "CSeq: 1 INVITE\n"
    "Content-Length: 0\n\n"
)

ACK_TO_BUSY_HERE = crlf(
    "ACK sip:bob@192.0.2.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport\n"
    "Max-Forwards: 70\n"
    "Route: <sip:proxy.example.com;lr>\n"
    'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
    "To: <sip:bob@example.com>;tag=bobtag\n"
    "Call-ID: call-1@pbx\n"
    "CSeq: 1 ACK\n"
    "Content-Length: 0\n\n"
)

OUR_OPTIONS = crlf(
    "OPTIONS sip:bob@192.0.2.20:5060 SIP/2.0\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0002;rport\n"
    "Max-Forwards: 70\n"
    "From: <sip:pbx@pbx.example.com>;tag=pbxtag2\n"
    "To: <sip:bob@example.com>\n"
    "Call-ID: options-1@pbx\n"
    "CSeq: 7 OPTIONS\n"
    "Content-Length: 0\n\n"
)


def run_timers(layer: TransactionLayer, until: float) -> list[tuple[float, list[Event], list[Transmit]]]:
    """Fire every timer up to `until` at its exact deadline, as the transport would."""
    log = []
    while (deadline := layer.next_timer()) is not None and deadline <= until:
        events = layer.handle_timer(deadline)
        log.append((deadline, events, layer.take_transmits()))
    return log


def transmit_times(log: list[tuple[float, list[Event], list[Transmit]]], start: float) -> list[float]:
    return [deadline - start for deadline, _, transmits in log for _ in transmits]


# -- identifiers ---------------------------------------------------------------------------


def test_make_branch_has_the_magic_cookie_and_24_random_hex_digits() -> None:
    branches = {make_branch() for _ in range(1000)}
    assert len(branches) == 1000
    assert all(re.fullmatch(r"z9hG4bK[0-9a-f]{24}", b) for b in branches)


def test_make_tag_is_random_lowercase_hex() -> None:
    """Lowercase hex cannot spell "CSeq": sipp 3.6 reads a response's CSeq method after the first
    "CSeq" anywhere in the message, and our To tag comes before the CSeq header, so a base64 tag
    such as "UkCSeqBek9ddxtM6" made it time out a registration (issue #8)."""
    tags = {make_tag() for _ in range(1000)}
    assert len(tags) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{24}", t) for t in tags)


def test_make_cancel_copies_what_rfc3261_9_1_says() -> None:
    invite = parse_request(OUR_INVITE)
    cancel = make_cancel(invite)
    assert cancel.serialize() == crlf(
        "CANCEL sip:bob@192.0.2.20:5060 SIP/2.0\n"
        "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport\n"
        "Max-Forwards: 70\n"
        "Route: <sip:proxy.example.com;lr>\n"
        'From: "PBX" <sip:alice@pbx.example.com>;tag=pbxtag1\n'
        "To: <sip:bob@example.com>\n"
        "Call-ID: call-1@pbx\n"
        "CSeq: 1 CANCEL\n"
        "Content-Length: 0\n\n"
    )


def test_make_cancel_keeps_only_the_top_via() -> None:
    two_vias = OUR_INVITE.replace(b";rport\r\n", b";rport, SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx\r\n")
    invite = parse_request(two_vias)
    assert make_cancel(invite).headers.get_lines("Via") == [
        "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKpbx0001;rport"]


# -- client INVITE (17.1.1) -----------------------------------------------------------------


def test_client_invite_timer_a_doubles_until_timer_b_at_32_s() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_INVITE), BOB, "UDP", now=100.0)
    assert layer.take_transmits() == [Transmit(OUR_INVITE, BOB, "UDP")]
    assert tx.state is TransactionState.CALLING and tx.is_invite and len(layer) == 1
    assert layer.next_timer() == 100.5
    log = run_timers(layer, until=1000.0)
    assert transmit_times(log, 100.0) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(t == Transmit(OUR_INVITE, BOB, "UDP") for _, _, ts in log for t in ts)
    assert [(deadline - 100.0, events) for deadline, events, _ in log if events] == [
        (32.0, [TransactionTimedOut(tx)])]
    assert tx.state is TransactionState.TERMINATED
    assert len(layer) == 0 and layer.next_timer() is None


def test_client_invite_t1_is_configurable() -> None:
    layer = TransactionLayer(t1=0.1)
    layer.send_request(parse_request(OUR_INVITE), BOB, "UDP", now=0.0)
    layer.take_transmits()
    log = run_timers(layer, until=100.0)
    assert transmit_times(log, 0.0) == pytest.approx([0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert log[-1][0] == pytest.approx(6.4)


def test_handle_timer_before_the_deadline_does_nothing() -> None:
    layer = TransactionLayer()
    layer.send_request(parse_request(OUR_INVITE), BOB, "UDP", now=0.0)
    layer.take_transmits()
    assert layer.handle_timer(0.49) == [] and layer.take_transmits() == []
    assert layer.handle_timer(0.5) == [] and len(layer.take_transmits()) == 1
    assert layer.next_timer() == 1.5


def test_client_invite_over_tcp_does_not_retransmit() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_INVITE), BOB, "tcp", now=0.0)
    assert layer.take_transmits() == [Transmit(OUR_INVITE, BOB, "TCP")]
    log = run_timers(layer, until=1000.0)
    assert log == [(32.0, [TransactionTimedOut(tx)], [])]
    assert len(layer) == 0


def test_client_invite_1xx_stops_timer_a_and_b() -> None:
    layer = TransactionLayer()
    invite = parse_request(OUR_INVITE)
    tx = layer.send_request(invite, BOB, "UDP", now=0.0)
    layer.take_transmits()
    assert layer.handle_timer(0.5) == []
    ringing = answer(invite, 180)
    assert layer.receive(ringing, BOB, "UDP", now=0.7) == [ResponseReceived(ringing, tx)]
    assert tx.state is TransactionState.PROCEEDING and tx.last_response is ringing
    again = answer(invite, 180)
    assert layer.receive(again, BOB, "UDP", now=0.8) == [ResponseReceived(again, tx)]
    assert layer.next_timer() is None
    assert layer.handle_timer(1000.0) == [] and layer.take_transmits() == [Transmit(OUR_INVITE, BOB, "UDP")]
    assert len(layer) == 1


def test_client_invite_failure_is_acked_by_the_layer_and_absorbed_until_timer_d() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_INVITE), BOB, "UDP", now=0.0)
    layer.take_transmits()
    busy = parse_response(BUSY_HERE)
    assert layer.receive(busy, BOB, "UDP", now=2.0) == [ResponseReceived(busy, tx)]
    assert layer.take_transmits() == [Transmit(ACK_TO_BUSY_HERE, BOB, "UDP")]
    assert tx.state is TransactionState.COMPLETED
    # a retransmitted 486 is absorbed and ACKed again; a late 180 is absorbed
    assert layer.receive(parse_response(BUSY_HERE), BOB, "UDP", now=3.0) == []
    assert layer.take_transmits() == [Transmit(ACK_TO_BUSY_HERE, BOB, "UDP")]
    assert layer.receive(answer(parse_request(OUR_INVITE), 180), BOB, "UDP", now=3.0) == []
    assert tx.request.serialize() == OUR_INVITE  # kept for the TU; only its bytes are let go of
    assert layer.next_timer() == 34.0
    assert run_timers(layer, until=1000.0) == [(34.0, [], [])]
    assert tx.state is TransactionState.TERMINATED and len(layer) == 0


def test_client_invite_failure_over_tcp_ends_at_once() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_INVITE), BOB, "TCP", now=0.0)
    layer.take_transmits()
    busy = parse_response(BUSY_HERE)
    assert layer.receive(busy, BOB, "TCP", now=1.0) == [ResponseReceived(busy, tx)]
    assert layer.take_transmits() == [Transmit(ACK_TO_BUSY_HERE, BOB, "TCP")]
    assert tx.state is TransactionState.TERMINATED
    assert len(layer) == 0 and layer.next_timer() is None


def test_client_invite_2xx_goes_to_accepted_and_further_2xx_reach_the_tu() -> None:
    layer = TransactionLayer()
    invite = parse_request(OUR_INVITE)
    tx = layer.send_request(invite, BOB, "UDP", now=0.0)
    layer.take_transmits()
    ok = answer(invite, 200)
    assert layer.receive(ok, BOB, "UDP", now=1.0) == [ResponseReceived(ok, tx)]
    assert tx.state is TransactionState.ACCEPTED
    assert layer.take_transmits() == []  # the ACK to a 2xx is the TU's
    again = answer(invite, 200)
    assert layer.receive(again, BOB, "UDP", now=2.0) == [ResponseReceived(again, tx)]
    assert layer.receive(answer(invite, 180), BOB, "UDP", now=2.0) == []
    assert layer.next_timer() == 33.0  # Timer M, 64*T1
    assert run_timers(layer, until=1000.0) == [(33.0, [], [])]
    assert len(layer) == 0
    late = answer(invite, 200)
    assert layer.receive(late, BOB, "UDP", now=40.0) == [ResponseReceived(late, None)]


def test_client_invite_2xx_from_another_fork_after_a_failure_reaches_the_tu() -> None:
    layer = TransactionLayer()
    invite = parse_request(OUR_INVITE)
    tx = layer.send_request(invite, BOB, "UDP", now=0.0)
    layer.receive(parse_response(BUSY_HERE), BOB, "UDP", now=1.0)
    ok = answer(invite, 200, to_tag="othertag")
    assert layer.receive(ok, BOB, "UDP", now=1.5) == [ResponseReceived(ok, tx)]
    assert tx.state is TransactionState.COMPLETED


# -- client non-INVITE (17.1.2) ---------------------------------------------------------------


def test_client_non_invite_timer_e_doubles_to_t2_until_timer_f() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=10.0)
    assert tx.state is TransactionState.TRYING and not tx.is_invite
    assert layer.take_transmits() == [Transmit(OUR_OPTIONS, BOB, "UDP")]
    log = run_timers(layer, until=1000.0)
    assert transmit_times(log, 10.0) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert [(deadline - 10.0, events) for deadline, events, _ in log if events] == [
        (32.0, [TransactionTimedOut(tx)])]
    assert len(layer) == 0 and layer.next_timer() is None


def test_client_non_invite_after_a_1xx_retransmits_every_t2() -> None:
    layer = TransactionLayer()
    options = parse_request(OUR_OPTIONS)
    tx = layer.send_request(options, BOB, "UDP", now=0.0)
    layer.take_transmits()
    trying = answer(options, 100, to_tag=None)
    assert layer.receive(trying, BOB, "UDP", now=0.2) == [ResponseReceived(trying, tx)]
    assert tx.state is TransactionState.PROCEEDING
    log = run_timers(layer, until=1000.0)
    assert transmit_times(log, 0.0) == [0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert log[-1] == (32.0, [TransactionTimedOut(tx)], [])


def test_client_non_invite_t2_is_configurable() -> None:
    layer = TransactionLayer(t2=2.0)
    layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=0.0)
    layer.take_transmits()
    assert transmit_times(run_timers(layer, until=1000.0), 0.0)[:6] == [0.5, 1.5, 3.5, 5.5, 7.5, 9.5]


def test_client_non_invite_final_then_timer_k_absorbs_retransmissions() -> None:
    layer = TransactionLayer()
    options = parse_request(OUR_OPTIONS)
    tx = layer.send_request(options, BOB, "UDP", now=0.0)
    layer.take_transmits()
    ok = answer(options, 200)
    assert layer.receive(ok, BOB, "UDP", now=1.0) == [ResponseReceived(ok, tx)]
    assert tx.state is TransactionState.COMPLETED
    assert layer.receive(answer(options, 200), BOB, "UDP", now=2.0) == []
    assert tx.request is options  # the TU may read it while it handles the final response
    assert layer.next_timer() == 6.0  # Timer K, T4
    assert run_timers(layer, until=1000.0) == [(6.0, [], [])]
    assert len(layer) == 0 and layer.take_transmits() == []


def test_client_non_invite_t4_is_configurable() -> None:
    layer = TransactionLayer(t4=2.5)
    options = parse_request(OUR_OPTIONS)
    layer.send_request(options, BOB, "UDP", now=0.0)
    layer.receive(answer(options, 404), BOB, "UDP", now=1.0)
    assert layer.next_timer() == 3.5


def test_client_non_invite_over_tcp() -> None:
    layer = TransactionLayer()
    options = parse_request(OUR_OPTIONS)
    tx = layer.send_request(options, BOB, "TCP", now=0.0)
    assert layer.next_timer() == 32.0  # Timer F only: no Timer E on TCP
    ok = answer(options, 200)
    assert layer.receive(ok, BOB, "TCP", now=1.0) == [ResponseReceived(ok, tx)]
    assert tx.state is TransactionState.TERMINATED  # Timer K is 0
    assert len(layer) == 0 and layer.next_timer() is None


def test_client_non_invite_over_tcp_times_out() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_OPTIONS), BOB, "TCP", now=0.0)
    layer.take_transmits()
    assert run_timers(layer, until=1000.0) == [(32.0, [TransactionTimedOut(tx)], [])]


# -- client matching (17.1.3) and stray responses -------------------------------------------------


def test_responses_match_on_branch_and_cseq_method() -> None:
    layer = TransactionLayer()
    invite = parse_request(OUR_INVITE)
    invite_tx = layer.send_request(invite, BOB, "UDP", now=0.0)
    cancel = make_cancel(invite)
    cancel_tx = layer.send_request(cancel, BOB, "UDP", now=1.0)
    assert len(layer) == 2
    assert layer.take_transmits()[-1].data == cancel.serialize()
    cancel_ok = answer(cancel, 200)
    assert layer.receive(cancel_ok, BOB, "UDP", now=1.1) == [ResponseReceived(cancel_ok, cancel_tx)]
    terminated = answer(invite, 487)
    assert layer.receive(terminated, BOB, "UDP", now=1.2) == [ResponseReceived(terminated, invite_tx)]
    assert invite_tx.state is TransactionState.COMPLETED and cancel_tx.state is TransactionState.COMPLETED


def test_stray_responses_are_dropped() -> None:
    layer = TransactionLayer()
    options = parse_request(OUR_OPTIONS)
    assert layer.receive(answer(options, 200), BOB, "UDP", now=0.0) == []
    assert layer.receive(answer(parse_request(OUR_INVITE), 486), BOB, "UDP", now=0.0) == []
    assert layer.receive(answer(parse_request(OUR_INVITE), 180), BOB, "UDP", now=0.0) == []
    layer.send_request(options, BOB, "UDP", now=0.0)
    wrong_method = parse_response(answer(options, 200).serialize().replace(b"7 OPTIONS", b"7 INFO"))
    assert layer.receive(wrong_method, BOB, "UDP", now=0.1) == []
    wrong_branch = parse_response(answer(options, 200).serialize().replace(b"pbx0002", b"pbx9999"))
    assert layer.receive(wrong_branch, BOB, "UDP", now=0.1) == []
    assert layer.take_transmits() == [Transmit(OUR_OPTIONS, BOB, "UDP")]


def test_a_2xx_to_an_invite_without_transaction_reaches_the_tu() -> None:
    layer = TransactionLayer()
    ok = answer(parse_request(OUR_INVITE), 200)
    assert layer.receive(ok, BOB, "UDP", now=0.0) == [ResponseReceived(ok, None)]


def test_send_request_refuses_ack_a_missing_branch_and_a_duplicate() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError, match="send_stateless"):
        layer.send_request(parse_request(ACK_TO_BUSY_HERE), BOB, "UDP", now=0.0)
    no_branch = parse_request(OUR_OPTIONS.replace(b";branch=z9hG4bKpbx0002", b""))
    with pytest.raises(LocalProtocolError, match="no branch"):
        layer.send_request(no_branch, BOB, "UDP", now=0.0)
    layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=0.0)
    with pytest.raises(LocalProtocolError, match="exists"):
        layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=0.0)
    assert len(layer) == 1


def test_send_stateless_queues_in_order() -> None:
    layer = TransactionLayer()
    layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=0.0)
    layer.send_stateless(parse_request(ACK_TO_BUSY_HERE), BOB, "udp")
    assert layer.take_transmits() == [
        Transmit(OUR_OPTIONS, BOB, "UDP"), Transmit(ACK_TO_BUSY_HERE, BOB, "UDP")]
    assert layer.take_transmits() == [] and len(layer) == 1


# -- server INVITE (17.2.1) ------------------------------------------------------------------


TRYING_TO_PHONE = crlf(
    "SIP/2.0 100 Trying\n"
    "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKphone01;rport=40000;received=198.51.100.7\n"
    "From: <sip:100@pbx.example.com>;tag=ph1\n"
    "To: <sip:200@pbx.example.com>\n"
    "Call-ID: inv-1@10.0.0.5\n"
    "CSeq: 20 INVITE\n"
    "Content-Length: 0\n\n"
)


def new_invite_tx(layer: TransactionLayer, transport: str = "UDP", now: float = 0.0) -> ServerTransaction:
    events = layer.receive(incoming(transport=transport), PHONE, transport, now=now)
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    tx = events[0].transaction
    assert tx is not None
    layer.take_transmits()
    return tx


def test_server_invite_sends_100_trying_at_once_to_the_rport_address() -> None:
    layer = TransactionLayer()
    invite = incoming()
    events = layer.receive(invite, PHONE, "UDP", now=0.0)
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, RequestReceived)
    tx = event.transaction
    assert event == RequestReceived(invite, PHONE, "UDP", tx)
    assert isinstance(tx, ServerTransaction)
    assert (tx.request, tx.source, tx.transport, tx.method, tx.is_invite) == (
        invite, PHONE, "UDP", "INVITE", True)
    assert tx.state is TransactionState.PROCEEDING and tx.user_data is None
    assert layer.take_transmits() == [Transmit(TRYING_TO_PHONE, PHONE, "UDP")]
    assert tx.last_response is not None and tx.last_response.status_code == 100
    # the INVITE retransmission is absorbed and answered with the last response
    assert layer.receive(incoming(), PHONE, "UDP", now=0.5) == []
    assert layer.take_transmits() == [Transmit(TRYING_TO_PHONE, PHONE, "UDP")]
    assert len(layer) == 1 and layer.next_timer() is None


def test_server_invite_without_100_trying() -> None:
    layer = TransactionLayer(send_100_trying=False)
    [event] = layer.receive(incoming(), PHONE, "UDP", now=0.0)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert layer.take_transmits() == []
    assert layer.receive(incoming(), PHONE, "UDP", now=0.5) == []
    assert layer.take_transmits() == []


def test_100_trying_copies_the_timestamp() -> None:
    layer = TransactionLayer()
    layer.receive(incoming(extra="Timestamp: 54.23 0.5\n"), PHONE, "UDP", now=0.0)
    [trying] = layer.take_transmits()
    assert b"\r\nTimestamp: 54.23 0.5\r\n" in trying.data


def test_server_invite_1xx_is_resent_on_retransmission() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer)
    ringing = make_response(tx.request, 180, to_tag="pbx1")
    layer.send_response(tx, ringing, now=1.0)
    assert layer.take_transmits() == [Transmit(ringing.serialize(), PHONE, "UDP")]
    assert tx.state is TransactionState.PROCEEDING and tx.last_response is ringing
    assert layer.receive(incoming(), PHONE, "UDP", now=1.5) == []
    assert layer.take_transmits() == [Transmit(ringing.serialize(), PHONE, "UDP")]


def test_server_invite_2xx_goes_to_accepted_and_acks_reach_the_tu() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, now=0.0)
    ok = make_response(tx.request, 200, to_tag="pbx1")
    layer.send_response(tx, ok, now=1.0)
    assert layer.take_transmits() == [Transmit(ok.serialize(), PHONE, "UDP")]
    assert tx.state is TransactionState.ACCEPTED
    # INVITE retransmissions are absorbed without an answer: the TU retransmits the 2xx
    assert layer.receive(incoming(), PHONE, "UDP", now=1.2) == []
    assert layer.take_transmits() == []
    layer.send_response(tx, ok, now=1.5)
    assert layer.take_transmits() == [Transmit(ok.serialize(), PHONE, "UDP")]
    # an ACK with the INVITE's branch (matched) and one with its own (end-to-end) both reach the TU
    same_branch = incoming("ACK", to_tag="pbx1")
    assert layer.receive(same_branch, PHONE, "UDP", now=1.6) == [
        RequestReceived(same_branch, PHONE, "UDP", None)]
    own_branch = incoming("ACK", branch="z9hG4bKphone02", to_tag="pbx1")
    assert layer.receive(own_branch, PHONE, "UDP", now=1.7) == [
        RequestReceived(own_branch, PHONE, "UDP", None)]
    assert own_branch.top_via.params["received"] == "198.51.100.7"
    assert same_branch.top_via.params["rport"] == "40000"
    assert tx.state is TransactionState.ACCEPTED
    assert layer.next_timer() == 33.0  # Timer L, 64*T1
    assert run_timers(layer, until=1000.0) == [(33.0, [], [])]
    assert tx.state is TransactionState.TERMINATED and len(layer) == 0
    # a 2xx retransmission that outlives Timer L is still sent
    layer.send_response(tx, ok, now=33.5)
    assert layer.take_transmits() == [Transmit(ok.serialize(), PHONE, "UDP")]


def test_server_invite_failure_timer_g_doubles_to_t2_until_timer_h() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, now=0.0)
    busy = make_response(tx.request, 486, to_tag="pbx1")
    layer.send_response(tx, busy, now=5.0)
    assert layer.take_transmits() == [Transmit(busy.serialize(), PHONE, "UDP")]
    assert tx.state is TransactionState.COMPLETED
    log = run_timers(layer, until=1000.0)
    assert transmit_times(log, 5.0) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert all(t == Transmit(busy.serialize(), PHONE, "UDP") for _, _, ts in log for t in ts)
    assert log[-1] == (37.0, [ServerTransactionTimedOut(tx)], [])
    assert len(layer) == 0 and layer.next_timer() is None


def test_server_invite_failure_ack_confirms_and_timer_i_ends() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, now=0.0)
    busy = make_response(tx.request, 486, to_tag="pbx1")
    layer.send_response(tx, busy, now=1.0)
    layer.take_transmits()
    assert layer.handle_timer(1.5) == [] and len(layer.take_transmits()) == 1
    assert layer.receive(incoming(), PHONE, "UDP", now=1.6) == []  # INVITE retransmission
    assert layer.take_transmits() == [Transmit(busy.serialize(), PHONE, "UDP")]
    assert layer.receive(incoming("ACK", to_tag="pbx1"), PHONE, "UDP", now=2.0) == []
    assert tx.state is TransactionState.CONFIRMED
    assert layer.receive(incoming("ACK", to_tag="pbx1"), PHONE, "UDP", now=2.1) == []
    assert layer.receive(incoming(), PHONE, "UDP", now=2.2) == []
    assert layer.take_transmits() == []
    assert layer.next_timer() == 7.0  # Timer I, T4; G and H are cancelled
    assert run_timers(layer, until=1000.0) == [(7.0, [], [])]
    assert len(layer) == 0


def test_server_invite_failure_over_tcp() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, transport="TCP", now=0.0)
    busy = make_response(tx.request, 486, to_tag="pbx1")
    layer.send_response(tx, busy, now=1.0)
    assert layer.take_transmits() == [Transmit(busy.serialize(), PHONE, "TCP")]
    assert layer.next_timer() == 33.0  # Timer H only: no Timer G on TCP
    assert layer.receive(incoming("ACK", transport="TCP", to_tag="pbx1"), PHONE, "TCP", now=2.0) == []
    assert tx.state is TransactionState.TERMINATED  # Timer I is 0
    assert len(layer) == 0 and layer.next_timer() is None


def test_server_invite_over_tcp_timer_h() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, transport="TCP", now=0.0)
    layer.send_response(tx, make_response(tx.request, 603, to_tag="pbx1"), now=1.0)
    layer.take_transmits()
    assert run_timers(layer, until=1000.0) == [(33.0, [ServerTransactionTimedOut(tx)], [])]


def test_server_invite_refuses_a_response_after_the_final_one() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer)
    layer.send_response(tx, make_response(tx.request, 486, to_tag="pbx1"), now=1.0)
    with pytest.raises(LocalProtocolError, match="cannot send a 180 response in the Completed state"):
        layer.send_response(tx, make_response(tx.request, 180, to_tag="pbx1"), now=1.0)
    with pytest.raises(LocalProtocolError, match="cannot send a 200"):
        layer.send_response(tx, make_response(tx.request, 200, to_tag="pbx1"), now=1.0)


def test_an_ack_in_proceeding_is_absorbed() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer)
    assert layer.receive(incoming("ACK"), PHONE, "UDP", now=1.0) == []
    assert tx.state is TransactionState.PROCEEDING


# -- the 2xx retransmission option (RFC 3261 13.3.1.4) -------------------------------------------


def test_retransmit_2xx_until_the_ack_matched_by_dialog() -> None:
    layer = TransactionLayer(retransmit_2xx=True)
    tx = new_invite_tx(layer, now=0.0)
    ok = make_response(tx.request, 200, to_tag="pbx1")
    layer.send_response(tx, ok, now=1.0)
    layer.take_transmits()
    log = run_timers(layer, until=5.0)
    assert transmit_times(log, 1.0) == [0.5, 1.5, 3.5]
    ack = incoming("ACK", branch="z9hG4bKphone02", to_tag="pbx1")
    assert layer.receive(ack, PHONE, "UDP", now=5.0) == [RequestReceived(ack, PHONE, "UDP", None)]
    assert layer.next_timer() == 33.0  # only Timer L is left
    assert run_timers(layer, until=1000.0) == [(33.0, [], [])]
    assert len(layer) == 0


def test_retransmit_2xx_reports_a_missing_ack_at_timer_l() -> None:
    layer = TransactionLayer(retransmit_2xx=True)
    tx = new_invite_tx(layer, now=0.0)
    ok = make_response(tx.request, 200, to_tag="pbx1")
    layer.send_response(tx, ok, now=0.0)
    layer.take_transmits()
    # an ACK for another 2xx (another To tag) does not stop it
    layer.receive(incoming("ACK", branch="z9hG4bKphone02", to_tag="other"), PHONE, "UDP", now=0.1)
    log = run_timers(layer, until=1000.0)
    assert transmit_times(log, 0.0) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert log[-1] == (32.0, [AckTimedOut(tx)], [])
    assert len(layer) == 0 and layer._awaiting_ack == {}


def test_retransmit_2xx_ack_with_the_invite_branch_stops_it_too() -> None:
    layer = TransactionLayer(retransmit_2xx=True)
    tx = new_invite_tx(layer, now=0.0)
    layer.send_response(tx, make_response(tx.request, 200, to_tag="pbx1"), now=0.0)
    layer.receive(incoming("ACK", to_tag="pbx1"), PHONE, "UDP", now=0.2)
    layer.take_transmits()
    assert run_timers(layer, until=1000.0) == [(32.0, [], [])]


def test_retransmit_2xx_over_tcp_only_waits_for_the_ack() -> None:
    layer = TransactionLayer(retransmit_2xx=True)
    tx = new_invite_tx(layer, transport="TCP", now=0.0)
    layer.send_response(tx, make_response(tx.request, 200, to_tag="pbx1"), now=0.0)
    layer.take_transmits()
    assert run_timers(layer, until=1000.0) == [(32.0, [AckTimedOut(tx)], [])]


# -- server non-INVITE (17.2.2) ----------------------------------------------------------------


def test_server_non_invite_trying_proceeding_completed_timer_j() -> None:
    layer = TransactionLayer()
    register = incoming("REGISTER", uri="sip:pbx.example.com")
    [event] = layer.receive(register, PHONE, "UDP", now=0.0)
    assert isinstance(event, RequestReceived)
    tx = event.transaction
    assert tx is not None and tx.state is TransactionState.TRYING and not tx.is_invite
    assert layer.take_transmits() == []  # no 100 Trying to a non-INVITE
    assert layer.receive(incoming("REGISTER", uri="sip:pbx.example.com"), PHONE, "UDP", now=0.5) == []
    assert layer.take_transmits() == []  # nothing to resend yet
    trying = make_response(tx.request, 100)
    layer.send_response(tx, trying, now=0.6)
    assert tx.state is TransactionState.PROCEEDING
    assert layer.receive(incoming("REGISTER", uri="sip:pbx.example.com"), PHONE, "UDP", now=1.0) == []
    assert layer.take_transmits() == [Transmit(trying.serialize(), PHONE, "UDP")] * 2
    ok = make_response(tx.request, 200, to_tag="pbx1")
    layer.send_response(tx, ok, now=2.0)
    assert tx.state is TransactionState.COMPLETED
    assert layer.receive(incoming("REGISTER", uri="sip:pbx.example.com"), PHONE, "UDP", now=3.0) == []
    assert layer.take_transmits() == [Transmit(ok.serialize(), PHONE, "UDP")] * 2
    with pytest.raises(LocalProtocolError, match="Completed state of a server non-INVITE"):
        layer.send_response(tx, ok, now=3.0)
    assert layer.next_timer() == 34.0  # Timer J, 64*T1
    assert run_timers(layer, until=1000.0) == [(34.0, [], [])]
    assert len(layer) == 0


def test_a_completed_non_invite_server_transaction_keeps_only_what_a_retransmission_needs() -> None:
    """A REGISTER storm leaves a Completed transaction per REGISTER for 64*T1: each keeps the
    bytes of its answer, not the parsed request and response."""
    layer = TransactionLayer()
    [event] = layer.receive(parse_request(YEALINK_REGISTER_AUTH), YEALINK, "UDP", now=0.0)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    tx = event.transaction
    ok = make_response(event.request, 200, to_tag="pbx1",
                       headers=[("Contact", "<sip:1010@192.0.2.50:5062>;expires=3600")])
    layer.send_response(tx, ok, now=0.1)
    assert layer.take_transmits() == [Transmit(ok.serialize(), YEALINK, "UDP")]
    released = r"^<ServerTransaction REGISTER Completed UDP> no longer keeps its request: it only answers"
    with pytest.raises(LocalProtocolError, match=released):
        _ = tx.request
    assert tx.last_response is not None and tx.last_response.serialize() == ok.serialize()
    # The phone missed the 200 and sends the same REGISTER again: the same bytes answer it.
    assert layer.receive(parse_request(YEALINK_REGISTER_AUTH), YEALINK, "UDP", now=0.6) == []
    assert layer.take_transmits() == [Transmit(ok.serialize(), YEALINK, "UDP")]
    assert run_timers(layer, until=1000.0) == [(32.1, [], [])]
    assert len(layer) == 0


def test_an_invite_server_transaction_lets_go_of_its_request_only_once_confirmed() -> None:
    """The TU answers an INVITE again with its 2xx (Accepted) and reports Timer H with the
    INVITE (Completed); once the ACK came (Confirmed) it only absorbs ACKs."""
    layer = TransactionLayer()
    timed_out = new_invite_tx(layer, now=0.0)
    layer.send_response(timed_out, make_response(timed_out.request, 486, to_tag="pbx1"), now=1.0)
    assert run_timers(layer, until=1000.0)[-1] == (33.0, [ServerTransactionTimedOut(timed_out)], [])
    assert timed_out.request.call_id == "inv-1@10.0.0.5"

    answered = new_invite_tx(layer, now=40.0)
    layer.send_response(answered, make_response(answered.request, 200, to_tag="pbx1"), now=41.0)
    assert answered.state is TransactionState.ACCEPTED and answered.request.call_id == "inv-1@10.0.0.5"

    layer = TransactionLayer()
    confirmed = new_invite_tx(layer, now=80.0)
    busy = make_response(confirmed.request, 486, to_tag="pbx1")
    layer.send_response(confirmed, busy, now=81.0)
    assert layer.receive(incoming("ACK", to_tag="pbx1"), PHONE, "UDP", now=81.1) == []
    assert confirmed.state is TransactionState.CONFIRMED
    with pytest.raises(LocalProtocolError, match="no longer keeps its request"):
        _ = confirmed.request
    assert confirmed.last_response is not None and confirmed.last_response.serialize() == busy.serialize()


def test_server_non_invite_over_tcp_ends_with_the_final_response() -> None:
    layer = TransactionLayer()
    [event] = layer.receive(incoming("REGISTER", transport="TCP"), PHONE, "TCP", now=0.0)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    tx = event.transaction
    layer.send_response(tx, make_response(tx.request, 401, to_tag="pbx1"), now=0.1)
    assert tx.state is TransactionState.TERMINATED
    assert len(layer) == 0 and layer.next_timer() is None
    [transmit] = layer.take_transmits()
    assert transmit.destination == PHONE and transmit.transport == "TCP"
    with pytest.raises(LocalProtocolError, match="Terminated"):
        layer.send_response(tx, make_response(tx.request, 200, to_tag="pbx1"), now=0.2)


# -- server matching (17.2.3), CANCEL (9.2) and RFC 2543 ---------------------------------------------


def test_same_branch_from_another_sent_by_is_another_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(incoming("OPTIONS"), PHONE, "UDP", now=0.0)
    events = layer.receive(incoming("OPTIONS", via_port=5064), PHONE, "UDP", now=0.0)
    assert len(events) == 1 and len(layer) == 2


def test_cancel_is_its_own_transaction_and_finds_the_invite() -> None:
    layer = TransactionLayer()
    invite_tx = new_invite_tx(layer)
    cancel = incoming("CANCEL")
    [event] = layer.receive(cancel, PHONE, "UDP", now=1.0)
    assert isinstance(event, RequestReceived)
    cancel_tx = event.transaction
    assert cancel_tx is not None and cancel_tx is not invite_tx and cancel_tx.method == "CANCEL"
    assert cancel_tx.state is TransactionState.TRYING
    assert layer.find_invite_server_transaction(cancel) is invite_tx
    assert layer.take_transmits() == []  # no 100 Trying to a CANCEL
    assert layer.find_invite_server_transaction(incoming("CANCEL", branch="z9hG4bKother")) is None
    assert layer.find_invite_server_transaction(incoming("CANCEL", via_port=5070)) is None
    assert len(layer) == 2


def test_rfc2543_requests_match_without_a_branch() -> None:
    layer = TransactionLayer()
    invite = incoming(branch=None)
    [event] = layer.receive(invite, PHONE, "UDP", now=0.0)
    assert isinstance(event, RequestReceived)
    tx = event.transaction
    assert tx is not None
    [trying] = layer.take_transmits()
    assert layer.receive(incoming(branch=None), PHONE, "UDP", now=0.5) == []
    assert layer.take_transmits() == [trying]
    # another CSeq or Call-ID is another transaction
    assert len(layer.receive(incoming(branch=None, cseq=21), PHONE, "UDP", now=0.6)) == 1
    assert len(layer.receive(incoming(branch=None, call_id="x@y"), PHONE, "UDP", now=0.6)) == 1
    assert len(layer) == 3
    assert layer.find_invite_server_transaction(incoming("CANCEL", branch=None)) is tx
    layer.send_response(tx, make_response(tx.request, 486, to_tag="pbx1"), now=1.0)
    # an ACK with another To tag acknowledges something else: it goes to the TU
    stray_ack = incoming("ACK", branch=None, to_tag="other")
    assert layer.receive(stray_ack, PHONE, "UDP", now=1.1) == [RequestReceived(stray_ack, PHONE, "UDP", None)]
    assert tx.state is TransactionState.COMPLETED
    assert layer.receive(incoming("ACK", branch=None, to_tag="pbx1"), PHONE, "UDP", now=1.2) == []
    assert tx.state is TransactionState.CONFIRMED


def test_a_branch_without_the_magic_cookie_uses_rfc2543_matching() -> None:
    layer = TransactionLayer()
    layer.receive(incoming("OPTIONS", branch="oldstyle1"), PHONE, "UDP", now=0.0)
    assert layer.receive(incoming("OPTIONS", branch="oldstyle1"), PHONE, "UDP", now=0.1) == []
    # RFC 2543 matching compares the Request-URI too
    assert len(layer.receive(incoming("OPTIONS", branch="oldstyle1", uri="sip:201@pbx.example.com"),
                             PHONE, "UDP", now=0.2)) == 1


# -- Via stamping and response routing (18.2.1, 18.2.2, RFC 3581) ------------------------------------


@pytest.mark.parametrize(("via_host", "via_params", "source", "stamped", "destination"), [
    # NAT: rport filled, received added
    ("10.0.0.5", ";rport", ("198.51.100.7", 40000), ";rport=40000;received=198.51.100.7",
     ("198.51.100.7", 40000)),
    # RFC 3581: received even when sent-by is the source address
    ("198.51.100.7", ";rport", ("198.51.100.7", 40000), ";rport=40000;received=198.51.100.7",
     ("198.51.100.7", 40000)),
    # no rport: received only, the Via port is kept
    ("10.0.0.5", "", ("198.51.100.7", 40000), ";received=198.51.100.7", ("198.51.100.7", 5062)),
    # nothing to stamp
    ("198.51.100.7", "", ("198.51.100.7", 40000), "", ("198.51.100.7", 5062)),
    # a host name
    ("phone.example.com", "", ("198.51.100.7", 5062), ";received=198.51.100.7", ("198.51.100.7", 5062)),
    # a forged received is replaced
    ("198.51.100.7", ";received=10.1.1.1", ("198.51.100.7", 5062), ";received=198.51.100.7",
     ("198.51.100.7", 5062)),
    # IPv6: received is written as a reference so that it parses back
    ("[2001:db8::5]", ";rport", ("2001:db8::9", 5070), ";rport=5070;received=[2001:db8::9]",
     ("2001:db8::9", 5070)),
    ("[2001:db8::9]", "", ("2001:db8::9", 5070), "", ("2001:db8::9", 5062)),
])
def test_top_via_is_stamped_and_responses_follow_it(via_host: str, via_params: str, source: tuple[str, int],
                                                    stamped: str, destination: tuple[str, int]) -> None:
    layer = TransactionLayer()
    request = incoming("OPTIONS", via_host=via_host, via_params=via_params)
    [event] = layer.receive(request, source, "UDP", now=0.0)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    top_via = request.headers.get_lines("Via")[0]
    assert top_via == f"SIP/2.0/UDP {via_host}:5062;branch=z9hG4bKphone01{stamped}"
    assert event.transaction.response_destination == destination
    assert layer.response_destination(request, source, "UDP") == destination
    layer.send_response(event.transaction, make_response(request, 200, to_tag="pbx1"), now=0.0)
    [transmit] = layer.take_transmits()
    assert transmit.destination == destination
    assert parse_response(transmit.data).headers.get_lines("Via")[0] == request.headers.get_lines("Via")[0]


def test_only_the_top_via_is_stamped() -> None:
    layer = TransactionLayer()
    request = incoming("OPTIONS", via_params=";rport, SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKfirst")
    layer.receive(request, PHONE, "UDP", now=0.0)
    assert request.headers.get_all("Via") == [
        "SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKphone01;rport=40000;received=198.51.100.7",
        "SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKfirst",
    ]


def test_responses_over_tcp_go_back_to_the_source() -> None:
    layer = TransactionLayer()
    request = incoming("OPTIONS", transport="TCP")
    [event] = layer.receive(request, PHONE, "TCP", now=0.0)
    assert isinstance(event, RequestReceived) and event.transaction is not None
    assert event.transaction.response_destination == PHONE
    assert layer.response_destination(request, PHONE, "TCP") == PHONE


def test_response_destination_of_an_unstamped_request() -> None:
    layer = TransactionLayer()
    assert layer.response_destination(incoming(), PHONE, "UDP") == PHONE  # empty rport: the source
    assert layer.response_destination(incoming(via_params=""), PHONE, "UDP") == ("10.0.0.5", 5062)
    assert layer.response_destination(incoming(via_params=";maddr=239.1.1.1"), PHONE, "UDP") == (
        "10.0.0.5", 5062)
    no_port = parse_request(incoming(via_params="").serialize().replace(b"10.0.0.5:5062;", b"10.0.0.5;"))
    assert layer.response_destination(no_port, PHONE, "UDP") == ("10.0.0.5", 5060)


# -- memory -------------------------------------------------------------------------------------


def test_every_transaction_goes_away_when_its_timers_run_out() -> None:
    layer = TransactionLayer(retransmit_2xx=True)
    now = 0.0
    for n in range(200):
        now += 0.01
        branch = f"z9hG4bKload{n}"
        # server side: INVITEs answered 200, 486 (ACKed or not), REGISTERs over UDP and TCP
        [event] = layer.receive(incoming(branch=branch, call_id=f"c{n}"), PHONE, "UDP", now)
        assert isinstance(event, RequestReceived) and event.transaction is not None
        code = (200, 486, 486)[n % 3]
        tx = event.transaction
        layer.send_response(tx, make_response(tx.request, code, to_tag="t"), now)
        if n % 3 == 1:
            layer.receive(incoming("ACK", branch=branch, call_id=f"c{n}", to_tag="t"), PHONE, "UDP", now)
        transport = ("UDP", "TCP")[n % 2]
        register = incoming("REGISTER", branch=branch, transport=transport)
        [event] = layer.receive(register, PHONE, transport, now)
        assert isinstance(event, RequestReceived) and event.transaction is not None
        layer.send_response(event.transaction, make_response(event.transaction.request, 200), now)
        # client side: INVITEs answered 200 or 486 or never, OPTIONS answered or not
        invite = parse_request(OUR_INVITE.replace(b"pbx0001", f"out{n}".encode()))
        layer.send_request(invite, BOB, transport, now)
        if n % 3 != 2:
            layer.receive(answer(invite, (200, 486)[n % 3]), BOB, transport, now)
        options = parse_request(OUR_OPTIONS.replace(b"pbx0002", f"out{n}".encode()))
        layer.send_request(options, BOB, "UDP", now)
        if n % 2:
            layer.receive(answer(options, 200), BOB, "UDP", now)
    assert len(layer) > 0
    run_timers(layer, until=now + 1000.0)
    assert len(layer) == 0 and layer.next_timer() is None
    assert layer._heap == [] and layer._awaiting_ack == {}


def test_cancelled_timers_do_not_pile_up_in_the_heap() -> None:
    layer = TransactionLayer()
    for n in range(6000):
        options = parse_request(OUR_OPTIONS.replace(b"pbx0002", f"out{n}".encode()))
        layer.send_request(options, BOB, "UDP", now=0.0)
        layer.receive(answer(options, 200), BOB, "UDP", now=0.0)  # cancels E and F, starts K
    assert len(layer) == 6000
    assert len(layer._heap) < 2 * 6000
    run_timers(layer, until=1000.0)
    assert len(layer) == 0 and layer._heap == []


def test_heap_compaction_while_timers_fire() -> None:
    layer = TransactionLayer()
    for n in range(6000):
        options = parse_request(OUR_OPTIONS.replace(b"pbx0002", f"out{n}".encode()))
        layer.send_request(options, BOB, "UDP", now=0.0)
    layer.take_transmits()
    log = run_timers(layer, until=31.9)
    assert sum(len(transmits) for _, _, transmits in log) == 6000 * 10
    # every Timer F fires in one call and cancels a Timer E: the heap is compacted meanwhile
    events = layer.handle_timer(32.0)
    assert len(events) == 6000 and all(isinstance(e, TransactionTimedOut) for e in events)
    assert len({id(e.transaction) for e in events if isinstance(e, TransactionTimedOut)}) == 6000
    assert layer.take_transmits() == []
    assert len(layer) == 0 and layer.next_timer() is None
    assert layer._heap == [] and layer._stale == 0


def test_a_2xx_after_a_failure_is_refused_even_when_terminated() -> None:
    layer = TransactionLayer()
    tx = new_invite_tx(layer, transport="TCP")
    layer.send_response(tx, make_response(tx.request, 486, to_tag="pbx1"), now=0.0)
    layer.receive(incoming("ACK", transport="TCP", to_tag="pbx1"), PHONE, "TCP", now=0.1)
    assert tx.state is TransactionState.TERMINATED
    with pytest.raises(LocalProtocolError, match="Terminated"):
        layer.send_response(tx, make_response(tx.request, 200, to_tag="pbx1"), now=0.2)


def test_client_transaction_user_data_is_free_for_the_tu() -> None:
    layer = TransactionLayer()
    tx = layer.send_request(parse_request(OUR_OPTIONS), BOB, "UDP", now=0.0)
    assert isinstance(tx, ClientTransaction)
    tx.user_data = "leg-1"
    assert (tx.destination, tx.transport, tx.method) == (BOB, "UDP", "OPTIONS")
    assert "OPTIONS" in repr(tx)

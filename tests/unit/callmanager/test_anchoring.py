"""Media anchoring by the B2BUA, on real (sans-IO) media server cores.

Alice (100) calls Bob (200); each call's SDP goes through a media server picked by the
Call Manager, whose control requests and replies the harness carries both ways.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pbx_services.cluster.events import Disposition, EndReason, HangupBy
from pbx_services.sip.message import SipResponse
from pbx_services.sip.sdp import SessionDescription

from .conftest import MEDIA_HOST, SDP_ANSWER, SDP_HOLD, SDP_OFFER, Pbx, Phone, registered
from .test_b2bua import Call, answer, only_cdr, start_call

SDP_PCMA_ANSWER = SDP_ANSWER.replace(b"RTP/AVP 0", b"RTP/AVP 8").replace(b"rtpmap:0 PCMU", b"rtpmap:8 PCMA")
DEVICE_SDP = Path(__file__).resolve().parents[2] / "data" / "sdp"
STOCK_PJSUA2_OFFER = (DEVICE_SDP / "pjsua2_2.15_stock_offer.sdp").read_bytes()
STOCK_PJSUA2_ANSWER = (DEVICE_SDP / "pjsua2_2.15_stock_answer.sdp").read_bytes()


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx]) -> Pbx:
    return make_pbx(media_servers=2)


def media_of(body: bytes) -> tuple[str, int, list[str]]:
    """Where an SDP sends audio, and its formats."""
    sdp = SessionDescription.parse(body)
    return sdp.media_connection(0).address, sdp.media[0].port, sdp.media[0].formats


def connected(alice: Phone, bob: Phone, *, answer_body: bytes = SDP_ANSWER) -> tuple[Call, SipResponse]:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    alice.pop_response(180)
    return call, answer(alice, bob, call, body=answer_body)


def test_both_phones_are_given_the_media_server_and_never_each_other(pbx: Pbx, alice: Phone,
                                                                     bob: Phone) -> None:
    call, ok = connected(alice, bob)
    node = pbx.media_node_of(call.outgoing.call_id)
    media_call = node.core.calls[call.outgoing.call_id]
    host, port, formats = media_of(call.b_invite.body)
    assert (host, port, formats[:2]) == (MEDIA_HOST, media_call.b.port, ["0", "8"])  # + G.722, Opus if here
    assert media_of(ok.body) == (MEDIA_HOST, media_call.a.port, ["0"])
    # The legs point at the phones' own SDP addresses until their first packets latch them.
    assert media_call.a.destination == ("10.0.0.1", 4000) and media_call.b.destination == ("10.0.0.2", 5000)
    # Our own o= line, the same session for the whole call.
    assert SessionDescription.parse(ok.body).origin.username == "-"


def test_calls_are_spread_over_the_media_servers(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    first, _ = connected(alice, bob)
    carol = registered(pbx, "300", "10.0.0.3")
    second = carol.call("200")
    bob.send(bob.respond(bob.pop_request("INVITE"), 180, to_tag="t2"))
    assert {pbx.media_node_of(first.outgoing.call_id).name, pbx.media_node_of(second.call_id).name} == {
        "media1", "media2"}


def test_ringing_without_early_media_plays_ringback_from_the_media_server(pbx: Pbx, alice: Phone,
                                                                        bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    ringing = alice.pop_response(180)
    node = pbx.media_node_of(call.outgoing.call_id)
    media_call = node.core.calls[call.outgoing.call_id]
    assert media_of(ringing.body) == (MEDIA_HOST, media_call.a.port, ["0"])
    assert media_call.a.playback is not None and media_call.a.playback.description == "ringback"
    ok = answer(alice, bob, call, body=SDP_PCMA_ANSWER)
    assert ok.body == ringing.body  # the answer given in the 180 stands (same o= version)
    assert media_call.a.playback is None
    assert media_call.b.send_payload_type == 8 and media_call.a.send_payload_type == 0  # transcoding


def test_stock_pjsua2_phones_connect_after_ringing(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    """Issue 8: the callee was offered the caller's speex first, answered it after the caller had
    our PCMU answer for ringback, and the caller got 503. It is offered what the server bridges."""
    call = start_call(alice, bob, body=STOCK_PJSUA2_OFFER)
    offered = SessionDescription.parse(call.b_invite.body).media[0].rtpmap()
    assert {rtpmap.encoding for rtpmap in offered.values()} <= {"PCMU", "PCMA", "G722", "opus",
                                                                 "telephone-event"}
    assert list(offered)[:3] == [0, 8, 9]  # the caller's order
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    ringing = alice.pop_response(180)
    assert media_of(ringing.body)[2] == ["0", "121"]
    ok = answer(alice, bob, call, body=STOCK_PJSUA2_ANSWER)
    assert ok.status_code == 200 and ok.body == ringing.body
    media_call = pbx.media_node_of(call.outgoing.call_id).core.calls[call.outgoing.call_id]
    assert media_call.a.send_payload_type == media_call.b.send_payload_type == 0  # PCMU, not transcoded


def test_early_media_from_the_callee_is_anchored_too(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 183, to_tag=call.b_tag, body=SDP_ANSWER))
    progress = alice.pop_response(183)
    media_call = pbx.media_node_of(call.outgoing.call_id).core.calls[call.outgoing.call_id]
    assert media_of(progress.body)[:2] == (MEDIA_HOST, media_call.a.port)
    assert media_call.a.playback is None and media_call.b.destination == ("10.0.0.2", 5000)


def test_a_hold_reinvite_is_anchored_and_keeps_its_direction(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    assert call.a_dialog is not None
    alice.send(call.a_dialog.request(alice, "INVITE", body=SDP_HOLD, contact=True))
    alice.pop_response(100)
    reinvite = bob.pop_request("INVITE")
    media_call = pbx.media_node_of(call.outgoing.call_id).core.calls[call.outgoing.call_id]
    assert media_of(reinvite.body)[:2] == (MEDIA_HOST, media_call.b.port)
    assert SessionDescription.parse(reinvite.body).media_direction(0).value == "sendonly"
    held = SDP_ANSWER.replace(b"PCMU/8000\r\n", b"PCMU/8000\r\na=recvonly\r\n")
    bob.send(bob.respond(reinvite, 200, body=held))
    ok = alice.pop_response(200)
    assert media_of(ok.body)[:2] == (MEDIA_HOST, media_call.a.port)
    assert SessionDescription.parse(ok.body).origin.session_version == "1"  # the body changed
    assert media_call.on_hold


def test_the_media_is_freed_when_the_call_ends(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    node = pbx.media_node_of(call.outgoing.call_id)
    assert call.b_dialog is not None
    bob.send(call.b_dialog.request(bob, "BYE"))
    assert not node.core.calls
    assert pbx.core.media is not None and all(not e.calls for e in pbx.core.media.endpoints.values())


def test_a_cancelled_call_frees_its_media(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    alice.cancel(call.outgoing)
    assert all(not node.core.calls for node in pbx.media)


def test_no_media_server_means_503_and_no_call(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1)
    for node in pbx.media:
        node.alive = False
    pbx.advance(3.5)  # three missed pings
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    alice.call("200")
    assert alice.pop_response().status_code == 503
    bob.assert_silent()
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.FAILED, 503)


def test_out_of_ports_refuses_the_next_call_with_503(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1, media_port_pairs=2)  # room for one call
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    carol = registered(pbx, "300", "10.0.0.3")
    call, _ = connected(alice, bob)
    carol.call("200")
    assert carol.pop_response().status_code == 503
    bob.assert_silent()
    assert list(pbx.media[0].core.calls) == [call.outgoing.call_id]


def test_calls_on_a_dead_media_server_are_rehomed_with_reinvites(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, ok = connected(alice, bob)
    old = pbx.media_node_of(call.outgoing.call_id)
    [survivor] = [node for node in pbx.media if node is not old]
    old.alive = False
    pbx.advance(2.95)  # its third ping in a row is missed at 2.9 s
    a_invite, b_invite = alice.pop_request("INVITE"), bob.pop_request("INVITE")
    moved = survivor.core.calls[call.outgoing.call_id]
    assert media_of(a_invite.body)[:2] == (MEDIA_HOST, moved.a.port)
    assert media_of(b_invite.body)[:2] == (MEDIA_HOST, moved.b.port)
    before, after = SessionDescription.parse(ok.body).origin, SessionDescription.parse(a_invite.body).origin
    assert after.session_id == before.session_id
    assert int(after.session_version) == int(before.session_version) + 1
    moved_alice = SDP_OFFER.replace(b"4000", b"4100")
    alice.send(alice.respond(a_invite, 200, body=moved_alice))
    bob.send(bob.respond(b_invite, 200, body=SDP_ANSWER))
    assert alice.pop_request("ACK") and bob.pop_request("ACK")
    assert moved.a.destination == ("10.0.0.1", 4100) and moved.b.destination == ("10.0.0.2", 5000)
    assert pbx.core.b2bua.calls and not pbx.cdrs  # nobody hung up
    alice.assert_silent()
    bob.assert_silent()


def _moved_back(alice: Phone, bob: Phone, node_core_calls: dict[str, object], call: Call) -> None:
    """Both phones got a re-INVITE to the media server holding the call now, and accept it."""
    a_invite, b_invite = alice.pop_request("INVITE"), bob.pop_request("INVITE")
    moved = node_core_calls[call.outgoing.call_id]
    assert media_of(a_invite.body)[:2] == (MEDIA_HOST, moved.a.port)  # type: ignore[attr-defined]
    assert media_of(b_invite.body)[:2] == (MEDIA_HOST, moved.b.port)  # type: ignore[attr-defined]
    alice.send(alice.respond(a_invite, 200, body=SDP_OFFER))
    bob.send(bob.respond(b_invite, 200, body=SDP_ANSWER))
    assert alice.pop_request("ACK") and bob.pop_request("ACK")


def test_the_only_media_worker_restarted_gets_its_calls_back(make_pbx: Callable[..., Pbx]) -> None:
    """Issue 14: with no other endpoint, a call whose worker restarted was left without audio."""
    pbx = make_pbx(media_servers=1)
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    call, _ = connected(alice, bob)
    [node] = pbx.media
    pbx.advance(1.0)  # its pongs told the Call Manager its boot id
    node.alive = False
    pbx.advance(1.5)  # one ping missed: not down yet
    node.restart(pbx.now)  # the supervisor started a new worker, which knows no call
    pbx.advance(0.7)  # its next pong has a new boot id
    _moved_back(alice, bob, node.core.calls, call)
    assert pbx.core.b2bua.calls and not pbx.cdrs


def test_a_call_waits_for_its_dead_media_server_to_come_back(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1)
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    call, _ = connected(alice, bob)
    [node] = pbx.media
    node.alive = False
    pbx.advance(8.0)  # down at 2.9 s; nothing can take the call
    alice.assert_silent()
    bob.assert_silent()
    node.restart(pbx.now)
    pbx.advance(3.0)  # two answered pings bring it back up, and the call with it
    _moved_back(alice, bob, node.core.calls, call)
    assert pbx.core.b2bua.calls and not pbx.cdrs


def test_a_call_no_media_server_can_take_is_ended_with_a_reason(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1)
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    connected(alice, bob)
    pbx.media[0].alive = False
    pbx.advance(2.95 + 14.9)  # down at 2.9 s, then 15 s of waiting
    alice.assert_silent()
    pbx.advance(0.2)
    for phone in (alice, bob):
        bye = phone.pop_request("BYE")
        assert bye.headers.get("Reason") == 'SIP;cause=500;text="media_lost"'
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.hangup_by, cdr.end_reason) == (Disposition.ANSWERED, HangupBy.SYSTEM,
                                                                EndReason.MEDIA_LOST)
    assert not pbx.core.b2bua.calls


def test_a_media_timeout_hangs_the_call_up(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    node = pbx.media_node_of(call.outgoing.call_id)
    node.core.rtp_timeout = 5.0
    pbx.advance(7.0)
    assert alice.pop_request("BYE") and bob.pop_request("BYE")
    assert (only_cdr(pbx).hangup_by, only_cdr(pbx).end_reason) == (HangupBy.SYSTEM, EndReason.RTP_TIMEOUT)


def test_recorded_calls_carry_the_recording_in_their_cdr(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1, record_calls=True)
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    call, _ = connected(alice, bob)
    assert call.b_dialog is not None
    bob.send(call.b_dialog.request(bob, "BYE"))
    recording = only_cdr(pbx).recording
    assert recording is not None and recording.endswith(".wav") and "recordings" in recording


def test_info_and_its_answer_keep_their_own_content_type(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    assert call.a_dialog is not None
    dtmf = b"Signal=5\r\nDuration=160\r\n"
    alice.send(call.a_dialog.request(alice, "INFO", body=dtmf, content_type="application/dtmf-relay"))
    info = bob.pop_request("INFO")
    assert (info.body, info.headers.get("Content-Type")) == (dtmf, "application/dtmf-relay")
    bob.send(bob.respond(info, 200, extra=["Content-Type: text/plain"]).replace(
        b"Content-Length: 0\r\n\r\n", b"Content-Length: 2\r\n\r\nok"))
    ok = alice.pop_response(200)
    assert (ok.body, ok.headers.get("Content-Type")) == (b"ok", "text/plain")

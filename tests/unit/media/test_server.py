"""Tests for pbx_services/media/server.py and relay.py: commands, replies, relaying, timers.

The core runs without sockets: ports are "bound" by a fake, the clock is a number, and
what it sends is read from take_control_datagrams / take_rtp_datagrams.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pbx_services.media.negotiation import codec_key
from pbx_services.media.server import MediaServer
from pbx_services.media.session import NO_FAST_PATH, STALE_SOURCE_SECONDS, Leg
from pbx_services.rtp.codecs import available_codecs, get_codec
from pbx_services.rtp.g711 import alaw_decode, ulaw_decode, ulaw_encode
from pbx_services.rtp.rtcp import RtcpReceiverReport, RtcpReportBlock
from pbx_services.sip.sdp import SessionDescription

CONTROLLER = ("10.0.0.1", 5060)
PHONE_A = ("10.0.1.1", 4000)
PHONE_B = ("10.0.2.2", 6000)
RELAY_ADDRESS = "192.0.2.10"
PCMU, PCMA, EVENT = 0, 8, 101


class FakePorts:
    """Binds every port except those in `taken`."""

    def __init__(self, taken: set[int] | None = None) -> None:
        self.taken = taken or set()
        self.bound: set[int] = set()

    def bind(self, leg: Leg) -> bool:
        if leg.port in self.taken:
            return False
        self.bound.add(leg.port)
        leg.sendto = lambda data, destination: None
        return True

    def unbind(self, leg: Leg) -> None:
        self.bound.remove(leg.port)


def make_server(
    tmp_path: Path, *, pairs: int = 10, ports: FakePorts | None = None, **options: Any
) -> MediaServer:
    ports = ports or FakePorts()
    settings: dict[str, Any] = {"rtp_timeout": 60.0, "hold_timeout": 3600.0, "tone_plan": "us"}
    settings.update(options)
    server = MediaServer(
        worker=0,
        boot_id="b00t",
        process_id=1,
        port_min=30000,
        port_max=30000 + 2 * pairs - 1,
        sdp_address=RELAY_ADDRESS,
        recording_dir=tmp_path / "recordings",
        bind_ports=ports.bind,
        unbind_ports=ports.unbind,
        wall_offset=1_700_000_000.0,
        now=0.0,
        **settings,
    )
    server.test_ports = ports  # type: ignore[attr-defined]
    return server


def phone_sdp(
    address: tuple[str, int], *formats: tuple[int, str], events: bool = True, direction: str = "sendrecv"
) -> str:
    payload_types = [str(pt) for pt, _ in formats] + ([str(EVENT)] if events else [])
    lines = [
        "v=0",
        f"o=- 1 1 IN IP4 {address[0]}",
        "s=-",
        f"c=IN IP4 {address[0]}",
        "t=0 0",
        f"m=audio {address[1]} RTP/AVP {' '.join(payload_types)}",
    ]
    lines += [f"a=rtpmap:{pt} {name}/8000" for pt, name in formats]
    if events:
        lines.append(f"a=rtpmap:{EVENT} telephone-event/8000")
    lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


class Driver:
    """Sends control requests to the core and reads its replies."""

    def __init__(self, server: MediaServer) -> None:
        self.server = server
        self.now = 0.0
        self.cookie = 0

    def raw(self, data: bytes, source: tuple[str, int] = CONTROLLER) -> list[tuple[bytes, tuple[str, int]]]:
        self.server.receive_control(data, source, self.now)
        return self.server.take_control_datagrams()

    def request(self, command: str, *, cookie: str | None = None, **fields: Any) -> dict[str, Any]:
        self.cookie += 1
        cookie = cookie or f"c{self.cookie}"
        [(data, destination)] = self.raw(
            f"{cookie} ".encode() + json.dumps({"command": command, **fields}).encode()
        )
        assert destination == CONTROLLER
        reply_cookie, _, body = data.partition(b" ")
        assert reply_cookie.decode() == cookie
        return dict(json.loads(body))

    def ok(self, command: str, **fields: Any) -> dict[str, Any]:
        reply = self.request(command, **fields)
        assert reply["result"] in ("ok", "pong"), reply
        return reply

    def call(
        self,
        call_id: str = "call-1",
        *,
        offer: tuple[tuple[int, str], ...] = ((PCMU, "PCMU"),),
        answer: tuple[tuple[int, str], ...] = ((PCMU, "PCMU"),),
    ) -> tuple[Leg, Leg]:
        self.ok("offer", call_id=call_id, leg="a", sdp=phone_sdp(PHONE_A, *offer))
        self.ok("answer", call_id=call_id, leg="b", sdp=phone_sdp(PHONE_B, *answer))
        call = self.server.calls[call_id]
        return call.a, call.b

    def rtp(self, leg: Leg, source: tuple[str, int], data: bytes) -> list[tuple[int, bytes, Any]]:
        self.server.receive_rtp(leg, data, source, self.now)
        return self.server.take_rtp_datagrams()

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while (deadline := self.server.next_timer()) <= target:
            self.now = max(self.now, deadline)
            self.server.handle_timer(self.now)
        self.now = target


def rtp(
    payload: bytes,
    payload_type: int = PCMU,
    *,
    sequence: int = 1,
    timestamp: int = 160,
    ssrc: int = 0x1234,
    marker: bool = False,
) -> bytes:
    return (
        struct.pack("!BBHII", 0x80, payload_type | (0x80 if marker else 0), sequence, timestamp, ssrc)
        + payload
    )


@pytest.fixture
def driver(tmp_path: Path) -> Driver:
    return Driver(make_server(tmp_path))


# control protocol


def test_ping_tells_who_answers(driver: Driver) -> None:
    assert driver.ok("ping") == {
        "result": "pong",
        "boot_id": "b00t",
        "worker": 0,
        "pid": 1,
        "calls": 0,
        "ports_free": 10,
    }


def test_offer_allocates_a_port_pair_per_leg_and_returns_sdp_for_the_other_leg(driver: Driver) -> None:
    reply = driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    call = driver.server.calls["x"]
    assert (call.a.port, call.b.port) == (30000, 30002)
    assert f"c=IN IP4 {RELAY_ADDRESS}" in reply["sdp"] and "m=audio 30002 RTP/AVP 0 101 8" in reply["sdp"]
    assert driver.server.test_ports.bound == {30000, 30002}  # type: ignore[attr-defined]
    assert driver.ok("ping")["ports_free"] == 8


def test_a_retransmitted_offer_gets_the_same_reply_and_allocates_nothing(driver: Driver) -> None:
    sdp = phone_sdp(PHONE_A, (PCMU, "PCMU"))
    first = driver.request("offer", cookie="same", call_id="x", leg="a", sdp=sdp)
    driver.now = 29.0
    assert driver.request("offer", cookie="same", call_id="x", leg="a", sdp=sdp) == first
    assert driver.server.ports.free == 8
    driver.ok("delete", call_id="x")
    assert driver.request("offer", cookie="same", call_id="x", leg="a", sdp=sdp) == first  # still cached
    assert "x" not in driver.server.calls


def test_a_reply_is_forgotten_after_30_seconds(driver: Driver) -> None:
    sdp = phone_sdp(PHONE_A, (PCMU, "PCMU"))
    driver.request("offer", cookie="same", call_id="x", leg="a", sdp=sdp)
    driver.ok("delete", call_id="x")
    driver.now = 30.5
    driver.request("offer", cookie="same", call_id="x", leg="a", sdp=sdp)
    assert "x" in driver.server.calls


def test_out_of_ports_is_an_error_and_nothing_stays_allocated(tmp_path: Path) -> None:
    driver = Driver(make_server(tmp_path, pairs=3))
    driver.ok("offer", call_id="first", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    assert driver.request("offer", call_id="second", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU"))) == {
        "result": "error",
        "error_reason": "no free ports",
    }
    assert driver.server.ports.free == 1 and "second" not in driver.server.calls
    assert driver.server.test_ports.bound == {30000, 30002}  # type: ignore[attr-defined]


def test_a_port_another_process_holds_is_skipped(tmp_path: Path) -> None:
    driver = Driver(make_server(tmp_path, pairs=3, ports=FakePorts(taken={30000})))
    a, b = driver.call()
    assert (a.port, b.port) == (30002, 30004)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"command": "offer", "leg": "a", "sdp": "x"}, "missing field: call_id"),
        ({"command": "offer", "call_id": 7, "leg": "a", "sdp": "x"}, "bad field: call_id"),
        ({"command": "offer", "call_id": "", "leg": "a", "sdp": "x"}, "bad field: call_id"),
        ({"command": "offer", "call_id": "x", "leg": "c", "sdp": "x"}, "bad field: leg"),
        ({"command": "offer", "call_id": "x", "leg": "a"}, "missing field: sdp"),
        (
            {"command": "offer", "call_id": "x", "leg": "a", "sdp": "v=0\r\n"},
            "bad sdp: SDP ends before the o= line",
        ),
        (
            {
                "command": "offer",
                "call_id": "x",
                "leg": "a",
                "sdp": phone_sdp(PHONE_A, (0, "PCMU")),
                "record": "yes",
            },
            "bad field: record",
        ),
        (
            {
                "command": "offer",
                "call_id": "x",
                "leg": "a",
                "sdp": phone_sdp(PHONE_A, (0, "PCMU")),
                "transcode": [1],
            },
            "bad field: transcode",
        ),
        ({"command": "answer", "call_id": "nope", "leg": "b", "sdp": "x"}, "unknown call"),
        ({"command": "query", "call_id": "nope"}, "unknown call"),
        ({"command": "delete"}, "missing field: call_id"),
        ({"command": "timeout", "call_id": "x"}, "unknown command 'timeout'"),
        ({"command": "dance"}, "unknown command 'dance'"),
    ],
)
def test_bad_requests_get_an_error_naming_the_problem(
    driver: Driver, fields: dict[str, Any], reason: str
) -> None:
    [(data, _)] = driver.raw(b"k1 " + json.dumps(fields).encode())
    assert json.loads(data.partition(b" ")[2]) == {"result": "error", "error_reason": reason}
    assert driver.server.ports.free == 10


def test_play_tone_checks_its_fields(driver: Driver) -> None:
    driver.call()
    assert (
        driver.request("play_tone", call_id="call-1", leg="a", tone="siren")["error_reason"]
        == "bad field: tone"
    )
    assert driver.request("play_tone", call_id="call-1", leg="a", tone="dial", plan="xx")["error_reason"] == (
        "bad field: plan"
    )
    assert driver.request("play_file", call_id="call-1", leg="a", file="/nonexistent.wav")[
        "error_reason"
    ].startswith("bad field: file")


def test_undecodable_datagrams_are_dropped_or_answered(driver: Driver) -> None:
    assert driver.raw(b"no-space-here") == []
    assert driver.raw(b"\xff\xfe {}") == []
    [(data, _)] = driver.raw(b"k9 not json")
    assert data == b'k9 {"result":"error","error_reason":"control message body is not JSON"}'
    assert driver.ok("statistics")["control_errors"] == 2


def test_the_offering_phone_answering_our_offer_moves_only_its_own_leg(driver: Driver) -> None:
    """Re-homing: the call is offered and answered here anew, then each phone answers the
    re-INVITE carrying our SDP; the offering phone's answer updates its leg alone."""
    a, b = driver.call(offer=((PCMU, "PCMU"), (PCMA, "PCMA")), answer=((PCMU, "PCMU"),))
    moved = ("10.0.1.1", 4100)
    reply = driver.ok("answer", call_id="call-1", leg="a", sdp=phone_sdp(moved, (PCMU, "PCMU")))
    assert f"m=audio {b.port} " in reply["sdp"]  # what leg b was last given, unchanged
    assert a.destination == moved and a.send_payload_type == PCMU
    [(port, _, destination)] = driver.rtp(b, PHONE_B, rtp(b"\x05" * 160, PCMU))
    assert (port, destination) == (a.port, moved)


def test_ringback_before_the_answer_gives_the_offerer_our_answer_and_keeps_its_codec(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMA, "PCMA"), (PCMU, "PCMU")))
    a, b = driver.server.calls["x"].a, driver.server.calls["x"].b
    ringing = driver.ok("play_tone", call_id="x", leg="a", tone="ringback")
    assert f"c=IN IP4 {RELAY_ADDRESS}" in ringing["sdp"] and f"m=audio {a.port} RTP/AVP {PCMA} {EVENT}\r" \
        in ringing["sdp"]
    assert driver.ok("play_tone", call_id="x", leg="a", tone="ringback")["sdp"] == ringing["sdp"]
    driver.advance(0.04)
    sent = driver.server.take_rtp_datagrams()
    assert sent and {(port, destination, data[1] & 0x7F) for port, data, destination in sent} == {
        (a.port, PHONE_A, PCMA)}
    answered = driver.ok("answer", call_id="x", leg="b", sdp=phone_sdp(PHONE_B, (PCMU, "PCMU")))
    assert answered["sdp"] == ringing["sdp"]  # the 2xx repeats the answer the caller has
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
    [(port, data, destination)] = driver.rtp(b, PHONE_B, rtp(ulaw_encode(tone), PCMU))
    assert (port, destination, data[1] & 0x7F) == (a.port, PHONE_A, PCMA)
    assert np.abs(alaw_decode(data[12:]).astype(int) - tone).max() < 300


def test_what_is_relayed_after_a_tone_continues_the_tones_stream(driver: Driver) -> None:
    a, b = driver.call()
    driver.ok("play_tone", call_id="call-1", leg="a", tone="ringback")
    driver.advance(0.04)
    tone = [struct.unpack_from("!HII", data, 2) for _, data, _ in driver.server.take_rtp_datagrams()]
    sequence, timestamp, ssrc = tone[-1]
    relayed = []
    for n in range(3):  # the callee's stream, then another one after it restarted
        packet = rtp(b"\x05" * 160, PCMU, sequence=100 + n, timestamp=5000 + 160 * n)
        relayed += driver.rtp(b, PHONE_B, packet)
    relayed += driver.rtp(b, PHONE_B, rtp(b"\x05" * 160, PCMU, sequence=7, timestamp=9, ssrc=0xBEEF))
    assert [struct.unpack_from("!HII", data, 2) for _, data, _ in relayed] == [
        ((sequence + 1 + n) & 0xFFFF, (timestamp + 160 * (n + 1)) & 0xFFFFFFFF, ssrc) for n in range(4)]
    assert [data[12:] for _, data, _ in relayed] == [b"\x05" * 160] * 4
    assert b.fast_rewrite is not None  # the fast path rewrites as well


DEVICE_SDP = Path(__file__).resolve().parents[2] / "data" / "sdp"
OPUS = 96
CALLER_OFFERS = ("pjsua2_2.15_stock_offer.sdp", "baresip_1.0_default_offer.sdp", "pjsua2_2.15_g722_offer.sdp",
                 "baresip_1.0_opus_offer.sdp")
CALLEE_ANSWERS = {
    "pjsua2 stock": (DEVICE_SDP / "pjsua2_2.15_stock_answer.sdp").read_text(),
    "baresip opus only": (DEVICE_SDP / "baresip_1.0_opus_answer.sdp").read_text(),
    "G.722 only": phone_sdp(PHONE_B, (9, "G722")),
    "PCMA only": phone_sdp(PHONE_B, (PCMA, "PCMA")),
    "Opus, then PCMU": phone_sdp(PHONE_B, (OPUS, "opus"), (PCMU, "PCMU")).replace(
        "opus/8000", "opus/48000/2"),
}


def send_audio(driver: Driver, leg: Leg, source: tuple[str, int],
               sequence: int) -> list[tuple[int, bytes, Any]]:
    """20 ms of a tone from `leg`'s phone in the codec it negotiated; what the server sent on."""
    codec = leg.send_codec
    assert codec is not None
    encoder = get_codec(codec.encoding.upper())
    samples = (4000 * np.sin(2 * np.pi * 500 * np.arange(encoder.sample_rate // 50) / encoder.sample_rate))
    payload = encoder.encode(samples.astype(np.int16))
    return driver.rtp(leg, source, rtp(payload, codec.payload_type, sequence=sequence,
                                       timestamp=sequence * codec.clock_rate // 50))


@pytest.mark.skipif(not {"G722", "opus"} <= set(available_codecs()),
                    reason="needs the G722 and Opus libraries")
@pytest.mark.parametrize("ringback", [True, False], ids=["ringback", "no ringback"])
@pytest.mark.parametrize("callee", list(CALLEE_ANSWERS))
@pytest.mark.parametrize("caller", CALLER_OFFERS)
def test_phones_as_they_come_connect_and_share_a_codec_when_they_can(driver: Driver, caller: str, callee: str,
                                                                      ringback: bool) -> None:
    """A stock pjsua2 or baresip, a G.722-only or an Opus-only phone calls another: whether the
    server answered the caller itself for ringback or not, the callee's answer is taken, a codec
    both phones have is used unchanged, and audio goes through both ways."""
    offer = (DEVICE_SDP / caller).read_text()
    offered = driver.ok("offer", call_id="x", leg="a", sdp=offer)["sdp"]
    call = driver.server.calls["x"]
    ringing = driver.ok("play_tone", call_id="x", leg="a", tone="ringback") if ringback else {}
    answered = driver.ok("answer", call_id="x", leg="b", sdp=CALLEE_ANSWERS[callee])
    if ringback:
        assert answered["sdp"] == ringing["sdp"]
        driver.ok("stop_playback", call_id="x", leg="a")
    a, b = call.a, call.b
    assert a.send_codec is not None and b.send_codec is not None
    assert a.stream is not None and b.stream is not None
    answered_codecs = {codec_key(rtpmap) for rtpmap in b.stream.audio_payloads.values()}
    callers = ({codec_key(a.send_codec)} if ringback
               else {codec_key(rtpmap) for rtpmap in a.stream.audio_payloads.values()})
    assert (codec_key(a.send_codec) == codec_key(b.send_codec)) == bool(answered_codecs & callers), offered
    for sequence, (leg, source) in enumerate(((a, PHONE_A), (b, PHONE_B), (a, PHONE_A), (b, PHONE_B))):
        [(port, data, _)] = send_audio(driver, leg, source, sequence)
        assert (port, data[1] & 0x7F) == (leg.peer.port, leg.peer.send_payload_type)


@pytest.mark.parametrize("caller", CALLER_OFFERS)
def test_whatever_codec_of_our_offer_the_callee_answers_after_ringback_is_taken(driver: Driver,
                                                                                caller: str) -> None:
    """Issue 8: the callee was offered the caller's speex, iLBC and GSM, which the server can
    neither transcode nor, once it answered the caller itself for ringback, relay unchanged."""
    offered = driver.ok("offer", call_id="x", leg="a", sdp=(DEVICE_SDP / caller).read_text())["sdp"]
    driver.ok("play_tone", call_id="x", leg="a", tone="ringback")
    offered_media = SessionDescription.parse(offered).media[0]
    for payload_type, rtpmap in offered_media.rtpmap().items():
        if rtpmap.encoding.lower() == "telephone-event":
            continue
        answer = phone_sdp(PHONE_B, (payload_type, rtpmap.encoding), events=False).replace(
            f"{rtpmap.encoding}/8000", f"{rtpmap.encoding}/{rtpmap.clock_rate}"
            + (f"/{rtpmap.channels}" if rtpmap.channels else ""))
        reply = driver.request("answer", call_id="x", leg="b", sdp=answer)
        assert reply["result"] == "ok", (rtpmap, reply)


def test_an_answer_the_given_codec_cannot_be_transcoded_from_is_refused(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    driver.ok("play_tone", call_id="x", leg="a", tone="ringback")
    assert driver.request("answer", call_id="x", leg="b",
                          sdp=phone_sdp(PHONE_B, (18, "G729")))["error_reason"] == "no common codec"


def test_answer_without_a_common_codec_is_refused(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (18, "G729")))
    assert (
        driver.request("answer", call_id="x", leg="b", sdp=phone_sdp(PHONE_B, (PCMA, "PCMA")))["error_reason"]
        == "no common codec"
    )


# relaying


def test_first_packet_latches_and_other_sources_are_dropped(driver: Driver) -> None:
    a, b = driver.call()
    natted = ("198.51.100.7", 40000)
    assert driver.rtp(a, natted, rtp(b"\x01" * 160)) == [(b.port, rtp(b"\x01" * 160), PHONE_B)]
    assert a.source == natted
    assert driver.rtp(a, PHONE_A, rtp(b"\x02" * 160)) == []
    assert (a.dropped, driver.server.relay.dropped["wrong_source"]) == (1, 1)
    # b's packets go to where a's came from, not to a's SDP address
    assert driver.rtp(b, PHONE_B, rtp(b"\x03" * 160)) == [(a.port, rtp(b"\x03" * 160), natted)]


def test_a_new_offer_unlatches_the_leg(driver: Driver) -> None:
    a, _ = driver.call()
    driver.rtp(a, ("198.51.100.7", 40000), rtp(b"\x01" * 160))
    driver.ok("offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    assert a.source is None and a.destination == PHONE_A


def test_a_phone_taking_the_legs_place_is_not_shut_out_by_the_old_phones_last_packets(
        driver: Driver) -> None:
    # A transfer: B's place goes to C (a re-INVITE's answer from another address); B sends on
    # until its BYE reaches it. Its late packets must not latch the leg, or A hears nothing.
    a, b = driver.call()
    driver.rtp(b, PHONE_B, rtp(b"\x01" * 160))
    phone_c = ("10.0.3.3", 8000)
    driver.ok("offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    driver.ok("answer", call_id="call-1", leg="b", sdp=phone_sdp(phone_c, (PCMU, "PCMU")))
    assert driver.rtp(b, PHONE_B, rtp(b"\x02" * 160)) == []
    assert driver.server.relay.dropped["wrong_source"] == 1
    assert driver.rtp(b, phone_c, rtp(b"\x03" * 160)) == [(a.port, rtp(b"\x03" * 160), PHONE_A)]
    assert b.source == phone_c
    assert driver.rtp(a, PHONE_A, rtp(b"\x04" * 160)) == [(b.port, rtp(b"\x04" * 160), phone_c)]


def test_the_old_source_latches_again_once_the_new_address_stayed_silent(driver: Driver) -> None:
    a, b = driver.call()
    driver.rtp(b, PHONE_B, rtp(b"\x01" * 160))
    driver.ok("offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    driver.ok("answer", call_id="call-1", leg="b", sdp=phone_sdp(("10.0.3.3", 8000), (PCMU, "PCMU")))
    driver.advance(STALE_SOURCE_SECONDS)
    assert driver.rtp(b, PHONE_B, rtp(b"\x02" * 160)) == [(a.port, rtp(b"\x02" * 160), PHONE_A)]


def test_a_natted_phone_re_offering_the_same_address_latches_again_at_once(driver: Driver) -> None:
    a, _ = driver.call()
    natted = ("198.51.100.7", 40000)
    driver.rtp(a, natted, rtp(b"\x01" * 160))
    driver.ok("offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    assert driver.rtp(a, natted, rtp(b"\x02" * 160)) != []
    assert a.source == natted


def test_fast_path_is_set_once_both_legs_use_the_same_payload_type(driver: Driver) -> None:
    a, b = driver.call()
    assert a.fast_pt == NO_FAST_PATH  # not latched yet
    driver.rtp(a, PHONE_A, rtp(b"\x01" * 160))
    assert (a.fast_pt, a.fast_to, a.fast_sendto) == (PCMU, PHONE_B, b.sendto)
    driver.ok("record_start", call_id="call-1")
    assert a.fast_pt == NO_FAST_PATH
    driver.ok("record_stop", call_id="call-1")
    assert a.fast_pt == PCMU


def test_payload_types_are_mapped_between_the_legs(driver: Driver) -> None:
    a, b = driver.call(offer=((96, "PCMU"),), answer=((96, "PCMU"),))
    driver.ok("offer", call_id="call-1", leg="b", sdp=phone_sdp(PHONE_B, (PCMU, "PCMU")))
    driver.ok("answer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (96, "PCMU")))
    [(_, data, _)] = driver.rtp(b, PHONE_B, rtp(b"\x05" * 160, PCMU))
    assert data == rtp(b"\x05" * 160, 96)
    driver.rtp(a, PHONE_A, rtp(b"\x06" * 160, 96))
    assert a.fast_pt == NO_FAST_PATH and b.fast_pt == NO_FAST_PATH


def test_pcmu_is_transcoded_to_pcma_keeping_the_header(driver: Driver) -> None:
    a, b = driver.call(offer=((PCMU, "PCMU"),), answer=((PCMA, "PCMA"),))
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(160) / 8000)).astype(np.int16)
    [(port, data, destination)] = driver.rtp(a, PHONE_A, rtp(ulaw_encode(tone), sequence=9, timestamp=999))
    assert (port, destination) == (b.port, PHONE_B)
    assert data[:12] == rtp(b"", PCMA, sequence=9, timestamp=999)
    assert np.abs(alaw_decode(data[12:]).astype(int) - tone).max() < 300
    assert driver.server.relay.transcoded == 1


def test_telephone_events_are_relayed_and_their_digits_listed(driver: Driver) -> None:
    a, b = driver.call()
    for timestamp, code in ((1000, 5), (1000, 5), (2000, 10)):
        [(_, data, _)] = driver.rtp(
            a, PHONE_A, rtp(struct.pack("!BBH", code, 0x80, 400), EVENT, timestamp=timestamp)
        )
        assert data[1] & 0x7F == EVENT
    assert driver.ok("query", call_id="call-1")["legs"]["a"]["dtmf"] == "5*"


def test_telephone_events_the_other_leg_lacks_are_dropped_but_still_read(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")))
    driver.ok("answer", call_id="x", leg="b", sdp=phone_sdp(PHONE_B, (PCMU, "PCMU"), events=False))
    a = driver.server.calls["x"].a
    assert driver.rtp(a, PHONE_A, rtp(struct.pack("!BBH", 1, 0x80, 400), EVENT)) == []
    assert a.dtmf == ["1"] and driver.server.relay.dropped["not_negotiated"] == 1


@pytest.mark.parametrize(
    ("packet", "reason"),
    [
        (b"\x80\x00\x00", "malformed_rtp"),
        (b"\x40" + bytes(20), "malformed_rtp"),
        (bytes([0x8F]) + bytes(20), "malformed_rtp"),
        (rtp(b"x", 77), "unknown_payload_type"),
    ],
)
def test_bad_packets_are_dropped_and_counted_by_reason(driver: Driver, packet: bytes, reason: str) -> None:
    a, _ = driver.call()
    assert driver.rtp(a, PHONE_A, packet) == []
    assert driver.ok("statistics")["packets_dropped"][reason] == 1
    assert a.dropped == 1


def test_rtcp_is_relayed_and_the_phones_report_read(driver: Driver) -> None:
    a, b = driver.call()
    report = RtcpReceiverReport(
        ssrc=1,
        reports=[
            RtcpReportBlock(
                ssrc=2, fraction_lost=64, packets_lost=12, highest_sequence=100, jitter=80, lsr=0, dlsr=0
            )
        ],
    )
    data = report.serialize()
    driver.server.receive_rtcp(a, data, (PHONE_A[0], PHONE_A[1] + 1))
    assert driver.server.take_rtp_datagrams() == [(b.port + 1, data, (PHONE_B[0], PHONE_B[1] + 1))]
    assert driver.ok("query", call_id="call-1")["legs"]["a"]["rtcp"] == {
        "lost": 12,
        "fraction_lost": 0.25,
        "jitter": 80,
    }
    driver.server.receive_rtcp(a, b"\x80\xc9\x00", (PHONE_A[0], PHONE_A[1] + 1))
    assert driver.server.relay.dropped["malformed_rtcp"] == 1


# playback


def test_a_tone_is_sent_every_20_ms_in_the_legs_codec_until_the_other_leg_is_heard(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMA, "PCMA"), (PCMU, "PCMU")))
    driver.ok("play_tone", call_id="x", leg="a", tone="ringback")
    driver.advance(0.09)
    packets = driver.server.take_rtp_datagrams()
    a = driver.server.calls["x"].a
    assert len(packets) == 5 and {destination for _, _, destination in packets} == {PHONE_A}
    headers = [struct.unpack("!BBHII", data[:12]) for _, data, _ in packets]
    assert [h[1] for h in headers] == [PCMA | 0x80] + [PCMA] * 4
    assert [h[2] - headers[0][2] for h in headers] == [0, 1, 2, 3, 4]
    assert [h[3] - headers[0][3] for h in headers] == [0, 160, 320, 480, 640]
    driver.ok("answer", call_id="x", leg="b", sdp=phone_sdp(PHONE_B, (PCMA, "PCMA")))
    b = driver.server.calls["x"].b
    assert len(driver.rtp(b, PHONE_B, rtp(b"\x01" * 160, PCMA))) == 1
    assert a.playback is None
    driver.advance(0.1)
    assert driver.server.take_rtp_datagrams() == []


def test_stop_playback_stops_the_tone(driver: Driver) -> None:
    driver.call()
    driver.ok("play_tone", call_id="call-1", leg="b", tone="busy")
    driver.advance(0.05)
    driver.ok("stop_playback", call_id="call-1", leg="b")
    driver.server.take_rtp_datagrams()
    driver.advance(0.1)
    assert driver.server.take_rtp_datagrams() == []


def test_a_file_plays_once_then_ends(driver: Driver, tmp_path: Path) -> None:
    from pbx_services.rtp.wav import write_wav

    path = tmp_path / "prompt.wav"
    write_wav(path, 8000, np.full(400, 1000, dtype=np.int16))  # 50 ms: three frames, the last padded
    a, _ = driver.call()
    driver.ok("play_file", call_id="call-1", leg="a", file=str(path))
    driver.advance(0.2)
    assert len(driver.server.take_rtp_datagrams()) == 3
    assert a.playback is None and a.generated == 3


# timers


def test_a_call_without_rtp_times_out_and_the_controller_is_told(tmp_path: Path) -> None:
    driver = Driver(make_server(tmp_path, rtp_timeout=5.0))
    a, _ = driver.call()
    driver.advance(3.0)
    driver.rtp(a, PHONE_A, rtp(b"\x01" * 160))
    driver.advance(4.5)
    # The packet at 3 s was noticed by the next once-a-second look, at 4 s: the timeout is at 9 s.
    assert "call-1" in driver.server.calls
    driver.advance(2.0)
    assert "call-1" not in driver.server.calls and driver.server.ports.free == 10
    [(data, destination)] = driver.server.take_control_datagrams()
    cookie, _, body = data.partition(b" ")
    assert destination == CONTROLLER and json.loads(body) == {"command": "timeout", "call_id": "call-1"}
    driver.advance(2.05)
    assert [d for d, _ in driver.server.take_control_datagrams()] == [data, data]  # 1 s apart until answered
    driver.raw(cookie + b' {"result":"ok"}')
    driver.advance(5.0)
    assert driver.server.take_control_datagrams() == []
    assert driver.ok("statistics")["sessions_timed_out"] == 1


def test_an_unanswered_timeout_is_sent_five_times(tmp_path: Path) -> None:
    driver = Driver(make_server(tmp_path, rtp_timeout=1.0))
    driver.call()
    driver.advance(12.0)
    assert len(driver.server.take_control_datagrams()) == 5


def test_a_held_call_waits_for_the_hold_timeout(tmp_path: Path) -> None:
    driver = Driver(make_server(tmp_path, rtp_timeout=5.0, hold_timeout=20.0))
    driver.call()
    driver.ok(
        "offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU"), direction="sendonly")
    )
    driver.advance(10.0)
    assert "call-1" in driver.server.calls
    driver.advance(11.0)
    assert "call-1" not in driver.server.calls


# recording


def test_offer_with_record_starts_recording_when_media_starts(driver: Driver) -> None:
    offered = driver.ok(
        "offer", call_id="rec/1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")), record=True
    )
    path = offered["recording"]
    assert Path(path).name == "rec_1-20231114T221320Z.wav"  # named at the offer, created with the media
    answered = driver.ok("answer", call_id="rec/1", leg="b", sdp=phone_sdp(PHONE_B, (PCMU, "PCMU")))
    assert answered["recording"] == path and not Path(path).exists()
    driver.now = 1.0
    driver.rtp(driver.server.calls["rec/1"].a, PHONE_A, rtp(ulaw_encode(np.full(160, 3000, dtype=np.int16))))
    assert driver.ok("query", call_id="rec/1")["recording"] == path
    assert driver.ok("delete", call_id="rec/1")["recording"] == path
    assert Path(path).stat().st_size == 44 + 160 * 4


def test_a_recording_stopped_before_any_media_has_no_file(driver: Driver) -> None:
    driver.ok("offer", call_id="x", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")), record=True)
    assert driver.ok("record_stop", call_id="x")["recording"] is None
    driver.rtp(driver.server.calls["x"].a, PHONE_A, rtp(b"\xff" * 160))
    assert driver.server.calls["x"].recorder is None


def test_a_recording_directory_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "recordings").write_text("a file, not a directory")
    driver = Driver(make_server(tmp_path))
    driver.call()
    assert driver.request("record_start", call_id="call-1")["error_reason"].startswith("cannot record: ")
    driver.ok("offer", call_id="call-1", leg="a", sdp=phone_sdp(PHONE_A, (PCMU, "PCMU")), record=True)
    a = driver.server.calls["call-1"].a
    assert len(driver.rtp(a, PHONE_A, rtp(b"\xff" * 160))) == 1  # relayed, unrecorded


@pytest.mark.skipif("G722" not in available_codecs(), reason="the G722 package is not installed")
def test_g722_is_transcoded_to_pcmu(driver: Driver) -> None:
    a, b = driver.call(offer=((9, "G722"),), answer=((PCMU, "PCMU"),))
    encoder = get_codec("G722")
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(16000 * 0.4) / 16000)).astype(np.int16)
    received = []
    for index in range(20):
        payload = encoder.encode(tone[index * 320 : (index + 1) * 320])
        [(_, data, _)] = driver.rtp(a, PHONE_A, rtp(payload, 9, sequence=index, timestamp=160 * index))
        assert data[1] == PCMU
        received.append(ulaw_decode(data[12:]))
    audio = np.concatenate(received[5:]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert np.fft.rfftfreq(len(audio), 1 / 8000)[int(np.argmax(spectrum))] == pytest.approx(1000, abs=20)


@pytest.mark.skipif("opus" not in available_codecs(), reason="no Opus library here")
def test_opus_is_transcoded_to_pcmu(driver: Driver) -> None:
    opus_sdp = phone_sdp(PHONE_A, events=False).replace("RTP/AVP ", "RTP/AVP 111")
    opus_sdp += "a=rtpmap:111 opus/48000/2\r\n"
    offered = driver.ok("offer", call_id="o", leg="a", sdp=opus_sdp)["sdp"]
    assert "a=rtpmap:0 PCMU/8000" in offered  # the callee may answer G.711: we transcode
    driver.ok("answer", call_id="o", leg="b", sdp=phone_sdp(PHONE_B, (PCMU, "PCMU"), events=False))
    a = driver.server.calls["o"].a
    encoder = get_codec("OPUS")
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(48000 * 0.4) / 48000)).astype(np.int16)
    received = []
    start = 0xFFFFFFFF - 960 * 5  # the phone's clock wraps on the way: the 8 kHz one must not jump
    for index in range(20):
        payload = encoder.encode(tone[index * 960 : (index + 1) * 960])
        packet = rtp(payload, 111, sequence=index, timestamp=(start + 960 * index) & 0xFFFFFFFF)
        [(_, data, _)] = driver.rtp(a, PHONE_A, packet)
        assert data[1] == PCMU
        assert struct.unpack_from("!I", data, 4)[0] == (start + 160 * index) & 0xFFFFFFFF
        received.append(ulaw_decode(data[12:]))
    audio = np.concatenate(received[5:]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    assert np.fft.rfftfreq(len(audio), 1 / 8000)[int(np.argmax(spectrum))] == pytest.approx(1000, abs=20)

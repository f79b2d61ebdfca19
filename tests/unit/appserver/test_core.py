"""The application servers' SIP user agent, driven with the Call Manager's messages as bytes.

The Call Manager (192.0.2.10:5060) sends an IVR worker (192.0.2.80:5070) a call to menu 800
with its media server's offer; a fake application records what the frame tells it, and
fake port callables stand for the worker's RTP ports.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from pbx_services.appserver.audio import CallAudio
from pbx_services.appserver.core import TRANSFER_TIMEOUT, AppCall, AppServerCore, CallState
from pbx_services.rtp.dtmf import DtmfSender
from pbx_services.rtp.packet import RtpPacket
from pbx_services.sip.message import SipRequest, SipResponse, parse_message
from pbx_services.sip.sdp import SessionDescription
from pbx_services.sip.stack import SipStack
from pbx_services.sip.transaction import T1, TransactionLayer
from tests.unit.callmanager.conftest import redact
from tests.unit.sip.wire import crlf

CM = ("192.0.2.10", 5060)
"""The Call Manager: where requests come from and where ours go."""
AS_HOST = "192.0.2.80"
AS_PORT = 5070
MEDIA = ("192.0.2.50", 30000)
"""Where the media server's offer wants our audio."""
START = 1000.0
RTP_TIMEOUT = 10.0
MAX_CALL_SECONDS = 600.0
PORTS = (40000, 40002)

OFFER = (b"v=0\r\n"
         b"o=- 3 1 IN IP4 192.0.2.50\r\n"
         b"s=-\r\n"
         b"c=IN IP4 192.0.2.50\r\n"
         b"t=0 0\r\n"
         b"m=audio 30000 RTP/AVP 0 8 9 101\r\n"
         b"a=rtpmap:0 PCMU/8000\r\n"
         b"a=rtpmap:8 PCMA/8000\r\n"
         b"a=rtpmap:9 G722/8000\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\n"
         b"a=fmtp:101 0-16\r\n"
         b"a=sendrecv\r\n")
ANSWER = (b"v=0\r\n"
          b"o=pbx 1 1 IN IP4 192.0.2.80\r\n"
          b"s=pbx\r\n"
          b"c=IN IP4 192.0.2.80\r\n"
          b"t=0 0\r\n"
          b"m=audio 40000 RTP/AVP 0 101\r\n"
          b"a=rtpmap:0 PCMU/8000\r\n"
          b"a=rtpmap:101 telephone-event/8000\r\n"
          b"a=fmtp:101 0-16\r\n"
          b"a=ptime:20\r\n"
          b"a=sendrecv\r\n")


def invite(call_id: str = "cm-call-1", *, branch: str = "z9hG4bKcm-inv-1", number: str = "800",
           body: bytes = OFFER, content_type: str | None = "application/sdp", extra: tuple[str, ...] = (),
           contact: bool = True) -> bytes:
    """The INVITE a Call Manager sends an application server (b2bua._send_invite)."""
    user = f"{number}@" if number else ""
    lines = [
        f"INVITE sip:{user}192.0.2.80:5070 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport",
        "Max-Forwards: 69",
        'From: "Phone 100" <sip:100@pbx.local>;tag=cm-tag-1',
        f"To: <sip:{user}pbx.local>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        *(["Contact: <sip:192.0.2.10:5060>"] if contact else []),
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY",
        "User-Agent: pbx-services",
        *extra,
        *([f"Content-Type: {content_type}"] if content_type and body else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def offer_at(address: str, port: int) -> bytes:
    return OFFER.replace(b"IN IP4 192.0.2.50", f"IN IP4 {address}".encode()).replace(
        b"m=audio 30000", f"m=audio {port}".encode())


class FakeApplication:
    """Records what the frame tells the application, and refuses the numbers it is told to."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.calls: list[AppCall] = []
        self.refused: dict[str, tuple[int, str]] = {}

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        return self.refused.get(number)

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        return [("Pbx-Test", call.number)]

    def call_started(self, call: AppCall, now: float) -> None:
        self.calls.append(call)
        self.events.append(("call_started", call.call_id, call.number, call.domain, call.caller, now))

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        self.events.append(("digits", call.call_id, "".join(digits)))

    def playback_finished(self, call: AppCall, now: float) -> None:
        self.events.append(("playback_finished", call.call_id, now))

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        self.events.append(("transfer_failed", call.call_id, status, now))

    def call_ended(self, call: AppCall, now: float) -> None:
        self.events.append(("call_ended", call.call_id, now))

    def take(self) -> list[tuple[object, ...]]:
        events, self.events = self.events, []
        return events


@dataclass
class CmDialog:
    """The Call Manager's side of the dialog with the application server."""

    call_id: str
    as_tag: str
    cseq: int = 1
    branches: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                extra: tuple[str, ...] = (), cseq: int | None = None) -> bytes:
        if cseq is None and method != "ACK":
            self.cseq += 1
        lines = [
            f"{method} sip:192.0.2.80:5070 SIP/2.0",
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcm-{method.lower()}-{next(self.branches)};rport",
            "Max-Forwards: 70",
            'From: "Phone 100" <sip:100@pbx.local>;tag=cm-tag-1',
            f"To: <sip:800@pbx.local>;tag={self.as_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq if cseq is None else cseq} {method}",
            *(["Contact: <sip:192.0.2.10:5060>"] if method == "INVITE" else []),
            *extra,
            *([f"Content-Type: {content_type}"] if body and content_type else []),
            f"Content-Length: {len(body)}",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def ack(self, cseq: int = 1) -> bytes:
        return self.request("ACK", cseq=cseq)

    def notify(self, sipfrag: str, state: str = "active;expires=60") -> bytes:
        return self.request("NOTIFY", body=f"SIP/2.0 {sipfrag}\r\n".encode(),
                            content_type="message/sipfrag;version=2.0",
                            extra=("Event: refer", f"Subscription-State: {state}"))


def response_to(request: SipRequest, status: int, reason: str) -> bytes:
    """The Call Manager's answer to a request of ours."""
    lines = [f"SIP/2.0 {status} {reason}", *[f"Via: {via}" for via in request.headers.get_lines("Via")],
             f"From: {request.headers.get('From')}", f"To: {request.headers.get('To')}",
             f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Harness:
    """An AppServerCore with the clock, the fake application and the RTP ports of one test."""

    def __init__(self, *, ports: tuple[int, ...] = PORTS, open_rtp: bool = True,
                 application: Any = None) -> None:
        self.now = START
        self.app = FakeApplication()
        self.free = list(ports)
        self.open: list[CallAudio] = []
        self.closed: list[CallAudio] = []
        self._open_rtp = open_rtp
        tags = (f"as-tag-{n}" for n in itertools.count(1))
        self.core = AppServerCore(
            stack=SipStack(host=AS_HOST, port=AS_PORT, max_message_size=65535, layer=TransactionLayer()),
            application=application or self.app, sdp_address=AS_HOST, allocate_port=self._allocate,
            open_rtp=self._open, close_rtp=self.closed.append, release_port=self.free.append,
            rtp_timeout=RTP_TIMEOUT, max_call_seconds=MAX_CALL_SECONDS, now=self.now,
            make_tag=lambda: next(tags))

    def _allocate(self) -> int | None:
        return self.free.pop(0) if self.free else None

    def _open(self, audio: CallAudio) -> bool:
        if self._open_rtp:
            self.open.append(audio)
        return self._open_rtp

    def send(self, data: bytes, source: tuple[str, int] = CM) -> None:
        self.core.receive(data, source, "UDP", self.now)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass, each timer firing at its deadline."""
        until = self.now + seconds
        while (deadline := self.core.next_timer()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self.core.handle_timer(self.now)
        self.now = until

    def talking(self, seconds: float, audio: CallAudio) -> None:
        """Let `seconds` pass while the caller's RTP keeps coming (so no RTP timeout)."""
        for _ in range(round(seconds / 0.5)):
            self.advance(0.5)
            self.rtp_from_media(audio, round((self.now - START) / 0.02) & 0xFFFF)

    def sent(self) -> list[SipRequest | SipResponse]:
        """What the core sent since the last look, all of it to the Call Manager."""
        messages = []
        for transmit in self.core.take_transmits():
            assert transmit.destination == CM and transmit.transport == "UDP"
            message = parse_message(transmit.data)
            assert message.serialize() == transmit.data
            messages.append(message)
        return messages

    def sent_data(self) -> list[bytes]:
        return [transmit.data for transmit in self.core.take_transmits()]

    def responses(self) -> list[tuple[int, str]]:
        """Status and reason of each response sent since the last look, 100 Trying left out."""
        return [(m.status_code, m.reason) for m in self.sent()
                if isinstance(m, SipResponse) and m.status_code != 100]

    def only_request(self, method: str) -> SipRequest:
        [request] = self.sent()
        assert isinstance(request, SipRequest) and request.method == method, request
        return request

    def answered(self, call_id: str = "cm-call-1") -> tuple[CmDialog, SipResponse]:
        """The Call Manager's INVITE, answered 200 (not ACKed yet)."""
        self.send(invite(call_id, branch=f"z9hG4bK{call_id}"))
        trying, ok = self.sent()
        assert isinstance(trying, SipResponse) and trying.status_code == 100
        assert isinstance(ok, SipResponse) and ok.status_code == 200
        assert ok.to.tag is not None
        return CmDialog(call_id, ok.to.tag), ok

    def confirmed(self, call_id: str = "cm-call-1") -> tuple[CmDialog, AppCall]:
        """A call answered and ACKed: the application has it."""
        dialog, _ = self.answered(call_id)
        self.send(dialog.ack())
        assert self.app.take() == [("call_started", call_id, "800", "pbx.local", "100", self.now)]
        return dialog, self.app.calls[-1]

    def rtp_from_media(self, audio: CallAudio, sequence: int, payload: bytes = b"\xff" * 160,
                       payload_type: int = 0, timestamp: int | None = None, marker: bool = False) -> None:
        packet = RtpPacket(payload_type=payload_type, sequence_number=sequence,
                           timestamp=sequence * 160 if timestamp is None else timestamp, ssrc=77,
                           marker=marker, payload=payload)
        self.core.receive_rtp(audio, packet.serialize(), MEDIA, self.now)

    def frames(self, seconds: float) -> list[tuple[int, RtpPacket, tuple[object, ...]]]:
        """Run the 20 ms media tick for `seconds`: the RTP the calls sent."""
        out = []
        for _ in range(round(seconds / 0.02)):
            self.core.tick_media(self.now)
            out += [(port, RtpPacket.parse(data), destination)
                    for port, data, destination in self.core.take_datagrams()]
            self.advance(0.02)
        return out


@pytest.fixture
def h() -> Harness:
    return Harness()


def prompt(frames: int) -> np.ndarray:
    return np.full(160 * frames, 1000, np.int16)


# -- answering ------------------------------------------------------------------------------------


def test_an_invite_is_answered_at_once_with_our_sdp_and_contact(h: Harness) -> None:
    h.send(invite())

    trying, ok = h.sent_data()
    assert trying.startswith(b"SIP/2.0 100 Trying\r\n")
    assert ok == (
        b"SIP/2.0 200 OK\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcm-inv-1;rport=5060;received=192.0.2.10\r\n"
        b'From: "Phone 100" <sip:100@pbx.local>;tag=cm-tag-1\r\n'
        b"To: <sip:800@pbx.local>;tag=as-tag-1\r\n"
        b"Call-ID: cm-call-1\r\n"
        b"CSeq: 1 INVITE\r\n"
        b"Contact: <sip:192.0.2.80:5070>\r\n"
        b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Pbx-Test: 800\r\n"  # the application's answer_headers
        b"Server: pbx-services\r\n"
        b"Content-Length: 196\r\n\r\n" + ANSWER)
    [audio] = h.open
    assert (audio.port, h.free) == (40000, [40002])
    assert h.app.take() == []  # not before the ACK
    assert h.core.counters["calls_answered"] == 1


def test_the_2xx_is_retransmitted_t1_2t1_4t1_until_the_ack(h: Harness) -> None:
    _, ok = h.answered()
    sent_at = []
    for _ in range(80):
        h.advance(0.1)
        for data in h.sent_data():
            assert data == ok.serialize()
            sent_at.append(round(h.now - START, 3))
        if h.now - START >= 8.0:
            break

    assert sent_at == [T1, 3 * T1, 7 * T1, 15 * T1]
    assert h.app.take() == []


def test_the_application_gets_the_call_at_the_ack_and_the_2xx_stops(h: Harness) -> None:
    dialog, _ = h.answered()
    h.advance(2 * T1)
    assert len(h.sent()) == 1  # the first retransmission

    h.send(dialog.ack())

    assert h.app.take() == [("call_started", "cm-call-1", "800", "pbx.local", "100", START + 2 * T1)]
    [call] = h.app.calls
    assert call.state is CallState.CONFIRMED and call.active
    h.send(dialog.ack())  # a retransmitted ACK: nothing again
    h.talking(64 * T1, call.audio)
    assert h.sent() == [] and h.app.take() == []


def test_an_ack_of_another_cseq_or_dialog_does_not_start_the_call(h: Harness) -> None:
    dialog, _ = h.answered()

    h.send(dialog.ack(cseq=7))
    h.send(CmDialog("cm-call-1", "someone-else").ack())

    assert h.app.take() == []
    h.advance(T1)
    assert len(h.sent()) == 1


def test_a_retransmitted_invite_makes_no_second_call(h: Harness) -> None:
    h.answered()

    h.send(invite(branch="z9hG4bKcm-call-1"))

    assert [m for m in h.sent() if isinstance(m, SipResponse) and m.status_code != 100] == []
    assert (len(h.core.calls), len(h.open), h.free) == (1, 1, [40002])


@pytest.mark.parametrize(("request_bytes", "status"), [
    (invite(body=b""), (488, "An SDP Offer Is Needed")),
    (invite(body=b"hello", content_type="text/plain"), (488, "An SDP Offer Is Needed")),
    (invite(body=OFFER.replace(b"RTP/AVP 0 8 9 101", b"RTP/AVP 18")),
     (488, "no audio stream with a codec we take (PCMU, PCMA, G722)")),
    (invite(number=""), (404, "No Number Dialled")),
], ids=["no-body", "not-sdp", "no-usable-codec", "no-number"])
def test_a_call_we_cannot_take_is_refused_before_any_port_is_taken(h: Harness, request_bytes: bytes,
                                                                    status: tuple[int, str]) -> None:
    h.send(request_bytes)

    [refusal] = [m for m in h.sent() if isinstance(m, SipResponse) and m.status_code != 100]
    assert (refusal.status_code, refusal.reason) == status
    assert refusal.to.tag is not None
    assert (h.open, h.free, h.core.calls) == ([], list(PORTS), {})
    assert h.core.counters["calls_refused"] == 1


def test_the_applications_refusal_is_sent(h: Harness) -> None:
    h.app.refused["801"] = (404, "No Such Menu")

    h.send(invite(number="801"))

    assert h.responses() == [(404, "No Such Menu")]
    assert (h.open, h.free) == ([], list(PORTS))


def test_no_rtp_port_free_is_503() -> None:
    h = Harness(ports=(40000,))
    h.answered("first")

    h.send(invite("second", branch="z9hG4bKsecond"))

    assert h.responses() == [(503, "No RTP Port Free")]
    assert len(h.core.calls) == 1


def test_a_port_that_cannot_be_opened_is_503_and_given_back() -> None:
    h = Harness(open_rtp=False)

    h.send(invite())

    assert h.responses() == [(503, "RTP Port Unavailable")]
    assert h.free == [40002, 40000] and h.core.calls == {}


def test_an_invite_without_contact_is_400_and_takes_no_port(h: Harness) -> None:
    h.send(invite(contact=False))

    assert h.responses() == [(400, "Bad Request")]
    assert h.core.calls == {}
    assert sorted(h.free) == list(PORTS)
    assert [a.port for a in h.open] == [a.port for a in h.closed]


# -- in the call ----------------------------------------------------------------------------------


def test_bye_is_answered_and_ends_the_call(h: Harness) -> None:
    dialog, call = h.confirmed()
    h.advance(5)

    h.send(dialog.request("BYE"))

    assert h.responses() == [(200, "OK")]
    assert h.app.take() == [("call_ended", "cm-call-1", START + 5)]
    assert call.state is CallState.ENDED
    assert h.closed == [call.audio] and sorted(h.free) == list(PORTS)
    h.send(dialog.request("BYE"))
    assert h.responses() == [(481, "Call/Transaction Does Not Exist")]


def test_bye_before_the_ack_ends_the_call_the_application_never_had(h: Harness) -> None:
    dialog, _ = h.answered()

    h.send(dialog.request("BYE"))

    assert h.responses() == [(200, "OK")]
    assert sorted(h.free) == list(PORTS)
    h.advance(64 * T1)
    assert h.sent() == [] and h.app.take() == []


def test_cancel_after_the_answer_gets_200_and_the_call_stays_until_the_bye(h: Harness) -> None:
    dialog, _ = h.answered()

    h.send(crlf(
        "CANCEL sip:800@192.0.2.80:5070 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcm-call-1;rport\n"
        "Max-Forwards: 70\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=cm-tag-1\n'
        "To: <sip:800@pbx.local>\n"
        "Call-ID: cm-call-1\n"
        "CSeq: 1 CANCEL\n"
        "Content-Length: 0\n\n"))

    assert h.responses() == [(200, "OK")]
    h.send(dialog.ack())
    assert h.app.take()[0][0] == "call_started"


def test_a_reinvite_with_a_new_address_is_answered_and_the_rtp_follows(h: Harness) -> None:
    dialog, call = h.confirmed()
    call.play([prompt(50)], h.now)
    assert {destination for _, _, destination in h.frames(0.1)} == {MEDIA}

    h.send(dialog.request("INVITE", body=offer_at("192.0.2.51", 31000), content_type="application/sdp"))

    [_, ok] = h.sent()
    assert isinstance(ok, SipResponse) and (ok.status_code, ok.cseq.seq) == (200, 2)
    assert ok.body == ANSWER  # the same answer, the same o= version
    assert ok.headers.get("Contact") == "<sip:192.0.2.80:5070>"
    h.send(dialog.ack(cseq=2))
    sent = h.frames(0.1)
    assert [(port, destination) for port, _, destination in sent] == [(40000, ("192.0.2.51", 31000))] * 5
    assert h.app.take() == []  # no second call_started


def test_a_reinvite_that_changes_the_codec_gets_the_next_sdp_version(h: Harness) -> None:
    dialog, call = h.confirmed()
    pcma_only = OFFER.replace(b"RTP/AVP 0 8 9 101", b"RTP/AVP 8 101")

    h.send(dialog.request("INVITE", body=pcma_only, content_type="application/sdp"))

    [_, ok] = h.sent()
    assert isinstance(ok, SipResponse)
    answer = SessionDescription.parse(ok.body)
    assert (answer.origin.session_id, answer.origin.session_version) == ("1", "2")
    assert answer.media[0].formats == ["8", "101"]
    h.send(dialog.ack(cseq=2))
    call.play([prompt(2)], h.now)
    assert {packet.payload_type for _, packet, _ in h.frames(0.06)} == {8}


def test_the_2xx_to_a_reinvite_is_retransmitted_until_its_ack(h: Harness) -> None:
    dialog, call = h.confirmed()
    h.send(dialog.request("INVITE", body=OFFER, content_type="application/sdp"))
    ok = h.sent()[-1]

    h.advance(T1)
    assert h.sent_data() == [ok.serialize()]
    h.send(dialog.ack(cseq=2))
    h.talking(64 * T1, call.audio)
    assert h.sent() == []


def test_a_reinvite_before_the_ack_gets_491(h: Harness) -> None:
    dialog, _ = h.answered()

    h.send(dialog.request("INVITE", body=OFFER, content_type="application/sdp"))

    assert h.responses() == [(491, "Request Pending")]


@pytest.mark.parametrize(("content_type", "body", "digit"), [
    ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
    ("application/dtmf-relay", b"Signal= #\r\nDuration=100\r\n", "#"),
    ("application/dtmf-relay", b"signal=a\r\n", None),  # the key is Signal
    ("application/dtmf", b"*", "*"),
    ("application/dtmf", b"55", None),
    ("text/plain", b"Signal=5", None),
])
def test_info_carries_digits_from_phones_that_send_them_so(h: Harness, content_type: str, body: bytes,
                                                           digit: str | None) -> None:
    dialog, _ = h.confirmed()

    h.send(dialog.request("INFO", body=body, content_type=content_type))

    assert h.responses() == [(200, "OK")]
    assert h.app.take() == ([("digits", "cm-call-1", digit)] if digit else [])


def test_rfc4733_digits_reach_the_application(h: Harness) -> None:
    _, call = h.confirmed()
    sender = DtmfSender()
    sender.start("9", 16000)
    sequence = 0
    while (packet := sender.tick()) is not None:
        h.rtp_from_media(call.audio, sequence, packet.payload, payload_type=101, timestamp=packet.timestamp,
                         marker=packet.marker)
        sequence += 1

    assert h.app.take() == [("digits", "cm-call-1", "9")]
    assert h.core.counters["digits"] == 1


def test_playback_finished_is_told_after_the_last_frame(h: Harness) -> None:
    _, call = h.confirmed()
    call.play([prompt(3)], h.now)
    assert h.core.playing

    sent = h.frames(0.1)

    assert len(sent) == 3
    assert h.app.take() == [("playback_finished", "cm-call-1", START + 0.04)]
    assert not h.core.playing


def test_playing_nothing_is_finished_at_the_next_tick(h: Harness) -> None:
    _, call = h.confirmed()

    call.play([np.zeros(0, np.int16)], h.now)

    assert h.frames(0.02) == []
    assert h.app.take() == [("playback_finished", "cm-call-1", START)]


def test_options_is_answered_200_with_what_we_allow(h: Harness) -> None:
    h.send(crlf(
        "OPTIONS sip:192.0.2.80:5070 SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKprobe1;rport\n"
        "Max-Forwards: 70\n"
        "From: <sip:192.0.2.10:5060>;tag=probe-tag\n"
        "To: <sip:192.0.2.80:5070>\n"
        "Call-ID: probe-1\n"
        "CSeq: 1 OPTIONS\n"
        "User-Agent: pbx-services\n"
        "Content-Length: 0\n\n"))

    assert h.sent_data() == [crlf(
        "SIP/2.0 200 OK\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKprobe1;rport=5060;received=192.0.2.10\n"
        "From: <sip:192.0.2.10:5060>;tag=probe-tag\n"
        "To: <sip:192.0.2.80:5070>;tag=as-tag-1\n"
        "Call-ID: probe-1\n"
        "CSeq: 1 OPTIONS\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER\n"
        "Accept: application/sdp\n"
        "Server: pbx-services\n"
        "Content-Length: 0\n\n")]


@pytest.mark.parametrize("broken", [
    invite().replace(b"CSeq: 1 INVITE", b"CSeq: one INVITE"),
    invite(body=b"v=0\r\nthis is no SDP\r\n"),
    invite().replace(b"Contact: <sip:192.0.2.10:5060>", b"Contact: <sip:192.0.2.10:5060"),
], ids=["cseq", "sdp", "contact"])
def test_a_malformed_request_gets_400_and_the_core_goes_on(h: Harness, broken: bytes) -> None:
    h.send(broken)

    # Read as bytes: the 400 to a broken CSeq carries it back as it came.
    assert [data.split(b" ")[1] for data in h.sent_data() if not data.startswith(b"SIP/2.0 100 ")] == [b"400"]
    assert sorted(h.free) == list(PORTS)
    h.answered("next-call")


def test_requests_out_of_any_dialog_or_method_are_refused(h: Harness) -> None:
    h.send(CmDialog("no-such-call", "as-tag-9").request("BYE"))
    h.send(invite().replace(b"INVITE sip:", b"FROB sip:").replace(b"1 INVITE", b"1 FROB"))

    assert h.responses() == [(481, "Call/Transaction Does Not Exist"), (501, "Not Implemented")]


# -- transfer -------------------------------------------------------------------------------------


def transferring(h: Harness) -> tuple[CmDialog, AppCall, SipRequest]:
    """A call whose application asked for a transfer to 201: the REFER the Call Manager got."""
    dialog, call = h.confirmed()
    call.play([prompt(500)], h.now)
    call.transfer("201", h.now)
    return dialog, call, h.only_request("REFER")


def test_transfer_sends_a_refer_to_the_number_in_the_tenant(h: Harness) -> None:
    dialog, call, refer = transferring(h)

    assert redact(refer.serialize()) == (
        "REFER sip:192.0.2.10:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.80:5070;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:800@pbx.local>;tag=<tag>\r\n"
        'To: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "Call-ID: cm-call-1\r\n"
        "CSeq: 1 REFER\r\n"
        "Contact: <sip:192.0.2.80:5070>\r\n"
        "Refer-To: <sip:201@pbx.local>\r\n"
        "Referred-By: <sip:800@pbx.local>\r\n"
        "Content-Length: 0\r\n\r\n")
    assert (refer.from_.tag, refer.to.tag) == (dialog.as_tag, "cm-tag-1")
    assert call.state is CallState.TRANSFERRING and call.active
    call.transfer("202", h.now)  # one transfer at a time
    assert h.sent() == []


def test_a_failed_transfer_is_told_with_the_targets_status(h: Harness) -> None:
    dialog, call, refer = transferring(h)
    h.send(response_to(refer, 202, "Accepted"))
    h.send(dialog.notify("100 Trying"))
    h.send(dialog.notify("180 Ringing"))
    assert h.responses() == [(200, "OK"), (200, "OK")]
    assert h.app.take() == []
    h.advance(3)

    h.send(dialog.notify("486 Busy Here", "terminated;reason=noresource"))

    assert h.responses() == [(200, "OK")]
    assert h.app.take() == [("transfer_failed", "cm-call-1", 486, START + 3)]
    assert call.state is CallState.CONFIRMED
    assert len(h.frames(0.1)) == 5  # the prompt plays on
    h.talking(TRANSFER_TIMEOUT, call.audio)
    assert h.app.take() == []


def test_a_successful_transfer_stops_the_prompts_and_waits_for_the_bye(h: Harness) -> None:
    dialog, call, refer = transferring(h)
    h.send(response_to(refer, 202, "Accepted"))
    assert len(h.frames(0.1)) == 5

    h.send(dialog.notify("200 OK", "terminated;reason=noresource"))

    assert h.responses() == [(200, "OK")]
    assert call.state is CallState.TRANSFERRED and not call.active
    assert h.frames(0.1) == []
    assert h.app.take() == []
    h.send(dialog.request("BYE"))
    assert h.responses() == [(200, "OK")]
    assert h.app.take() == [("call_ended", "cm-call-1", h.now)]


def test_a_notify_of_no_refer_is_not_the_transfers(h: Harness) -> None:
    dialog, call, refer = transferring(h)

    h.send(dialog.request("NOTIFY", body=b"SIP/2.0 200 OK\r\n", content_type="message/sipfrag",
                          extra=("Event: dialog", "Subscription-State: active")))

    assert h.responses() == [(200, "OK")]
    assert call.state is CallState.TRANSFERRING


def test_a_refused_refer_fails_the_transfer(h: Harness) -> None:
    _, call, refer = transferring(h)

    h.send(response_to(refer, 403, "Forbidden"))

    assert h.app.take() == [("transfer_failed", "cm-call-1", 403, START)]
    assert call.state is CallState.CONFIRMED
    assert h.core.counters["transfers_failed"] == 1


def test_an_unanswered_refer_fails_the_transfer_with_408(h: Harness) -> None:
    _, call, _ = transferring(h)

    h.talking(64 * T1, call.audio)

    assert h.app.take() == [("transfer_failed", "cm-call-1", 408, START + 64 * T1)]
    assert call.state is CallState.CONFIRMED


def test_a_transfer_whose_final_notify_never_comes_fails_with_408(h: Harness) -> None:
    dialog, call, refer = transferring(h)
    h.send(response_to(refer, 202, "Accepted"))
    h.send(dialog.notify("180 Ringing"))
    h.talking(TRANSFER_TIMEOUT - 1, call.audio)
    assert h.app.take() == []

    h.talking(1, call.audio)

    assert h.app.take() == [("transfer_failed", "cm-call-1", 408, START + TRANSFER_TIMEOUT)]


# -- hanging up by itself ---------------------------------------------------------------------------


def test_no_rtp_for_rtp_timeout_hangs_up_with_a_bye(h: Harness) -> None:
    dialog, call = h.confirmed()
    for sequence in range(1, 6):  # 20 s with a packet every 4 s: the call lives
        h.advance(4)
        h.rtp_from_media(call.audio, sequence)
    assert h.sent() == [] and h.app.take() == []
    last_packet = h.now

    h.advance(RTP_TIMEOUT + 1)

    bye = h.only_request("BYE")
    assert redact(bye.serialize()) == (
        "BYE sip:192.0.2.10:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.80:5070;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:800@pbx.local>;tag=<tag>\r\n"
        'To: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "Call-ID: cm-call-1\r\n"
        "CSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n")
    [(event, call_id, ended_at)] = h.app.take()
    assert (event, call_id) == ("call_ended", "cm-call-1")
    assert isinstance(ended_at, float) and RTP_TIMEOUT < ended_at - last_packet <= RTP_TIMEOUT + 1
    assert h.core.counters["rtp_timeouts"] == 1
    assert sorted(h.free) == list(PORTS)
    h.send(response_to(bye, 200, "OK"))
    assert h.sent() == []


def test_a_call_past_max_call_seconds_is_hung_up(h: Harness) -> None:
    _, call = h.confirmed()
    h.talking(MAX_CALL_SECONDS, call.audio)
    assert h.app.take() == []

    h.talking(1, call.audio)

    h.only_request("BYE")
    assert h.app.take() == [("call_ended", "cm-call-1", START + MAX_CALL_SECONDS + 1)]


def test_a_2xx_never_acked_is_given_up_with_a_bye_after_64_t1(h: Harness) -> None:
    h.answered()

    h.advance(64 * T1 - 0.01)
    assert all(isinstance(m, SipResponse) and m.status_code == 200 for m in h.sent())

    h.advance(0.01)
    bye = h.only_request("BYE")
    assert bye.call_id == "cm-call-1"
    assert h.app.take() == []  # the application never had the call
    assert sorted(h.free) == list(PORTS) and h.core.calls == {}


def test_stopping_hangs_up_every_call(h: Harness) -> None:
    h.confirmed("one")
    h.answered("two")
    h.sent()

    h.core.close(h.now)

    byes = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "BYE"]
    assert sorted(bye.call_id for bye in byes) == ["one", "two"]
    assert h.app.take() == [("call_ended", "one", START)]
    assert h.core.calls == {}


# -- calls we make --------------------------------------------------------------------------------

AGENT_ANSWER = OFFER.replace(b"m=audio 30000 RTP/AVP 0 8 9 101", b"m=audio 30002 RTP/AVP 8 101")


def answer_to(invite_request: SipRequest, status: int, reason: str, *, tag: str | None = "cm-b-tag",
              body: bytes = b"") -> bytes:
    """The Call Manager's response to our INVITE (its To tag and Contact once past 100)."""
    to = invite_request.headers.get("To") or ""
    vias = [f"Via: {via}" for via in invite_request.headers.get_lines("Via")]
    lines = [f"SIP/2.0 {status} {reason}", *vias,
             f"From: {invite_request.headers.get('From')}", f"To: {to}" + (f";tag={tag}" if tag else ""),
             f"Call-ID: {invite_request.call_id}", f"CSeq: {invite_request.headers.get('CSeq')}",
             *(["Contact: <sip:192.0.2.10:5060>"] if status < 300 and tag else []),
             *(["Content-Type: application/sdp"] if body else []), f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Outcome:
    def __init__(self) -> None:
        self.answered: list[AppCall] = []
        self.failed: list[int] = []

    def on_answered(self, call: AppCall, now: float) -> None:
        self.answered.append(call)

    def on_failed(self, status: int, now: float) -> None:
        self.failed.append(status)


def dialing(h: Harness) -> tuple[Outcome, SipRequest]:
    """A queue (700) calling agent 201 through the Call Manager: our INVITE."""
    outcome = Outcome()
    made = h.core.originate(number="201", domain="pbx.local", caller="700", peer=CM, transport="UDP",
                            on_answered=outcome.on_answered, on_failed=outcome.on_failed, now=h.now)
    assert made is not None
    return outcome, h.only_request("INVITE")


def test_a_call_we_make_is_an_invite_with_our_offer_to_the_call_manager(h: Harness) -> None:
    _, request = dialing(h)

    text = redact(request.serialize())
    assert text.startswith(
        "INVITE sip:201@pbx.local SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.80:5070;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:700@pbx.local>;tag=<tag>\r\n"
        "To: <sip:201@pbx.local>\r\n")
    assert "\r\nContact: <sip:192.0.2.80:5070>\r\nAllow: " in text and "Content-Type: application/sdp" in text
    offer = SessionDescription.parse(request.body)
    assert offer.media[0].port == PORTS[0] and offer.media[0].formats[:2] == ["0", "8"]
    assert offer.media[0].formats[-1] == "101"


def test_an_answered_call_is_acked_given_to_the_application_and_acked_again_on_a_retransmission(
        h: Harness) -> None:
    outcome, request = dialing(h)
    h.send(answer_to(request, 180, "Ringing"))
    assert h.sent() == [] and outcome.answered == []

    ok = answer_to(request, 200, "OK", body=AGENT_ANSWER)
    h.send(ok)

    ack = h.only_request("ACK")
    assert ack.call_id == request.call_id and ack.to.tag == "cm-b-tag" and ack.cseq.seq == 1
    [call] = outcome.answered
    assert call.state is CallState.CONFIRMED and call.active and (call.number, call.caller) == ("201", "700")
    assert call.audio.negotiated is not None and call.audio.negotiated.codec == "PCMA"
    assert call.audio.negotiated.remote == ("192.0.2.50", 30002)
    h.advance(0.5)
    h.send(ok)  # our ACK was lost
    assert h.only_request("ACK").serialize() == ack.serialize()
    h.send(crlf(f"""BYE sip:192.0.2.80:5070 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKcm-b-bye
Max-Forwards: 70
From: <sip:201@pbx.local>;tag=cm-b-tag
To: <sip:700@pbx.local>;tag={request.from_.tag}
Call-ID: {request.call_id}
CSeq: 2 BYE
Content-Length: 0

"""))
    assert h.responses() == [(200, "OK")]
    assert h.app.take() == [("call_ended", request.call_id, h.now)]
    assert PORTS[0] in h.free


def test_a_refused_call_fails_with_its_status_and_gives_its_port_back(h: Harness) -> None:
    outcome, request = dialing(h)
    h.send(answer_to(request, 486, "Busy Here"))
    assert outcome.failed == [486] and outcome.answered == []
    assert h.only_request("ACK").top_via.branch == request.top_via.branch  # the transaction's own ACK
    assert h.free == [PORTS[1], PORTS[0]] and h.core.dialing == {}


def test_cancel_waits_for_a_provisional_response_then_ends_with_487(h: Harness) -> None:
    outcome, request = dialing(h)
    dialing_call = h.core.dialing[request.call_id]
    h.core.cancel(dialing_call, h.now)
    assert h.sent() == []  # nothing to cancel before a provisional response (RFC 3261 9.1)
    h.send(answer_to(request, 180, "Ringing"))
    cancel = h.only_request("CANCEL")
    assert (cancel.call_id, cancel.top_via.branch) == (request.call_id, request.top_via.branch)
    h.send(answer_to(request, 487, "Request Terminated"))
    assert outcome.failed == [487]


def test_an_answer_crossing_our_cancel_is_acked_and_hung_up(h: Harness) -> None:
    outcome, request = dialing(h)
    h.send(answer_to(request, 180, "Ringing"))
    h.core.cancel(h.core.dialing[request.call_id], h.now)
    h.only_request("CANCEL")
    h.send(answer_to(request, 200, "OK", body=AGENT_ANSWER))
    assert [m.method for m in h.sent() if isinstance(m, SipRequest)] == ["ACK", "BYE"]
    assert outcome.failed == [487] and outcome.answered == [] and PORTS[0] in h.free


def test_an_answer_with_no_audio_of_ours_is_hung_up_as_488(h: Harness) -> None:
    outcome, request = dialing(h)
    h.send(answer_to(request, 200, "OK", body=OFFER.replace(b"RTP/AVP 0 8 9 101", b"RTP/AVP 18")))
    assert [m.method for m in h.sent() if isinstance(m, SipRequest)] == ["ACK", "BYE"]
    assert outcome.failed == [488]


def test_no_port_free_makes_no_call() -> None:
    h = Harness(ports=())
    outcome = Outcome()
    assert h.core.originate(number="201", domain="pbx.local", caller="700", peer=CM, transport="UDP",
                            on_answered=outcome.on_answered, on_failed=outcome.on_failed, now=h.now) is None
    assert h.sent() == []


def test_a_transfer_replacing_our_call_to_an_agent_names_that_dialog_as_the_call_manager_knows_it(
        h: Harness) -> None:
    dialog, caller_call = h.confirmed()
    outcome, request = dialing(h)
    h.send(answer_to(request, 200, "OK", body=AGENT_ANSWER))
    h.only_request("ACK")
    [agent_call] = outcome.answered

    caller_call.transfer("201", h.now, replaces=agent_call)

    refer = h.only_request("REFER")
    assert refer.headers.get("Refer-To") == (
        f"<sip:201@pbx.local?Replaces={request.call_id.replace('@', '%40')}%3Bto-tag%3Dcm-b-tag"
        f"%3Bfrom-tag%3D{request.from_.tag}>")

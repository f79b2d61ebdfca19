"""The SIP user agent every application server (IVR, queue, meeting) is: calls in, audio, REFER out.

The Call Manager sends a call here as an ordinary INVITE with an SDP offer (its media
server's). We answer it at once with our own RTP endpoint (`CallAudio`), retransmit the 2xx
until the ACK, and hand the call to the role's `Application` when the ACK arrives. The
application plays prompts, hears digits, and ends the call by hanging up or by sending the
caller on: a REFER to the Call Manager (RFC 3515, blind transfer), whose NOTIFYs tell how
the transfer went (a message/sipfrag status line). On success the Call Manager hangs up our
leg; on failure the call stays with the application, which hears why.

An application may also make a call (`originate`: a queue ringing an agent): an INVITE with
our offer to the Call Manager, which routes it like any call; the caller's side hears nothing
but the call's outcome (`on_answered` with the new `AppCall`, or `on_failed` with the status),
and `cancel` stops the ringing. Two of our calls can then be joined by the Call Manager:
`transfer` with `replaces` sends a REFER whose Refer-To carries Replaces (RFC 3891) naming
the other call, so the caller and the other call's far party talk, without us in between.

In-dialog requests: re-INVITE (the Call Manager moved the call's media) renegotiates, BYE
ends the call, INFO carries DTMF from phones that send it that way (application/dtmf-relay),
NOTIFY reports the transfer. OPTIONS outside a dialog is the Call Manager's probe.

A call whose caller sends no RTP for `rtp_timeout` seconds, or that lasts past
`max_call_seconds`, is hung up. Sans-IO: bytes and the time in, datagrams out.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from ..runtime.control import ControlReply, ControlRequest
from ..runtime.timers import Timer, TimerQueue
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from ..sip.events import RequestReceived, ResponseReceived, TransactionTimedOut, Transmit
from ..sip.headers import KNOWN_METHODS
from ..sip.headers import Address as SipAddress
from ..sip.message import SipRequest, SipResponse, make_response
from ..sip.sdp import Origin
from ..sip.stack import SipStack
from ..sip.transaction import T1, T2, ClientTransaction, ServerTransaction, make_cancel, make_tag
from ..sip.uri import SipUri
from .audio import (
    Address,
    CallAudio,
    EncodedPrompts,
    Negotiated,
    NegotiationFailed,
    answer_sdp,
    negotiate,
    offer_sdp,
)

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER"
SDP = "application/sdp"
HOUSEKEEPING_INTERVAL = 1.0
TRANSFER_TIMEOUT = 90.0
"""Seconds to wait for the final NOTIFY of a REFER (the Call Manager rings for 60 at most)."""
_SIPFRAG_STATUS = re.compile(rb"^SIP/2\.0 (\d{3})")
_DTMF_RELAY_SIGNAL = re.compile(r"^\s*Signal\s*=\s*([0-9A-Da-d*#])\s*$", re.MULTILINE)


class CallState(enum.Enum):
    ANSWERED = "answered"
    """Our 2xx went out; no ACK yet."""
    CONFIRMED = "confirmed"
    """ACKed: the application has it."""
    TRANSFERRING = "transferring"
    """Our REFER is in progress; the application hears how it ends."""
    TRANSFERRED = "transferred"
    """The transfer succeeded: the Call Manager hangs our leg up."""
    ENDED = "ended"


class Application(Protocol):
    """A role's logic on the frame: what happens in a call once it is answered."""

    def refusal(self, number: str, domain: str, now: float) -> tuple[int, str] | None:
        """The status refusing a call to `number` of tenant `domain` (no such menu, queue or
        room), or None to answer it."""

    def answer_headers(self, call: AppCall, now: float) -> list[tuple[str, str]]:
        """Header fields for our 200 to the call's INVITE (the meeting's recording, for the CDR)."""

    def call_started(self, call: AppCall, now: float) -> None:
        """The caller's ACK arrived: audio flows both ways."""

    def digits(self, call: AppCall, digits: list[str], now: float) -> None:
        """DTMF from the caller (RFC 4733, in-band or SIP INFO), in order."""

    def playback_finished(self, call: AppCall, now: float) -> None:
        """Everything the last `play` asked for has been played."""

    def transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        """The target of `transfer` did not answer (status: the SIP final response)."""

    def call_ended(self, call: AppCall, now: float) -> None:
        """The call is over (either side hung up, or it was transferred away)."""


@runtime_checkable
class Controlled(Protocol):
    """An application that answers control requests (`runtime.control`: the meetings' API)."""

    @property
    def control_paths(self) -> tuple[str, ...]:
        """The first path segments it answers ("meetings")."""

    def control(self, request: ControlRequest, now: float) -> ControlReply:
        """The reply to `request`; 404 when what it names is not on this worker."""


LabelledMetrics = tuple[str, dict[str, dict[str, float]], dict[str, dict[str, float]]]
"""Metrics of one kind of thing: the label's name ("queue"), then gauges and counters: name -> label
value -> value."""


@runtime_checkable
class Labelled(Protocol):
    """An application with metrics per thing it serves (a queue, an agent): for /metrics."""

    def labelled(self, now: float) -> list[LabelledMetrics]:
        """The metrics of each kind of thing it serves; a metric's name belongs to one kind."""
        ...


@runtime_checkable
class Originating(Protocol):
    """An application that makes calls of its own (a queue ringing its agents): it is given the
    core, whose `originate`, `cancel` and `timers` it uses."""

    def attach(self, core: AppServerCore, now: float) -> None: ...


@runtime_checkable
class Mixing(Protocol):
    """An application that sends audio of its own making every 20 ms (a conference mixer)."""

    @property
    def mixing(self) -> bool:
        """Whether it has anything to mix now (the worker ticks only while some application has)."""

    def tick(self, now: float) -> list[CallAudio]:
        """Mix and send one frame (`CallAudio.send_payload`); the calls it sent to."""


@dataclass(eq=False)
class Dialing:
    """A call we make, from our INVITE to its final response."""

    invite: SipRequest
    audio: CallAudio
    origin: Origin
    local_sdp: bytes
    number: str
    domain: str
    caller: str
    peer: tuple[str, int]
    transport: str
    on_answered: Callable[[AppCall, float], None]
    on_failed: Callable[[int, float], None]
    tx: ClientTransaction | None = None
    ringing: bool = False
    cancelled: bool = False
    done: bool = False
    app_data: Any = None


@dataclass(eq=False)
class AppCall:
    """One call at the application server, as the application sees and drives it."""

    call_id: str
    number: str
    """The number dialled (the INVITE's To user): which menu, queue or room."""
    domain: str
    """The tenant's domain (the To host)."""
    caller: str
    """The caller's user part (From)."""
    audio: CallAudio
    dialog: Dialog
    peer: tuple[str, int]
    transport: str
    origin: Origin
    local_sdp: bytes = b""
    state: CallState = CallState.ANSWERED
    started_at: float = 0.0
    unacked: tuple[SipResponse, int] | None = None
    """Our 2xx to the (re-)INVITE with that CSeq, retransmitted until its ACK."""
    retransmit: Timer | None = None
    transfer_timer: Timer | None = None
    ack: SipRequest | None = None
    """Our ACK to the 2xx of a call we made, sent again on the 2xx's retransmissions."""
    transferred: bool = False
    """Our transfer of it succeeded: the Call Manager took it away (its BYE follows)."""
    app_data: Any = None
    """The application's own state of the call."""
    _core: AppServerCore | None = field(default=None, repr=False)

    # -- what the application does ---------------------------------------------------------

    def play(self, prompts: list[npt.NDArray[np.int16]], now: float) -> None:
        """Play these 8 kHz prompts in order, replacing what plays; `playback_finished` at the end."""
        self.audio.play(prompts, now)
        assert self._core is not None
        self._core.note_playback(self)

    def stop_playback(self) -> None:
        self.audio.stop()

    def transfer(self, number: str, now: float, *, replaces: AppCall | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        """Send the caller to `number` of the same tenant (REFER to the Call Manager); with
        `replaces` (a call we made to `number`), to the far party of that call, answered already.
        `headers`: more header fields of the REFER, for the Call Manager."""
        assert self._core is not None
        self._core.transfer(self, number, now, replaces=replaces, headers=headers)

    def hang_up(self, now: float) -> None:
        assert self._core is not None
        self._core.hang_up(self, now)

    def schedule(self, deadline: float, callback: Callable[[float], None]) -> Timer:
        """A timer of the application's, on the worker's clock."""
        assert self._core is not None
        return self._core.timers.schedule(deadline, callback)

    @property
    def active(self) -> bool:
        return self.state in (CallState.CONFIRMED, CallState.TRANSFERRING)


class AppServerCore:
    def __init__(self, *, stack: SipStack, application: Application, sdp_address: str,
                 allocate_port: Callable[[], int | None], open_rtp: Callable[[CallAudio], bool],
                 close_rtp: Callable[[CallAudio], None], release_port: Callable[[int], None],
                 rtp_timeout: float, max_call_seconds: float, now: float,
                 make_tag: Callable[[], str] = make_tag) -> None:
        self.stack = stack
        self.application = application
        self._mixer = application if isinstance(application, Mixing) else None
        self._sdp_address = sdp_address
        self._allocate_port = allocate_port
        self._open_rtp = open_rtp
        self._close_rtp = close_rtp
        self._release_port = release_port
        self._rtp_timeout = rtp_timeout
        self._max_call_seconds = max_call_seconds
        self._make_tag = make_tag
        self.timers = TimerQueue()
        self.calls: dict[tuple[str, str, str | None], AppCall] = {}
        """By dialog id (Call-ID, our tag, the Call Manager's tag)."""
        self._playing: set[AppCall] = set()
        self._by_port: dict[int, AppCall] = {}
        self._datagrams: list[tuple[int, bytes, Address]] = []
        self.prompts = EncodedPrompts()
        self.counters: dict[str, int] = {"calls_answered": 0, "calls_refused": 0, "transfers": 0,
                                         "transfers_failed": 0, "rtp_timeouts": 0, "digits": 0}
        self._origin_ids = 0
        self.dialing: dict[str, Dialing] = {}
        """Calls we make that have no final answer yet, by Call-ID."""
        self.timers.schedule(now + HOUSEKEEPING_INTERVAL, self._housekeep)
        if isinstance(application, Originating):
            application.attach(self, now)

    # -- the worker's interface ----------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> None:
        for event in self.stack.receive(data, source, transport, now):
            try:
                self._dispatch(event, now)
            except RemoteProtocolError as exc:
                log.info("unusable message from %s:%s: %s", *source, exc.reason)
                if isinstance(event, RequestReceived) and event.transaction is not None \
                        and _open(event.transaction):
                    self.stack.respond(event.transaction, exc.status_code, now=now)

    def receive_rtp(self, audio: CallAudio, data: bytes, source: Address, now: float) -> bool:
        """One RTP datagram of a call; whether it carried digits for the application (then
        there may be SIP to send and timers to arm)."""
        audio.receive(data, source, now)
        digits = audio.take_digits()
        if not digits:
            return False
        call = self._by_port.get(audio.port)
        if call is None or not call.active:
            return False
        self.counters["digits"] += len(digits)
        self.application.digits(call, digits, now)
        return True

    def tick_media(self, now: float) -> None:
        """The 20 ms tick: the frames due of every prompt that plays, and the mixer's frame."""
        if self._mixer is not None and self._mixer.mixing:
            for audio in self._mixer.tick(now):
                self._datagrams += audio.take_datagrams()
        for call in list(self._playing):
            audio = call.audio
            audio.tick(now)
            self._datagrams += audio.take_datagrams()
            if not audio.playing:
                self._playing.discard(call)
                if audio.finished_playing:
                    audio.finished_playing = False
                    if call.active:
                        self.application.playback_finished(call, now)

    @property
    def playing(self) -> int:
        """Calls with a prompt playing now."""
        return len(self._playing)

    @property
    def ticking(self) -> bool:
        """Whether the 20 ms tick has work: a prompt playing or a mixer mixing."""
        return bool(self._playing) or (self._mixer is not None and self._mixer.mixing)

    def handle_timer(self, now: float) -> None:
        for event in self.stack.handle_timer(now):
            self._dispatch(event, now)
        self.timers.run_due(now)

    def next_timer(self) -> float | None:
        deadlines = [d for d in (self.stack.next_timer(), self.timers.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def take_transmits(self) -> list[Transmit]:
        return self.stack.take_transmits()

    def take_datagrams(self) -> list[tuple[int, bytes, Address]]:
        datagrams, self._datagrams = self._datagrams, []
        return datagrams

    def note_playback(self, call: AppCall) -> None:
        if call.audio.playing or call.audio.finished_playing:  # nothing to play: finished at the next tick
            self._playing.add(call)

    def close(self, now: float) -> None:
        """Stopping: hang up every call."""
        for call in list(self.calls.values()):
            self.hang_up(call, now)

    # -- requests ---------------------------------------------------------------------------

    def _dispatch(self, event: object, now: float) -> None:
        if isinstance(event, RequestReceived):
            if event.transaction is None:
                self._on_ack(event.request, now)
            else:
                self._on_request(event.request, event.transaction, event.source, event.transport, now)
        elif isinstance(event, ResponseReceived):
            if event.transaction is None:
                self._on_stray_2xx(event.response)
            elif callable(event.transaction.user_data):
                event.transaction.user_data(event.response, now)
        elif isinstance(event, TransactionTimedOut):
            if callable(event.transaction.user_data):
                event.transaction.user_data(make_response(event.transaction.request, 408), now)

    def _on_request(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int], transport: str,
                    now: float) -> None:
        method = request.method
        if method not in KNOWN_METHODS:
            self.stack.respond(tx, 501, now=now, headers=[("Allow", ALLOW)])
            return
        required = [value.strip() for value in request.headers.get_all("Require")]
        if required and method not in ("CANCEL", "ACK"):
            self.stack.respond(tx, 420, now=now, headers=[("Unsupported", ", ".join(required))])
            return
        if method == "CANCEL":
            # We answer INVITEs at once: the call is up already, the BYE will follow.
            self.stack.respond(tx, 200 if self.stack.layer.find_invite_server_transaction(request) else 481,
                               now=now)
        elif request.to.tag is not None:
            self._in_dialog(request, tx, now)
        elif method == "INVITE":
            self._on_invite(request, tx, source, transport, now)
        elif method == "OPTIONS":
            self.stack.respond(tx, 200, now=now, to_tag=self._make_tag(),
                               headers=[("Allow", ALLOW), ("Accept", SDP)])
        elif method in ("BYE", "INFO", "NOTIFY", "REFER", "UPDATE", "PRACK"):
            self.stack.respond(tx, 481, now=now)
        else:
            self.stack.respond(tx, 405, now=now, headers=[("Allow", ALLOW)])

    def _on_invite(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int], transport: str,
                   now: float) -> None:
        target = request.to.uri
        if not isinstance(target, SipUri) or not target.user_unescaped:
            self._refuse(tx, 404, "No Number Dialled", now)
            return
        refusal = self.application.refusal(target.user_unescaped, target.host, now)
        if refusal is not None:
            self._refuse(tx, refusal[0], refusal[1], now)
            return
        if request.content_type != SDP or not request.body:
            self._refuse(tx, 488, "An SDP Offer Is Needed", now)
            return
        try:
            negotiated, offered = negotiate(request.body)
        except NegotiationFailed as exc:
            self._refuse(tx, 488, exc.reason[:80], now)
            return
        # Before a port is taken: an INVITE without a usable Contact is refused (400) and takes nothing.
        dialog = Dialog.from_uas(request, local_tag=self._make_tag(),
                                 local_contact=self.stack.contact(transport))
        port = self._allocate_port()
        if port is None:
            log.warning("no RTP port free: call %s refused", request.call_id)
            self._refuse(tx, 503, "No RTP Port Free", now)
            return
        audio = CallAudio(port=port, prompts=self.prompts, now=now)
        audio.use(negotiated)
        if not self._open_rtp(audio):
            self._release_port(port)
            self._refuse(tx, 503, "RTP Port Unavailable", now)
            return
        origin = self._new_origin()
        call = AppCall(call_id=request.call_id, number=target.user_unescaped or "", domain=target.host,
                       caller=_user_of(request), audio=audio,
                       dialog=dialog,
                       peer=source, transport=transport, origin=origin, started_at=now, _core=self)
        call.dialog.confirm()
        call.local_sdp = answer_sdp(negotiated, offered, address=self._sdp_address, port=port, origin=origin)
        self.calls[call.dialog.id] = call
        self._by_port[port] = call
        self.counters["calls_answered"] += 1
        self._send_2xx(call, tx, now, self.application.answer_headers(call, now))

    def _new_origin(self) -> Origin:
        self._origin_ids += 1
        return Origin("pbx", str(self._origin_ids), "1", "IN", "IP6" if ":" in self._sdp_address else "IP4",
                      self._sdp_address)

    def _refuse(self, tx: ServerTransaction, code: int, reason: str, now: float) -> None:
        self.counters["calls_refused"] += 1
        self.stack.respond(tx, code, reason, now=now, to_tag=self._make_tag())

    def _send_2xx(self, call: AppCall, tx: ServerTransaction, now: float,
                  headers: list[tuple[str, str]] | None = None) -> None:
        response = self.stack.respond(
            tx, 200, now=now, to_tag=call.dialog.local_tag if tx.request.to.tag is None else None,
            headers=[("Contact", str(call.dialog.local_contact)), ("Allow", ALLOW), ("Content-Type", SDP),
                     *(headers or ())],
            body=call.local_sdp)
        call.unacked = (response, tx.request.cseq.seq)
        self._retransmit_2xx(call, now, T1, now + 64 * T1)

    def _retransmit_2xx(self, call: AppCall, now: float, interval: float, give_up_at: float) -> None:
        unacked = call.unacked

        def fire(t: float) -> None:
            if call.unacked is not unacked or unacked is None:
                return
            if t >= give_up_at:
                log.info("no ACK for our 2xx on call %s: hanging up", call.call_id)
                call.unacked = None
                self.hang_up(call, t)
                return
            self.stack.send_stateless(unacked[0], call.peer, call.transport)
            self._retransmit_2xx(call, t, min(interval * 2, T2), give_up_at)

        if call.transport == "UDP":
            call.retransmit = self.timers.schedule(min(now + interval, give_up_at), fire)
        else:
            call.retransmit = self.timers.schedule(give_up_at, fire)

    def _on_ack(self, ack: SipRequest, now: float) -> None:
        call = self.calls.get((ack.call_id, ack.to.tag or "", ack.from_.tag or ""))
        if call is None or call.unacked is None or call.unacked[1] != ack.cseq.seq:
            return
        call.unacked = None
        if call.retransmit is not None:
            call.retransmit.cancel()
        if call.state is CallState.ANSWERED:
            call.state = CallState.CONFIRMED
            self.application.call_started(call, now)

    def _in_dialog(self, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        call = self.calls.get((request.call_id, request.to.tag or "", request.from_.tag or ""))
        if call is None:
            self.stack.respond(tx, 481, now=now)
            return
        try:
            call.dialog.receive_request(request)
        except RemoteProtocolError as exc:
            self.stack.respond(tx, exc.status_code, now=now)
            return
        method = request.method
        if method == "BYE":
            self.stack.respond(tx, 200, now=now)
            self._end(call, now)
        elif method == "INVITE":
            self._on_reinvite(call, request, tx, now)
        elif method == "NOTIFY":
            self.stack.respond(tx, 200, now=now)
            self._on_notify(call, request, now)
        elif method == "INFO":
            self.stack.respond(tx, 200, now=now)
            digit = _info_digit(request)
            if digit is not None and call.active:
                self.counters["digits"] += 1
                self.application.digits(call, [digit], now)
        elif method == "UPDATE":
            self.stack.respond(tx, 200, now=now)
        else:
            self.stack.respond(tx, 405, now=now, headers=[("Allow", ALLOW)])

    def _on_reinvite(self, call: AppCall, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        if call.unacked is not None:
            self.stack.respond(tx, 491, now=now)
            return
        if request.body and request.content_type == SDP:
            try:
                negotiated, offered = negotiate(request.body)
            except NegotiationFailed as exc:
                self.stack.respond(tx, 488, exc.reason[:80], now=now)
                return
            call.audio.use(negotiated)
            call.audio.source = None  # the media moved: latch anew
            body = answer_sdp(negotiated, offered, address=self._sdp_address, port=call.audio.port,
                              origin=call.origin)
            if body != call.local_sdp:
                call.origin = call.origin.next_version()
                call.local_sdp = answer_sdp(negotiated, offered, address=self._sdp_address,
                                            port=call.audio.port, origin=call.origin)
        self._send_2xx(call, tx, now)

    def _on_notify(self, call: AppCall, request: SipRequest, now: float) -> None:
        if call.state is not CallState.TRANSFERRING or (request.headers.get("Event") or "").split(";")[0] \
                .strip().lower() != "refer":
            return
        match = _SIPFRAG_STATUS.match(request.body.lstrip())
        if match is None:
            return
        status = int(match.group(1))
        if status < 200:
            return
        if call.transfer_timer is not None:
            call.transfer_timer.cancel()
        if status < 300:
            log.info("call %s transferred", call.call_id)
            call.state = CallState.TRANSFERRED
            call.transferred = True
            call.audio.stop()
            self._playing.discard(call)
            return
        self._transfer_failed(call, status, now)

    # -- what the application asked for -------------------------------------------------------

    def transfer(self, call: AppCall, number: str, now: float, *, replaces: AppCall | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        if call.state is not CallState.CONFIRMED:
            return
        call.state = CallState.TRANSFERRING
        self.counters["transfers"] += 1
        target = f"sip:{number}@{call.domain}"
        if replaces is not None:
            # The dialog as the Call Manager knows it: its tag is the To tag (RFC 3891 section 3).
            dialog = replaces.dialog
            replaced = f"{dialog.call_id};to-tag={dialog.remote_tag};from-tag={dialog.local_tag}"
            target += "?Replaces=" + quote(replaced, safe="")
        refer = call.dialog.create_request(
            "REFER", via_host=self.stack.host, via_port=self.stack.port, transport=call.transport,
            extra_headers=[("Refer-To", f"<{target}>"),
                           ("Referred-By", f"<sip:{call.number}@{call.domain}>"), *(headers or ())])
        tx = self.stack.send_request(refer, call.peer, call.transport, now)

        def on_response(response: SipResponse, t: float) -> None:
            if response.status_code >= 300 and call.state is CallState.TRANSFERRING:
                self._transfer_failed(call, response.status_code, t)

        tx.user_data = on_response
        call.transfer_timer = self.timers.schedule(
            now + TRANSFER_TIMEOUT,
            lambda t: self._transfer_failed(call, 408, t) if call.state is CallState.TRANSFERRING else None)

    def _transfer_failed(self, call: AppCall, status: int, now: float) -> None:
        if call.state is not CallState.TRANSFERRING:
            return
        log.info("transfer of call %s failed: %d", call.call_id, status)
        self.counters["transfers_failed"] += 1
        call.state = CallState.CONFIRMED
        self.application.transfer_failed(call, status, now)

    # -- calls we make ----------------------------------------------------------------------------

    def originate(self, *, number: str, domain: str, caller: str, peer: tuple[str, int], transport: str,
                  on_answered: Callable[[AppCall, float], None], on_failed: Callable[[int, float], None],
                  now: float, headers: list[tuple[str, str]] | None = None) -> Dialing | None:
        """Call `number` of tenant `domain` as `caller` (a queue's number) through the Call Manager
        at `peer`; None when no RTP port is free. `on_answered` gets the call, `on_failed` the
        final status (487 after `cancel`)."""
        port = self._allocate_port()
        if port is None:
            log.warning("no RTP port free: no call to %s", number)
            return None
        audio = CallAudio(port=port, prompts=self.prompts, now=now)
        if not self._open_rtp(audio):
            self._release_port(port)
            return None
        origin = self._new_origin()
        local_sdp = offer_sdp(address=self._sdp_address, port=port, origin=origin)
        call_id = f"{self._make_tag()}{self._make_tag()}@{self.stack.host}"
        invite = SipRequest("INVITE", SipUri(host=domain, user=number), [
            ("Via", self.stack.via(transport)),
            ("Max-Forwards", "70"),
            ("From", str(SipAddress(uri=SipUri(host=domain, user=caller), params={"tag": self._make_tag()}))),
            ("To", str(SipAddress(uri=SipUri(host=domain, user=number)))),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", str(self.stack.contact(transport))),
            ("Allow", ALLOW),
            *(headers or ()),
            ("Content-Type", SDP),
        ], local_sdp)
        dialing = Dialing(invite=invite, audio=audio, origin=origin, local_sdp=local_sdp, number=number,
                          domain=domain, caller=caller, peer=peer, transport=transport,
                          on_answered=on_answered, on_failed=on_failed)
        dialing.tx = self.stack.send_request(invite, peer, transport, now)
        dialing.tx.user_data = lambda response, t: self._on_dialing_response(dialing, response, t)
        self.dialing[call_id] = dialing
        return dialing

    def cancel(self, dialing: Dialing, now: float) -> None:
        """Stop ringing: CANCEL (once a provisional response came, RFC 3261 9.1); `on_failed(487)`."""
        if dialing.done or dialing.cancelled:
            return
        dialing.cancelled = True
        if dialing.ringing:
            self._send_cancel(dialing, now)

    def _send_cancel(self, dialing: Dialing, now: float) -> None:
        tx = self.stack.send_request(make_cancel(dialing.invite), dialing.peer, dialing.transport, now)
        tx.user_data = _ignore_response

    def _on_dialing_response(self, dialing: Dialing, response: SipResponse, now: float) -> None:
        code = response.status_code
        if dialing.done:
            if 200 <= code < 300:
                self._on_stray_2xx(response)  # a retransmission: our ACK was lost
            return
        if code < 200:
            if not dialing.ringing:
                dialing.ringing = True
                if dialing.cancelled:
                    self._send_cancel(dialing, now)
            return
        dialing.done = True
        self.dialing.pop(dialing.invite.call_id, None)
        if code >= 300:
            self._close_audio(dialing.audio)
            dialing.on_failed(code, now)
            return
        try:
            dialog = Dialog.from_uac(dialing.invite, response)
        except RemoteProtocolError as exc:
            log.info("call to %s: unusable 2xx (%s)", dialing.number, exc)
            self._close_audio(dialing.audio)
            dialing.on_failed(502, now)
            return
        ack = dialog.create_ack(dialing.invite.cseq.seq, via_host=self.stack.host, via_port=self.stack.port,
                                transport=dialing.transport)
        self.stack.send_stateless(ack, dialing.peer, dialing.transport)
        negotiated = _negotiated_answer(response)
        if dialing.cancelled or negotiated is None:
            # Answered as we gave up, or with no audio we take: over all the same.
            if negotiated is None:
                log.info("call to %s: its answer has no audio we take: hanging up", dialing.number)
            bye = dialog.create_request("BYE", via_host=self.stack.host, via_port=self.stack.port,
                                        transport=dialing.transport)
            self.stack.send_request(bye, dialing.peer, dialing.transport, now).user_data = _ignore_response
            self._close_audio(dialing.audio)
            dialing.on_failed(487 if dialing.cancelled else 488, now)
            return
        dialing.audio.use(negotiated)
        call = AppCall(call_id=dialing.invite.call_id, number=dialing.number, domain=dialing.domain,
                       caller=dialing.caller, audio=dialing.audio, dialog=dialog, peer=dialing.peer,
                       transport=dialing.transport, origin=dialing.origin, local_sdp=dialing.local_sdp,
                       state=CallState.CONFIRMED, started_at=now, ack=ack, app_data=dialing.app_data,
                       _core=self)
        self.calls[dialog.id] = call
        self._by_port[dialing.audio.port] = call
        dialing.on_answered(call, now)

    def _on_stray_2xx(self, response: SipResponse) -> None:
        """A 2xx to our INVITE answered already: our ACK again (RFC 6026)."""
        call = self.calls.get((response.call_id, response.from_.tag or "", response.to.tag or ""))
        if call is not None and call.ack is not None:
            self.stack.send_stateless(call.ack, call.peer, call.transport)

    def hang_up(self, call: AppCall, now: float) -> None:
        if call.state is CallState.ENDED:
            return
        bye = call.dialog.create_request("BYE", via_host=self.stack.host, via_port=self.stack.port,
                                         transport=call.transport)
        tx = self.stack.send_request(bye, call.peer, call.transport, now)
        tx.user_data = _ignore_response
        self._end(call, now)

    def _end(self, call: AppCall, now: float) -> None:
        if call.state is CallState.ENDED:
            return
        was_active = call.state is not CallState.ANSWERED
        call.state = CallState.ENDED
        for timer in (call.retransmit, call.transfer_timer):
            if timer is not None:
                timer.cancel()
        call.unacked = None
        self.calls.pop(call.dialog.id, None)
        self._playing.discard(call)
        self._by_port.pop(call.audio.port, None)
        self._close_audio(call.audio)
        if was_active:
            self.application.call_ended(call, now)

    def _close_audio(self, audio: CallAudio) -> None:
        audio.close()
        self._close_rtp(audio)
        self._release_port(audio.port)

    # -- housekeeping ---------------------------------------------------------------------------

    def _housekeep(self, now: float) -> None:
        for call in list(self.calls.values()):
            if call.state is CallState.ANSWERED:
                continue
            if now - call.audio.last_received > self._rtp_timeout:
                log.info("call %s: no RTP from the caller for %.0f s: hanging up", call.call_id,
                         now - call.audio.last_received)
                self.counters["rtp_timeouts"] += 1
                self.hang_up(call, now)
            elif now - call.started_at > self._max_call_seconds:
                log.info("call %s lasted past %.0f s: hanging up", call.call_id, self._max_call_seconds)
                self.hang_up(call, now)
        self.timers.schedule(now + HOUSEKEEPING_INTERVAL, self._housekeep)


def _user_of(request: SipRequest) -> str:
    uri = request.from_.uri
    return (uri.user_unescaped or "") if isinstance(uri, SipUri) else ""


def _info_digit(request: SipRequest) -> str | None:
    """The digit of a SIP INFO in the formats phones use (application/dtmf-relay, application/dtmf)."""
    content_type = (request.content_type or "").lower()
    text = request.body.decode("ascii", "replace")
    if content_type == "application/dtmf-relay":
        match = _DTMF_RELAY_SIGNAL.search(text)
        return match.group(1).upper() if match else None
    if content_type == "application/dtmf":
        value = text.strip()
        return value.upper() if len(value) == 1 and value in "0123456789*#ABCDabcd" else None
    return None


def _negotiated_answer(response: SipResponse) -> Negotiated | None:
    """What the answer to our offer chose; None when it has no audio of ours."""
    if response.content_type != SDP or not response.body:
        return None
    try:
        return negotiate(response.body)[0]
    except (NegotiationFailed, RemoteProtocolError):
        return None


def _open(tx: ServerTransaction) -> bool:
    return tx.last_response is None or tx.last_response.status_code < 200


def _ignore_response(response: SipResponse, now: float) -> None:
    return None

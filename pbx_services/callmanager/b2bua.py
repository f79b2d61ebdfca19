"""The B2BUA: every call is two dialogs, one with the caller (A leg) and one with the callee (B leg).

The caller's INVITE is authenticated and routed to every registered contact of the dialed
extension at once (parallel forking); the first 2xx wins and the other branches are
cancelled. Provisional answers, the answer, CANCEL, BYE from either side and in-dialog
requests (re-INVITE for hold/resume, INFO, UPDATE) are relayed between the legs. We
answer as a UAS on the A leg, so we retransmit our own 2xx until the caller ACKs it
(RFC 3261 13.3.1.4), and ACK the callee's 2xx ourselves.

Every answered call is written to the state store (`DialogStore`) whenever what routes its
requests changes, and deleted when it ends: a worker that restarts takes back its calls
(`restore_calls`), and a worker that gets a request of a call it does not hold (its owner
died, or another Call Manager holds the VIP now) takes the call over (`adopt`).

With a media pool, every call's media is anchored on a media server: each SDP a phone
sends goes to the server (`offer` or `answer`) and the other phone gets the server's
rewrite, so the SIP flow waits for the server's reply at those points. A call is refused
with 503 when no media server can take it. When a media endpoint dies, its calls are
re-homed: anchored anew on another endpoint and both phones re-INVITEd to it.

Sans-IO: driven by `SipStack` events with the time passed in.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..cluster.events import CallEnded, Disposition, EndReason, HangupBy
from ..cluster.media_control import ERROR_UNKNOWN_CALL
from ..cluster.models import ServerRole
from ..cluster.state.dialogs import CallRecord, DialogStore, InMemoryDialogs
from ..cluster.state.errors import StateStoreUnavailable
from ..cluster.state.location import LocationStore
from ..runtime.timers import Timer, TimerQueue
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from ..sip.headers import PBX_RECORDING, Address
from ..sip.message import SipRequest, SipResponse, make_response
from ..sip.stack import SERVER_NAME, SipStack
from ..sip.transaction import T1, T2, ClientTransaction, ServerTransaction, make_cancel, make_tag
from ..sip.uri import SipUri, parse_uri
from .anchoring import MediaAnchor, SdpOrigin
from .appservers import PLACED_BY_NUMBER, AppEndpoint, AppServerPool
from .auth import Authenticator
from .mediapool import MediaEndpoint, MediaPool
from .transfer import CallTransfers, Transfer

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY"
SDP = "application/sdp"
REINVITE_RETRY = 1.0
"""Seconds before a re-INVITE of ours that met another one in progress (or a 491) is tried again."""
CALL_RECORD_TTL = 3600.0
"""Seconds a call record lives in the state store unless written again."""
CALL_RECORD_REFRESH = 1200.0
"""Seconds after which the record of a call that did not change is written again."""
# Headers of an in-dialog request that mean something to the far end and are carried across.
RELAYED_HEADERS = ("Content-Type", "Content-Disposition", "Event", "Subscription-State", "Info-Package",
                   "Recv-Info")


class Phase(enum.Enum):
    ROUTING = "routing"
    """INVITE sent to the callee's contacts, no answer yet."""
    ANSWERED = "answered"
    ENDED = "ended"


@dataclass(eq=False)
class Unacked:
    """A 2xx to an INVITE that we sent and retransmit until the ACK arrives."""

    response: SipResponse
    cseq: int
    timer: Timer | None
    on_ack: Callable[[SipRequest, float], None]


@dataclass(eq=False)
class Leg:
    """Our side of a dialog with one phone."""

    side: HangupBy
    """Who this phone is in the call, for the CDR's hangup_by."""
    peer: tuple[str, int]
    """Where this phone's requests come from and where ours go (works behind NAT)."""
    transport: str
    dialog: Dialog | None = None
    unacked: Unacked | None = None
    acks_sent: dict[int, SipRequest] = field(default_factory=dict)
    """ACKs we sent for the phone's 2xx answers, by CSeq, re-sent on its retransmissions."""
    relayed_2xx: set[int] = field(default_factory=set)
    """CSeqs of the phone's re-INVITE 2xx answers being relayed (or relayed) to the other phone."""
    moving: bool = False
    """Our own re-INVITE (the media moved) is in progress on this leg."""


@dataclass(eq=False)
class Branch:
    """One attempt to reach one registered contact of the callee."""

    leg: Leg
    invite: SipRequest
    tx: ClientTransaction | None = None
    provisional: bool = False
    cancelled: bool = False
    """We want this branch to stop ringing."""
    cancel_sent: bool = False
    final: int | None = None
    app_endpoint: AppEndpoint | None = None
    """The application server this branch goes to (IVR, queue, meeting), None for a phone."""
    answer_timer: Timer | None = None
    """Until the application server answers anything: silent past it, the next one is tried."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one branch of a call goes: a registered contact, or an application server."""

    contact: str
    """The Request-URI."""
    source: tuple[str, int]
    """Where the INVITE is sent."""
    transport: str
    app_endpoint: AppEndpoint | None = None


@dataclass(eq=False)
class Call:
    a: Leg
    call_id: str
    """The caller's Call-ID: the CDR's, and the media server's name of the call."""
    a_tx: ServerTransaction | None
    """The caller's INVITE transaction; None for a call taken over from the state store."""
    a_invite: SipRequest | None
    a_tag: str
    b_call_id: str
    b_tag: str
    caller: str
    callee: str
    tenant_id: int | None
    started_at: float
    branches: list[Branch] = field(default_factory=list)
    b: Leg | None = None
    phase: Phase = Phase.ROUTING
    answered_at: float | None = None
    ring_timer: Timer | None = None
    reinvite_pending: bool = False
    media: MediaAnchor | None = None
    b_offer: bytes = b""
    """The body of the INVITE sent to the callee's devices."""
    saved_at: float | None = None
    """When its record was last written to the state store; None: not yet (or not since a change)."""
    recorded: bool = False
    """Its record in the store names us: later writes go only over a record still naming us."""
    realm: str = ""
    """The tenant's domain: where the dialled number (and a transfer's target) is looked up."""
    app_endpoint: AppEndpoint | None = None
    """The application server that answered the call and holds it now."""
    transfer: Transfer | None = None
    """A REFER being carried out."""
    app_recording: str | None = None
    """Where the application server that answered records the call (a meeting's mix), for the CDR."""

    @property
    def invite_tx(self) -> ServerTransaction:
        """The caller's INVITE transaction, which only a call set up here has (not one taken over,
        which is answered already)."""
        assert self.a_tx is not None, "a call taken over has no INVITE transaction"
        return self.a_tx

    @property
    def invite(self) -> SipRequest:
        assert self.a_invite is not None, "a call taken over has no INVITE"
        return self.a_invite

    @property
    def record_key(self) -> str:
        return f"{self.call_id}/{self.a_tag}"

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def leg_name(self, leg: Leg) -> str:
        return "a" if leg is self.a else "b"


class B2bua:
    def __init__(self, *, stack: SipStack, location: LocationStore, authenticator: Authenticator,
                 timers: TimerQueue, realm_for: Callable[[str], str],
                 extension_exists: Callable[[str, str], bool], on_call_ended: Callable[[CallEnded], None],
                 no_answer_timeout: float = 60.0, wall_offset: float = 0.0, media: MediaPool | None = None,
                 record_calls: bool = False, make_tag: Callable[[], str] = make_tag,
                 dialogs: DialogStore | None = None, owner: str = "local",
                 app_servers: AppServerPool | None = None,
                 service_role: Callable[[str, str], ServerRole | None] | None = None,
                 app_answer_timeout: float = 1.0) -> None:
        self._stack = stack
        self._app_servers = app_servers
        self._service_role = service_role or _no_service
        self._app_answer_timeout = app_answer_timeout
        self.transfers = CallTransfers(self)
        self._store = dialogs or InMemoryDialogs()
        self._owner = owner
        """The name our call records give their owner: "<node>/<worker>"."""
        self._changed: set[Call] = set()
        self._taken_over: list[tuple[str, str]] = []
        """(previous owner, record key) of the calls taken over since `take_takeovers`."""
        self._make_tag = make_tag
        """Tags and Call-IDs we make name our worker (workers.py), so the call's messages find it."""
        self._location = location
        self._auth = authenticator
        self._timers = timers
        self._realm_for = realm_for
        self._extension_exists = extension_exists
        self._on_call_ended = on_call_ended
        self._no_answer_timeout = no_answer_timeout
        self._wall_offset = wall_offset
        self._dialogs: dict[tuple[str, str, str | None], tuple[Call, Leg]] = {}
        self.calls: set[Call] = set()
        self._media = media
        self._record_calls = record_calls
        self._media_calls: dict[str, Call] = {}
        """Anchored calls by the call id their media server knows them by."""

    # -- new calls -------------------------------------------------------------------

    def handle_invite(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int],
                      transport: str, now: float) -> None:
        if request.max_forwards == 0:
            self._stack.respond(tx, 483, now=now)
            return
        if not request.contacts:
            # An RFC 2543 phone may leave it out (RFC 4475 inv2543); as then, the From URI is
            # the remote target. Requests go to the phone's source address anyway.
            request.headers.add("Contact", f"<{request.from_.uri}>")
        if request.body and request.content_type != "application/sdp":
            self._stack.respond(tx, 415, now=now, headers=[("Accept", "application/sdp")])
            return
        from_uri = request.from_.sip_uri
        realm = self._realm_for(from_uri.host)
        result = self._auth.authenticate(request, realm=realm, source_ip=source[0], now=now, proxy=True)
        if result.user is None:
            assert result.status_code is not None
            self._stack.respond(tx, result.status_code, now=now, to_tag=self._make_tag(),
                                headers=result.headers)
            return
        target = request.uri
        if not isinstance(target, SipUri):
            self._stack.respond(tx, 416, now=now)
            return
        dialed = target.user_unescaped or ""
        targets = self.route(realm, dialed, now)
        if isinstance(targets, tuple):
            code, reason = targets
            self._stack.respond(tx, code, reason, now=now, to_tag=self._make_tag())
            return
        call = Call(a=Leg(HangupBy.CALLER, source, transport), call_id=request.call_id, a_tx=tx,
                    a_invite=request,
                    a_tag=self._make_tag(), b_call_id=make_tag() + make_tag(), b_tag=self._make_tag(),
                    caller=result.user.extension, callee=dialed, tenant_id=result.user.tenant_id,
                    started_at=now, realm=realm)
        tx.user_data = call
        self.calls.add(call)
        call.ring_timer = self._timers.schedule(now + self._no_answer_timeout,
                                                lambda t: self._no_answer(call, t))
        if self._media is None or not request.body:
            # Without an offer the media is anchored on the callee's answer (late offer).
            call.b_offer = request.body
            for branch_target in targets:
                self._start_branch(call, branch_target, now)
            return

        def route(body: bytes | None, t: float) -> None:
            if call.phase is not Phase.ROUTING:
                return
            if body is None:
                self._refuse(call, 503, "Media Unavailable", t)
                return
            call.b_offer = body
            for branch_target in targets:
                self._start_branch(call, branch_target, t)

        self._anchor(call, "a", request.body, now, route)

    def route(self, realm: str, dialed: str, now: float) -> list[Target] | tuple[int, str]:
        """Where a call to `dialed` in tenant `realm` goes: its branches' targets, or the status
        (code, reason) that refuses it."""
        if not dialed:
            return 404, "Not Found"
        if self._extension_exists(realm, dialed):
            bindings = self._location.lookup(f"sip:{dialed}@{realm}", now + self._wall_offset)
            if not bindings:
                return 480, "Temporarily Unavailable"
            return [Target(b.contact, b.source, b.transport) for b in bindings]
        role = self._service_role(realm, dialed)
        if role is None:
            return 404, "Not Found"
        endpoint = self._pick_app_endpoint(role, dialed, realm)
        if endpoint is None:
            log.warning("no %s server available for %s@%s", role, dialed, realm)
            return 503, f"No {role.value.upper() if role is ServerRole.IVR else role.value} Server Available"
        return [self._app_target(endpoint, dialed)]

    def _pick_app_endpoint(self, role: ServerRole, number: str, realm: str, *,
                           exclude: Iterable[AppEndpoint] = ()) -> AppEndpoint | None:
        """The endpoint a call to `number` goes to: the number's home for the roles whose calls
        meet on one worker (a meeting room), else the least loaded."""
        if self._app_servers is None:
            return None
        if role in PLACED_BY_NUMBER:
            return self._app_servers.home_for(role, number, realm, exclude=exclude)
        return self._app_servers.pick(role, exclude=exclude)

    def app_endpoint_lost(self, endpoint: AppEndpoint, now: float) -> None:
        """An application server worker went down: each answered call it held is moved to
        another of its role (the caller hears the menu again, or is back in the room)."""
        for call in list(endpoint.calls):
            if call.app_endpoint is endpoint and call.phase is Phase.ANSWERED:
                self.transfers.move(call, now)

    @staticmethod
    def _app_target(endpoint: AppEndpoint, dialed: str) -> Target:
        host, port = endpoint.address
        return Target(f"sip:{dialed}@{host}:{port}", endpoint.address, "UDP", endpoint)

    def _start_branch(self, call: Call, target: Target, now: float) -> None:
        a_invite = call.invite
        content_type = a_invite.headers.get("Content-Type") if call.b_offer else None
        branch = self._send_invite(
            target, call_id=call.b_call_id, from_tag=call.b_tag, caller=call.caller, callee=call.callee,
            realm=call.realm, display_name=a_invite.from_.display_name,
            max_forwards=a_invite.max_forwards - 1, body=call.b_offer, content_type=content_type, now=now,
            on_response=lambda branch, response, t: self._on_branch_response(call, branch, response, t),
            on_silent=lambda branch, t: self._retry_app_branch(call, branch, 408, t))
        call.branches.append(branch)

    def _send_invite(self, target: Target, *, call_id: str, from_tag: str, caller: str, callee: str,
                     realm: str, display_name: str | None, max_forwards: int, body: bytes,
                     content_type: str | None, now: float,
                     on_response: Callable[[Branch, SipResponse, float], None],
                     on_silent: Callable[[Branch, float], object]) -> Branch:
        """An INVITE to `target` as one branch; an application server that answers nothing within
        `app_answer_timeout` is given up (`on_silent`)."""
        headers = [
            ("Via", self._stack.via(target.transport)),
            ("Max-Forwards", str(max_forwards)),
            ("From", str(Address(uri=SipUri(host=realm, user=caller), display_name=display_name,
                                 params={"tag": from_tag}))),
            ("To", str(Address(uri=SipUri(host=realm, user=callee)))),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", str(self._stack.contact(target.transport))),
            ("Allow", ALLOW),
            ("User-Agent", SERVER_NAME),
        ]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        invite = SipRequest("INVITE", parse_uri(target.contact), headers, body)
        branch = Branch(leg=Leg(HangupBy.CALLEE, target.source, target.transport), invite=invite,
                        app_endpoint=target.app_endpoint)
        branch.tx = self._stack.send_request(invite, target.source, target.transport, now)
        branch.tx.user_data = lambda response, t: on_response(branch, response, t)
        if target.app_endpoint is not None:
            def silent(t: float) -> None:
                if branch.answer_timer is not None and branch.final is None and not branch.provisional:
                    branch.answer_timer = None
                    on_silent(branch, t)

            branch.answer_timer = self._timers.schedule(now + self._app_answer_timeout, silent)
        return branch

    def _retry_app_branch(self, call: Call, branch: Branch, code: int, now: float) -> bool:
        """An application server failed a call (silent, or 5xx): try another of its role. Whether
        another branch was started."""
        endpoint = branch.app_endpoint
        if endpoint is None or call.phase is not Phase.ROUTING or branch.cancelled:
            return False
        return self._replace_app_branch(branch, code, now, call.branches,
                                        lambda target, t: self._start_branch(call, target, t))

    def _replace_app_branch(self, branch: Branch, code: int, now: float, branches: list[Branch],
                            start: Callable[[Target, float], None]) -> bool:
        endpoint = branch.app_endpoint
        assert endpoint is not None and self._app_servers is not None
        if branch.final is None:
            branch.final = code
            if branch.tx is not None:
                self._stack.layer.abandon(branch.tx)
        self._app_servers.suspect(endpoint, now,
                                  f"answered {code}" if code != 408 else "did not answer a call")
        tried = [b.app_endpoint for b in branches if b.app_endpoint is not None]
        to = branch.invite.to.uri
        other = self._pick_app_endpoint(endpoint.role, to.user_unescaped or "",  # type: ignore[union-attr]
                                        to.host, exclude=tried)  # type: ignore[union-attr]
        if other is None:
            return False
        log.info("call to %s: %s failed (%d), trying %s", branch.invite.uri, endpoint, code, other)
        start(self._app_target(other, branch.invite.uri.user_unescaped or ""), now)  # type: ignore[union-attr]
        return True

    # -- answers from the callee ------------------------------------------------------

    def branch_responded(self, branch: Branch, code: int, now: float) -> bool:
        """What every branch's response does first (a call's or a transfer's): the application
        server's answer timer stops, and a provisional marks the branch ringing, sending the
        CANCEL it waited for. True when that is all there is to do (a 100, or a branch being
        cancelled)."""
        self._cancel_timer(branch.answer_timer)
        branch.answer_timer = None
        if code >= 200:
            return False
        if code == 100:
            return True
        branch.provisional = True
        if branch.cancelled:
            self._send_cancel(branch, now)
            return True
        return False

    def _on_branch_response(self, call: Call, branch: Branch, response: SipResponse, now: float) -> None:
        code = response.status_code
        if self.branch_responded(branch, code, now):
            return
        if code < 200:
            if call.phase is Phase.ROUTING:
                self._relay_provisional(call, response, now)
            return
        if code < 300:
            self._on_branch_answer(call, branch, response, now)
            return
        if server_failed(code) and self._retry_app_branch(call, branch, code, now):
            return
        branch.final = code
        if call.phase is Phase.ROUTING and code >= 600:
            # A global failure: the callee declines everywhere, so stop the other devices (16.7).
            for other in call.branches:
                self._cancel_branch(other, now)
            self._stack.respond(call.invite_tx, code, response.reason, now=now, to_tag=call.a_tag)
            self._end(call, now, disposition_for(code), code, None)
            return
        if call.phase is Phase.ROUTING and all(b.final is not None for b in call.branches):
            status = best_final_status([b.final for b in call.branches if b.final is not None])
            self._stack.respond(call.invite_tx, status, now=now, to_tag=call.a_tag)
            self._end(call, now, disposition_for(status), status, None)

    def _relay_provisional(self, call: Call, response: SipResponse, now: float) -> None:
        media = call.media
        if media is None:
            self._send_provisional(call, response, response.body, response.headers.get("Content-Type"), now)
            return

        def relay(body: bytes | None, t: float) -> None:
            if call.phase is not Phase.ROUTING or _has_final(call.invite_tx):
                return
            if body is not None and media.early_sdp_for_a is None:
                media.early_sdp_for_a = body
            self._send_provisional(call, response, media.early_sdp_for_a or b"", SDP, t)

        if response.body and response.content_type == SDP:
            # Early media: the caller hears the callee through the media server.
            if media.ringback:
                media.ringback = False
                self._media_request(call, "stop_playback", now, leg="a")
            self._media_step(call, "answer", "b", response.body, now, relay)
        elif response.status_code == 180 and media.early_sdp_for_a is None:
            # Ringing without early media: the media server plays ringback to the caller.
            media.ringback = True
            self._media_request(call, "play_tone", now, lambda body, t: relay(self._sdp_of_reply(
                call, "a", body), t), leg="a", tone="ringback")
        else:
            relay(None, now)

    def _send_provisional(self, call: Call, response: SipResponse, body: bytes, content_type: str | None,
                          now: float) -> None:
        headers: list[tuple[str, str]] = [("Contact", str(self._stack.contact(call.a.transport)))]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        self._stack.respond(call.invite_tx, response.status_code, response.reason, now=now, to_tag=call.a_tag,
                            headers=headers, body=body if content_type else b"")

    def _on_branch_answer(self, call: Call, branch: Branch, response: SipResponse, now: float) -> None:
        leg = branch.leg
        if leg.dialog is not None:
            # A retransmitted 2xx: our ACK was lost (or is not sent yet: the caller has not ACKed).
            ack = leg.acks_sent.get(response.cseq.seq)
            if ack is not None:
                self._stack.send_stateless(ack, leg.peer, leg.transport)
            return
        if not response.contacts:
            # A broken answer (RFC 3261 12.1.2 wants a Contact): ACK it and hang it up where
            # the INVITE went, so the phone stops ringing and retransmitting, and count the
            # branch as failed.
            log.info("2xx without Contact from %s:%s on call %s", *leg.peer, call.call_id)
            patched = SipResponse(response.status_code, response.reason, response.headers.copy(),
                                  response.body)
            patched.headers.add("Contact", f"<{branch.invite.uri}>")
            leg.dialog = Dialog.from_uac(branch.invite, patched)
            self._send_ack(leg, branch.invite.cseq.seq, b"", None, now)
            self._send_bye(leg, now)
            self._on_branch_response(call, branch, make_response(branch.invite, 502), now)
            return
        leg.dialog = Dialog.from_uac(branch.invite, response)
        if call.phase is not Phase.ROUTING:
            # Answered too late (cancelled, or another device won): take it and hang it up.
            self._send_ack(leg, branch.invite.cseq.seq, b"", None, now)
            self._send_bye(leg, now)
            return
        branch.final = response.status_code
        call.b = leg
        call.phase = Phase.ANSWERED
        call.answered_at = now
        self._hold_app_endpoint(call, branch.app_endpoint)
        if branch.app_endpoint is not None:  # trusted: one of our servers, not a phone
            call.app_recording = response.headers.get(PBX_RECORDING)
        self._cancel_timer(call.ring_timer)
        self._changed.add(call)
        self._register_dialog(call, leg)
        for other in call.branches:
            if other is not branch:
                self._cancel_branch(other, now)
        call.a.dialog = Dialog.from_uas(call.invite, local_tag=call.a_tag,
                                        local_contact=self._stack.contact(call.a.transport))
        call.a.dialog.confirm()
        self._register_dialog(call, call.a)
        invite_cseq = branch.invite.cseq.seq
        if call.invite.body:
            self._send_ack(leg, invite_cseq, b"", None, now)

            def on_ack(ack: SipRequest, t: float) -> None:
                media = call.media
                if media is not None and media.b_stale and media.offer_for_b is not None:
                    # The callee was offered a media endpoint that died while it rang.
                    media.b_stale = False
                    self._reinvite(call, leg, media.offer_for_b, t)
        else:
            # Late offer: the callee's 2xx holds the offer, the caller's ACK the answer for it.
            def on_ack(ack: SipRequest, t: float) -> None:
                self._translate(call, "answer", call.a, ack.body, t, lambda body, t2: self._send_ack(
                    leg, invite_cseq, body or b"", ack.headers.get("Content-Type") if body else None, t2))

        def answer_caller(body: bytes | None, t: float) -> None:
            if call.phase is not Phase.ANSWERED:
                return
            if body is None:
                self._refuse_answered(call, t)
                return
            self._answer(call, call.a, call.invite_tx, response.status_code, response.reason, body,
                         response.headers.get("Content-Type") if call.media is None else SDP, on_ack, t)

        media = call.media
        if media is not None and media.ringback:
            media.ringback = False
            self._media_request(call, "stop_playback", now, leg="a")
        if self._media is not None and media is None and response.body:
            self._anchor(call, "b", response.body, now, answer_caller)
        elif media is not None and not response.body and media.early_sdp_for_a is not None:
            answer_caller(media.early_sdp_for_a, now)  # the answer the caller already has
        else:
            self._translate(call, "answer" if call.invite.body else "offer", leg, response.body, now,
                            answer_caller)

    def _answer(self, call: Call, leg: Leg, tx: ServerTransaction, status_code: int, reason: str,
                body: bytes, content_type: str | None, on_ack: Callable[[SipRequest, float], None],
                now: float) -> None:
        """Send a 2xx on `leg` for the INVITE in `tx`, retransmitted until ACKed (UDP)."""
        headers: list[tuple[str, str]] = [("Contact", str(self._stack.contact(leg.transport)))]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        response = self._stack.respond(tx, status_code, reason, now=now, to_tag=call.a_tag
                                       if leg is call.a else None, headers=headers,
                                       body=body if content_type else b"")
        unacked = Unacked(response=response, cseq=tx.request.cseq.seq, timer=None, on_ack=on_ack)
        leg.unacked = unacked
        # Retransmitted only over UDP; given up after 64*T1 without an ACK on any transport.
        interval = T1 if leg.transport == "UDP" else 64 * T1
        self._schedule_2xx_retransmit(call, leg, unacked, now, interval, now + 64 * T1)

    def _schedule_2xx_retransmit(self, call: Call, leg: Leg, unacked: Unacked, now: float,
                                 interval: float, give_up_at: float) -> None:
        def fire(t: float) -> None:
            if leg.unacked is not unacked:
                return
            if t >= give_up_at:
                log.info("no ACK for our 2xx on call %s: hanging up", call.call_id)
                leg.unacked = None
                self._hang_up(call, t, hangup_by=HangupBy.SYSTEM, reason=EndReason.NO_ACK)
                return
            self._stack.send_stateless(unacked.response, leg.peer, leg.transport)
            self._schedule_2xx_retransmit(call, leg, unacked, t, min(interval * 2, T2), give_up_at)

        unacked.timer = self._timers.schedule(min(now + interval, give_up_at), fire)

    # -- requests within a call --------------------------------------------------------

    def find_dialog(self, request: SipRequest, now: float) -> tuple[Call, Leg] | None:
        """The call and leg a request inside a dialog belongs to: one of ours, or one the state
        store knows (another worker's or Call Manager's), which we then take over. Raises
        StateStoreUnavailable when it is not ours and the store is away."""
        key = (request.call_id, request.to.tag or "", request.from_.tag or "")
        found = self._dialogs.get(key)
        if found is None and request.to.tag and self.adopt(request.call_id, request.to.tag, now):
            found = self._dialogs.get(key)
        return found

    def handle_ack(self, ack: SipRequest, now: float) -> None:
        try:
            found = self.find_dialog(ack, now)
        except StateStoreUnavailable:
            return  # the 2xx it acknowledges is sent again, and so is the ACK
        if found is None:
            return
        _, leg = found
        unacked = leg.unacked
        if unacked is None or unacked.cseq != ack.cseq.seq:
            return
        leg.unacked = None
        self._cancel_timer(unacked.timer)
        unacked.on_ack(ack, now)

    def handle_in_dialog(self, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        found = self.find_dialog(request, now)
        if found is None:
            self._stack.respond(tx, 481, now=now)
            return
        call, leg = found
        assert leg.dialog is not None
        try:
            leg.dialog.receive_request(request)
            self._changed.add(call)
        except RemoteProtocolError as exc:
            self._stack.respond(tx, exc.status_code, now=now)
            return
        if call.transfer is not None and self.transfers.transfer_request(call, leg, request, tx, now):
            return
        if request.method == "BYE":
            self._stack.respond(tx, 200, now=now)
            self._hang_up(call, now, hangup_by=leg.side, skip=leg)
            return
        if request.method == "REFER":
            self.transfers.handle_refer(call, leg, request, tx, now)
            return
        self._relay_in_dialog(call, leg, request, tx, now)

    def handle_cancel(self, cancel: SipRequest, tx: ServerTransaction, invite_tx: ServerTransaction | None,
                      now: float) -> None:
        if invite_tx is None:
            self._stack.respond(tx, 481, now=now)
            return
        # It matches an INVITE: 200, even when that INVITE was already answered (RFC 3261 9.2).
        self._stack.respond(tx, 200, now=now)
        call = invite_tx.user_data
        if isinstance(call, Call) and call.phase is Phase.ROUTING:
            self._stack.respond(call.invite_tx, 487, now=now, to_tag=call.a_tag)
            for branch in call.branches:
                self._cancel_branch(branch, now)
            self._end(call, now, Disposition.CANCELLED, 487, HangupBy.CALLER)

    def _relay_in_dialog(self, call: Call, leg: Leg, request: SipRequest, tx: ServerTransaction,
                         now: float) -> None:
        far = call.other(leg)
        if call.phase is not Phase.ANSWERED or far is None or far.dialog is None:
            self._stack.respond(tx, 491 if request.method == "INVITE" else 481, now=now)
            return
        is_invite = request.method == "INVITE"
        if is_invite and (call.reinvite_pending or leg.unacked is not None or far.unacked is not None
                          or leg.moving or far.moving or call.transfer is not None):
            self._stack.respond(tx, 491, now=now)
            return
        headers = [(name, value) for name in RELAYED_HEADERS
                   if (value := request.headers.get(name)) is not None and name != "Content-Type"]
        carries_sdp = request.method in ("INVITE", "UPDATE") and request.content_type == SDP
        if is_invite:
            call.reinvite_pending = True

        def send(body: bytes | None, t: float) -> None:
            if call.phase is not Phase.ANSWERED or far.dialog is None:
                call.reinvite_pending = False
                self._stack.respond(tx, 481, now=t)  # the call ended while the media server worked
                return
            if body is None:
                call.reinvite_pending = False
                self._stack.respond(tx, 500, "Media Unavailable", now=t)
                return
            anchored = carries_sdp and call.media is not None
            content_type = SDP if anchored else request.headers.get("Content-Type")
            with_contact = is_invite or request.method == "UPDATE"
            self._changed.add(call)
            out = far.dialog.create_request(
                request.method, via_host=self._stack.host, via_port=self._stack.port, transport=far.transport,
                contact=self._stack.contact(far.transport) if with_contact else None,
                body=body, content_type=content_type if body else None, extra_headers=headers)
            out_tx = self._stack.send_request(out, far.peer, far.transport, t)
            out_tx.user_data = lambda response, t2: self._on_relayed_response(
                call, leg, far, tx, request, out, response, t2)

        if carries_sdp:
            self._translate(call, "offer", leg, request.body, now, send)
        else:
            send(request.body, now)

    def _on_relayed_response(self, call: Call, leg: Leg, far: Leg, tx: ServerTransaction, request: SipRequest,
                             out: SipRequest, response: SipResponse, now: float) -> None:
        code = response.status_code
        if code == 100:
            return
        is_invite = request.method == "INVITE"
        if is_invite and code >= 200:
            call.reinvite_pending = False
        if is_invite and 200 <= code < 300:
            self._relayed_reinvite_answered(call, leg, far, tx, request, out, response, now)
            return
        if _has_final(tx):
            return

        content_type = response.headers.get("Content-Type")

        def respond(body: bytes | None, t: float) -> None:
            if _has_final(tx):
                return
            headers_back = [("Content-Type", content_type)] if content_type and body else []
            self._stack.respond(tx, code, response.reason, now=t, headers=headers_back, body=body or b"")

        if 200 <= code < 300 and request.method == "UPDATE" and response.content_type == SDP \
                and request.content_type == SDP:
            self._translate(call, "answer", far, response.body, now, respond)
        elif call.media is not None and response.content_type == SDP:
            respond(b"", now)  # an SDP we have not anchored (early media of a re-INVITE) stays out
        else:
            respond(response.body if content_type else b"", now)

    def _relayed_reinvite_answered(self, call: Call, leg: Leg, far: Leg, tx: ServerTransaction,
                                   request: SipRequest, out: SipRequest, response: SipResponse,
                                   now: float) -> None:
        if far.dialog is not None:
            far.dialog.receive_response(response)
            self._changed.add(call)
        seq = out.cseq.seq
        if seq in far.acks_sent:
            self._stack.send_stateless(far.acks_sent[seq], far.peer, far.transport)
            return
        if seq in far.relayed_2xx:
            return  # a retransmission of a 2xx we are relaying already
        far.relayed_2xx.add(seq)
        if request.body:
            self._send_ack(far, seq, b"", None, now)
            on_ack: Callable[[SipRequest, float], None] = _ignore_ack
            kind = "answer"
        else:
            # Late offer in the re-INVITE: the far 2xx offers, the ACK answers.
            def on_ack(ack: SipRequest, t: float) -> None:
                content_type = SDP if call.media is not None else ack.headers.get("Content-Type")
                self._translate(call, "answer", leg, ack.body, t, lambda body, t2: self._send_ack(
                    far, seq, body or b"", content_type if body else None, t2))
            kind = "offer"

        def answer(body: bytes | None, t: float) -> None:
            if call.phase is not Phase.ANSWERED or _has_final(tx):
                return
            content_type = SDP if call.media is not None else response.headers.get("Content-Type")
            if body is None:
                self._stack.respond(tx, 500, "Media Unavailable", now=t)
                return
            self._answer(call, leg, tx, response.status_code, response.reason, body, content_type, on_ack, t)

        self._translate(call, kind, far, response.body, now, answer)

    # -- ending ----------------------------------------------------------------------

    def _no_answer(self, call: Call, now: float) -> None:
        if call.phase is not Phase.ROUTING:
            return
        for branch in call.branches:
            self._cancel_branch(branch, now)
        self._stack.respond(call.invite_tx, 480, "No Answer", now=now, to_tag=call.a_tag)
        self._end(call, now, Disposition.NO_ANSWER, 480, None)

    def _hang_up(self, call: Call, now: float, *, hangup_by: HangupBy, skip: Leg | None = None,
                 reason: EndReason | None = None) -> None:
        """End an answered call: BYE every leg that did not already hang up; `reason` is why we
        end it ourselves (in the BYE's Reason header and the CDR)."""
        if call.phase is Phase.ENDED:
            return
        for leg in (call.a, call.b):
            if leg is not None and leg is not skip and leg.dialog is not None:
                self._send_bye(leg, now, reason)
        self._end(call, now, Disposition.ANSWERED, 200, hangup_by, reason)

    def _end(self, call: Call, now: float, disposition: Disposition, sip_code: int,
             hangup_by: HangupBy | None, reason: EndReason | None = None) -> None:
        if call.phase is Phase.ENDED:
            return
        if call.answered_at is not None:
            disposition, sip_code = Disposition.ANSWERED, 200
        call.phase = Phase.ENDED
        self._cancel_timer(call.ring_timer)
        self._hold_app_endpoint(call, None)
        if call.transfer is not None:
            self.transfers.abort(call, now)
        if call.media is not None:
            self._release_media(call, now)
        for leg in (call.a, call.b):
            if leg is None:
                continue
            if leg.unacked is not None:
                self._cancel_timer(leg.unacked.timer)
                leg.unacked = None
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.id, None)
        self.calls.discard(call)
        self._changed.discard(call)
        if call.saved_at is not None:
            self._forget_record(call)
        self._on_call_ended(CallEnded(
            call_id=call.call_id, tenant_id=call.tenant_id, caller=call.caller, callee=call.callee,
            caller_ip=call.a.peer[0], start_time=self._wall(call.started_at),
            answer_time=self._wall(call.answered_at) if call.answered_at is not None else None,
            end_time=self._wall(now), disposition=disposition, sip_code=sip_code,
            hangup_by=hangup_by if call.answered_at is not None else None,
            recording=(call.media.recording if call.media is not None else None) or call.app_recording,
            end_reason=reason))

    def _wall(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self._wall_offset, UTC)


    # -- media -------------------------------------------------------------------------

    def _anchor(self, call: Call, leg: str, sdp: bytes, now: float,
                then: Callable[[bytes | None, float], None]) -> None:
        """Anchor the call on the least loaded media endpoint with `leg`'s offer; `then` gets the
        body for the other phone, or None when no media server could take the call."""
        assert self._media is not None
        endpoint = self._media.pick()
        if endpoint is None:
            log.warning("no media server available for call %s", call.call_id)
            then(None, now)
            return
        call.media = MediaAnchor(endpoint=endpoint, media_call_id=call.call_id)
        endpoint.calls.add(call)
        self._media_calls[call.media.media_call_id] = call
        self._media_step(call, "offer", leg, sdp, now, then)

    def _media_step(self, call: Call, kind: str, leg: str, sdp: bytes, now: float,
                    then: Callable[[bytes | None, float], None]) -> None:
        """Give the media server `leg`'s SDP (`offer` or `answer`); `then` gets the other phone's body."""
        media = call.media
        assert media is not None
        media.sdp_from[leg] = sdp
        self._changed.add(call)
        other = "b" if leg == "a" else "a"
        fields: dict[str, object] = {"leg": leg, "sdp": sdp.decode("utf-8", "replace")}
        if kind == "offer" and self._record_calls:
            fields["record"] = True

        def on_reply(body: dict[str, Any] | None, t: float) -> None:
            if body is not None and isinstance(body.get("recording"), str):
                media.recording = body["recording"]
            then(self._sdp_of_reply(call, other, body), t)

        self._media_request(call, kind, now, on_reply, **fields)

    def _sdp_of_reply(self, call: Call, leg: str, body: dict[str, Any] | None) -> bytes | None:
        """The reply's `sdp`, with our o= line for `leg`'s phone; None if the request failed."""
        media = call.media
        usable = body is not None and body.get("result") == "ok" and isinstance(body.get("sdp"), str)
        if body is None or not usable or media is None:
            if body is not None:
                log.warning("media server %s refused call %s: %s", media.endpoint if media else "?",
                            call.call_id, body.get("error_reason"))
            return None
        try:
            self._changed.add(call)
            return media.origins[leg].stamp(body["sdp"].encode())
        except RemoteProtocolError as exc:
            log.warning("media server sent a broken SDP for call %s: %s", call.call_id, exc.reason)
            return None

    def _media_request(self, call: Call, command: str, now: float,
                       on_reply: Callable[[dict[str, Any] | None, float], None] | None = None,
                       **fields: Any) -> None:
        media = call.media
        assert self._media is not None and media is not None
        self._media.request(media.endpoint, command, now, on_reply or _ignore_reply,
                            call_id=media.media_call_id, **fields)

    def _translate(self, call: Call, kind: str, leg: Leg, body: bytes, now: float,
                   then: Callable[[bytes | None, float], None]) -> None:
        """An SDP from `leg` through the call's media server; unchanged when there is none."""
        if call.media is None or not body:
            then(body, now)
            return
        self._media_step(call, kind, call.leg_name(leg), body, now, then)

    def _release_media(self, call: Call, now: float) -> None:
        media = call.media
        assert media is not None
        media.endpoint.calls.discard(call)
        self._media_calls.pop(media.media_call_id, None)
        if media.endpoint.up:
            self._media_request(call, "delete", now)

    def rehome(self, endpoint: MediaEndpoint, now: float) -> None:
        """Move every call anchored on `endpoint` (down, or restarted and so without its calls) to
        an available endpoint: another, or the restarted one itself once it answers. A call no
        endpoint can take waits for one (another added or enabled, this one back) for at most
        the pool's `rehome_timeout`, then is ended: never left without audio for ever."""
        assert self._media is not None
        give_up_at = now + self._media.rehome_timeout
        for call in list(endpoint.calls):
            endpoint.calls.discard(call)
            media = call.media
            if media is None or media.endpoint is not endpoint or call.phase is Phase.ENDED:
                continue
            self._rehome_call(call, media, now, give_up_at)

    def _rehome_call(self, call: Call, media: MediaAnchor, now: float, give_up_at: float) -> None:
        assert self._media is not None
        if call.phase is Phase.ENDED or call.media is not media:
            return
        lost = media.endpoint
        target = self._media.pick()
        if target is None and now < give_up_at:
            if not media.stranded:
                log.error("call %s lost its media server %s and none can take it now: waiting up to %g s",
                          call.call_id, lost, give_up_at - now)
            media.stranded = True
            self._timers.schedule(min(now + self._media.ping_interval, give_up_at),
                                  lambda t: self._rehome_call(call, media, t, give_up_at))
            return
        media.stranded = False
        if target is None:
            log.error("call %s: no media server could take it after %s was lost: ending it",
                      call.call_id, lost)
            media.endpoint = _GONE
            self._media_calls.pop(media.media_call_id, None)
            if call.phase is Phase.ANSWERED:
                self._hang_up(call, now, hangup_by=HangupBy.SYSTEM, reason=EndReason.MEDIA_LOST)
            else:
                self._refuse(call, 503, "Media Unavailable", now, end_reason=EndReason.MEDIA_LOST)
            return
        log.info("re-homing call %s from %s to %s", call.call_id, lost, target)
        media.endpoint = target
        self._changed.add(call)
        target.calls.add(call)
        self._reanchor(call, media, now)

    def _reanchor(self, call: Call, media: MediaAnchor, now: float) -> None:
        sdp_a, sdp_b = media.sdp_from.get("a"), media.sdp_from.get("b")
        if sdp_a is None:
            return  # late offer still ringing: the callee's answer anchors it on the new endpoint

        def offered(body_for_b: bytes | None, t: float) -> None:
            if body_for_b is None or call.phase is Phase.ENDED:
                return
            media.offer_for_b = body_for_b
            if sdp_b is None or call.b is None:
                media.b_stale = call.phase is Phase.ROUTING
                return

            def answered(body_for_a: bytes | None, t2: float) -> None:
                if body_for_a is None or call.b is None:
                    return
                self._reinvite(call, call.a, body_for_a, t2)
                self._reinvite(call, call.b, body_for_b, t2)

            self._media_step(call, "answer", "b", sdp_b, t, answered)

        self._media_step(call, "offer", "a", sdp_a, now, offered)

    def _reinvite(self, call: Call, leg: Leg, body: bytes, now: float) -> None:
        """Our own re-INVITE offering `body` to `leg`'s phone (the media moved)."""
        if call.phase is not Phase.ANSWERED or leg.dialog is None:
            return
        if call.reinvite_pending or leg.moving or leg.unacked is not None:
            self._timers.schedule(now + REINVITE_RETRY, lambda t: self._reinvite(call, leg, body, t))
            return
        leg.moving = True
        self._changed.add(call)
        invite = leg.dialog.create_request(
            "INVITE", via_host=self._stack.host, via_port=self._stack.port, transport=leg.transport,
            contact=self._stack.contact(leg.transport), body=body, content_type=SDP)
        tx = self._stack.send_request(invite, leg.peer, leg.transport, now)

        def on_response(response: SipResponse, t: float) -> None:
            code = response.status_code
            if code < 200:
                return
            seq = invite.cseq.seq
            if 200 <= code < 300:
                if seq in leg.acks_sent:
                    self._stack.send_stateless(leg.acks_sent[seq], leg.peer, leg.transport)
                    return
                leg.moving = False
                if leg.dialog is not None:
                    leg.dialog.receive_response(response)
                    self._changed.add(call)
                    self._send_ack(leg, seq, b"", None, t)
                if response.content_type == SDP and response.body and call.media is not None:
                    self._media_step(call, "answer", call.leg_name(leg), response.body, t, _ignore_body)
                return
            leg.moving = False
            if code == 491:
                self._timers.schedule(t + REINVITE_RETRY, lambda t2: self._reinvite(call, leg, body, t2))
            elif code in (408, 481):
                self._hang_up(call, t, hangup_by=HangupBy.SYSTEM, reason=EndReason.PHONE_GONE)
            else:
                log.warning("phone refused the re-INVITE moving call %s's media: %d", call.call_id,
                            code)

        tx.user_data = on_response

    def media_timed_out(self, media_call_id: str, now: float) -> None:
        """The media server freed the call: no RTP for too long. Hang it up."""
        call = self._media_calls.pop(media_call_id, None)
        if call is None or call.media is None:
            return
        log.info("call %s had no RTP for too long: hanging up", call.call_id)
        call.media.endpoint.calls.discard(call)
        call.media.endpoint = _GONE
        if call.phase is Phase.ANSWERED:
            self._hang_up(call, now, hangup_by=HangupBy.SYSTEM, reason=EndReason.RTP_TIMEOUT)

    def _refuse(self, call: Call, code: int, reason: str, now: float, *,
                end_reason: EndReason | None = None) -> None:
        """Refuse a call still routing: `code` to the caller, its branches cancelled."""
        for branch in call.branches:
            self._cancel_branch(branch, now)
        self._stack.respond(call.invite_tx, code, reason, now=now, to_tag=call.a_tag)
        self._end(call, now, Disposition.FAILED, code, None, end_reason)

    def _refuse_answered(self, call: Call, now: float) -> None:
        """The callee answered but the media server could not take the answer: 503 to the caller,
        BYE to the callee, rather than a call without audio."""
        call.answered_at = None
        if call.b is not None and call.b.dialog is not None:
            self._send_bye(call.b, now)
        self._stack.respond(call.invite_tx, 503, "Media Unavailable", now=now, to_tag=call.a_tag)
        self._end(call, now, Disposition.FAILED, 503, None)

    # -- sending -----------------------------------------------------------------------

    def _send_ack(self, leg: Leg, invite_cseq: int, body: bytes, content_type: str | None,
                  now: float) -> None:
        assert leg.dialog is not None
        ack = leg.dialog.create_ack(invite_cseq, via_host=self._stack.host, via_port=self._stack.port,
                                    transport=leg.transport, body=body, content_type=content_type)
        leg.acks_sent[invite_cseq] = ack
        self._stack.send_stateless(ack, leg.peer, leg.transport)

    def _send_bye(self, leg: Leg, now: float, reason: EndReason | None = None) -> None:
        assert leg.dialog is not None
        # RFC 3326: the phone (and its user's call log) can show why the PBX ended the call.
        headers = [("Reason", f'SIP;cause=500;text="{reason.value}"')] if reason is not None else []
        bye = leg.dialog.create_request("BYE", via_host=self._stack.host, via_port=self._stack.port,
                                        transport=leg.transport, extra_headers=headers)
        tx = self._stack.send_request(bye, leg.peer, leg.transport, now)
        tx.user_data = _ignore_response

    def _cancel_branch(self, branch: Branch, now: float) -> None:
        if branch.final is not None or branch.cancelled:
            return
        branch.cancelled = True
        if branch.provisional:
            self._send_cancel(branch, now)
        # Without a provisional answer yet, the CANCEL goes when the first one arrives (RFC 3261 9.1).

    def _send_cancel(self, branch: Branch, now: float) -> None:
        if branch.cancel_sent:
            return
        branch.cancel_sent = True
        tx = self._stack.send_request(make_cancel(branch.invite), branch.leg.peer, branch.leg.transport, now)
        tx.user_data = _ignore_response

    def _hold_app_endpoint(self, call: Call, endpoint: AppEndpoint | None) -> None:
        """The application server holding the call is now `endpoint` (or none): its session count."""
        if call.app_endpoint is not None:
            call.app_endpoint.calls.discard(call)
        call.app_endpoint = endpoint
        if endpoint is not None:
            endpoint.calls.add(call)

    def _register_dialog(self, call: Call, leg: Leg) -> None:
        assert leg.dialog is not None
        self._dialogs[leg.dialog.id] = (call, leg)

    @staticmethod
    def _cancel_timer(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancel()

    def handle_stray_2xx(self, response: SipResponse, now: float) -> None:
        """A 2xx retransmission after its INVITE transaction ended: ACK it again (RFC 6026)."""
        key = (response.call_id, response.from_.tag or "", response.to.tag or "")
        found = self._dialogs.get(key)
        try:
            if found is None and response.from_.tag and self.adopt(response.call_id, response.from_.tag, now):
                found = self._dialogs.get(key)
        except StateStoreUnavailable:
            return  # the callee sends it again
        if found is None:
            return
        _, leg = found
        ack = leg.acks_sent.get(response.cseq.seq)
        if ack is not None:
            self._stack.send_stateless(ack, leg.peer, leg.transport)


    # -- the calls in the state store ---------------------------------------------------

    def save_changed(self, now: float) -> None:
        """Write the records of the answered calls that changed; the service calls it after each
        event. While the store is away, they stay to write (and the call goes on)."""
        if not self._changed:
            return
        changed, self._changed = self._changed, set()
        for call in changed:
            if call.phase is Phase.ANSWERED:
                self._save_record(call, now)

    def refresh_records(self, now: float) -> None:
        """Write again the records that are due, so that a long call's record does not lapse."""
        for call in list(self.calls):
            if call.phase is Phase.ANSWERED and (call.saved_at is None
                                                  or now - call.saved_at >= CALL_RECORD_REFRESH):
                self._save_record(call, now)

    def restore_calls(self, now: float) -> int:
        """Take back the calls the store says are ours (this worker restarted); how many."""
        restored = 0
        held = {call.record_key for call in self.calls}
        for record in self._store.owned_by(self._owner):
            if record.key not in held and self._rebuild(record, now) is not None:
                restored += 1
        if restored:
            log.info("took back %d calls from the state store", restored)
        return restored

    def adopt(self, call_id: str, local_tag: str, now: float) -> bool:
        """Take over the call one of whose legs is the dialog (Call-ID, our tag) from the store,
        if it has it; whether it did. Raises StateStoreUnavailable when the store is away."""
        record = self._store.find(call_id, local_tag)
        if record is None or any(c.record_key == record.key for c in self.calls):
            return False
        call = self._rebuild(record, now)
        if call is None:
            return False
        log.info("took over call %s from %s", call.call_id, record.owner)
        self._save_record(call, now, claim=True)
        if record.owner != self._owner:
            self._taken_over.append((record.owner, record.key))
        return True

    def take_over_from(self, owner: str, now: float) -> int:
        """Take over every call the store says `owner` holds (a Call Manager that is gone); how many.

        Raises StateStoreUnavailable when the store is away."""
        taken = 0
        held = {call.record_key for call in self.calls}
        for record in self._store.owned_by(owner):
            if record.key in held:
                continue
            call = self._rebuild(record, now)
            if call is None:
                continue
            self._save_record(call, now, claim=True)
            taken += 1
        if taken:
            log.info("took over %d calls of %s, which is gone", taken, owner)
        return taken

    def let_go_all(self) -> int:
        """Forget every call held here without BYE, CDR or record change (this Call Manager no
        longer holds the SIP address: the one that does takes them over); how many."""
        answered = [call for call in self.calls if call.phase is Phase.ANSWERED]
        for call in answered:
            self._forget(call)
        return len(answered)

    def take_takeovers(self) -> list[tuple[str, str]]:
        """(previous owner, call key) of each call taken over: that owner, if alive, must forget it."""
        taken, self._taken_over = self._taken_over, []
        return taken

    def release(self, key: str) -> bool:
        """Forget the call `key`, which another worker took over: no BYE, no CDR, no record
        change (it goes on there). Whether we held it."""
        call = next((c for c in self.calls if c.record_key == key), None)
        if call is None:
            return False
        self._forget(call)
        return True

    def _forget(self, call: Call) -> None:
        """Drop every trace of `call` here (timers, dialogs, media bookkeeping), nothing sent."""
        self._cancel_timer(call.ring_timer)
        self._hold_app_endpoint(call, None)
        if call.transfer is not None:
            self.transfers.drop(call)
        for leg in (call.a, call.b):
            if leg is None:
                continue
            if leg.unacked is not None:
                self._cancel_timer(leg.unacked.timer)
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.id, None)
        if call.media is not None:
            call.media.endpoint.calls.discard(call)
            self._media_calls.pop(call.media.media_call_id, None)
        self.calls.discard(call)
        self._changed.discard(call)
        log.info("call %s is held elsewhere now: forgotten here", call.call_id)

    def _save_record(self, call: Call, now: float, *, claim: bool = False) -> None:
        """Write the call's record: over any other (`claim`, a new call or one taken over), else
        only over one that still names us; a call whose record names another holder is let go."""
        a, b = call.a, call.b
        if a.dialog is None or b is None or b.dialog is None:
            return
        dialogs = ((a.dialog.call_id, a.dialog.local_tag), (b.dialog.call_id, b.dialog.local_tag))
        record = CallRecord(key=call.record_key, owner=self._owner, dialogs=dialogs,
                            data=self._describe(call))
        expected = self._owner if call.recorded and not claim else None
        try:
            written = self._store.save(record, ttl=CALL_RECORD_TTL, if_owner=expected)
        except StateStoreUnavailable:
            self._changed.add(call)
            call.saved_at = None
            return
        if not written:
            log.warning("call %s: its record names another holder or is gone", call.call_id)
            self._forget(call)
            return
        call.recorded = True
        call.saved_at = now

    def _forget_record(self, call: Call) -> None:
        a, b = call.a, call.b
        dialogs = tuple((leg.dialog.call_id, leg.dialog.local_tag) for leg in (a, b)
                        if leg is not None and leg.dialog is not None)
        try:
            self._store.delete(CallRecord(key=call.record_key, owner=self._owner, dialogs=dialogs, data={}))
        except StateStoreUnavailable:
            log.warning("call %s ended while the state store was away: its record lapses by itself",
                        call.call_id)

    def _describe(self, call: Call) -> dict[str, Any]:
        """What `_rebuild` needs to go on with the call in another process (wall-clock times)."""
        media = call.media
        return {
            "call_id": call.call_id, "a_tag": call.a_tag, "b_call_id": call.b_call_id, "b_tag": call.b_tag,
            "caller": call.caller, "callee": call.callee, "tenant_id": call.tenant_id, "realm": call.realm,
            "started_at": call.started_at + self._wall_offset,
            "answered_at": call.answered_at + self._wall_offset if call.answered_at is not None else None,
            "legs": [_describe_leg(leg) for leg in (call.a, call.b) if leg is not None],
            "media": None if media is None else {
                "server": media.endpoint.server, "address": list(media.endpoint.address),
                "media_call_id": media.media_call_id, "recording": media.recording,
                "sdp_from": {leg: sdp.decode("utf-8", "replace") for leg, sdp in media.sdp_from.items()},
                "origins": {leg: _describe_origin(origin) for leg, origin in media.origins.items()}},
        }

    def _rebuild(self, record: CallRecord, now: float) -> Call | None:
        """The answered call a record describes, held here from now on; None if it is not one."""
        data = record.data
        try:
            a, b = (_rebuild_leg(leg) for leg in data["legs"])
            answered_at = data["answered_at"]
            call = Call(a=a, call_id=str(data["call_id"]), a_tx=None, a_invite=None,
                        a_tag=str(data["a_tag"]), b_call_id=str(data["b_call_id"]), b_tag=str(data["b_tag"]),
                        caller=str(data["caller"]), callee=str(data["callee"]), tenant_id=data["tenant_id"],
                        started_at=float(data["started_at"]) - self._wall_offset, b=b, phase=Phase.ANSWERED,
                        answered_at=None if answered_at is None else float(answered_at) - self._wall_offset,
                        realm=str(data.get("realm") or self._realm_for("")))
            media = data["media"]
            if media is not None:
                call.media = self._rebuild_anchor(call, media)
        except (KeyError, TypeError, ValueError, RemoteProtocolError) as exc:
            log.error("state store: skipped call record %s: %s", record.key, exc)
            return None
        self.calls.add(call)
        self._register_dialog(call, a)
        self._register_dialog(call, b)
        call.saved_at = now
        call.recorded = record.owner == self._owner
        self._claim_media(call, now)
        return call

    def _rebuild_anchor(self, call: Call, media: dict[str, Any]) -> MediaAnchor:
        address = (str(media["address"][0]), int(media["address"][1]))
        pool = self._media
        endpoint = pool.endpoint_for(str(media["server"]), address) if pool is not None else _GONE
        anchor = MediaAnchor(
            endpoint=endpoint, media_call_id=str(media["media_call_id"]),
            sdp_from={leg: sdp.encode() for leg, sdp in media["sdp_from"].items()},
            origins={leg: _rebuild_origin(origin) for leg, origin in media["origins"].items()},
            recording=media["recording"])
        endpoint.calls.add(call)
        self._media_calls[anchor.media_call_id] = call
        return anchor

    def _claim_media(self, call: Call, now: float) -> None:
        """Tell the media server of a call taken over that we hold it now (its timeout notice
        comes here); hang the call up if the server freed it while nobody held it."""
        if self._media is None or call.media is None:
            return

        def on_reply(reply: dict[str, Any] | None, t: float) -> None:
            if reply is not None and reply.get("error_reason") == ERROR_UNKNOWN_CALL:
                log.info("call %s taken over had lost its media: hanging up", call.call_id)
                if call.media is not None:
                    call.media.endpoint.calls.discard(call)
                    call.media.endpoint = _GONE
                self._hang_up(call, t, hangup_by=HangupBy.SYSTEM, reason=EndReason.MEDIA_LOST)

        self._media_request(call, "query", now, on_reply)


def _describe_leg(leg: Leg) -> dict[str, Any]:
    assert leg.dialog is not None
    return {"side": leg.side.value, "peer": list(leg.peer), "transport": leg.transport,
            "dialog": leg.dialog.to_json()}


def _rebuild_leg(data: dict[str, Any]) -> Leg:
    return Leg(HangupBy(data["side"]), (str(data["peer"][0]), int(data["peer"][1])), str(data["transport"]),
               dialog=Dialog.from_json(data["dialog"]))


def _describe_origin(origin: SdpOrigin) -> dict[str, Any]:
    last_sent, last_content = origin.last_sent, origin.last_content
    return {"session_id": origin.session_id, "version": origin.version,
            "last_sent": last_sent.decode("utf-8", "replace") if last_sent is not None else None,
            "last_content": last_content.decode("utf-8", "replace") if last_content is not None else None}


def _rebuild_origin(data: dict[str, Any]) -> SdpOrigin:
    last_sent, last_content = data["last_sent"], data["last_content"]
    return SdpOrigin(session_id=str(data["session_id"]), version=int(data["version"]),
                     last_sent=last_sent.encode() if last_sent is not None else None,
                     last_content=last_content.encode() if last_content is not None else None)


def _no_service(realm: str, number: str) -> ServerRole | None:
    return None


def server_failed(code: int) -> bool:
    """A final status that blames the server that sent it (5xx) or its silence (408): another
    application server of the role may do better. A 6xx is the callee's answer everywhere."""
    return 500 <= code < 600 or code == 408


def best_final_status(codes: list[int]) -> int:
    """The one final answer to give the caller when every branch failed (after RFC 3261 16.7)."""
    if any(600 <= c < 700 for c in codes):
        return min(c for c in codes if 600 <= c < 700)
    for preferred in (486, 487, 404, 403):
        if preferred in codes:
            return preferred
    # Unreachable devices (timeouts, server errors) mean the callee is not available now.
    client_errors = [c for c in codes if 400 <= c < 500 and c != 408]
    return min(client_errors) if client_errors else 480


def disposition_for(status: int) -> Disposition:
    if status in (486, 600):
        return Disposition.BUSY
    if status in (480, 408):
        return Disposition.NO_ANSWER
    if status == 487:
        return Disposition.CANCELLED
    return Disposition.FAILED


def timeout_response(transaction: ClientTransaction) -> SipResponse:
    """The 408 a client transaction's timeout stands for (RFC 3261 8.1.3.1)."""
    return make_response(transaction.request, 408)


def _has_final(tx: ServerTransaction) -> bool:
    return tx.last_response is not None and tx.last_response.status_code >= 200


def _ignore_response(response: SipResponse, now: float) -> None:
    return None


def _ignore_ack(ack: SipRequest, now: float) -> None:
    return None


def _ignore_reply(reply: dict[str, Any] | None, now: float) -> None:
    return None


def _ignore_body(body: bytes | None, now: float) -> None:
    return None


_GONE = MediaEndpoint(server="(gone)", address=("0.0.0.0", 0), weight=1, enabled=False, up=False)
"""Where a call's media is when its server already freed it: nothing more is asked of it."""

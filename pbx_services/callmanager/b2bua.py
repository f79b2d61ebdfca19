"""The B2BUA: every call is two dialogs, one with the caller (A leg) and one with the callee (B leg).

The caller's INVITE is authenticated and routed to every registered contact of the dialed
extension at once (parallel forking); the first 2xx wins and the other branches are
cancelled. An INVITE from one of our application servers' endpoints (a queue ringing an
agent: the servers table's IVR, queue and meeting workers, known by source host:port) is not
challenged: it is routed like a call of the From's tenant, as the From's user. Provisional
answers, the answer, CANCEL, BYE from either side and in-dialog requests (re-INVITE for
hold/resume, INFO, UPDATE) are relayed between the legs. We answer as a UAS on the A leg, so
we retransmit our own 2xx until the caller ACKs it (RFC 3261 13.3.1.4), and ACK the callee's
2xx ourselves.

A call's phases (Routing, Connecting, Connected, Joining, Handing over, Ended) and its legs
and branches are in `call.py`, where a dialled number goes in `routing.py`, where the callee's
forwarding and ring groups send it instead in `redirection.py`; a REFER is a blind
transfer (`transfer.py`) or, with Replaces, joins two calls (`joins.py`, attended transfer).
Every answered call is kept in the state store (`call_records.py`), so that another worker or
Call Manager can go on with it. With a media pool, every call's media is anchored on a media
server (`anchoring.py`) and the SIP flow waits for the server's reply wherever an SDP passes;
a call is refused with 503 when no media server can take it.

Sans-IO: driven by `SipStack` events with the time passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from ..cluster.events import CallEnded, Disposition, EndReason, HangupBy
from ..cluster.models import ServerRole
from ..cluster.state.agents import AgentStore
from ..cluster.state.call_counts import CallCountStore, InMemoryCallCounts
from ..cluster.state.dialogs import DialogStore, InMemoryDialogs
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
from .anchoring import MediaAnchoring
from .appservers import AppEndpoint, AppServerPool
from .auth import Authenticator
from .call import (
    CONNECTING,
    ENDED,
    ROUTING,
    Branch,
    BranchInput,
    BranchState,
    Call,
    CallInput,
    Leg,
    Unacked,
)
from .call_records import CallRecords
from .forwarding import ForwardingTable
from .joins import CallJoins
from .mediapool import MediaPool
from .permissions import CallCounter, Caller
from .pickup import COMPLETED_ELSEWHERE, CallPickup, FeatureDirectory
from .redirection import CallRedirection
from .ring_groups import RingGroupTable
from .routing import CallRouter, Target, best_final_status, disposition_for, server_failed
from .transfer import CallTransfers
from .trunk_calls import TrunkBranches
from .trunk_codecs import restrict_offer
from .trunks import TrunkCatalog, TrunkDown, TrunkEntry, never_down, withholds_identity

log = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY, SUBSCRIBE"
SDP = "application/sdp"
REINVITE_RETRY = 1.0
"""Seconds before a re-INVITE of ours that met another one in progress (or a 491) is tried again."""
# Headers of an in-dialog request that mean something to the far end and are carried across.
RELAYED_HEADERS = ("Content-Type", "Content-Disposition", "Event", "Subscription-State", "Info-Package",
                   "Recv-Info")


class B2bua:
    def __init__(self, *, stack: SipStack, location: LocationStore, authenticator: Authenticator,
                 timers: TimerQueue, realm_for: Callable[[str], str | None],
                 extension_exists: Callable[[str, str], bool], on_call_ended: Callable[[CallEnded], None],
                 no_answer_timeout: float = 60.0, wall_offset: float = 0.0, media: MediaPool | None = None,
                 record_calls: bool = False, make_tag: Callable[[], str] = make_tag,
                 dialogs: DialogStore | None = None, owner: str = "local",
                 app_servers: AppServerPool | None = None,
                 service_role: Callable[[str, str], ServerRole | None] | None = None,
                 app_answer_timeout: float = 1.0, tenant_id_for: Callable[[str], int | None] | None = None,
                 agents: AgentStore | None = None, trunks: TrunkCatalog | None = None,
                 forwarding: ForwardingTable | None = None,
                 features: FeatureDirectory | None = None, workers: tuple[int, int] = (0, 1),
                 ring_groups: RingGroupTable | None = None, trunk_down: TrunkDown = never_down,
                 call_counts: CallCountStore | None = None) -> None:
        """`tenant_id_for(domain)` is the tenant of a call an application server makes (it has no
        user to authenticate); `agents` the queue agents' records, moved to wrap-up when a call a
        queue server joined ends; `features` the tenants' feature codes and users' pickup groups,
        `workers` (this worker's index, how many) for pickups; `trunks` the trunks, outbound
        routes and DIDs; `forwarding`
        the users' call forwarding and do-not-disturb; `ring_groups` the ring groups;
        `trunk_down(trunk)` why a trunk is down (its OPTIONS probes), None while it is not;
        `call_counts` the cluster's calls in progress, for the concurrent-call limits."""
        self._stack = stack
        self._app_servers = app_servers
        self._tenant_id_for = tenant_id_for or _no_tenant
        self.trunk_branches = TrunkBranches(self)
        self.call_counter = CallCounter(call_counts or InMemoryCallCounts())
        self.redirection = CallRedirection(self, forwarding=forwarding, ring_groups=ring_groups)
        self.router = CallRouter(location=location, extension_exists=extension_exists,
                                 service_role=service_role, app_servers=app_servers, wall_offset=wall_offset,
                                 trunks=trunks, trunk_calls=self.call_counter.trunk_calls,
                                 trunk_down=trunk_down, call_counts=self._call_counts)
        self._app_answer_timeout = app_answer_timeout
        self.transfers = CallTransfers(self)
        self.joins = CallJoins(self, agents)
        self.pickup = CallPickup(self, directory=features, worker=workers[0], workers=workers[1],
                                 hand_over=stack.hand_over)
        self._make_tag = make_tag
        """Tags and Call-IDs we make name our worker (workers.py), so the call's messages find it."""
        self._auth = authenticator
        self._timers = timers
        self._realm_for = realm_for
        self._on_call_ended = on_call_ended
        self._no_answer_timeout = no_answer_timeout
        self._wall_offset = wall_offset
        self._dialogs: dict[tuple[str, str, str | None], tuple[Call, Leg]] = {}
        self.calls: set[Call] = set()
        self.anchoring = MediaAnchoring(
            pool=media, timers=timers, record_calls=record_calls,
            changed=lambda call: self.records.mark_changed(call), reinvite=self._reinvite,
            hang_up=lambda call, t, reason: self._hang_up(call, t, hangup_by=HangupBy.SYSTEM, reason=reason),
            refuse=lambda call, t, reason: self._refuse(call, 503, "Media Unavailable", t, end_reason=reason))
        self.records = CallRecords(store=dialogs or InMemoryDialogs(), owner=owner, wall_offset=wall_offset,
                                   calls=self.calls, anchoring=self.anchoring,
                                   default_realm=lambda: realm_for("") or "", hold=self._hold,
                                   forget=self._forget)

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
        trunk = None if self.is_app_endpoint(source) else self.router.trunk_at(source)
        if trunk is not None:
            self._invite_from_trunk(request, tx, trunk, source, transport, now)
            return
        realm = self._realm_for(from_uri.host)
        if realm is None:
            self._stack.respond(tx, 403, "Unknown Domain", now=now, to_tag=self._make_tag())
            return
        if self.is_app_endpoint(source):
            # One of our application servers calling (a queue ringing an agent): no user, no digest.
            caller, tenant_id = from_uri.user_unescaped or "", self._tenant_id_for(realm)
            limited = None
        else:
            if self.pickup.hand_over(request, tx, realm, source, transport):
                return  # another worker may hold the call to pick up: it authenticates the INVITE
            result = self._auth.authenticate(request, realm=realm, source_ip=source[0], now=now, proxy=True)
            if result.user is None:
                assert result.status_code is not None
                self._stack.respond(tx, result.status_code, now=now, to_tag=self._make_tag(),
                                    headers=result.headers)
                return
            caller, tenant_id = result.user.extension, result.user.tenant_id
            user = result.user
            limited = Caller(extension=caller, tenant_id=tenant_id, permission=user.permission,
                             max_calls=user.max_calls, tenant_max_calls=user.tenant_max_calls,
                             withholds_number=user.withhold_number)
        target = request.uri
        if not isinstance(target, SipUri):
            self._stack.respond(tx, 416, now=now)
            return
        if target.host != realm and self._tenant_id_for(target.host) is not None:
            # A call never crosses tenants: another tenant's domain is not reached by naming it.
            log.info("call %s from %s@%s to %s refused: another tenant's domain", request.call_id, caller,
                     realm, target)
            self._stack.respond(tx, 403, "Callee In Another Tenant", now=now, to_tag=self._make_tag())
            return
        self._start_call(request, tx, source, transport, now, realm=realm, caller=caller, tenant_id=tenant_id,
                         dialed=target.user_unescaped or "", limited=limited)

    def _invite_from_trunk(self, request: SipRequest, tx: ServerTransaction, trunk: TrunkEntry,
                           source: tuple[str, int], transport: str, now: float) -> None:
        """A provider's call (from a trunk's host: IP authentication, no digest) to one of the
        tenant's DIDs goes to the DID's destination, and never out through a trunk again."""
        users = [uri.user_unescaped for uri in (request.uri, request.to.uri) if isinstance(uri, SipUri)]
        found = self.router.did(trunk, [user for user in users if user], now)
        offer = trunk.accepted_offer(request.body)
        if isinstance(found, tuple) or offer is None:
            self._stack.respond(tx, *(found if isinstance(found, tuple) else (488, "Not Acceptable Here")),
                                now=now, to_tag=self._make_tag())
            return
        request.body = offer  # the trunk's codecs only
        self._start_call(request, tx, source, transport, now, realm=trunk.tenant_domain,
                         caller=trunk.caller_from(request.from_.sip_uri.user_unescaped or ""),
                         tenant_id=trunk.tenant_id, dialed=found, outbound=False, caller_codecs=trunk.codecs)

    def _start_call(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int], transport: str,
                    now: float, *, realm: str, caller: str, tenant_id: int | None, dialed: str,
                    outbound: bool = True, limited: Caller | None = None,
                    caller_codecs: tuple[str, ...] = ()) -> None:
        """Route a new call of `caller` in tenant `realm` to `dialed` and ring its targets;
        `limited`: the caller is a user, held to its permission and limits, who may dial the
        tenant's feature codes (pickup here, the others at their application servers)."""
        feature = self.pickup.feature(realm, dialed) if limited is not None else None
        role = feature.feature.role if feature is not None else None
        if feature is not None and role is None:
            self.pickup.pick_up(request, tx, source, transport, now, realm=realm, picker=caller,
                                match=feature)
            return
        if feature is not None and role is not None and limited is not None:
            routed, forwards, hunt = feature.service_number, 0, None
            targets = self.router.feature_targets(role, realm, routed, now, caller=limited)
        else:
            routed, targets, forwards, hunt = self.redirection.route(realm, dialed, now, outbound=outbound,
                                                                     caller=limited, forwards=0)
        if isinstance(targets, tuple):
            code, reason = targets
            self._stack.respond(tx, code, reason, now=now, to_tag=self._make_tag())
            return
        call = Call(a=Leg(HangupBy.CALLER, source, transport, codecs=caller_codecs), call_id=request.call_id,
                    a_tx=tx,
                    a_invite=request,
                    a_tag=self._make_tag(), b_call_id=make_tag() + make_tag(), b_tag=self._make_tag(),
                    caller=caller, callee=routed, tenant_id=tenant_id,
                    started_at=now, realm=realm, limits=limited, forwards=forwards, hunt=hunt,
                    # forwarded before ringing anything (always, do not disturb, unreachable)
                    dialed=dialed if forwards else None)
        tx.user_data = call
        self.calls.add(call)
        self.call_counter.changed(call, now + self._wall_offset)
        # An INVITE's Expires bounds its ringing (RFC 3261 13.3.1): a queue server's ring of an
        # agent stops at its ring timeout even when the queue server is gone.
        expires = _invite_expires(request)
        ring_for = self._no_answer_timeout if expires is None else min(self._no_answer_timeout, expires)
        call.ring_timer = self._timers.schedule(
            now + ring_for, lambda t: self._no_answer(call, t, expired=ring_for != self._no_answer_timeout))
        if self.anchoring.pool is None or not request.body:
            # Without an offer the media is anchored on the callee's answer (late offer).
            call.b_offer = request.body
            self.redirection.ring(call, targets, now)
            return

        def route(body: bytes | None, t: float) -> None:
            if call.phase is not ROUTING:
                return
            if body is None:
                self._refuse(call, 503, "Media Unavailable", t)
                return
            call.b_offer = body
            self.redirection.ring(call, targets, t)

        self.anchoring.anchor(call, "a", request.body, now, route)

    def _call_counts(self, caller: Caller, now: float) -> tuple[int, int]:
        return self.call_counter.counts(caller, now + self._wall_offset)

    def is_app_endpoint(self, address: tuple[str, int]) -> bool:
        """Whether `address` is one of our application servers' endpoints (trusted, unlike phones)."""
        return self._app_servers is not None and address in self._app_servers.endpoints

    @property
    def wall_offset(self) -> float:
        return self._wall_offset

    def app_endpoint_lost(self, endpoint: AppEndpoint, now: float) -> None:
        """An application server worker went down: each answered call it held is moved to
        another of its role (the caller hears the menu again, or is back in the room)."""
        for call in list(endpoint.calls):
            if call.app_endpoint is endpoint and call.answered:
                self.transfers.move(call, now)

    def _start_branch(self, call: Call, target: Target, now: float) -> None:
        a_invite = call.invite
        content_type = a_invite.headers.get("Content-Type") if call.b_offer else None
        body = call.b_offer if target.trunk is None else target.trunk.offer(call.b_offer)
        withheld = withholds_identity(a_invite) or (call.limits is not None and call.limits.withholds_number)
        branch = self._send_invite(
            target, call_id=call.b_call_id, from_tag=call.b_tag, caller=call.caller, callee=call.callee,
            realm=call.realm, display_name=a_invite.from_.display_name,
            max_forwards=a_invite.max_forwards - 1, body=body, content_type=content_type, now=now,
            withheld=withheld,
            on_response=lambda branch, response, t: self._on_branch_response(call, branch, response, t),
            on_silent=lambda branch, t: self._retry_app_branch(call, branch, 408, t))
        branch.trunk, branch.user = target.trunk, target.user
        call.branches.append(branch)
        if target.trunk is not None:
            self.call_counter.changed(call, now + self._wall_offset)

    def _send_invite(self, target: Target, *, call_id: str, from_tag: str, caller: str, callee: str,
                     realm: str, display_name: str | None, max_forwards: int, body: bytes,
                     content_type: str | None, now: float,
                     on_response: Callable[[Branch, SipResponse, float], None],
                     on_silent: Callable[[Branch, float], object], withheld: bool = False) -> Branch:
        """An INVITE to `target` as one branch; an application server that answers nothing within
        `app_answer_timeout` is given up (`on_silent`). `withheld`: the caller asked for privacy."""
        identity: list[tuple[str, str]] = []
        if target.trunk is None:
            from_ = Address(uri=SipUri(host=realm, user=caller), display_name=display_name,
                            params={"tag": from_tag})
            to = Address(uri=SipUri(host=realm, user=callee))
        else:  # the provider sees the trunk's presented number and the number as the route rewrote it
            from_, identity = target.trunk.identity(caller, display_name, from_tag, withheld=withheld)
            to = target.trunk.to_address()
        headers = [
            ("Via", self._stack.via(target.transport)),
            ("Max-Forwards", str(max_forwards)),
            ("From", str(from_)),
            ("To", str(to)),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", str(self._stack.contact(target.transport))),
            ("Allow", ALLOW),
            ("User-Agent", SERVER_NAME),
            *identity,
        ]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        invite = SipRequest("INVITE", parse_uri(target.contact), headers, body)
        leg = Leg(HangupBy.CALLEE, target.source, target.transport)
        if target.trunk is not None:
            leg.codecs, leg.trunk = target.trunk.trunk.codecs, target.trunk.trunk.key
        branch = Branch(leg=leg, invite=invite,
                        app_endpoint=target.app_endpoint)
        branch.tx = self._stack.send_request(invite, target.source, target.transport, now)
        branch.tx.user_data = lambda response, t: on_response(branch, response, t)
        if target.app_endpoint is not None:
            def silent(t: float) -> None:
                if branch.answer_timer is not None and branch.final is None and branch.state in (
                        BranchState.CALLING, BranchState.CANCEL_WAITING):
                    branch.answer_timer = None
                    on_silent(branch, t)

            branch.answer_timer = self._timers.schedule(now + self._app_answer_timeout, silent)
        return branch

    def _retry_app_branch(self, call: Call, branch: Branch, code: int, now: float) -> bool:
        """An application server failed a call (silent, or 5xx): try another of its role. Whether
        another branch was started."""
        endpoint = branch.app_endpoint
        if endpoint is None or call.phase is not ROUTING or branch.cancelled:
            return False
        return self._replace_app_branch(branch, code, now, call.branches,
                                        lambda target, t: self._start_branch(call, target, t))

    def _replace_app_branch(self, branch: Branch, code: int, now: float, branches: list[Branch],
                            start: Callable[[Target, float], None]) -> bool:
        endpoint = branch.app_endpoint
        assert endpoint is not None
        if branch.final is None:
            branch.final = code
            if branch.tx is not None:
                self._stack.layer.abandon(branch.tx)
        to = branch.invite.to.uri
        target = self.router.replacement(
            endpoint, code, now, number=to.user_unescaped or "", realm=to.host,  # type: ignore[union-attr]
            dialed=branch.invite.uri.user_unescaped or "",  # type: ignore[union-attr]
            tried=[b.app_endpoint for b in branches if b.app_endpoint is not None])
        if target is None:
            return False
        log.info("call to %s: %s failed (%d), trying %s", branch.invite.uri, endpoint, code,
                 target.app_endpoint)
        start(target, now)
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
        if branch.transition(BranchInput.PROVISIONAL):
            self._send_cancel(branch, now)
        return branch.cancelled

    def _on_branch_response(self, call: Call, branch: Branch, response: SipResponse, now: float) -> None:
        code = response.status_code
        if self.branch_responded(branch, code, now):
            return
        if code < 200:
            if call.phase is ROUTING:
                self._relay_provisional(call, response, now)
            return
        if code < 300:
            self._on_branch_answer(call, branch, response, now)
            return
        if branch.trunk is not None and self.trunk_branches.failed(call, branch, response, now):
            return
        if server_failed(code) and self._retry_app_branch(call, branch, code, now):
            return
        branch.final = code
        if call.phase is ROUTING and code >= 600:
            # A global failure: the callee declines everywhere, so stop the other devices (16.7).
            for other in call.branches:
                self._cancel_branch(other, now)
            if self.redirection.on_failure(call, code, now):
                return
            self._stack.respond(call.invite_tx, code, response.reason, now=now, to_tag=call.a_tag)
            self._end(call, now, disposition_for(code), code, None)
            return
        if call.phase is ROUTING and all(b.final is not None for b in call.branches):
            status = best_final_status([b.final for b in call.branches if b.final is not None])
            if self.redirection.on_failure(call, status, now):
                return
            self._stack.respond(call.invite_tx, status, now=now, to_tag=call.a_tag)
            self._end(call, now, disposition_for(status), status, None)

    def _relay_provisional(self, call: Call, response: SipResponse, now: float) -> None:
        media = call.media
        if media is None:
            self._send_provisional(call, response, response.body, response.headers.get("Content-Type"), now)
            return

        def relay(body: bytes | None, t: float) -> None:
            if call.phase is not ROUTING or _has_final(call.invite_tx):
                return
            if body is not None and media.early_sdp_for_a is None:
                media.early_sdp_for_a = body
            self._send_provisional(call, response, media.early_sdp_for_a or b"", SDP, t)

        if response.body and response.content_type == SDP:
            # Early media: the caller hears the callee through the media server.
            if media.ringback:
                media.ringback = False
                self.anchoring.request(call, "stop_playback", now, leg="a")
            self.anchoring.step(call, "answer", "b", response.body, now, relay)
        elif response.status_code == 180 and media.early_sdp_for_a is None:
            # Ringing without early media: the media server plays ringback to the caller.
            media.ringback = True
            self.anchoring.request(call, "play_tone", now, lambda body, t: relay(
                self.anchoring.sdp_of_reply(call, "a", body), t), leg="a", tone="ringback")
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
        if call.phase is not ROUTING:
            # Answered too late (cancelled, or another device won): take it and hang it up.
            self._send_ack(leg, branch.invite.cseq.seq, b"", None, now)
            self._send_bye(leg, now)
            return
        branch.final = response.status_code
        call.b = leg
        call.transition(CallInput.ANSWERED)
        call.answered_at = now
        self._hold_app_endpoint(call, branch.app_endpoint)
        if branch.app_endpoint is not None:  # trusted: one of our servers, not a phone
            call.app_recording = response.headers.get(PBX_RECORDING)
        self._cancel_timer(call.ring_timer)
        self._cancel_timer(call.forward_timer)
        self.records.mark_changed(call)
        self._register_dialog(call, leg)
        for other in call.branches:
            if other is not branch:
                # RFC 3326: the other devices show the call answered elsewhere, not missed.
                other.cancel_reason = COMPLETED_ELSEWHERE
                self._cancel_branch(other, now)
        self._confirm_caller_dialog(call)
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
                self.anchoring.translate(call, "answer", call.a, ack.body, t, lambda body, t2: self._send_ack(
                    leg, invite_cseq, body or b"", ack.headers.get("Content-Type") if body else None, t2))

        def connected(ack: SipRequest, t: float) -> None:
            call.transition(CallInput.ACKED)
            on_ack(ack, t)

        def answer_caller(body: bytes | None, t: float) -> None:
            if call.phase is not CONNECTING:
                return
            if body is None:
                self._refuse_answered(call, t)
                return
            self._answer(call, call.a, call.invite_tx, response.status_code, response.reason, body,
                         response.headers.get("Content-Type") if call.media is None else SDP, connected, t)

        media = call.media
        if media is not None and media.ringback:
            media.ringback = False
            self.anchoring.request(call, "stop_playback", now, leg="a")
        if self.anchoring.pool is not None and media is None and response.body:
            self.anchoring.anchor(call, "b", response.body, now, answer_caller)
        elif media is not None and not response.body and media.early_sdp_for_a is not None:
            answer_caller(media.early_sdp_for_a, now)  # the answer the caller already has
        else:
            self.anchoring.translate(call, "answer" if call.invite.body else "offer", leg, response.body,
                                     now, answer_caller)

    def _confirm_caller_dialog(self, call: Call) -> None:
        """The caller's dialog, confirmed as its INVITE is answered."""
        call.a.dialog = Dialog.from_uas(call.invite, local_tag=call.a_tag,
                                        local_contact=self._stack.contact(call.a.transport))
        call.a.dialog.confirm()
        self._register_dialog(call, call.a)

    def _answer(self, call: Call, leg: Leg, tx: ServerTransaction, status_code: int, reason: str,
                body: bytes, content_type: str | None, on_ack: Callable[[SipRequest, float], None],
                now: float, *, to_tag: str | None = None) -> None:
        """Send a 2xx on `leg` for the INVITE in `tx`, retransmitted until ACKed (UDP); `to_tag`
        for a new dialog other than the caller's (a pickup's)."""
        headers: list[tuple[str, str]] = [("Contact", str(self._stack.contact(leg.transport)))]
        if content_type and body:
            headers.append(("Content-Type", content_type))
        response = self._stack.respond(tx, status_code, reason, now=now, to_tag=call.a_tag
                                       if leg is call.a else to_tag, headers=headers,
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
        return self.dialog_by_id(request.call_id, request.to.tag or "", request.from_.tag or "", now)

    def dialog_by_id(self, call_id: str, local_tag: str, remote_tag: str,
                     now: float) -> tuple[Call, Leg] | None:
        """The call and leg of the dialog (Call-ID, our tag, the peer's tag), as `find_dialog`."""
        key = (call_id, local_tag, remote_tag)
        found = self._dialogs.get(key)
        if found is None and local_tag and self.records.adopt(call_id, local_tag, now):
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
            self.records.mark_changed(call)
        except RemoteProtocolError as exc:
            self._stack.respond(tx, exc.status_code, now=now)
            return
        if call.transfer is not None and self.transfers.transfer_request(call, leg, request, tx, now):
            return
        if call.join is not None and self.joins.join_request(call, leg, request, tx, now):
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
        if isinstance(call, Call) and call.phase is ROUTING:
            self._stack.respond(call.invite_tx, 487, now=now, to_tag=call.a_tag)
            for branch in call.branches:
                self._cancel_branch(branch, now)
            self._end(call, now, Disposition.CANCELLED, 487, HangupBy.CALLER)

    def _relay_in_dialog(self, call: Call, leg: Leg, request: SipRequest, tx: ServerTransaction,
                         now: float) -> None:
        far = call.other(leg)
        if not call.answered or far is None or far.dialog is None:
            self._stack.respond(tx, 491 if request.method == "INVITE" else 481, now=now)
            return
        is_invite = request.method == "INVITE"
        if is_invite and (call.reinvite_pending or leg.unacked is not None or far.unacked is not None
                          or leg.moving or far.moving or call.transfer is not None or call.join is not None):
            self._stack.respond(tx, 491, now=now)
            return
        headers = [(name, value) for name in RELAYED_HEADERS
                   if (value := request.headers.get(name)) is not None and name != "Content-Type"]
        carries_sdp = request.method in ("INVITE", "UPDATE") and request.content_type == SDP
        offer = request.body
        if carries_sdp and leg.codecs and offer:
            restricted = restrict_offer(offer, leg.codecs)
            if restricted is None:  # the provider offers none of the trunk's codecs
                self._stack.respond(tx, 488, now=now)
                return
            offer = restricted
        if is_invite:
            call.reinvite_pending = True

        def send(body: bytes | None, t: float) -> None:
            if not call.answered or far.dialog is None:
                call.reinvite_pending = False
                self._stack.respond(tx, 481, now=t)  # the call ended while the media server worked
                return
            if body is None:
                call.reinvite_pending = False
                self._stack.respond(tx, 500, "Media Unavailable", now=t)
                return
            if carries_sdp:
                body = far.offer_to(body)
            anchored = carries_sdp and call.media is not None
            content_type = SDP if anchored else request.headers.get("Content-Type")
            with_contact = is_invite or request.method == "UPDATE"
            self.records.mark_changed(call)
            out = far.dialog.create_request(
                request.method, via_host=self._stack.host, via_port=self._stack.port, transport=far.transport,
                contact=self._stack.contact(far.transport) if with_contact else None,
                body=body, content_type=content_type if body else None, extra_headers=headers)
            out_tx = self._stack.send_request(out, far.peer, far.transport, t)
            out_tx.user_data = lambda response, t2: self._on_relayed_response(
                call, leg, far, tx, request, out, response, t2)

        if carries_sdp:
            self.anchoring.translate(call, "offer", leg, offer, now, send)
        else:
            send(offer, now)

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
            self.anchoring.translate(call, "answer", far, response.body, now, respond)
        elif call.media is not None and response.content_type == SDP:
            respond(b"", now)  # an SDP we have not anchored (early media of a re-INVITE) stays out
        else:
            respond(response.body if content_type else b"", now)

    def _relayed_reinvite_answered(self, call: Call, leg: Leg, far: Leg, tx: ServerTransaction,
                                   request: SipRequest, out: SipRequest, response: SipResponse,
                                   now: float) -> None:
        if far.dialog is not None:
            far.dialog.receive_response(response)
            self.records.mark_changed(call)
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
                self.anchoring.translate(call, "answer", leg, ack.body, t, lambda body, t2: self._send_ack(
                    far, seq, body or b"", content_type if body else None, t2))
            kind = "offer"

        def answer(body: bytes | None, t: float) -> None:
            if not call.answered or _has_final(tx):
                return
            content_type = SDP if call.media is not None else response.headers.get("Content-Type")
            if body is None:
                self._stack.respond(tx, 500, "Media Unavailable", now=t)
                return
            if kind == "offer":
                body = leg.offer_to(body)
            self._answer(call, leg, tx, response.status_code, response.reason, body, content_type, on_ack, t)

        self.anchoring.translate(call, kind, far, response.body, now, answer)

    # -- ending ----------------------------------------------------------------------

    def _no_answer(self, call: Call, now: float, *, expired: bool = False) -> None:
        """Nobody answered within `callmanager.no_answer_timeout` (480), or the INVITE's own
        Expires (487, RFC 3261 13.3.1.1)."""
        if call.phase is not ROUTING:
            return
        for branch in call.branches:
            self._cancel_branch(branch, now)
        code, reason = (487, "Request Terminated") if expired else (480, "No Answer")
        self._stack.respond(call.invite_tx, code, reason, now=now, to_tag=call.a_tag)
        self._end(call, now, Disposition.NO_ANSWER, code, None)

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

    def _hang_up(self, call: Call, now: float, *, hangup_by: HangupBy, skip: Leg | None = None,
                 reason: EndReason | None = None) -> None:
        """End an answered call: BYE every leg that did not already hang up; `reason` is why we
        end it ourselves (in the BYE's Reason header and the CDR)."""
        if call.phase is ENDED:
            return
        for leg in (call.a, call.b):
            if leg is not None and leg is not skip and leg.dialog is not None:
                self._send_bye(leg, now, reason)
        self._end(call, now, Disposition.ANSWERED, 200, hangup_by, reason)

    def _end(self, call: Call, now: float, disposition: Disposition, sip_code: int,
             hangup_by: HangupBy | None, reason: EndReason | None = None) -> None:
        if call.phase is ENDED:
            return
        if call.answered_at is not None:
            disposition, sip_code = Disposition.ANSWERED, 200
        call.transition(CallInput.ENDED)
        self._cancel_timer(call.ring_timer)
        self._cancel_timer(call.forward_timer)
        self._hold_app_endpoint(call, None)
        if call.transfer is not None:
            self.transfers.abort(call, now)
        if call.join is not None:
            self.joins.abort(call, now)
        if call.queue_agent is not None:
            self.joins.agent_left(call, None, now)
        if call.media is not None:
            self.anchoring.release(call, now)
        for leg in (call.a, call.b):
            if leg is None:
                continue
            if leg.unacked is not None:
                self._cancel_timer(leg.unacked.timer)
                leg.unacked = None
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.id, None)
        self.calls.discard(call)
        self.call_counter.ended(call)
        self.records.ended(call)
        self._on_call_ended(CallEnded(
            call_id=call.call_id, tenant_id=call.tenant_id, caller=call.caller, callee=call.callee,
            dialed=call.dialed,
            caller_ip=call.a.peer[0], start_time=self._wall(call.started_at),
            answer_time=self._wall(call.answered_at) if call.answered_at is not None else None,
            end_time=self._wall(now), disposition=disposition, sip_code=sip_code,
            hangup_by=hangup_by if call.answered_at is not None else None,
            recording=(call.media.recording if call.media is not None else None) or call.app_recording,
            end_reason=reason))

    def _wall(self, now: float) -> datetime:
        return datetime.fromtimestamp(now + self._wall_offset, UTC)

    # -- the media moved ----------------------------------------------------------------

    def _reinvite(self, call: Call, leg: Leg, body: bytes, now: float) -> None:
        """Our own re-INVITE offering `body` to `leg`'s phone (the media moved)."""
        if not call.answered or leg.dialog is None:
            return
        if call.reinvite_pending or leg.moving or leg.unacked is not None:
            self._timers.schedule(now + REINVITE_RETRY, lambda t: self._reinvite(call, leg, body, t))
            return
        leg.moving = True
        self.records.mark_changed(call)
        invite = leg.dialog.create_request(
            "INVITE", via_host=self._stack.host, via_port=self._stack.port, transport=leg.transport,
            contact=self._stack.contact(leg.transport), body=leg.offer_to(body), content_type=SDP)
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
                    self.records.mark_changed(call)
                    self._send_ack(leg, seq, b"", None, t)
                if response.content_type == SDP and response.body and call.media is not None:
                    self.anchoring.step(call, "answer", call.leg_name(leg), response.body, t, _ignore_body)
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
        if branch.transition(BranchInput.CANCEL):
            self._send_cancel(branch, now)
        # Without a provisional answer yet, the CANCEL goes when the first one arrives (RFC 3261 9.1).

    def _send_cancel(self, branch: Branch, now: float) -> None:
        cancel = make_cancel(branch.invite)
        if branch.cancel_reason is not None:
            cancel.headers.add("Reason", branch.cancel_reason)
        tx = self._stack.send_request(cancel, branch.leg.peer, branch.leg.transport, now)
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
        local_tag = response.from_.tag
        try:
            if found is None and local_tag and self.records.adopt(response.call_id, local_tag, now):
                found = self._dialogs.get(key)
        except StateStoreUnavailable:
            return  # the callee sends it again
        if found is None:
            return
        _, leg = found
        ack = leg.acks_sent.get(response.cseq.seq)
        if ack is not None:
            self._stack.send_stateless(ack, leg.peer, leg.transport)

    # -- calls held elsewhere --------------------------------------------------------------

    def let_go_all(self) -> int:
        """Forget every call held here without BYE, CDR or record change (this Call Manager no
        longer holds the SIP address: the one that does takes them over); how many."""
        answered = [call for call in self.calls if call.answered]
        for call in answered:
            self._forget(call)
        return len(answered)

    def _hold(self, call: Call) -> None:
        """Hold `call`, taken over from the state store, here: its dialogs lead to it."""
        self.calls.add(call)
        self._register_dialog(call, call.a)
        assert call.b is not None
        self._register_dialog(call, call.b)

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
        self._cancel_timer(call.forward_timer)
        self._hold_app_endpoint(call, None)
        if call.transfer is not None:
            self.transfers.drop(call)
        if call.join is not None:
            self.joins.drop(call)
        for leg in (call.a, call.b):
            if leg is None:
                continue
            if leg.unacked is not None:
                self._cancel_timer(leg.unacked.timer)
            if leg.dialog is not None:
                self._dialogs.pop(leg.dialog.id, None)
        if call.media is not None:
            self.anchoring.forget(call)
        self.calls.discard(call)
        self.records.let_go(call)
        log.info("call %s is held elsewhere now: forgotten here", call.call_id)


def timeout_response(transaction: ClientTransaction) -> SipResponse:
    """The 408 a client transaction's timeout stands for (RFC 3261 8.1.3.1)."""
    return make_response(transaction.request, 408)


def _no_tenant(domain: str) -> int | None:
    return None


def _has_final(tx: ServerTransaction) -> bool:
    return tx.last_response is not None and tx.last_response.status_code >= 200


def _ignore_response(response: SipResponse, now: float) -> None:
    return None


def _ignore_ack(ack: SipRequest, now: float) -> None:
    return None


def _ignore_body(body: bytes | None, now: float) -> None:
    return None


def _invite_expires(request: SipRequest) -> float | None:
    """The seconds an INVITE's Expires gives it to be answered; None without a usable one."""
    value = request.headers.get("Expires")
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())

"""The Call Manager's transaction user: every request and response, sent where it belongs.

Sans-IO: `receive(data, source, transport, now)`, `handle_timer(now)` and
`take_transmits()` are all the controller calls; the logic is in the registrar and
the B2BUA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..cluster.events import CallEnded
from ..cluster.models import ServerRole
from ..cluster.state.agents import AgentStore
from ..cluster.state.call_counts import CallCountStore
from ..cluster.state.dialogs import DialogStore, InMemoryDialogs
from ..cluster.state.errors import StateStoreUnavailable
from ..cluster.state.homes import HomeStore
from ..cluster.state.leases import LeaseStore
from ..cluster.state.lines import LineStore
from ..cluster.state.location import InMemoryLocation, LocationStore
from ..runtime.timers import TimerQueue
from ..sip.digest import DigestAlgorithm, NonceManager
from ..sip.errors import RemoteProtocolError
from ..sip.events import (
    RequestReceived,
    ResponseReceived,
    ServerTransactionTimedOut,
    TransactionTimedOut,
    Transmit,
)
from ..sip.headers import KNOWN_METHODS
from ..sip.message import SipRequest
from ..sip.stack import SipStack, warning
from ..sip.transaction import ServerTransaction, TransactionLayer
from ..sip.uri import SipUri
from .appservers import AppServerPool, ProbeSettings, ServerStateCallback
from .auth import Authenticator
from .b2bua import ALLOW, B2bua, timeout_response
from .dialog_info import DialogPackage
from .directory import Directory
from .forwarding import ForwardingTable
from .holding import CallHolding
from .mediapool import MediaPool, PoolSettings
from .policy import AuthFailureLimiter
from .registrar import Registrar, RegistrarSettings
from .ring_groups import RingGroupTable
from .subscriptions import EventPackage, Subscriptions
from .trunk_probes import TrunkProbes
from .trunks import TrunkCatalog, TrunkEntry, TrunkRegistrations, TrunkStateCallback, TrunkStateChange
from .workers import WorkerPlace, place_of

log = logging.getLogger(__name__)

# Option tags (RFC 3261 19.2) a request may require of us; none yet: Path, GRUU, outbound
# flows and 100rel are not implemented, so a Require of any of them gets 420.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()
IN_DIALOG_ONLY = frozenset({"BYE", "INFO", "UPDATE", "PRACK", "NOTIFY"})
STORE_RETRY_AFTER = 5
"""Seconds a phone is told to wait before trying again while the state store is away."""


class CallManager:
    def __init__(self, *, host: str, port: int, max_message_size: int, directory: Directory,
                 nonces: NonceManager, limiter: AuthFailureLimiter, registrar_settings: RegistrarSettings,
                 algorithms: tuple[DigestAlgorithm, ...], on_call_ended: Callable[[CallEnded], None],
                 no_answer_timeout: float = 60.0, wall_offset: float = 0.0,
                 media_pool: PoolSettings | None = None, record_calls: bool = False,
                 location: LocationStore | None = None, dialogs: DialogStore | None = None,
                 homes: HomeStore | None = None, place: WorkerPlace | None = None,
                 app_probes: ProbeSettings | None = None,
                 app_answer_timeout: float = 1.0, on_server_state: ServerStateCallback | None = None,
                 agents: AgentStore | None = None, trunks: TrunkCatalog | None = None,
                 forwarding: ForwardingTable | None = None, ring_groups: RingGroupTable | None = None,
                 leases: LeaseStore | None = None, on_trunk_state: TrunkStateCallback | None = None,
                 event_packages: tuple[EventPackage, ...] = (),
                 call_counts: CallCountStore | None = None, lines: LineStore | None = None) -> None:
        """`trunks`: the trunks, outbound routes and DIDs; the trunks that want a registration
        are registered by the holder of their lease in `leases`, and those with a probe interval
        probed with OPTIONS (each change of either: `on_trunk_state`);
        `event_packages`: what phones may SUBSCRIBE to (`subscriptions`); `call_counts` the
        cluster's counts of calls in progress, for the concurrent-call limits; `lines` the users'
        lines every worker publishes for BLF."""
        self.place = place or WorkerPlace(node="local")
        self.stack = SipStack(host=host, port=port, max_message_size=max_message_size,
                              layer=TransactionLayer(),
                              forward_to=self.place.owner_of if self.place.count > 1 else None)
        self.location: LocationStore = location or InMemoryLocation()
        self.dialogs: DialogStore = dialogs or InMemoryDialogs()
        self.timers = TimerQueue()
        self.directory = directory
        self.limiter = limiter
        self._nonces = nonces
        self._wall_offset = wall_offset
        authenticator = Authenticator(lookup=directory.credentials, nonces=nonces, limiter=limiter,
                                      algorithms=algorithms, wall_offset=wall_offset)
        self.registrar = Registrar(stack=self.stack, location=self.location, authenticator=authenticator,
                                   realm_for=directory.realm_for, settings=registrar_settings,
                                   wall_offset=wall_offset)
        # Without a media pool (unit tests of signalling alone) SDP passes through unchanged.
        self.media: MediaPool | None = None
        if media_pool is not None:
            self.media = MediaPool(
                timers=self.timers, on_lost=lambda endpoint, t: self.b2bua.anchoring.rehome(endpoint, t),
                on_timeout_notice=lambda call_id, t: self.b2bua.anchoring.media_timed_out(call_id, t),
                settings=media_pool, on_server_state=on_server_state)
        self.app_servers = AppServerPool(stack=self.stack, timers=self.timers,
                                         on_server_state=on_server_state or _ignore_server_state,
                                         settings=app_probes or ProbeSettings(), make_tag=self.place.tag,
                                         homes=homes, on_lost=lambda e, t: self.b2bua.app_endpoint_lost(e, t))
        self.trunk_probes = TrunkProbes(stack=self.stack, timers=self.timers, make_tag=self.place.tag,
                                        on_state=on_trunk_state or _ignore_trunk_state)
        self.b2bua = B2bua(stack=self.stack, location=self.location, authenticator=authenticator,
                           timers=self.timers, realm_for=directory.realm_for,
                           extension_exists=directory.extension_exists, on_call_ended=on_call_ended,
                           no_answer_timeout=no_answer_timeout, wall_offset=wall_offset, media=self.media,
                           record_calls=record_calls, make_tag=self.place.tag, dialogs=self.dialogs,
                           owner=self.place.owner, app_servers=self.app_servers,
                           service_role=directory.service_role, app_answer_timeout=app_answer_timeout,
                           tenant_id_for=directory.tenant_id, agents=agents, trunks=trunks,
                           forwarding=forwarding, ring_groups=ring_groups,
                           features=directory, workers=(self.place.index, self.place.count),
                           trunk_down=self.trunk_probes.down_reason, call_counts=call_counts)
        self.trunks = trunks
        self.trunk_registrations = TrunkRegistrations(
            stack=self.stack, timers=self.timers, leases=leases, owner=self.place.owner,
            make_tag=self.place.tag, on_state=on_trunk_state or _ignore_trunk_state)
        self.dialog_lines = DialogPackage(calls=lambda: self.b2bua.calls,
                                          extension_exists=directory.extension_exists, lines=lines,
                                          owner=self.place.owner)
        self.subscriptions = Subscriptions(stack=self.stack, timers=self.timers, authenticator=authenticator,
                                           realm_for=directory.realm_for,
                                           packages=[*event_packages, self.dialog_lines],
                                           make_tag=self.place.tag, wall_offset=wall_offset)
        self.holding = CallHolding(b2bua=self.b2bua, store=self.dialogs, place=self.place,
                                   wall_offset=wall_offset)

    # -- the controller's interface -------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float, *,
                forwarded: bool = False) -> None:
        """One message from the network; `forwarded` when another worker handed it here (or it is
        another worker's that cannot take it): handled here whatever its tags say."""
        for event in self.stack.receive(data, source, transport, now, forwarded=forwarded):
            self._dispatch(event, now)
        self.b2bua.records.save_changed(now)

    def take_releases(self) -> list[tuple[int, str]]:
        """(worker, call key): calls this worker took over from a sibling on this node, which
        must forget them if it is running."""
        releases = []
        for owner, key in self.b2bua.records.take_takeovers():
            place = place_of(owner)
            if place is not None and place[0] == self.place.node and place[1] != self.place.index:
                releases.append((place[1], key))
        return releases

    def take_forwards(self) -> list[tuple[int, bytes, tuple[str, int], str]]:
        """Messages received here that belong to another worker: (worker, data, source, transport)."""
        return self.stack.take_forwards()

    def handle_timer(self, now: float) -> None:
        for event in self.stack.handle_timer(now):
            self._dispatch(event, now)
        self.timers.run_due(now)
        self.b2bua.records.save_changed(now)

    def housekeeping(self, now: float) -> None:
        """Once a second: forget expired bindings, nonces and failures, refresh the directory.

        Raises StateStoreUnavailable when the store is away (the next round tries again).
        """
        wall = now + self._wall_offset
        self.directory.tick(now)
        self.b2bua.records.refresh_records(now)
        self.b2bua.call_counter.renew(self.b2bua.calls, wall)
        self._nonces.counts.handle_timer(wall)
        self.limiter.purge(wall)
        self.location.purge(wall)
        if self.trunks is not None:
            self.trunks.tick(now)
            self.trunk_registrations.update(self.trunks.plan.trunks, now)
            self.trunk_probes.update(self.trunks.plan.trunks, now)
        self.dialog_lines.publish(wall)
        self.subscriptions.poll(now)

    def next_timer(self) -> float | None:
        deadlines = [d for d in (self.stack.next_timer(), self.timers.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def take_transmits(self) -> list[Transmit]:
        return self.stack.take_transmits()

    def receive_media_control(self, data: bytes, source: tuple[str, int], now: float) -> None:
        assert self.media is not None
        self.media.receive(data, source, now)
        self.b2bua.records.save_changed(now)

    def take_media_control_transmits(self) -> list[tuple[bytes, tuple[str, int]]]:
        return self.media.take_transmits() if self.media is not None else []

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, event: object, now: float) -> None:
        if isinstance(event, RequestReceived):
            if event.transaction is None:
                self.b2bua.handle_ack(event.request, now)
                return
            try:
                self._on_request(event.request, event.transaction, event.source, event.transport, now)
            except RemoteProtocolError as exc:
                # A header only parsed now (credentials, a Contact's parameters) was broken.
                self.stack.counters["refused_requests"] += 1
                if _open(event.transaction):
                    self.stack.respond(event.transaction, exc.status_code, now=now,
                                       headers=[("Warning", warning(exc.reason))])
            except StateStoreUnavailable:
                if event.request.to.tag and event.transport == "UDP" and _open(event.transaction):
                    # A request of a call held elsewhere before (a BYE after a failover while
                    # Redis fails over too): unanswered, its retransmissions come back to us and
                    # one finds the store back. A 500 would end the dialog on the phone's side.
                    self.stack.counters["deferred_store_unavailable"] += 1
                    self.stack.layer.abandon(event.transaction)
                    return
                # Refused, not answered and lost: a phone told 200 for a registration that was
                # never stored would not try again for up to an hour.
                self.stack.counters["refused_store_unavailable"] += 1
                if _open(event.transaction):
                    self.stack.respond(event.transaction, 500, "State Store Unavailable", now=now,
                                       headers=[("Retry-After", str(STORE_RETRY_AFTER))])
        elif isinstance(event, ResponseReceived):
            transaction = event.transaction
            try:
                if transaction is None:
                    if event.response.status_code < 300:
                        self.b2bua.handle_stray_2xx(event.response, now)
                elif callable(transaction.user_data):
                    transaction.user_data(event.response, now)
            except RemoteProtocolError as exc:
                # A peer's answer we cannot use; its call goes on (or times out) without it.
                self.stack.counters["refused_responses"] += 1
                log.info("ignored an unusable %d response: %s", event.response.status_code, exc.reason)
        elif isinstance(event, TransactionTimedOut):
            if callable(event.transaction.user_data):
                event.transaction.user_data(timeout_response(event.transaction), now)
        elif isinstance(event, ServerTransactionTimedOut):
            log.debug("no ACK for a final answer to %s", event.transaction.request.call_id)

    def _on_request(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int],
                    transport: str, now: float) -> None:
        method = request.method
        if method not in KNOWN_METHODS:
            self.stack.respond(tx, 501, now=now, headers=[("Allow", ALLOW)])
            return
        if not isinstance(request.uri, SipUri):
            self.stack.respond(tx, 416, now=now)
            return
        unsupported = [tag for value in request.headers.get_all("Require") + request.headers.get_all(
            "Proxy-Require") for tag in [value.strip()] if tag.lower() not in SUPPORTED_EXTENSIONS]
        if unsupported and method not in ("CANCEL", "ACK"):
            self.stack.respond(tx, 420, now=now, headers=[("Unsupported", ", ".join(unsupported))])
            return
        if request.max_forwards == 0 and request.uri.user is not None and method not in ("REGISTER", "ACK"):
            # Addressed to a user, so it would be routed on: out of hops (RFC 3261 16.3 step 2).
            self.stack.respond(tx, 483, now=now)
            return
        if method == "CANCEL":
            self.b2bua.handle_cancel(request, tx, self.stack.layer.find_invite_server_transaction(request),
                                     now)
        elif request.to.tag is not None and method == "SUBSCRIBE":
            self.subscriptions.handle_in_dialog(request, tx, now)
        elif request.to.tag is not None:
            self.b2bua.handle_in_dialog(request, tx, now)
        elif method == "REGISTER":
            self.registrar.handle(request, tx, source, transport, now)
        elif method == "INVITE":
            self.b2bua.handle_invite(request, tx, source, transport, now)
        elif method == "SUBSCRIBE":
            self.subscriptions.handle_subscribe(request, tx, source, transport, now)
        elif method == "OPTIONS":
            # Our To tag names the worker that answered (workers.py), which tells an operator too.
            self.stack.respond(tx, 200, now=now, to_tag=self.place.tag(),
                               headers=[("Allow", ALLOW), ("Accept", "application/sdp")])
        elif method in IN_DIALOG_ONLY:
            self.stack.respond(tx, 481, now=now)
        else:
            self.stack.respond(tx, 405, now=now, headers=[("Allow", ALLOW)])


def _ignore_server_state(server: str, role: ServerRole, up: bool, why: str, now: float) -> None:
    return None


def _ignore_trunk_state(trunk: TrunkEntry, change: TrunkStateChange, now: float) -> None:
    return None


def _open(tx: ServerTransaction) -> bool:
    return tx.last_response is None or tx.last_response.status_code < 200

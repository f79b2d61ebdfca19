"""Starts and stops the Call Manager: database, directory, SIP transports, CDR flushing.

A component of the daemon runtime; the runtime's `CoreDriver` feeds the sans-IO core the
loop's time and arms its timer.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..cluster.bus import InProcessBus
from ..cluster.cdr import CdrWriter
from ..cluster.cdr_journal import CdrJournal
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for, session_factory
from ..cluster.events import CallEnded, ServerState, ServerStateChanged
from ..cluster.models import ServerRole
from ..cluster.servers import ServerService
from ..cluster.state import StateStore, StateStoreUnavailable, open_state_store
from ..runtime.control import NOT_FOUND, ControlReply, ControlRequest
from ..runtime.daemon import StartError
from ..runtime.descriptors import DescriptorLimitError, DescriptorNeed
from ..runtime.driver import CoreDriver
from ..sip.digest import DigestAlgorithm, NonceManager
from ..transport.addresses import holds_address
from ..transport.connections import ConnectionTable
from ..transport.rtp import ControlSocket
from ..transport.sip import SipTransports, TcpConnection
from ..transport.workers import WorkerChannel
from .appservers import ProbeSettings
from .descriptors import tcp_connection_table
from .directory import Directory
from .forwarding import ForwardingTable
from .live_view import CONTROL_PATHS as LIVE_PATHS
from .live_view import answer_live
from .mediapool import PoolSettings
from .message_summary import MessageSummaryPackage
from .metrics import TCP_MAX, TCP_OPEN, CallManagerCollector, SipTcpCollector
from .policy import AuthFailureLimiter
from .registrar import RegistrarSettings
from .ring_groups import RingGroupTable
from .service import CallManager
from .trunks import TrunkCatalog, TrunkEntry, TrunkStateChange, trunk_statuses
from .workers import Forward, ForwardError, Release, WorkerPlace, parse_frame

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL = 1.0
"""Seconds between directory refreshes and CDR flushes."""
UNPUBLISHED_EVENTS_KEPT = 1000
"""Events kept for the cluster's bus while it is away; beyond, the oldest are dropped (logged)."""
JOURNAL_NAME = re.compile(r"cdr-(\d+)\.journal")
NODE_PEERS_KEPT = 1024
"""Peers of the node address remembered (probes, operators), to answer from that address."""


class CallManagerController:
    name = "Call Manager"
    role = "callmanager"

    def __init__(self, *, config: PbxConfig, bus: InProcessBus | None = None,
                 place: WorkerPlace | None = None, colocated: Sequence[DescriptorNeed] = ()) -> None:
        self.config = config
        self.colocated = tuple(colocated)
        """Descriptors the other parts of this process hold (the all-in-one's media and IVR)."""
        self.bus = bus or InProcessBus()
        self.place = place or WorkerPlace(node=socket.gethostname())
        self._channel: WorkerChannel | None = None
        self._tcp_holders: dict[tuple[str, int], int] = {}
        """Which sibling worker holds the TCP connection with a peer, as its forwards told us."""
        self.forwarded = {"out": 0, "in": 0, "handled_for_absent_worker": 0}
        self.core: CallManager | None = None
        self._driver: CoreDriver | None = None
        self._transports: SipTransports | None = None
        self._tcp_table: ConnectionTable[TcpConnection] | None = None
        """The SIP TCP connections of both addresses, within this process's descriptor budget."""
        self._node_transports: SipTransports | None = None
        """SIP on `sip.node_host`, this host's own address (keepalived's check), beside the VIP."""
        self._node_peers: dict[tuple[str, int], None] = {}
        """Peers heard on the node address, answered from it (insertion order: oldest first)."""
        self._housekeeping: asyncio.Task[None] | None = None
        self._cdr_writer: CdrWriter | None = None
        self._journal: CdrJournal | None = None
        self._journal_failing = False
        self._engine: Engine | None = None
        self.state: StateStore | None = None
        self._servers: ServerService | None = None
        self._media_control: ControlSocket | None = None
        self._states_due: float | None = None
        """When this worker, having taken the VIP, tells every server's state (see _tick_holding)."""
        self._unpublished: deque[ServerStateChanged] = deque(maxlen=UNPUBLISHED_EVENTS_KEPT)
        """Events the cluster's bus did not take yet (Redis away, failing over), oldest first."""

    async def start(self) -> None:
        config = self.config
        assert config.auth is not None, "load the config with needs_auth"
        loop = asyncio.get_running_loop()
        try:
            tcp_table = self._tcp_table = tcp_connection_table(
                config, serves_http=self.place.count == 1 and config.http.port != 0, colocated=self.colocated)
        except DescriptorLimitError as exc:
            raise StartError(str(exc)) from None
        try:
            state = self.state = open_state_store(config.state.url, nonce_ttl=float(config.auth.nonce_ttl),
                                                  timeout=config.state.timeout)
        except StateStoreUnavailable as exc:
            raise StartError(f"state.url: {exc}") from None
        log.info("state store: %s", state.description)
        engine = self._engine = create_engine_for(config.database.url)
        sessions = session_factory(engine)
        directory = Directory(engine=engine, default_domain=config.callmanager.default_domain,
                              local_names=config.callmanager.local_names)
        directory.tick(loop.time())
        journal_dir = config.callmanager.cdr_journal_dir
        try:
            self._journal = CdrJournal(journal_dir / f"cdr-{self.place.index}.journal")
        except OSError as exc:
            raise StartError(f"callmanager.cdr_journal_dir: cannot keep the CDR journal in {journal_dir}: "
                             f"{exc.strerror}") from None
        self._cdr_writer = CdrWriter(sessions=sessions, journal=self._journal)
        if self.place.index == 0:
            self._recover_journals_of_absent_workers(journal_dir, sessions)
        self.bus.subscribe(CallEnded, self._cdr_writer.add)
        self.core = CallManager(
            host=config.sip.public_address or config.sip.host, port=config.sip.port,
            max_message_size=config.sip.max_message_size, directory=directory,
            nonces=NonceManager(bytes.fromhex(config.auth.secret.get_secret_value()),
                                float(config.auth.nonce_ttl), counts=state.nonce_counts),
            limiter=AuthFailureLimiter(limit=config.policy.auth_failure_limit,
                                       window=config.policy.auth_failure_window,
                                       block_seconds=config.policy.block_seconds,
                                       trusted_networks=[str(n) for n in config.policy.trusted_networks],
                                       store=state.auth_failures),
            location=state.location, dialogs=state.dialogs, homes=state.homes,
            registrar_settings=RegistrarSettings(
                min_expires=config.registrar.min_expires, max_expires=config.registrar.max_expires,
                default_expires=config.registrar.default_expires,
                max_contacts=config.registrar.max_contacts),
            algorithms=tuple(DigestAlgorithm(a) for a in config.auth.algorithms),
            on_call_ended=self.bus.publish,
            no_answer_timeout=float(config.callmanager.no_answer_timeout),
            wall_offset=time.time() - loop.time(),
            media_pool=PoolSettings(ping_interval=config.callmanager.media_ping_interval,
                                    down_after=config.callmanager.media_down_after,
                                    up_after=config.callmanager.media_up_after,
                                    rehome_timeout=config.callmanager.media_rehome_timeout),
            record_calls=config.callmanager.record_calls, place=self.place,
            app_probes=ProbeSettings(probe_interval=config.callmanager.app_probe_interval,
                                     down_after=config.callmanager.app_down_after,
                                     up_after=config.callmanager.app_up_after),
            app_answer_timeout=config.callmanager.app_answer_timeout, on_server_state=self._on_server_state,
            agents=state.agents, trunks=TrunkCatalog(engine=engine), forwarding=ForwardingTable(engine),
            ring_groups=RingGroupTable(engine), leases=state.leases, call_counts=state.call_counts,
            lines=state.lines,
            on_trunk_state=self._on_trunk_state, event_packages=(MessageSummaryPackage(engine),))
        self._driver = CoreDriver(core=self.core, flush=self._flush)
        self._servers = ServerService(sessions=sessions)
        self._media_control = ControlSocket(on_datagram=self._on_media_control)
        # Never on the VIP: the media servers answer the Call Manager that asked, wherever the VIP is.
        await self._media_control.start(config.callmanager.media_control_host or config.sip.host, 0)
        several = self.place.count > 1
        if several:
            self._channel = WorkerChannel(host=config.sip.host, port=config.sip.port, index=self.place.index,
                                          on_frame=self._on_forward, on_undeliverable=self._on_undeliverable)
            await self._channel.start()
        self._transports = SipTransports(on_message=self._on_message,
                                         max_message_size=config.sip.max_message_size, table=tcp_table)
        await self._transports.start(config.sip.host, config.sip.port, tuple(config.sip.transports),
                                     reuse_port=several)
        if config.sip.node_host is not None and config.sip.node_host != config.sip.host:
            self._node_transports = SipTransports(on_message=self._on_node_message,
                                                  max_message_size=config.sip.max_message_size,
                                                  table=tcp_table)
            await self._node_transports.start(config.sip.node_host, config.sip.port,
                                              tuple(config.sip.transports), reuse_port=several)
        self._refresh_servers()
        try:
            self._tick_holding(self._driver.now())
        except StateStoreUnavailable:
            log.error("could not take back this worker's calls: the state store is away")
        self._driver.after_core_ran()
        self._housekeeping = loop.create_task(self._housekeep())

    def _recover_journals_of_absent_workers(self, journal_dir: Path, sessions: Any) -> None:
        """Journals left by workers this start has none of (the worker count went down)."""
        for path in journal_dir.iterdir():
            match = JOURNAL_NAME.fullmatch(path.name)
            if match is None or int(match[1]) < self.place.count:
                continue
            journal = CdrJournal(path)
            try:
                CdrWriter(sessions=sessions, journal=journal).flush()
            except SQLAlchemyError:
                log.exception("the CDRs of %s wait for the database; kept for the next start", path)
                continue
            finally:
                journal.close()
            path.unlink()

    def listening_on(self) -> str:
        sip = self.config.sip
        hosts = [sip.host] + ([sip.node_host] if self._node_transports is not None and sip.node_host else [])
        return ", ".join(f"sip:{host}:{sip.port};transport={t}" for host in hosts for t in sip.transports)

    def collectors(self) -> Sequence[Collector]:
        assert self.core is not None
        return (CallManagerCollector(self.core, time.time), SipTcpCollector(self.tcp_report))

    def tcp_report(self) -> dict[str, int]:
        """The SIP TCP connections held, the cap, and the transports' counters (both addresses')."""
        table = self._tcp_table
        report = {TCP_OPEN: len(table) if table is not None else 0,
                  TCP_MAX: table.limits.max_connections if table is not None else 0}
        for transports in (self._transports, self._node_transports):
            for name, count in (transports.counters.items() if transports is not None else ()):
                report[name] = report.get(name, 0) + count
        return report

    def health(self) -> dict[str, object]:
        assert self.core is not None
        try:
            registered: int | None = self.core.location.binding_count()
        except StateStoreUnavailable:
            registered = None
        return {"status": "ok" if registered is not None else "degraded",
                "state_store": self.state.description if self.state is not None else None,
                "registered_contacts": registered,
                "active_calls": len(self.core.b2bua.calls),
                "holds_sip_address": self.core.holding.holder,
                "media_endpoints": self._media_endpoints(),
                "application_endpoints": self._app_endpoints()}

    def _app_endpoints(self) -> list[dict[str, object]]:
        assert self.core is not None
        return [{"server": e.server, "role": e.role.value, "address": f"{e.address[0]}:{e.address[1]}",
                 "up": e.up, "enabled": e.enabled, "calls": len(e.calls)}
                for e in self.core.app_servers.endpoints.values()]

    def _media_endpoints(self) -> list[dict[str, object]]:
        assert self.core is not None
        media = self.core.media.endpoints.values() if self.core.media is not None else ()
        return [{"server": e.server, "address": f"{e.address[0]}:{e.address[1]}", "up": e.up,
                 "enabled": e.enabled, "calls": len(e.calls)} for e in media]

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None
        if self._driver is not None:
            self._driver.close()
        if self._transports is not None:
            self._transports.close()
        if self._node_transports is not None:
            self._node_transports.close()
        if self._channel is not None:
            self._channel.close()
        if self._media_control is not None:
            self._media_control.close()
        if self._cdr_writer is not None:
            try:
                self._cdr_writer.flush()
            except SQLAlchemyError:
                log.exception("stopping with %d CDRs not written: the database failed; the journal "
                              "keeps them for the next start", self._cdr_writer.pending)
        if self._journal is not None:
            self._journal.close()
        if self._engine is not None:
            self._engine.dispose()
        if self.state is not None:
            self.state.close()

    def _on_message(self, data: bytes, source: tuple[str, int], transport: str) -> None:
        assert self.core is not None and self._driver is not None
        self.core.receive(data, source, transport, self._driver.now())
        self._driver.after_core_ran()

    def _on_node_message(self, data: bytes, source: tuple[str, int], transport: str) -> None:
        self._node_peers.pop(source, None)
        self._node_peers[source] = None
        if len(self._node_peers) > NODE_PEERS_KEPT:
            del self._node_peers[next(iter(self._node_peers))]
        self._on_message(data, source, transport)

    def _on_media_control(self, data: bytes, source: tuple[str, int]) -> None:
        assert self.core is not None and self._driver is not None
        self.core.receive_media_control(data, source, self._driver.now())
        self._driver.after_core_ran()

    def _refresh_servers(self) -> None:
        """The backend servers as the database lists them now: added, disabled or removed ones."""
        assert self.core is not None and self.core.media is not None and self._servers is not None
        assert self._driver is not None
        servers = self._servers.list_servers()
        now = self._driver.now()
        self.core.media.update_servers([s for s in servers if s.role is ServerRole.MEDIA], now)
        self.core.app_servers.update_servers(servers, now)
        self._driver.after_core_ran()

    def _tick_holding(self, now: float) -> None:
        """Whether this host holds the VIP (`holding.tick`). The changes seen while another held
        it were that one's to tell, and it may have died without telling (a Call Manager host
        gone outright is only seen by the others): so the first worker of a new holder, once its
        probes have settled, tells every server's state as it sees it. The alert engine takes an
        up it had not seen down, or a down it already had, as no change."""
        assert self.core is not None
        was_holder = self.core.holding.holder
        try:
            self.core.holding.tick(holds_address(self.config.sip.host), now)
        finally:  # the store away: whether this host holds the address is known all the same
            self._schedule_server_states(was_holder, now)

    def _schedule_server_states(self, was_holder: bool | None, now: float) -> None:
        assert self.core is not None
        if not self.core.holding.holder or self.place.index != 0:
            self._states_due = None
        elif not was_holder:
            media = self.core.media
            self._states_due = now + max(self.core.app_servers.settled_after,
                                         media.settled_after if media is not None else 0.0)
        elif self._states_due is not None and now >= self._states_due:
            self._states_due = None
            self._publish_server_states()

    def _publish_server_states(self) -> None:
        assert self.core is not None
        views = [*self.core.app_servers.server_states(),
                 *(self.core.media.server_states() if self.core.media is not None else ())]
        for view in views:
            seen = f"{'up' if view.up else 'down'} as the Call Manager taking the VIP sees it"
            self._publish(ServerStateChanged(
                server=view.server, role=view.role.value,
                state=ServerState.UP if view.up else ServerState.DOWN,
                reason=f"{seen}: {view.why}" if view.why else seen, time=datetime.now(UTC)))
        log.info("told the cluster the state of %d servers, as this Call Manager takes the VIP", len(views))

    def _on_server_state(self, server: str, role: ServerRole, up: bool, why: str, now: float) -> None:
        """A server went down or came back. Every worker of every Call Manager sees it; the
        first worker of the VIP holder tells the cluster (one event per change)."""
        assert self.core is not None
        log.warning("%s server %s is %s: %s", role.value, server, "up" if up else "down", why)
        if not self.core.holding.holder or self.place.index != 0:
            return
        event = ServerStateChanged(server=server, role=role.value,
                                   state=ServerState.UP if up else ServerState.DOWN, reason=why,
                                   time=datetime.now(UTC))
        self._publish(event)

    def _on_trunk_state(self, trunk: TrunkEntry, change: TrunkStateChange, now: float) -> None:
        """A trunk's registration or probes changed: its failure is an alert on the cluster's bus.
        One event per change: only the worker holding the trunk's lease registers it, and of the
        probes every worker runs, the first worker of the VIP holder tells."""
        assert self.core is not None
        if change.probed and (not self.core.holding.holder or self.place.index != 0):
            return
        event = ServerStateChanged(server=f"trunk {trunk.key}", role="trunk",
                                   state=ServerState.UP if change.up else ServerState.DOWN,
                                   reason=change.reason, time=datetime.now(UTC))
        self._publish(event)

    def _publish(self, event: ServerStateChanged) -> None:
        """On this daemon's bus and, in a cluster, the cluster's; what the cluster's does not
        take now (Redis away) waits, in order, for the next housekeeping."""
        self.bus.publish(event)
        if self.state is not None and self.state.publish_event is not None:
            if len(self._unpublished) == self._unpublished.maxlen:
                log.error("event %s dropped: %d events wait for the bus already", self._unpublished[0],
                          len(self._unpublished))
            self._unpublished.append(event)
            self._publish_waiting()

    def _publish_waiting(self) -> None:
        assert self.state is not None and self.state.publish_event is not None
        while self._unpublished:
            if not self.state.publish_event(self._unpublished[0]):
                return
            self._unpublished.popleft()

    @property
    def control_paths(self) -> tuple[str, ...]:
        return ("trunks", *LIVE_PATHS)

    async def control(self, request: ControlRequest) -> ControlReply:
        """GET /api/trunks: the registrations this worker holds and the trunks' probes, by trunk."""
        if self.core is not None and self._driver is not None and request.path[:1] and \
                request.path[0] in LIVE_PATHS:  # /api/calls and /api/registrations: see live_view
            return answer_live(request, calls=self.core.b2bua.calls, location=self.core.location,
                               now=self._driver.now(), wall_now=time.time())
        if request.method != "GET" or request.path != ("trunks",) or self.core is None:
            return NOT_FOUND
        now = self._driver.now() if self._driver is not None else 0.0
        return ControlReply(200, trunk_statuses(self.core.trunk_registrations,
                                                self.core.trunk_probes.listing(now), now))

    def report(self) -> dict[str, Any]:
        """What the supervisor of several workers shows of this one."""
        assert self.core is not None
        return {"messages": dict(self.core.stack.counters), "forwarded": dict(self.forwarded),
                "calls": len(self.core.b2bua.calls), "transactions": len(self.core.stack.layer),
                "tcp": self.tcp_report(),
                "media_endpoints": self._media_endpoints(), "application_endpoints": self._app_endpoints(),
                "holds_sip_address": self.core.holding.holder}

    def _on_forward(self, frame: bytes) -> None:
        """A message another worker received for one of our calls, or bytes for our TCP connection."""
        assert self.core is not None and self._driver is not None and self._transports is not None
        try:
            forward = parse_frame(frame)
        except ForwardError as exc:
            log.warning("dropped a frame on the workers' channel: %s", exc)
            return
        if isinstance(forward, Release):
            self.core.b2bua.release(forward.key)
            return
        if forward.send:
            self._transports.write_if_held(forward.peer, forward.data)
            return
        self.forwarded["in"] += 1
        if forward.transport == "TCP":
            self._tcp_holders[forward.peer] = forward.from_worker
        self.core.receive(forward.data, forward.peer, forward.transport, self._driver.now(), forwarded=True)
        self._driver.after_core_ran()

    def _on_undeliverable(self, frame: bytes) -> None:
        """A frame whose worker died while it waited: its message is handled here after all."""
        assert self.core is not None and self._driver is not None
        try:
            forward = parse_frame(frame)
        except ForwardError:
            return
        if isinstance(forward, Forward) and not forward.send:
            self.forwarded["handled_for_absent_worker"] += 1
            self.core.receive(forward.data, forward.peer, forward.transport, self._driver.now(),
                              forwarded=True)
            self._driver.after_core_ran()

    def _flush(self) -> None:
        assert self.core is not None and self._transports is not None
        self._sync_cdrs()
        for index, data, source, transport in self.core.take_forwards():
            self._hand_over(index, data, source, transport)
        if self._channel is not None:
            for index, key in self.core.take_releases():
                self._channel.send(index, Release(key).serialize())
        app_servers = self.core.app_servers.endpoints
        for transmit in self.core.take_transmits():
            if self._node_transports is not None and (transmit.destination in self._node_peers
                                                      or transmit.destination in app_servers):
                # From this host's own address: an application server answers where a request
                # came from, and a standby's request from the VIP would be answered to the holder.
                self._node_transports.send(transmit)
                continue
            if transmit.transport == "TCP" and self._channel is not None and \
                    self._transports.write_if_held(transmit.destination, transmit.data):
                continue
            if transmit.transport == "TCP" and self._channel is not None:
                self._send_on_sibling_connection(transmit.destination, transmit.data)
            else:
                self._transports.send(transmit)
        if self._media_control is not None:
            for data, destination in self.core.take_media_control_transmits():
                self._media_control.sendto(data, destination)

    def _sync_cdrs(self) -> None:
        """The CDRs of calls that just ended go to disk before the messages telling the phones."""
        assert self._cdr_writer is not None
        try:
            self._cdr_writer.sync()
        except OSError as exc:
            if not self._journal_failing:
                log.error("the CDR journal cannot be written (%s): CDRs are kept in memory only "
                          "until the database has them", exc)
            self._journal_failing = True
            return
        if self._journal_failing:
            log.warning("the CDR journal is written again")
            self._journal_failing = False

    def _hand_over(self, index: int, data: bytes, source: tuple[str, int], transport: str) -> None:
        """Give a received message to the worker it belongs to; handle it here if that one is away."""
        assert self.core is not None and self._channel is not None and self._driver is not None
        frame = Forward(data=data, peer=source, transport=transport, from_worker=self.place.index)
        if self._channel.send(index, frame.serialize()):
            self.forwarded["out"] += 1
            return
        self.forwarded["handled_for_absent_worker"] += 1
        self.core.receive(data, source, transport, self._driver.now(), forwarded=True)

    def _send_on_sibling_connection(self, peer: tuple[str, int], data: bytes) -> None:
        """A TCP phone whose connection another worker holds: that worker writes it (all are
        asked when we do not know which; only the holder writes)."""
        assert self._channel is not None
        frame = Forward(data=data, peer=peer, transport="TCP", from_worker=self.place.index,
                        send=True).serialize()
        holder = self._tcp_holders.get(peer)
        if holder is not None and self._channel.send(holder, frame):
            return
        for index in range(self.place.count):
            if index != self.place.index:
                self._channel.send(index, frame)

    async def _housekeep(self) -> None:
        assert self.core is not None and self._cdr_writer is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            # The database may be away for a while: keep the cached directory and the
            # buffered CDRs, and try again next time.
            try:
                self._tick_holding(loop.time())
            except StateStoreUnavailable:
                pass  # the calls of a Call Manager gone are taken over when the store is back
            try:
                self.core.housekeeping(loop.time())
                self._refresh_servers()
            except SQLAlchemyError:
                log.exception("refreshing the directory failed; will retry")
            except StateStoreUnavailable:
                pass  # logged once by the store; purging waits until it is back
            if self._unpublished:
                self._publish_waiting()
            try:
                self._cdr_writer.flush()
            except SQLAlchemyError:
                log.exception("writing CDRs failed; will retry")

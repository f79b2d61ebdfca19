"""The application servers (IVR, queue, meeting) a Call Manager sends calls to: health, load, choice.

Every worker of a server's row is one endpoint (`host:port + i`). Each is probed with a SIP
OPTIONS every `probe_interval` seconds; one that does not answer 2xx within the interval
misses, and after `down_after` misses in a row it is down; after `up_after` answers in a
row it is up again (Kamailio dispatcher semantics). A call that found an endpoint silent
counts as a miss too (`suspect`), so a dead server leaves the rotation on the first call
that meets it. A server whose endpoints are all down is down; when one answers again it
is up: each change is reported (`on_server_state`), which becomes an event on the bus.
The Call Managers' own rows (role callmanager) are probed the same way, so that the one
holding the VIP reports another that died; no call is ever sent to them.

New calls of a role go to the enabled, up endpoint with the fewest calls per unit of
weight (weighted least sessions), except for the roles whose calls must meet on one worker
(`PLACED_BY_NUMBER`: every participant of a meeting room on the worker mixing it, every caller
of a queue on the worker distributing it). Those go
to the number's home (`home_for`): the worker the state store names, while it is available;
else the available worker that rendezvous hashing of the number ranks first, recorded as the
new home by compare-and-set, so every Call Manager process sends the room's callers to the
same worker and a room moves only when its worker fails (not when another comes back).
An endpoint going down is reported (`on_lost`) so that the calls it held can be moved.
Sans-IO: OPTIONS go out through the SIP stack, the time is passed in.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..cluster.models import ServerRole
from ..cluster.servers import ServerEntry
from ..cluster.state import StateStoreUnavailable
from ..cluster.state.homes import HomeStore, InMemoryHomes
from ..runtime.timers import Timer, TimerQueue
from ..sip.headers import Address as SipAddress
from ..sip.message import SipRequest, SipResponse
from ..sip.stack import SERVER_NAME, SipStack
from ..sip.transaction import ClientTransaction, make_tag
from ..sip.uri import SipUri
from .endpoint import Endpoint, ServerStateCallback, ServerStates, ServerStateView, settled_after

log = logging.getLogger(__name__)

EndpointAddress = tuple[str, int]
PLACED_BY_NUMBER = frozenset({ServerRole.MEETING, ServerRole.QUEUE})
"""Roles whose calls to one number must all reach the same worker (a room's mix, a queue's line)."""


@dataclass(frozen=True)
class ProbeSettings:
    probe_interval: float = 1.0
    down_after: int = 2
    up_after: int = 2


@dataclass(eq=False)
class AppEndpoint(Endpoint):
    """One worker of an application server, as the Call Manager sees it."""

    role: ServerRole = field(kw_only=True)
    last_probe_rtt: float | None = None
    failure: str = "no answer to SIP OPTIONS"
    """What its last miss was, for the down event's reason."""


def _address_text(address: EndpointAddress) -> str:
    return f"{address[0]}:{address[1]}"


def _rank(key: str, endpoint: AppEndpoint) -> bytes:
    """Rendezvous hashing: every process ranks the endpoints for `key` alike."""
    return hashlib.blake2b(f"{key}|{_address_text(endpoint.address)}".encode(), digest_size=8).digest()


class AppServerPool:
    def __init__(self, *, stack: SipStack, timers: TimerQueue, on_server_state: ServerStateCallback,
                 settings: ProbeSettings = ProbeSettings(), make_tag: Callable[[], str] = make_tag,
                 homes: HomeStore | None = None,
                 on_lost: Callable[[AppEndpoint, float], None] | None = None) -> None:
        self._stack = stack
        self._homes = homes or InMemoryHomes()
        self._on_lost = on_lost
        self._timers = timers
        self._states = ServerStates(on_server_state)
        self.settings = settings
        self._make_tag = make_tag
        self.endpoints: dict[EndpointAddress, AppEndpoint] = {}
        self._probe_timer: Timer | None = None
        self._probes: dict[EndpointAddress, ClientTransaction] = {}

    # -- the server list ------------------------------------------------------------------

    def update_servers(self, servers: Iterable[ServerEntry], now: float) -> None:
        """Take the application servers' (and Call Managers') rows as they are now: new ones join,
        removed ones drain."""
        seen: set[EndpointAddress] = set()
        for server in servers:
            if not server.role.answers_sip:
                continue
            for address in server.endpoints:
                seen.add(address)
                endpoint = self.endpoints.get(address)
                if endpoint is None:
                    log.info("%s endpoint %s:%s of server %s added", server.role, *address, server.name)
                    endpoint = self.endpoints[address] = AppEndpoint(server.name, address, server.weight,
                                                                     server.enabled, role=server.role)
                    self._states.add(server.name, server.role)
                endpoint.server, endpoint.role, endpoint.weight = server.name, server.role, server.weight
                endpoint.enabled = server.enabled
                endpoint.removed = False
        for address, endpoint in list(self.endpoints.items()):
            if address not in seen:
                endpoint.removed = True
                if not endpoint.calls:
                    del self.endpoints[address]
        self._states.keep_only({endpoint.server for endpoint in self.endpoints.values()})
        if self._probe_timer is None and self.endpoints:
            self._probe_timer = self._timers.schedule(now, self._probe_all)

    def pick(self, role: ServerRole, *, exclude: Iterable[AppEndpoint] = ()) -> AppEndpoint | None:
        """The available endpoint of `role` with the fewest calls per weight (None for a role
        that takes no calls: the Call Managers' rows)."""
        if not role.is_application:
            return None
        excluded = set(exclude)
        candidates = [e for e in self.endpoints.values()
                      if e.role is role and e.available and e not in excluded]
        return min(candidates, key=lambda e: e.load, default=None)

    def home_for(self, role: ServerRole, number: str, realm: str, *,
                 exclude: Iterable[AppEndpoint] = ()) -> AppEndpoint | None:
        """The endpoint holding `number` of tenant `realm` (a meeting room): its home if that is
        available, else the best ranked available one, which becomes its home."""
        if not role.is_application:
            return None
        excluded = set(exclude)
        key = f"{role.value}:{realm}:{number}"
        try:
            current = self._homes.home(key)
        except StateStoreUnavailable:
            current = None  # without the store, the ranking alone: still one choice for all
        by_text = {_address_text(e.address): e for e in self.endpoints.values()
                   if e.role is role and e.available and e not in excluded}
        if current in by_text:
            return by_text[current]
        if not by_text:
            return None
        chosen = max(by_text.values(), key=lambda e: _rank(key, e))
        try:
            home = self._homes.move(key, current, _address_text(chosen.address))
        except StateStoreUnavailable:
            return chosen
        if home != _address_text(chosen.address):
            log.info("%s %s@%s: another Call Manager placed it on %s", role.value, number, realm, home)
        return by_text.get(home, chosen)

    def suspect(self, endpoint: AppEndpoint, now: float, why: str) -> None:
        """A call found `endpoint` silent or failing: a miss, as a probe's would be."""
        log.warning("%s endpoint %s: %s", endpoint.role, endpoint, why)
        self._missed(endpoint, now)

    # -- probing --------------------------------------------------------------------------

    def _probe_all(self, now: float) -> None:
        for endpoint in list(self.endpoints.values()):
            if endpoint.removed and not endpoint.calls:
                del self.endpoints[endpoint.address]
                continue
            self._probe(endpoint, now)
        interval = self.settings.probe_interval
        self._probe_timer = self._timers.schedule(now + interval, self._probe_all) if self.endpoints else None

    def _probe(self, endpoint: AppEndpoint, now: float) -> None:
        previous = self._probes.pop(endpoint.address, None)
        if previous is not None:  # unanswered within the interval: a miss, and no more retransmissions
            self._stack.layer.abandon(previous)
            self._missed(endpoint, now)
        host, port = endpoint.address
        target = SipUri(host=host, port=port)
        request = SipRequest("OPTIONS", target, [
            ("Via", self._stack.via("UDP")),
            ("Max-Forwards", "70"),
            ("From", str(SipAddress(uri=SipUri(host=self._stack.host, port=self._stack.port),
                                    params={"tag": self._make_tag()}))),
            ("To", str(SipAddress(uri=target))),
            ("Call-ID", make_tag() + make_tag()),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", SERVER_NAME),
        ])
        tx = self._stack.send_request(request, endpoint.address, "UDP", now)
        self._probes[endpoint.address] = tx

        def on_response(response: SipResponse, t: float) -> None:
            if self._probes.get(endpoint.address) is not tx or response.status_code == 408:
                return  # our own transaction's timeout: the next probe counts the miss
            del self._probes[endpoint.address]
            endpoint.last_probe_rtt = t - now
            if 200 <= response.status_code < 300:
                self._answered(endpoint, t)
            else:  # alive but refusing (503 while overloaded or stopping): no calls for it
                self._missed(endpoint, t, f"SIP OPTIONS answered {response.status_code} {response.reason}")

        tx.user_data = on_response

    def _missed(self, endpoint: AppEndpoint, now: float, failure: str = "no answer to SIP OPTIONS") -> None:
        endpoint.failure = failure
        if endpoint.count_miss(self.settings.down_after):
            log.warning("%s endpoint %s is down after %d misses", endpoint.role, endpoint, endpoint.misses)
            self._server_changed(endpoint, now)
            if self._on_lost is not None and endpoint.calls:
                self._on_lost(endpoint, now)

    def _answered(self, endpoint: AppEndpoint, now: float) -> None:
        if endpoint.count_answer(self.settings.up_after):
            log.info("%s endpoint %s is up again", endpoint.role, endpoint)
            self._server_changed(endpoint, now)

    def _server_changed(self, endpoint: AppEndpoint, now: float) -> None:
        self._states.update(endpoint.server, endpoint.role, self.endpoints.values(), lambda up, at: (
            f"answers SIP OPTIONS again at {at}" if up else
            f"{endpoint.failure} at {at} ({self.settings.down_after} probes missed)"), now)

    def server_up(self, name: str) -> bool:
        return self._states.up(name)

    def server_states(self) -> list[ServerStateView]:
        """Every server's state as this pool sees it now."""
        return self._states.snapshot()

    @property
    def settled_after(self) -> float:
        return settled_after(self.settings.probe_interval, self.settings.down_after, self.settings.up_after)

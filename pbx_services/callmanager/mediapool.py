"""The media endpoints a Call Manager anchors calls on: their health, their load, and the control client.

Every media worker is one endpoint (a server's row in the database gives its first control
port and its number of workers). Each is pinged every `ping_interval` seconds; after
`down_after` missed pings in a row it is down, after `up_after` answers in a row it is up
again (Kamailio dispatcher semantics). A pong with a new `boot_id` means the worker
restarted and forgot its calls. Either way `on_lost(endpoint)` is called so that the calls
anchored there are re-homed (on the restarted endpoint too, which answers again). New
calls go to the enabled, up endpoint with the fewest calls
per unit of weight. A server whose endpoints are all down is down, and up again when one
answers: each change is reported (`on_server_state`), which becomes an event on the bus.

Requests are retransmitted (250 ms, 500 ms, 1 s) and given up after 2 s, when their
callback gets None. Sans-IO: datagrams out through `take_transmits()`, time passed in.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..cluster.media_control import RESULT_PONG, ControlMessage, ControlProtocolError, reply, request
from ..cluster.models import ServerRole
from ..cluster.servers import ServerEntry
from ..runtime.timers import Timer, TimerQueue
from .endpoint import Endpoint, ServerStateCallback, ServerStates, ServerStateView, settled_after

log = logging.getLogger(__name__)

Address = tuple[str, int]
ReplyCallback = Callable[[dict[str, Any] | None, float], None]
"""Gets the reply's fields, or None when the endpoint did not answer in time."""

RETRANSMIT_INTERVALS = (0.25, 0.5, 1.0)
REQUEST_TIMEOUT = 2.0


@dataclass(frozen=True)
class PoolSettings:
    ping_interval: float = 1.0
    down_after: int = 3
    up_after: int = 2
    rehome_timeout: float = 15.0
    """Seconds a call whose endpoint was lost waits for one to take it before it is ended."""


@dataclass(eq=False)
class MediaEndpoint(Endpoint):
    """One media worker, as the Call Manager sees it."""

    boot_id: str | None = None
    """What its last pong said; a new one means it restarted and forgot its calls."""


@dataclass(eq=False)
class _Pending:
    message: ControlMessage
    destination: Address
    on_reply: ReplyCallback
    timer: Timer | None = None
    tries: int = 0


class MediaPool:
    def __init__(self, *, timers: TimerQueue, on_lost: Callable[[MediaEndpoint, float], None],
                 on_timeout_notice: Callable[[str, float], None],
                 settings: PoolSettings = PoolSettings(),
                 on_server_state: ServerStateCallback | None = None) -> None:
        self._timers = timers
        self._on_lost = on_lost
        self._states = ServerStates(on_server_state or (lambda *_: None))
        self._on_timeout_notice = on_timeout_notice
        self.ping_interval = settings.ping_interval
        self.down_after = settings.down_after
        self.up_after = settings.up_after
        self.rehome_timeout = settings.rehome_timeout
        self.endpoints: dict[Address, MediaEndpoint] = {}
        self._pending: dict[str, _Pending] = {}
        self._transmits: list[tuple[bytes, Address]] = []
        self._cookie_prefix = os.urandom(4).hex()
        self._cookies = itertools.count(1)
        self._ping_timer: Timer | None = None
        self.counters = {"control_garbage": 0, "control_unmatched": 0, "control_timeouts": 0}

    # -- the server list ----------------------------------------------------------------

    def update_servers(self, servers: Iterable[ServerEntry], now: float) -> None:
        """Take the media servers' rows as they are now: new ones join, removed ones drain."""
        seen: set[Address] = set()
        for server in servers:
            for address in server.endpoints:
                seen.add(address)
                endpoint = self.endpoints.get(address)
                if endpoint is None:
                    log.info("media endpoint %s:%s of server %s added", *address, server.name)
                    endpoint = self.endpoints[address] = MediaEndpoint(server.name, address, server.weight,
                                                                       server.enabled)
                    self._states.add(server.name, ServerRole.MEDIA)
                endpoint.server, endpoint.weight = server.name, server.weight
                endpoint.enabled = server.enabled
                endpoint.removed = False
        for address, endpoint in list(self.endpoints.items()):
            if address not in seen:
                endpoint.removed = True
                if not endpoint.calls:
                    del self.endpoints[address]
        self._states.keep_only({endpoint.server for endpoint in self.endpoints.values()})
        if self._ping_timer is None and self.endpoints:
            self._ping_timer = self._timers.schedule(now, self._ping_all)

    def endpoint_for(self, server: str, address: Address) -> MediaEndpoint:
        """The endpoint at `address`, for a call taken over that is anchored there; one the
        database no longer lists is kept as removed (no new calls) while such calls last."""
        endpoint = self.endpoints.get(address)
        if endpoint is None:
            endpoint = MediaEndpoint(server, address, 1, enabled=False, removed=True)
            self.endpoints[address] = endpoint
        return endpoint

    def pick(self, *, exclude: MediaEndpoint | None = None) -> MediaEndpoint | None:
        """The available endpoint with the fewest calls per weight (weighted least-calls)."""
        candidates = [e for e in self.endpoints.values() if e.available and e is not exclude]
        return min(candidates, key=lambda e: e.load, default=None)

    # -- requests -------------------------------------------------------------------------

    def request(self, endpoint: MediaEndpoint, command: str, now: float, on_reply: ReplyCallback,
                **fields: Any) -> None:
        cookie = self._next_cookie()
        pending = _Pending(request(cookie, command, **fields), endpoint.address, on_reply)
        self._pending[cookie] = pending
        self._send(pending, now)

    def _next_cookie(self) -> str:
        return f"{self._cookie_prefix}{next(self._cookies)}"

    def _send(self, pending: _Pending, now: float) -> None:
        self._transmits.append((pending.message.serialize(), pending.destination))
        if pending.tries < len(RETRANSMIT_INTERVALS):
            wait = RETRANSMIT_INTERVALS[pending.tries]
        else:
            wait = REQUEST_TIMEOUT - sum(RETRANSMIT_INTERVALS)
        pending.tries += 1
        pending.timer = self._timers.schedule(now + wait, lambda t: self._retry(pending, t))

    def _retry(self, pending: _Pending, now: float) -> None:
        if self._pending.get(pending.message.cookie) is not pending:
            return
        if pending.tries > len(RETRANSMIT_INTERVALS):
            del self._pending[pending.message.cookie]
            self.counters["control_timeouts"] += 1
            pending.on_reply(None, now)
            return
        self._send(pending, now)

    def receive(self, data: bytes, source: Address, now: float) -> None:
        try:
            message = ControlMessage.parse(data)
        except ControlProtocolError as exc:
            self.counters["control_garbage"] += 1
            log.info("unusable control datagram from %s:%s: %s", *source, exc.reason)
            return
        if message.is_request:
            self._on_notification(message, source, now)
            return
        pending = self._pending.pop(message.cookie, None)
        if pending is None or pending.destination != source:
            if pending is not None:
                self._pending[message.cookie] = pending
            self.counters["control_unmatched"] += 1
            return
        if pending.timer is not None:
            pending.timer.cancel()
        pending.on_reply(message.body, now)

    def _on_notification(self, message: ControlMessage, source: Address, now: float) -> None:
        self._transmits.append((reply(message.cookie).serialize(), source))
        if message.command == "timeout" and isinstance(message.body.get("call_id"), str):
            self._on_timeout_notice(message.body["call_id"], now)

    def take_transmits(self) -> list[tuple[bytes, Address]]:
        transmits, self._transmits = self._transmits, []
        return transmits

    # -- health ---------------------------------------------------------------------------

    def _ping_all(self, now: float) -> None:
        for endpoint in list(self.endpoints.values()):
            if endpoint.removed and not endpoint.calls:
                del self.endpoints[endpoint.address]
                continue
            self._ping(endpoint, now)
        self._ping_timer = self._timers.schedule(now + self.ping_interval, self._ping_all) \
            if self.endpoints else None

    def _ping(self, endpoint: MediaEndpoint, now: float) -> None:
        cookie = self._next_cookie()

        def on_reply(body: dict[str, Any] | None, t: float) -> None:
            if body is None or body.get("result") != RESULT_PONG:
                self._missed(endpoint, t)
            else:
                self._answered(endpoint, str(body.get("boot_id")), t)

        # One try: the next ping is the retransmission; answered or not before it goes.
        pending = _Pending(request(cookie, "ping"), endpoint.address, on_reply,
                           tries=len(RETRANSMIT_INTERVALS))
        self._pending[cookie] = pending
        self._transmits.append((pending.message.serialize(), endpoint.address))
        pending.timer = self._timers.schedule(now + self.ping_interval * 0.9,
                                              lambda t: self._ping_timed_out(pending, t))

    def _ping_timed_out(self, pending: _Pending, now: float) -> None:
        if self._pending.pop(pending.message.cookie, None) is pending:
            pending.on_reply(None, now)

    def _missed(self, endpoint: MediaEndpoint, now: float) -> None:
        if endpoint.count_miss(self.down_after):
            log.warning("media endpoint %s is down after %d missed pings", endpoint, endpoint.misses)
            self._server_changed(endpoint, now)
            self._on_lost(endpoint, now)

    def _answered(self, endpoint: MediaEndpoint, boot_id: str, now: float) -> None:
        came_back = endpoint.count_answer(self.up_after)
        restarted = endpoint.boot_id is not None and boot_id != endpoint.boot_id
        endpoint.boot_id = boot_id
        if restarted and endpoint.calls:
            log.warning("media endpoint %s restarted: its %d calls are gone", endpoint, len(endpoint.calls))
            self._on_lost(endpoint, now)
        if came_back:
            log.info("media endpoint %s is up again", endpoint)
            self._server_changed(endpoint, now)

    def _server_changed(self, endpoint: MediaEndpoint, now: float) -> None:
        self._states.update(endpoint.server, ServerRole.MEDIA, self.endpoints.values(), lambda up, at: (
            f"answers control pings again at {at}" if up else
            f"no answer to control pings at {at} ({self.down_after} pings missed)"), now)

    def server_states(self) -> list[ServerStateView]:
        """Every media server's state as this pool sees it now."""
        return self._states.snapshot()

    @property
    def settled_after(self) -> float:
        return settled_after(self.ping_interval, self.down_after, self.up_after)

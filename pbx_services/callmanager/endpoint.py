"""A backend endpoint as a Call Manager's pools see it: a media worker or an application-server
worker, its weight, its calls, and whether it is up (Kamailio dispatcher semantics).

After `down_after` missed probes in a row an endpoint is down; after `up_after` answers in a
row it is up again. An endpoint is taken as up until its probes say otherwise, so that calls
work from the first second. New calls go to the available endpoint with the fewest calls
per unit of weight. The media pool (control pings) and the application-server pool (SIP
OPTIONS) each add what their probes need.

A server is up while one of its endpoints is (`ServerStates`): each change is reported once,
and a Call Manager taking the VIP tells every server's state as it sees it (`snapshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..cluster.models import ServerRole

ServerStateCallback = Callable[[str, ServerRole, bool, str, float], None]
"""(server name, role, up, why, now)"""


@dataclass(eq=False)
class Endpoint:
    server: str
    """Name of its server's row."""
    address: tuple[str, int]
    weight: int
    enabled: bool
    up: bool = True
    """Taken as up until probes say otherwise, so that calls work from the first second."""
    misses: int = 0
    answers: int = 0
    calls: set[Any] = field(default_factory=set)
    """The calls it holds (the B2BUA's objects)."""
    removed: bool = False
    """Its server left the database: no new calls; its calls stay until they end."""

    @property
    def available(self) -> bool:
        return self.up and self.enabled and not self.removed

    @property
    def load(self) -> float:
        return len(self.calls) / self.weight

    def __str__(self) -> str:
        return f"{self.server} {self.address[0]}:{self.address[1]}"

    def count_miss(self, down_after: int) -> bool:
        """A missed probe; whether it takes the endpoint down."""
        self.answers = 0
        self.misses += 1
        if self.up and self.misses >= down_after:
            self.up = False
            return True
        return False

    def count_answer(self, up_after: int) -> bool:
        """An answered probe; whether it brings the endpoint up again."""
        self.misses = 0
        self.answers += 1
        if not self.up and self.answers >= up_after:
            self.up = True
            return True
        return False


def settled_after(probe_interval: float, down_after: int, up_after: int) -> float:
    """Seconds after which a server's state has been probed enough to be known: the probes
    that take an endpoint down or up, and one more interval for the last answer."""
    return probe_interval * (max(down_after, up_after) + 1)


@dataclass(frozen=True, slots=True)
class ServerStateView:
    server: str
    role: ServerRole
    up: bool
    why: str
    """What its last change was ("" while it has not changed since it was added)."""


class ServerStates:
    """The servers' states, from their endpoints': a server is up while one of them is."""

    def __init__(self, on_change: ServerStateCallback) -> None:
        self._on_change = on_change
        self._states: dict[str, ServerStateView] = {}

    def add(self, server: str, role: ServerRole) -> None:
        """A server seen for the first time: up, as its endpoints are until probed."""
        if server not in self._states:
            self._states[server] = ServerStateView(server, role, True, "")

    def update(self, server: str, role: ServerRole, endpoints: Iterable[Endpoint],
               why: Callable[[bool, str], str], now: float) -> None:
        """One of the server's `endpoints` changed: report the server's change, if it is one,
        with `why(up, its endpoints' addresses)`."""
        endpoints = [endpoint for endpoint in endpoints if endpoint.server == server]
        up = any(endpoint.up for endpoint in endpoints)
        previous = self._states.get(server)
        if (previous is None or previous.up) == up:
            return
        addresses = ", ".join(f"{e.address[0]}:{e.address[1]}" for e in endpoints)
        view = self._states[server] = ServerStateView(server, role, up, why(up, addresses))
        self._on_change(view.server, view.role, view.up, view.why, now)

    def keep_only(self, servers: set[str]) -> None:
        for name in list(self._states):
            if name not in servers:
                del self._states[name]

    def up(self, server: str) -> bool:
        view = self._states.get(server)
        return view is None or view.up

    def snapshot(self) -> list[ServerStateView]:
        return [self._states[name] for name in sorted(self._states)]

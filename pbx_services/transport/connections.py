"""The TCP connections a listener holds: who may connect, and when a connection is closed.

Sans-IO (the time comes in as `now`); the SIP and HTTP transports accept, close and sweep.
The rules, so that idle connections cannot take the server's descriptors:

- A source IP address holds at most `max_per_source` accepted connections; one more is refused.
- The table holds at most `max_connections` (accepted and opened by us). When it is full, a
  new connection takes the place of the oldest one that has not yet sent a complete message
  (its owner closes that one); only when every connection held has spoken is the new one
  refused. A flood of connections that say nothing thus never shuts out a phone.
- Connections we open ourselves (`source` None) are never refused for the global limit while
  `outbound_headroom` more fit beside `max_connections`: a response or a request to a TCP
  phone goes out even when phones fill the table.
- An accepted connection has `first_message_timeout` seconds to send its first complete
  message (a byte a second that never completes one is no message); after that, a connection
  with no complete message or keep-alive ping (RFC 5626) for `idle_timeout` seconds is closed.

Both deadlines are kept in two queues ordered by time (accepted at, last activity), so that
activity costs a move to the end of a queue and a sweep looks only at the connections that
are due, however many are held: no timer per connection.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily

C = TypeVar("C", bound=Hashable)

LISTEN_BACKLOG = 1024
"""Connections the kernel completes before a listener accepts them: a burst of phones or
probes (or of a flood, refused at once) does not make others wait for their SYN to be sent
again, a second later and then three."""
CLOSE_LOG_INTERVAL = 10.0
"""Seconds between two log lines about connections closed for one reason."""


class CloseReason(enum.StrEnum):
    PER_SOURCE_LIMIT = "per_source_limit"
    """Refused: its source IP address holds `max_per_source` connections already."""
    GLOBAL_LIMIT = "global_limit"
    """Refused, or closed to make room, when the table holds `max_connections`."""
    FIRST_MESSAGE_DEADLINE = "first_message_deadline"
    """No complete message within `first_message_timeout` of being accepted."""
    IDLE_TIMEOUT = "idle_timeout"
    """No complete message or keep-alive for `idle_timeout`."""


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    max_per_source: int
    first_message_timeout: float
    idle_timeout: float
    outbound_headroom: int = 0
    """Connections we open that may go past `max_connections` (the descriptor budget holds them)."""


class ConnectionTable(Generic[C]):
    """The connections of one or more listeners that share a descriptor budget."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._sources: dict[C, str | None] = {}
        """Every connection held, with its source IP address (None: one we opened)."""
        self._per_source: dict[str, int] = {}
        self._awaiting: OrderedDict[C, float] = OrderedDict()
        """Accepted connections without a complete message yet, by the time they were accepted."""
        self._active: OrderedDict[C, float] = OrderedDict()
        """The others, by the time of their last complete message (or of their opening)."""

    def __len__(self) -> int:
        return len(self._sources)

    def __contains__(self, connection: object) -> bool:
        return connection in self._sources

    def connections(self) -> list[C]:
        return list(self._sources)

    def admit(self, connection: C, source: str | None, now: float) -> tuple[C, CloseReason] | None:
        """Hold `connection`, accepted from IP address `source` (None: opened by us).

        Returns the connection to close now, and why: `connection` itself when it is refused,
        or the one whose place it takes; None when there was room.
        """
        limits = self.limits
        if source is not None and self._per_source.get(source, 0) >= limits.max_per_source:
            return connection, CloseReason.PER_SOURCE_LIMIT
        room = limits.max_connections + (limits.outbound_headroom if source is None else 0)
        evicted: tuple[C, CloseReason] | None = None
        if len(self._sources) >= room:
            if not self._awaiting:
                return connection, CloseReason.GLOBAL_LIMIT
            oldest = next(iter(self._awaiting))
            self.remove(oldest)
            evicted = oldest, CloseReason.GLOBAL_LIMIT
        self._sources[connection] = source
        if source is None:
            self._active[connection] = now
        else:
            self._per_source[source] = self._per_source.get(source, 0) + 1
            self._awaiting[connection] = now
        return evicted

    def spoke(self, connection: C, now: float) -> None:
        """`connection` delivered a complete message or a keep-alive ping."""
        if self._awaiting.pop(connection, None) is None:
            if connection not in self._active:
                return  # closed already (its bytes were on their way)
            self._active.move_to_end(connection)
        self._active[connection] = now

    def remove(self, connection: C) -> None:
        """Forget `connection` (closed, refused or gone); nothing happens if it is not held."""
        if connection not in self._sources:
            return
        source = self._sources.pop(connection)
        self._awaiting.pop(connection, None)
        self._active.pop(connection, None)
        if source is not None:
            left = self._per_source[source] - 1
            if left:
                self._per_source[source] = left
            else:
                del self._per_source[source]

    def expired(self, now: float) -> list[tuple[C, CloseReason]]:
        """The connections past a deadline, no longer held: their owners close them."""
        due: list[tuple[C, CloseReason]] = []
        for queue, timeout, reason in ((self._awaiting, self.limits.first_message_timeout,
                                        CloseReason.FIRST_MESSAGE_DEADLINE),
                                       (self._active, self.limits.idle_timeout, CloseReason.IDLE_TIMEOUT)):
            while queue:
                connection, since = next(iter(queue.items()))
                if now - since < timeout:
                    break
                self.remove(connection)
                due.append((connection, reason))
        return due


class CloseLog:
    """One log line per reason and `interval` about the connections closed for it, not one each."""

    def __init__(self, *, logger: logging.Logger, what: str, interval: float = CLOSE_LOG_INTERVAL) -> None:
        self._log = logger
        self._what = what
        self._interval = interval
        self._pending: dict[CloseReason, tuple[int, str]] = {}
        """Closes not logged yet: how many, and the last source."""
        self._logged_at: dict[CloseReason, float] = {}

    def note(self, reason: CloseReason, source: str, now: float) -> None:
        count, _ = self._pending.get(reason, (0, ""))
        self._pending[reason] = count + 1, source
        self.flush(now)

    def flush(self, now: float) -> None:
        """Log what is due (the sweep calls it, so that the last of a burst is said too)."""
        for reason, (count, source) in list(self._pending.items()):
            logged_at = self._logged_at.get(reason)
            if logged_at is not None and now - logged_at < self._interval:
                continue
            since = "" if logged_at is None else f" in the last {now - logged_at:.0f} s"
            self._log.warning("closed %d %s connection%s (%s)%s, the last from %s", count, self._what,
                              "" if count == 1 else "s", reason.value, since, source)
            self._logged_at[reason] = now
            del self._pending[reason]


def closed_counter_key(prefix: str, reason: CloseReason) -> str:
    """The key in a transport's `counters` of the connections closed for `reason`."""
    return f"{prefix}{reason.value}"


def closed_connections_family(name: str, documentation: str, prefix: str, labels: Sequence[str],
                              rows: Iterable[tuple[Sequence[str], Mapping[str, int]]]) -> CounterMetricFamily:
    """A counter of closed connections by reason, from `rows` of (label values, counters)."""
    family = CounterMetricFamily(name, documentation, labels=[*labels, "reason"])
    for values, counters in rows:
        for reason in CloseReason:
            family.add_metric([*values, reason.value], counters.get(closed_counter_key(prefix, reason), 0))
    return family

"""A process's file descriptors, shared out at start-up under its RLIMIT_NOFILE.

Every socket is a descriptor: an RTP or RTCP port of a call, a database or Redis connection,
an HTTP client of /health, a SIP TCP connection. A process at its limit fails whatever needs
the next one, so a flood of TCP connections that reaches it stops /health and makes new calls
fail for want of RTP ports (503). Hence the budget: the parts of a process say what they may
hold at most (`DescriptorNeed`), and the TCP connections get what is left, no more than
configured. The soft limit is raised toward the hard one when that makes room; what cannot
fit is said in one line that names the config keys to change.

A process has its own limit (its workers too, each with its own share of the RTP ports).
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..cluster.config import HttpConfig
from ..rtp.ports import worker_port_ranges

log = logging.getLogger(__name__)

BASE_DESCRIPTORS = 64
"""What every daemon process holds besides its sockets of calls and clients: standard streams,
the event loop's epoll and wake-up pipe, listening sockets, pipes to its supervisor or workers,
the media control socket, the workers' channel, files being read (prompts, /proc)."""
DATABASE_POOL_DESCRIPTORS = 48
"""SQLAlchemy's pool (5 connections and 10 more on demand), each SQLite connection with its
database, write-ahead log and shared-memory files open."""
STATE_STORE_DESCRIPTORS = 16
"""Redis: the state store's connection, the event bus's, Sentinel's."""

Limits = tuple[int, int]


@dataclass(frozen=True)
class DescriptorNeed:
    """Descriptors a part of the process holds at most."""

    what: str
    """What holds them ("RTP ports of the media server")."""
    count: int
    keys: tuple[str, ...] = ()
    """The config keys that set how many (none for what is fixed)."""

    def __str__(self) -> str:
        return f"{self.count} for {self.what}" + (f" ({', '.join(self.keys)})" if self.keys else "")


class DescriptorLimitError(Exception):
    """The fixed needs of the process do not fit under its descriptor limit; the message says
    which keys to change."""


BASE_NEED = DescriptorNeed("the process itself", BASE_DESCRIPTORS)
DATABASE_NEED = DescriptorNeed("the database pool", DATABASE_POOL_DESCRIPTORS)
STATE_STORE_NEED = DescriptorNeed("the state store", STATE_STORE_DESCRIPTORS, ("state.url",))


def http_need(max_connections: int) -> DescriptorNeed:
    return DescriptorNeed("HTTP clients", max_connections, ("http.max_connections",))


def rtp_ports_need(section: str, port_range: tuple[int, int]) -> DescriptorNeed:
    """The RTP and RTCP sockets of every port of `port_range` (a worker's share of the section's)."""
    return DescriptorNeed(f"RTP ports {port_range[0]}-{port_range[1]}", port_range[1] - port_range[0] + 1,
                          (f"{section}.port_min", f"{section}.port_max"))


def fit_descriptors(needs: Sequence[DescriptorNeed], *, connections: int = 0, connections_key: str = "",
                    get_limits: Callable[[], Limits] | None = None,
                    set_limits: Callable[[Limits], None] | None = None) -> int:
    """How many of the `connections` wanted (set by `connections_key`) fit beside `needs`.

    Raises the soft RLIMIT_NOFILE toward the hard one as far as the whole wants (children
    started afterwards inherit it). Raises DescriptorLimitError when `needs` alone do not fit.
    """
    get_limits = get_limits or (lambda: resource.getrlimit(resource.RLIMIT_NOFILE))
    set_limits = set_limits or (lambda limits: resource.setrlimit(resource.RLIMIT_NOFILE, limits))
    reserved = sum(need.count for need in needs)
    wanted = reserved + connections
    soft, hard = get_limits()
    if soft != resource.RLIM_INFINITY and soft < wanted and soft != hard:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            set_limits((raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE from %d to %d: %s", soft, raised, exc)
    if soft == resource.RLIM_INFINITY:
        return connections
    shown = ", ".join(str(need) for need in needs)
    if reserved > soft:
        keys = [key for need in sorted(needs, key=lambda need: -need.count) for key in need.keys]
        raise DescriptorLimitError(
            f"{', '.join(keys) or 'RLIMIT_NOFILE'}: {reserved} descriptors needed ({shown}) but the process "
            f"may open only {soft} (RLIMIT_NOFILE, hard limit {hard}): narrow the port ranges or raise "
            f"the limit (LimitNOFILE of the unit, ulimit -n)")
    granted = min(connections, soft - reserved)
    if granted < connections:
        log.warning("%s: %d connections do not fit under RLIMIT_NOFILE %d (hard limit %d) beside %d "
                    "descriptors reserved (%s): %d allowed; raise LimitNOFILE or lower %s",
                    connections_key, connections, soft, hard, reserved, shown, granted, connections_key)
    else:
        log.info("descriptors: %d reserved (%s)%s, under RLIMIT_NOFILE %d", reserved, shown,
                 f", {granted} for {connections_key}" if connections else "", soft)
    return granted


def worker_descriptors_problem(*, section: str, ports: tuple[int, int], workers: int, http: HttpConfig,
                               database: bool) -> str | None:
    """What keeps a worker of a media or application server from fitting under the descriptor
    limit (its share of the section's RTP `ports`, the database pool if it has one, /health of
    its parent counted too), or None. The soft limit is raised for it if that helps."""
    largest = max(worker_port_ranges(*ports, workers), key=lambda share: share[1] - share[0])
    needs = [BASE_NEED, rtp_ports_need(section, largest), *([DATABASE_NEED] if database else []),
             *([http_need(http.max_connections)] if http.port else [])]
    try:
        fit_descriptors(needs)
    except DescriptorLimitError as exc:
        return str(exc)
    return None

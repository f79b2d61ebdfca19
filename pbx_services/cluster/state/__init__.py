"""State that more than one Call Manager process must see, behind typed Protocols.

Location (`location.LocationStore`), digest nonce-counts (`sip.digest.NonceCounts`), failed
authentications and blocks (`auth_failures.AuthFailureStore`), the calls in progress
(`dialogs.DialogStore`), the homes of meeting rooms (`homes.HomeStore`), what queue agents
are doing (`agents.AgentStore`), leases (`leases.LeaseStore`) and the calls counted against
the concurrent-call limits (`call_counts.CallCountStore`) and the users' lines for BLF
(`lines.LineStore`), each with two
implementations: in this process (the all-in-one's embedded default: nothing to install) and
in Redis (`redis`), shared by every worker and every Call Manager of a cluster.
`open_state_store(url)` picks by `state.url`. No role reaches Redis except through these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...sip.digest import InMemoryNonceCounts, NonceCounts
from .agents import AgentStore, InMemoryAgents
from .auth_failures import AuthFailureStore, InMemoryAuthFailures
from .call_counts import CallCountStore, InMemoryCallCounts
from .dialogs import DialogStore, InMemoryDialogs
from .errors import StateStoreUnavailable
from .homes import HomeStore, InMemoryHomes
from .leases import InMemoryLeases, LeaseStore
from .lines import InMemoryLines, LineStore
from .location import InMemoryLocation, LocationStore

__all__ = ["StateStore", "StateStoreUnavailable", "open_state_store"]


@dataclass(frozen=True)
class StateStore:
    location: LocationStore
    nonce_counts: NonceCounts
    auth_failures: AuthFailureStore
    dialogs: DialogStore
    homes: HomeStore
    """Which application server worker holds each meeting room (later each queue)."""
    agents: AgentStore
    """What each queue agent is doing (ringing, on a call...): one queue call at a time."""
    leases: LeaseStore
    """Who does what only one process may do at a time (distribute a queue)."""
    call_counts: CallCountStore
    """The calls of each user and tenant in progress, for their concurrent-call limits."""
    lines: LineStore
    """Each worker's users' dialogs, for BLF watchers on every worker."""
    description: str
    """Where it is, for the log (a Redis URL without its password)."""
    closer: Callable[[], None] | None = None
    publish_event: Callable[[object], bool] | None = None
    """Puts an event on the cluster's bus (the Redis stream); False (logged) when it could not.
    None in-process, where the daemon's own bus is the only one."""

    def close(self) -> None:
        if self.closer is not None:
            self.closer()


def open_state_store(url: str | None, *, nonce_ttl: float, timeout: float = 0.5) -> StateStore:
    """The in-process store when `url` is None, else Redis at `url`, reached once to check it
    (StateStoreUnavailable says why not)."""
    if url is None:
        return StateStore(location=InMemoryLocation(), nonce_counts=InMemoryNonceCounts(nonce_ttl),
                          auth_failures=InMemoryAuthFailures(), dialogs=InMemoryDialogs(),
                          homes=InMemoryHomes(), agents=InMemoryAgents(), leases=InMemoryLeases(),
                          call_counts=InMemoryCallCounts(), lines=InMemoryLines(),
                          description="in-process")
    from .redis import open_redis_state

    return open_redis_state(url, nonce_ttl=nonce_ttl, timeout=timeout)

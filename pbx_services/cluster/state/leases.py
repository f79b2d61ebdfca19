"""Leases: a thing that must be done by one process at a time (a queue distributed by one queue
server) is done only by the holder of its lease, which it renews while it works.

`hold(key, owner, ttl)` takes the lease when nobody holds it (or it lapsed) and renews it when
`owner` holds it already; it says whether `owner` holds it now. A holder that dies, or that
cannot reach the store, stops renewing, and the lease lapses `ttl` seconds after the last
renewal: then another may take it. In this process (`InMemoryLeases`, with the caller's
clock) or in Redis (`redis.RedisLeases`, Redis's own clock: PX and a compare script).
"""

from __future__ import annotations

from typing import Protocol


class LeaseStore(Protocol):
    def hold(self, key: str, owner: str, ttl: float, now: float) -> bool:
        """Take or renew the lease on `key` for `ttl` seconds; whether `owner` holds it.
        `now` (monotonic seconds) serves the in-process store only."""
        ...


class InMemoryLeases:
    def __init__(self) -> None:
        self._leases: dict[str, tuple[str, float]] = {}

    def hold(self, key: str, owner: str, ttl: float, now: float) -> bool:
        holder = self._leases.get(key)
        if holder is not None and holder[0] != owner and holder[1] > now:
            return False
        self._leases[key] = (owner, now + ttl)
        return True

"""How many calls a user, a tenant and a trunk have in progress across the whole cluster, for
their concurrent-call limits.

Each Call Manager worker counts its calls in under one or more keys (the tenant's, the
calling user's when a user placed it, the trunk's while it rings or talks through one) when
they start, counts them out when they end, and
renews the ones it still holds every so often: an entry lapses `ttl` seconds after it was
last renewed, so the calls of a worker that died stop counting within `ttl` (a worker that
takes them over counts them in again at its next renewal). `count` is what every worker
sees. The check and the counting-in are two steps: two calls starting on two workers in the
same millisecond may both pass a limit with one place left (a limit overshot by a call is
better than a Lua round trip per key on every call).

In this process (`InMemoryCallCounts`, the caller's clock) or in Redis
(`redis.RedisCallCounts`: a sorted set per key, scored by expiry on Redis's clock).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

CountedCall = tuple[Sequence[str], str]
"""(the keys a call counts under, the call's own id)."""


def tenant_key(tenant_id: int) -> str:
    return f"tenant:{tenant_id}"


def user_key(tenant_id: int, extension: str) -> str:
    return f"user:{tenant_id}/{extension}"


def trunk_key(trunk: str) -> str:
    return f"trunk:{trunk}"


class CallCountStore(Protocol):
    def count(self, key: str, now: float) -> int:
        """The calls counted under `key` and not lapsed."""
        ...

    def add(self, calls: Iterable[CountedCall], ttl: float, now: float) -> None:
        """Count each call in under its keys (or renew it there) for `ttl` seconds."""
        ...

    def remove(self, keys: Sequence[str], call: str) -> None: ...


class InMemoryCallCounts:
    def __init__(self) -> None:
        self._calls: dict[str, dict[str, float]] = {}

    def count(self, key: str, now: float) -> int:
        calls = self._calls.get(key)
        if not calls:
            return 0
        for call in [call for call, until in calls.items() if until <= now]:
            del calls[call]
        return len(calls)

    def add(self, calls: Iterable[CountedCall], ttl: float, now: float) -> None:
        for keys, call in calls:
            for key in keys:
                self._calls.setdefault(key, {})[call] = now + ttl

    def remove(self, keys: Sequence[str], call: str) -> None:
        for key in keys:
            calls = self._calls.get(key)
            if calls is not None:
                calls.pop(call, None)
                if not calls:
                    del self._calls[key]

"""Failed digest authentications per source IP, and the sources blocked for them.

What `callmanager.policy.AuthFailureLimiter` counts with: in this process
(`InMemoryAuthFailures`) or in the cluster's Redis (`redis.RedisAuthFailures`), so that a
password cracker spreading its guesses over several workers or Call Managers is still counted
once. Times are wall-clock seconds.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol


class AuthFailureStore(Protocol):
    def blocked(self, ip: str, now: float) -> bool: ...

    def add_failure(self, ip: str, now: float, window: float) -> int:
        """Count one failure of `ip`; its failures within the last `window` seconds, this one included."""
        ...

    def block(self, ip: str, now: float, seconds: float) -> None:
        """Block `ip` for `seconds` from `now` and forget its failures."""
        ...

    def blocked_count(self, now: float) -> int: ...

    def purge(self, now: float, window: float) -> None:
        """Forget failures older than `window` and blocks that ended."""
        ...


class InMemoryAuthFailures:
    def __init__(self, *, max_tracked: int = 100_000) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        # A spoofed-source flood must not grow memory without bound.
        self._max_tracked = max_tracked

    def blocked(self, ip: str, now: float) -> bool:
        until = self._blocked_until.get(ip)
        if until is None:
            return False
        if until <= now:
            del self._blocked_until[ip]
            return False
        return True

    def add_failure(self, ip: str, now: float, window: float) -> int:
        failures = self._failures.get(ip)
        if failures is None:
            if len(self._failures) >= self._max_tracked:
                self.purge(now, window)
                if len(self._failures) >= self._max_tracked:
                    self._failures.pop(next(iter(self._failures)))
            failures = self._failures[ip] = deque()
        failures.append(now)
        while failures and failures[0] <= now - window:
            failures.popleft()
        return len(failures)

    def block(self, ip: str, now: float, seconds: float) -> None:
        self._failures.pop(ip, None)
        self._blocked_until[ip] = now + seconds

    def blocked_count(self, now: float) -> int:
        return sum(1 for until in self._blocked_until.values() if until > now)

    def purge(self, now: float, window: float) -> None:
        for ip in [ip for ip, f in self._failures.items() if not f or f[-1] <= now - window]:
            del self._failures[ip]
        for ip in [ip for ip, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[ip]

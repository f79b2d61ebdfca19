"""Policy: brute-force protection for digest authentication.

A source IP that fails authentication `limit` times within `window` seconds is blocked
for `block_seconds`: while blocked its credentials are not even checked, so a password
cracker learns nothing however fast it sends. A success in between does not forgive the
failures, or an attacker with one account could reset the count between guesses at
another's password. Trusted networks are never blocked.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthFailureLimiter:
    def __init__(self, *, limit: int, window: float, block_seconds: float,
                 trusted_networks: Iterable[str] = (), max_tracked: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.block_seconds = block_seconds
        self._trusted: list[Network] = [ipaddress.ip_network(n, strict=False) for n in trusted_networks]
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        # A spoofed-source flood must not grow memory without bound.
        self._max_tracked = max_tracked

    def is_blocked(self, ip: str, now: float) -> bool:
        until = self._blocked_until.get(ip)
        if until is None:
            return False
        if until <= now:
            del self._blocked_until[ip]
            return False
        return True

    def record_failure(self, ip: str, now: float) -> bool:
        """Count one failed authentication; True when it puts `ip` on the block list."""
        if self._is_trusted(ip):
            return False
        failures = self._failures.get(ip)
        if failures is None:
            if len(self._failures) >= self._max_tracked:
                self.purge(now)
                if len(self._failures) >= self._max_tracked:
                    self._failures.pop(next(iter(self._failures)))
            failures = self._failures[ip] = deque()
        failures.append(now)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.limit:
            del self._failures[ip]
            self._blocked_until[ip] = now + self.block_seconds
            return True
        return False

    def blocked_count(self, now: float) -> int:
        return sum(1 for until in self._blocked_until.values() if until > now)

    def purge(self, now: float) -> None:
        """Forget failures older than the window and blocks that ended."""
        for ip in [ip for ip, f in self._failures.items() if not f or f[-1] <= now - self.window]:
            del self._failures[ip]
        for ip in [ip for ip, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[ip]

    def _is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

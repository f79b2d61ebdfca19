"""Policy: brute-force protection for digest authentication.

A source IP that fails authentication `limit` times within `window` seconds is blocked
for `block_seconds`: while blocked its credentials are not even checked, so a password
cracker learns nothing however fast it sends. A success in between does not forgive the
failures, or an attacker with one account could reset the count between guesses at
another's password. Trusted networks are never blocked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..cluster.state.auth_failures import AuthFailureStore, InMemoryAuthFailures

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AuthFailureLimiter:
    """The policy; the counting is the `store`'s (this process's memory unless given)."""

    def __init__(self, *, limit: int, window: float, block_seconds: float,
                 trusted_networks: Iterable[str] = (), store: AuthFailureStore | None = None) -> None:
        self.limit = limit
        self.window = window
        self.block_seconds = block_seconds
        self._trusted: list[Network] = [ipaddress.ip_network(n, strict=False) for n in trusted_networks]
        self._store: AuthFailureStore = store or InMemoryAuthFailures()

    def is_blocked(self, ip: str, now: float) -> bool:
        return self._store.blocked(ip, now)

    def record_failure(self, ip: str, now: float) -> bool:
        """Count one failed authentication; True when it puts `ip` on the block list."""
        if self._is_trusted(ip):
            return False
        if self._store.add_failure(ip, now, self.window) >= self.limit:
            self._store.block(ip, now, self.block_seconds)
            return True
        return False

    def blocked_count(self, now: float) -> int:
        return self._store.blocked_count(now)

    def purge(self, now: float) -> None:
        """Forget failures older than the window and blocks that ended."""
        self._store.purge(now, self.window)

    def _is_trusted(self, ip: str) -> bool:
        if not self._trusted:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._trusted)

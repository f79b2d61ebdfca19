"""Failed logins counted per source address, whatever name they tried.

The lockout of `cluster/admins.py` counts wrong passwords per account, which leaves two holes:
a name no account has locks nothing (and each try costs the portal one scrypt hash, as much
as a real one, so that timing does not tell names), and guessing one password at many names
locks each of them for their owners. So an address that fails `portal.source_failures` times
within `portal.lockout_minutes` is refused for that long, with 429, before any hash is
computed. A success does not forgive the failures (an attacker's own account would reset the
count). The count is this process's (each gunicorn worker keeps one), as SIP's is without a
state store (`callmanager/policy.py`, whose policy this is).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pbx_services.callmanager.policy import AuthFailureLimiter
from pbx_services.cluster.config import PortalConfig
from pbx_services.cluster.state.auth_failures import InMemoryAuthFailures

MAX_SOURCES_TRACKED = 10_000


class LoginLimiter:
    def __init__(self, config: PortalConfig, *, clock: Callable[[], float]) -> None:
        """`clock`: seconds (the portal's clock, as the accounts' lockout)."""
        minutes = config.lockout_minutes * 60.0
        self.block_minutes = config.lockout_minutes
        self._policy = AuthFailureLimiter(limit=config.source_failures, window=minutes,
                                          block_seconds=minutes,
                                          store=InMemoryAuthFailures(max_tracked=MAX_SOURCES_TRACKED))
        self._clock = clock
        self._lock = threading.Lock()  # gunicorn's threads share it

    def refused(self, source: str) -> bool:
        with self._lock:
            return self._policy.is_blocked(source, self._clock())

    def failed(self, source: str) -> bool:
        """Count a failed login from `source`; True when this one gets it refused."""
        with self._lock:
            return self._policy.record_failure(source, self._clock())

"""Failed logins counted per source address, whatever name they tried.

The lockout of `cluster/admins.py` counts wrong passwords per account, which leaves two holes:
a name no account has locks nothing (and each try costs the portal one scrypt hash, as much
as a real one, so that timing does not tell names), and guessing one password at many names
locks each of them for their owners. So an address that fails `portal.source_failures` times
within `portal.lockout_minutes` is refused for that long, with 429, before any hash is
computed. A success does not forgive the failures (an attacker's own account would reset the
count). The policy is SIP's (`callmanager/policy.py`).

With a state store (`state.url`) the count is the cluster's, in Redis under `portal:`, so
that the gunicorn workers of the three portals count one address once. While Redis is away
each process counts on its own, as it does without a state store: logins go on, and the
accounts' own lockout, in the database, still holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis

from pbx_services.callmanager.policy import AuthFailureLimiter
from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.state.auth_failures import AuthFailureStore, InMemoryAuthFailures
from pbx_services.cluster.state.errors import StateStoreUnavailable
from pbx_services.cluster.state.redis import RedisAuthFailures, RedisConnection, redis_client

log = logging.getLogger(__name__)

MAX_SOURCES_TRACKED = 10_000
REDIS_NAMESPACE = "portal:"


class LoginLimiter:
    def __init__(self, config: PbxConfig, *, clock: Callable[[], float]) -> None:
        """`clock`: wall-clock seconds (the portal's clock, as the accounts' lockout); Redis
        ends a block after its seconds, by its own clock."""
        portal = config.portal
        self.block_minutes = portal.lockout_minutes
        seconds = portal.lockout_minutes * 60.0

        def policy(store: AuthFailureStore) -> AuthFailureLimiter:
            return AuthFailureLimiter(limit=portal.source_failures, window=seconds, block_seconds=seconds,
                                      store=store)

        self._local = policy(InMemoryAuthFailures(max_tracked=MAX_SOURCES_TRACKED))
        self._cluster: AuthFailureLimiter | None = None
        if config.state.url is not None:
            client, description = redis_client(config.state.url, timeout=config.state.timeout)
            self._cluster = policy(RedisAuthFailures(RedisConnection(client, description),
                                                     namespace=REDIS_NAMESPACE))
        self._clock = clock
        self._lock = threading.Lock()  # gunicorn's threads share it

    def refused(self, source: str) -> bool:
        now = self._clock()
        with self._lock:
            if self._cluster is not None:
                try:
                    return self._cluster.is_blocked(source, now)
                except (StateStoreUnavailable, redis.RedisError):
                    pass
            return self._local.is_blocked(source, now)

    def failed(self, source: str) -> bool:
        """Count a failed login from `source`; True when this one gets it refused."""
        now = self._clock()
        with self._lock:
            if self._cluster is not None:
                try:
                    return self._cluster.record_failure(source, now)
                except (StateStoreUnavailable, redis.RedisError) as exc:
                    log.warning("portal: failed logins counted in this process only: %s", exc)
            return self._local.record_failure(source, now)

"""The call queues, read from the system of record and kept a few seconds.

A queue (with its members, their logins, pauses and skills) is read in one round trip when
a call to it arrives and again at most every `ttl` seconds while callers wait, so an agent
logging in with `pbx agent login` (or a feature code on any server) gets calls within `ttl`.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pbx_services.appserver.cache import ExpiringLru
from pbx_services.appserver.prompt_catalog import PromptCatalog
from pbx_services.cluster.dao import NotFound
from pbx_services.cluster.queues import QueueInfo, load_queue
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue

DEFAULT_MAX_QUEUES = 65536


class QueueCatalog:
    def __init__(self, engine: Engine, ttl: float = 2.0, *, max_queues: int = DEFAULT_MAX_QUEUES) -> None:
        self._engine = engine
        self._queues: ExpiringLru[tuple[str, str], QueueInfo | None] = ExpiringLru(ttl=ttl,
                                                                                   max_weight=max_queues)
        self.prompts = PromptCatalog(engine)
        """The queues' music."""

    def queue(self, domain: str, number: str, now: float) -> QueueInfo | None:
        """Queue `number` of the tenant whose SIP domain is `domain`; None when there is none."""
        key = (domain, number)
        entry = self._queues.lookup(key, now)
        if entry is not None:
            return entry.value
        with Session(self._engine) as session:
            try:
                tenant = tenant_by_domain(session, domain, default_domain=domain)
            except (NotFound, InvalidValue):
                found = None
            else:
                found = load_queue(session, tenant, number)
        return self._queues.store(key, found, now)

"""Prompts' audio, read from the system of record and kept a while, for every application
server that plays a tenant's prompts (IVR greetings, a queue's music).

A prompt is loaded in one query and kept `ttl` seconds, bounded by bytes in all (the least
recently used goes first). Reloaded audio equal to what was kept is the same array again, so
that the encodings a worker keeps per array (EncodedPrompts) stay valid. Callers pass `now`
(monotonic seconds); the catalog reads no clock.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, bindparam, select

from pbx_services.appserver.cache import ExpiringLru
from pbx_services.cluster.models import Prompt, Tenant

logger = logging.getLogger(__name__)

DEFAULT_MAX_PROMPT_BYTES = 64 * 1024 * 1024
PROMPT_SAMPLE_BYTES = 2

_PROMPT_AUDIO = (
    select(Prompt.audio)
    .join(Tenant, Tenant.id == Prompt.tenant_id)
    .where(Tenant.domain == bindparam("domain"), Prompt.name == bindparam("name"))
)


class PromptCatalog:
    def __init__(self, engine: Engine, ttl: float = 10.0, *,
                 max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES) -> None:
        self._engine = engine
        self._prompts: ExpiringLru[tuple[str, str], npt.NDArray[np.int16] | None] = ExpiringLru(
            ttl=ttl, max_weight=max_prompt_bytes)

    def prompt(self, domain: str, name: str, now: float) -> npt.NDArray[np.int16] | None:
        """The prompt's samples (mono, 8000 Hz, read-only: shared by every call); None if none."""
        key = (domain, name)
        previous = self._prompts.peek(key)
        entry = self._prompts.lookup(key, now)
        if entry is not None:
            return entry.value
        with self._engine.connect() as connection:
            audio = connection.execute(_PROMPT_AUDIO, {"domain": domain, "name": name}).scalar()
        if audio is None:
            logger.debug("catalog: no prompt %s of %s", name, domain)
            return self._prompts.store(key, None, now)
        usable = len(audio) - len(audio) % PROMPT_SAMPLE_BYTES
        samples = np.frombuffer(audio, dtype="<i2", count=usable // PROMPT_SAMPLE_BYTES).astype(
            np.int16, copy=False)
        if previous is not None and previous.value is not None and np.array_equal(previous.value, samples):
            samples = previous.value
        logger.debug("catalog: prompt %s of %s loaded (%d samples)", name, domain, len(samples))
        return self._prompts.store(key, samples, now, weight=max(samples.nbytes, 1))

"""What each queue agent is doing now, shared by every queue server: the guarantee that no agent
ever rings for two queue calls at once, across queues and across servers.

An agent's record says whether it is available, ringing for a call, on a call or in wrap-up,
since when and until when, and what the strategies weigh (calls taken, talk time, idle since,
rings missed in a row). Logins and pauses are not here: they are the system of record's
(`queues.QueueService`), which outlive any server.

Every change is a transition of the record (the functions below, pure): `claim` takes an
available agent for one call, and only one claim can win, because the store applies a
transition atomically to the record it read (a dict in this process; WATCH/MULTI in Redis,
retried when another server changed the record meanwhile). A ring or a call whose queue
server died is not held for ever: a claim lasts `ring_seconds` and a call `max_call_seconds`,
after which the agent is free again. Times are wall-clock seconds (the servers' clocks are
kept by NTP); a record that does not parse is logged and counts as never seen.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Protocol

log = logging.getLogger(__name__)


class AgentActivity(enum.StrEnum):
    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    activity: AgentActivity = AgentActivity.AVAILABLE
    call: str | None = None
    """The queue call it rings for or talks on."""
    until: float = 0.0
    """When the ring claim, the call's bound or the wrap-up ends (wall clock); 0: no end."""
    calls_taken: int = 0
    talk_seconds: float = 0.0
    idle_since: float = 0.0
    """Since when it has been free (the end of its last wrap-up); 0: never took a call."""
    misses: int = 0
    """Rings it let pass in a row (a queue pauses it past its `max_misses`)."""

    def free(self, now: float) -> bool:
        """Available, or its ring, call or wrap-up is over."""
        return self.activity is AgentActivity.AVAILABLE or (self.until > 0 and now >= self.until)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, key: str, text: str | bytes) -> AgentRecord:
        try:
            data = json.loads(text)
            return cls(**{**data, "activity": AgentActivity(data["activity"])})
        except (ValueError, TypeError, KeyError) as exc:
            log.error("agent state: skipped the record of %s, which does not parse (%s): %.80r", key, exc,
                      text)
            return cls()


Transition = Callable[[AgentRecord], AgentRecord | None]
"""A change of a record; None: refused (the record is left as it is)."""


def claim(call: str, now: float, ring_seconds: float) -> Transition:
    """Ring the agent for `call`, if it is free."""
    def step(record: AgentRecord) -> AgentRecord | None:
        if not record.free(now):
            return None
        return replace(record, activity=AgentActivity.RINGING, call=call, until=now + ring_seconds)
    return step


def answered(call: str, now: float, max_call_seconds: float) -> Transition:
    """The agent answered `call`, for which it rings."""
    def step(record: AgentRecord) -> AgentRecord | None:
        if record.activity is not AgentActivity.RINGING or record.call != call:
            return None
        return replace(record, activity=AgentActivity.ON_CALL, until=now + max_call_seconds, misses=0)
    return step


def missed(call: str) -> Transition:
    """The agent let `call` ring past the ring timeout, or refused it."""
    def step(record: AgentRecord) -> AgentRecord | None:
        if record.activity is not AgentActivity.RINGING or record.call != call:
            return None
        return replace(record, activity=AgentActivity.AVAILABLE, call=None, until=0.0,
                       misses=record.misses + 1)
    return step


def released(call: str) -> Transition:
    """The agent is let go of `call` before talking to its caller: the ring stopped (the caller
    hung up, another agent answered first) or the caller was gone, or could not be joined, once
    the agent answered. No miss and no call counted."""
    def step(record: AgentRecord) -> AgentRecord | None:
        if record.activity not in (AgentActivity.RINGING, AgentActivity.ON_CALL) or record.call != call:
            return None
        return replace(record, activity=AgentActivity.AVAILABLE, call=None, until=0.0)
    return step


def ended(call: str, now: float, talk_seconds: float, wrap_up: float) -> Transition:
    """The agent's `call` ended: wrap-up for `wrap_up` seconds, then free."""
    def step(record: AgentRecord) -> AgentRecord | None:
        if record.activity is not AgentActivity.ON_CALL or record.call != call:
            return None
        return replace(record, activity=AgentActivity.WRAP_UP if wrap_up > 0 else AgentActivity.AVAILABLE,
                       call=None, until=now + wrap_up if wrap_up > 0 else 0.0,
                       calls_taken=record.calls_taken + 1, talk_seconds=record.talk_seconds + talk_seconds,
                       idle_since=now + wrap_up)
    return step


class AgentStore(Protocol):
    def records(self, keys: Sequence[str]) -> dict[str, AgentRecord]:
        """The records of `keys` ("tenant-domain/extension"); an agent never seen is a fresh record."""
        ...

    def change(self, key: str, transition: Transition) -> AgentRecord | None:
        """Apply `transition` atomically to the agent's record; the new record, None if refused."""
        ...


class InMemoryAgents:
    def __init__(self) -> None:
        self._records: dict[str, AgentRecord] = {}

    def records(self, keys: Sequence[str]) -> dict[str, AgentRecord]:
        return {key: self._records.get(key, AgentRecord()) for key in keys}

    def change(self, key: str, transition: Transition) -> AgentRecord | None:
        changed = transition(self._records.get(key, AgentRecord()))
        if changed is not None:
            self._records[key] = changed
        return changed


def agent_key(domain: str, extension: str) -> str:
    return f"{domain}/{extension}"


class DeferredAgents:
    """The agent store of a part started later in the same process (the all-in-one's Call Manager,
    whose in-process store its queue server shares), looked up at each use."""

    def __init__(self, store: Callable[[], AgentStore]) -> None:
        self._store = store

    def records(self, keys: Sequence[str]) -> dict[str, AgentRecord]:
        return self._store().records(keys)

    def change(self, key: str, transition: Transition) -> AgentRecord | None:
        return self._store().change(key, transition)

"""Ring groups as the Call Manager rings them (`cluster.ring_groups` saves them).

Read from the system of record and kept `ttl` seconds per number. A call to a group's number
rings its members' devices: all members at once (simultaneous), or one member at a time
(sequential), each for the group's seconds; a sequential member without a registered device,
or whose devices all refuse, is passed over at once. When nobody answered, the call goes to
the group's final destination, or is refused 480. Members ring directly: their own forwarding
is not followed, and one on do-not-disturb is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, bindparam, select

from ..appserver.cache import ExpiringLru
from ..cluster.models import RingGroup, Tenant
from ..cluster.ring_groups import RingStrategy, split_members

_GROUP = (
    select(RingGroup.strategy, RingGroup.members, RingGroup.ring_seconds, RingGroup.final_destination)
    .join(Tenant, Tenant.id == RingGroup.tenant_id)
    .where(Tenant.domain == bindparam("domain"), RingGroup.number == bindparam("number"))
)


@dataclass(frozen=True, slots=True)
class RingGroupPlan:
    strategy: RingStrategy
    members: tuple[str, ...]
    ring_seconds: int
    final: str | None
    """A destination in the syntax of `cluster.destinations`; its number is what is dialled."""


@dataclass(slots=True)
class Hunt:
    """A ring group call under way: who is still to ring, for how long, then where to go."""

    group: str
    waiting: list[str] = field(default_factory=list)
    """Members not rung yet (sequential), in order."""
    seconds: int = 20
    final: str | None = None


class RingGroupTable:
    def __init__(self, engine: Engine, *, ttl: float = 10.0, max_groups: int = 65_536) -> None:
        self._engine = engine
        self._cache: ExpiringLru[tuple[str, str], RingGroupPlan | None] = ExpiringLru(ttl=ttl,
                                                                                      max_weight=max_groups)

    def of(self, domain: str, number: str, now: float) -> RingGroupPlan | None:
        """The ring group of `number` in the tenant of `domain`; None if it is none."""
        key = (domain, number)
        entry = self._cache.lookup(key, now)
        if entry is not None:
            return entry.value
        with self._engine.connect() as connection:
            row = connection.execute(_GROUP, {"domain": domain, "number": number}).first()
        plan = None if row is None else RingGroupPlan(
            strategy=RingStrategy(row.strategy), members=tuple(split_members(row.members)),
            ring_seconds=row.ring_seconds,
            final=row.final_destination.partition(":")[2] or row.final_destination
            if row.final_destination else None)
        return self._cache.store(key, plan, now)

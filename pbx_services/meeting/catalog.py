"""The meeting rooms, read from the system of record and kept a while.

A room is read in one query when a call to it arrives and kept for `ttl` seconds, so a
burst of joins costs one round trip and a change made with `pbx meeting` takes effect
within `ttl` seconds (a meeting in progress keeps the settings it started with).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from pbx_services.appserver.cache import ExpiringLru
from pbx_services.cluster.models import MeetingRoom, Tenant

DEFAULT_MAX_ROOMS = 65536

_ROOM = (
    select(MeetingRoom)
    .join(Tenant, Tenant.id == MeetingRoom.tenant_id)
    .where(Tenant.domain == bindparam("domain"), MeetingRoom.number == bindparam("number"))
)


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """A room as a meeting in it starts with."""

    domain: str
    number: str
    name: str | None
    pin: str | None
    moderator_pin: str | None
    max_participants: int
    pin_tries: int
    wait_for_moderator: bool
    end_with_moderator: bool
    mute_on_entry: bool
    entry_tones: bool
    record: bool

    @property
    def asks_pin(self) -> bool:
        return self.pin is not None or self.moderator_pin is not None


class RoomCatalog:
    def __init__(self, engine: Engine, ttl: float = 10.0, *, max_rooms: int = DEFAULT_MAX_ROOMS) -> None:
        self._engine = engine
        self._rooms: ExpiringLru[tuple[str, str], RoomSettings | None] = ExpiringLru(ttl=ttl,
                                                                                    max_weight=max_rooms)

    def room(self, domain: str, number: str, now: float) -> RoomSettings | None:
        """Room `number` of the tenant whose SIP domain is `domain`; None when there is none."""
        key = (domain, number)
        entry = self._rooms.lookup(key, now)
        if entry is not None:
            return entry.value
        with Session(self._engine) as session:
            row = session.execute(_ROOM, {"domain": domain, "number": number}).scalars().first()
            found = None if row is None else RoomSettings(
                domain=domain, number=number, name=row.name, pin=row.pin, moderator_pin=row.moderator_pin,
                max_participants=row.max_participants, pin_tries=row.pin_tries,
                wait_for_moderator=row.wait_for_moderator, end_with_moderator=row.end_with_moderator,
                mute_on_entry=row.mute_on_entry, entry_tones=row.entry_tones, record=row.record)
        return self._rooms.store(key, found, now)

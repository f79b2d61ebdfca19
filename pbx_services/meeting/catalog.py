"""The meeting rooms, read from the system of record and kept a while.

A room is read in one query when a call to it arrives and kept for `ttl` seconds, so a
burst of joins costs one round trip and a change made with `pbx meeting` takes effect
within `ttl` seconds (a meeting in progress keeps the settings it started with).
"""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from pbx_services.appserver.cache import ExpiringLru
from pbx_services.cluster.meetings import MeetingRoomInfo
from pbx_services.cluster.models import MeetingRoom, Tenant

DEFAULT_MAX_ROOMS = 65536

_ROOM = (
    select(MeetingRoom, Tenant)
    .join(Tenant, Tenant.id == MeetingRoom.tenant_id)
    .where(Tenant.domain == bindparam("domain"), MeetingRoom.number == bindparam("number"))
)


class RoomCatalog:
    def __init__(self, engine: Engine, ttl: float = 10.0, *, max_rooms: int = DEFAULT_MAX_ROOMS) -> None:
        self._engine = engine
        self._rooms: ExpiringLru[tuple[str, str], MeetingRoomInfo | None] = ExpiringLru(
            ttl=ttl, max_weight=max_rooms)

    def room(self, domain: str, number: str, now: float) -> MeetingRoomInfo | None:
        """Room `number` of the tenant whose SIP domain is `domain`; None when there is none."""
        key = (domain, number)
        entry = self._rooms.lookup(key, now)
        if entry is not None:
            return entry.value
        with Session(self._engine) as session:
            row = session.execute(_ROOM, {"domain": domain, "number": number}).first()
            found = None if row is None else MeetingRoomInfo.of(*row)
        return self._rooms.store(key, found, now)

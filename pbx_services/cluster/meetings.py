"""Meeting room service: the audio conference rooms of the tenants (see `models.meeting` for
what a room does with its callers).

A room is checked when it is saved: its number is free in the tenant's dial plan, its PINs
are digits and differ, and a setting that needs a moderator has a moderator PIN to make one.
The meeting servers read the rooms with their own catalogue (`meeting.catalog`).
"""

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.destinations import DestinationKind
from pbx_services.cluster.models import MeetingRoom, Tenant
from pbx_services.cluster.models.meeting import PIN_MAX_LENGTH
from pbx_services.cluster.numbering import check_unrouted, find_to_replace
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_extension

ROOM_NAME_MAX_LENGTH = 64
MAX_PARTICIPANTS_RANGE = range(2, 501)
PIN_TRIES_RANGE = range(1, 11)

_PIN_RE = re.compile(rf"[0-9]{{1,{PIN_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class MeetingRoomInfo:
    """A room as administrators see it (the PINs included: they hand them out)."""

    tenant_domain: str
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
        """Callers are asked for a PIN (the room has one, or a moderator PIN)."""
        return self.pin is not None or self.moderator_pin is not None

    @classmethod
    def of(cls, room: MeetingRoom, tenant: Tenant) -> "MeetingRoomInfo":
        return cls(
            tenant_domain=tenant.domain, number=room.number, name=room.name, pin=room.pin,
            moderator_pin=room.moderator_pin, max_participants=room.max_participants,
            pin_tries=room.pin_tries,
            wait_for_moderator=room.wait_for_moderator, end_with_moderator=room.end_with_moderator,
            mute_on_entry=room.mute_on_entry, entry_tones=room.entry_tones, record=room.record,
        )


class MeetingRoomDao(Dao[MeetingRoom]):
    model = MeetingRoom
    searchable_columns = ("number", "name")


def meeting_room_exists(session: Session, tenant_id: int, number: str) -> bool:
    return MeetingRoomDao(session=session).find_by(tenant_id=tenant_id, number=number) is not None


class MeetingService:
    """Meeting rooms of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_room(
        self,
        number: str,
        *,
        name: str | None = None,
        pin: str | None = None,
        moderator_pin: str | None = None,
        max_participants: int = 50,
        pin_tries: int = 3,
        wait_for_moderator: bool = False,
        end_with_moderator: bool = False,
        mute_on_entry: bool = False,
        entry_tones: bool = True,
        record: bool = False,
        tenant_domain: str | None = None,
        replace: bool = False,
    ) -> MeetingRoomInfo:
        """Add the room reached by dialling `number` (see `models.meeting.MeetingRoom` for the
        rest). InvalidValue names what is wrong; AlreadyExists if the tenant has a room of that
        number, unless `replace`, which changes that room in place."""
        try:
            number = validate_extension(number)
        except InvalidValue as exc:
            raise InvalidValue(f"meeting room number: {exc}") from None
        if name is not None and len(name) > ROOM_NAME_MAX_LENGTH:
            raise InvalidValue(f"meeting room {number}: name is longer than {ROOM_NAME_MAX_LENGTH} "
                               "characters")
        _check_pin("PIN", pin)
        _check_pin("moderator PIN", moderator_pin)
        if pin is not None and pin == moderator_pin:
            raise InvalidValue("moderator PIN: the same as the PIN, so every caller would be a moderator")
        check_range("max participants", max_participants, MAX_PARTICIPANTS_RANGE)
        check_range("PIN tries", pin_tries, PIN_TRIES_RANGE)
        for setting, wanted in (("wait for moderator", wait_for_moderator),
                                ("end with moderator", end_with_moderator)):
            if wanted and moderator_pin is None:
                raise InvalidValue(f"{setting}: needs a moderator PIN (without one, nobody is a moderator)")
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            rooms = MeetingRoomDao(session=session)
            room = find_to_replace(rooms, tenant, number, what="meeting room", replace=replace)
            settings = dict(
                name=name, pin=pin, moderator_pin=moderator_pin, max_participants=max_participants,
                pin_tries=pin_tries, wait_for_moderator=wait_for_moderator,
                end_with_moderator=end_with_moderator, mute_on_entry=mute_on_entry, entry_tones=entry_tones,
                record=record,
            )
            if room is None:
                room = MeetingRoom(tenant_id=tenant.id, number=number, **settings)
                try:
                    rooms.create(room)
                except IntegrityError:  # added by someone else since the check above
                    raise AlreadyExists(f"meeting room {number} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(room, column, value)
                session.flush()
            return MeetingRoomInfo.of(room, tenant)

    def list_rooms(self, tenant_domain: str | None = None) -> list[MeetingRoomInfo]:
        """The tenant's rooms, by number."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            rooms = MeetingRoomDao(session=session).find_all_by(tenant_id=tenant.id)
            return sorted((MeetingRoomInfo.of(room, tenant) for room in rooms), key=lambda room: room.number)

    def room(self, number: str, tenant_domain: str | None = None) -> MeetingRoomInfo:
        """The tenant's room `number`; NotFound if there is none."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            room = MeetingRoomDao(session=session).find_by(tenant_id=tenant.id, number=number)
            if room is None:
                raise NotFound("MeetingRoom", {"number": number, "tenant": tenant.domain})
            return MeetingRoomInfo.of(room, tenant)

    def delete_room(self, number: str, tenant_domain: str | None = None) -> None:
        """Delete the room; NotFound if there is none, InvalidValue while an IVR menu sends calls to it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            rooms = MeetingRoomDao(session=session)
            room = rooms.find_by(tenant_id=tenant.id, number=number)
            if room is None:
                raise NotFound("MeetingRoom", {"number": number, "tenant": tenant.domain})
            check_unrouted(session, tenant, number, kind=DestinationKind.MEETING, what="meeting room")
            rooms.delete(room)


def _check_pin(what: str, pin: str | None) -> None:
    """InvalidValue naming `what` unless `pin` is None or 1 to 16 digits; the PIN is not echoed."""
    if pin is not None and not _PIN_RE.fullmatch(pin):
        raise InvalidValue(f"{what}: 1 to {PIN_MAX_LENGTH} digits (0-9), nothing else")

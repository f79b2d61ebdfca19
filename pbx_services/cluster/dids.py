"""DID service: the provider's numbers that reach the PBX and where each goes (`models.did`).

A DID is checked when it is saved: its number, and that its destination (in the syntax of
`destinations`) reaches something of the tenant's dial plan (`numbering.check_destination`).
A DID may have opening hours (`schedules`, in a time zone, closed on holidays): outside them
its calls go to its closed destination, which is checked alike; hours and a closed
destination go together.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.destinations import Destination, DestinationKind, parse_destination_for
from pbx_services.cluster.models import Did, Tenant
from pbx_services.cluster.models.did import HOURS_MAX_LENGTH
from pbx_services.cluster.numbering import check_destination
from pbx_services.cluster.schedules import parse_hours, validate_timezone
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH, InvalidValue

_DID_RE = re.compile(rf"\+?[0-9]{{1,{EXTENSION_MAX_LENGTH - 1}}}")
_CALL_DESTINATIONS = (DestinationKind.EXTENSION, DestinationKind.QUEUE, DestinationKind.MEETING,
                      DestinationKind.IVR)


DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True, slots=True)
class DidInfo:
    tenant_domain: str
    number: str
    destination: str
    hours: str | None = None
    timezone: str | None = None
    holidays: tuple[date, ...] = ()
    closed_destination: str | None = None

    @classmethod
    def of(cls, did: Did, tenant: Tenant) -> "DidInfo":
        holidays = tuple(date.fromisoformat(day) for day in (did.holidays or "").split(",") if day)
        return cls(tenant.domain, did.number, did.destination, did.hours, did.timezone, holidays,
                   did.closed_destination)


class DidDao(Dao[Did]):
    model = Did
    searchable_columns = ("number", "destination")


def validate_did(number: str) -> str:
    if not _DID_RE.fullmatch(number):
        raise InvalidValue(f"DID {number[:40]!r}: digits with an optional leading +, up to "
                           f"{EXTENSION_MAX_LENGTH} characters")
    return number


class DidService:
    """DIDs of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_did(self, number: str, *, destination: str, hours: str | None = None, timezone: str | None = None,
                holidays: Iterable[date] = (), closed_destination: str | None = None,
                tenant_domain: str | None = None, replace: bool = False) -> DidInfo:
        """Add (or, with `replace`, change) the DID `number`; InvalidValue names what is wrong (the
        destination that does not exist, the hours that do not parse)."""
        number = validate_did(number)
        role = f"DID {number}"
        parsed = _call_destination(role, destination)
        schedule = _schedule(role, hours, timezone, holidays, closed_destination)
        closed = None
        if closed_destination is not None:
            closed = _call_destination(f"{role} closed", closed_destination)
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            check_destination(session, tenant, role, parsed)
            if closed is not None:
                check_destination(session, tenant, f"{role} closed", closed)
            settings = dict(destination=str(parsed),
                            closed_destination=None if closed is None else str(closed), **schedule)
            dids = DidDao(session=session)
            did = dids.find_by(tenant_id=tenant.id, number=number)
            if did is not None and not replace:
                raise AlreadyExists(f"DID {number} of {tenant.domain} already exists (replace it with "
                                    "--replace)")
            if did is None:
                did = Did(tenant_id=tenant.id, number=number, **settings)
                try:
                    dids.create(did)
                except IntegrityError:
                    raise AlreadyExists(f"DID {number} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(did, column, value)
                session.flush()
            return DidInfo.of(did, tenant)

    def list_dids(self, tenant_domain: str | None = None) -> list[DidInfo]:
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            dids = DidDao(session=session).find_all_by(tenant_id=tenant.id)
            infos = (DidInfo.of(did, tenant) for did in dids)
            return sorted(infos, key=lambda did: did.number)

    def delete_did(self, number: str, tenant_domain: str | None = None) -> None:
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            dids = DidDao(session=session)
            did = dids.find_by(tenant_id=tenant.id, number=number)
            if did is None:
                raise NotFound("Did", {"number": number, "tenant": tenant.domain})
            dids.delete(did)


def _call_destination(role: str, text: str) -> Destination:
    parsed = parse_destination_for(role, text, repeat_allowed=False)
    if parsed.kind not in _CALL_DESTINATIONS:
        raise InvalidValue(f"{role}: destination {text!r}: an extension, queue:N, meeting:N or "
                           "ivr:N (a DID has no menu to dial, repeat or hang up in)")
    return parsed


def _schedule(role: str, hours: str | None, timezone: str | None, holidays: Iterable[date],
              closed_destination: str | None) -> dict[str, str | None]:
    """The DID's hours, time zone and holidays as kept; InvalidValue naming what is wrong."""
    days = sorted(set(holidays))
    if hours is None:
        if closed_destination is not None or timezone is not None or days:
            raise InvalidValue(f"{role}: a closed destination, time zone or holiday needs --hours")
        return {"hours": None, "timezone": None, "holidays": None}
    if closed_destination is None:
        raise InvalidValue(f"{role}: --hours needs --closed-destination (where calls go outside them)")
    if len(hours) > HOURS_MAX_LENGTH:
        raise InvalidValue(f"{role}: hours are longer than {HOURS_MAX_LENGTH} characters")
    try:
        parse_hours(hours)
        zone = validate_timezone(timezone or DEFAULT_TIMEZONE)
    except InvalidValue as exc:
        raise InvalidValue(f"{role}: {exc}") from None
    return {"hours": hours, "timezone": zone, "holidays": ",".join(day.isoformat() for day in days) or None}

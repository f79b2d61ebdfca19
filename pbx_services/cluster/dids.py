"""DID service: the provider's numbers that reach the PBX and where each goes (`models.did`).

A DID is checked when it is saved: its number, and that its destination (in the syntax of
`destinations`) reaches something of the tenant's dial plan (`numbering.check_destination`).
"""

import re
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.destinations import DestinationKind, parse_destination_for
from pbx_services.cluster.models import Did
from pbx_services.cluster.numbering import check_destination
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH, InvalidValue

_DID_RE = re.compile(rf"\+?[0-9]{{1,{EXTENSION_MAX_LENGTH - 1}}}")
_CALL_DESTINATIONS = (DestinationKind.EXTENSION, DestinationKind.QUEUE, DestinationKind.MEETING,
                      DestinationKind.IVR)


@dataclass(frozen=True, slots=True)
class DidInfo:
    tenant_domain: str
    number: str
    destination: str


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

    def add_did(self, number: str, *, destination: str, tenant_domain: str | None = None,
                replace: bool = False) -> DidInfo:
        number = validate_did(number)
        role = f"DID {number}"
        parsed = parse_destination_for(role, destination, repeat_allowed=False)
        if parsed.kind not in _CALL_DESTINATIONS:
            raise InvalidValue(f"{role}: destination {destination!r}: an extension, queue:N, meeting:N or "
                               "ivr:N (a DID has no menu to dial, repeat or hang up in)")
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            check_destination(session, tenant, role, parsed)
            dids = DidDao(session=session)
            did = dids.find_by(tenant_id=tenant.id, number=number)
            if did is not None and not replace:
                raise AlreadyExists(f"DID {number} of {tenant.domain} already exists (replace it with "
                                    "--replace)")
            if did is None:
                did = Did(tenant_id=tenant.id, number=number, destination=str(parsed))
                try:
                    dids.create(did)
                except IntegrityError:
                    raise AlreadyExists(f"DID {number} of {tenant.domain} already exists") from None
            else:
                did.destination = str(parsed)
                session.flush()
            return DidInfo(tenant.domain, did.number, did.destination)

    def list_dids(self, tenant_domain: str | None = None) -> list[DidInfo]:
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            dids = DidDao(session=session).find_all_by(tenant_id=tenant.id)
            infos = (DidInfo(tenant.domain, did.number, did.destination) for did in dids)
            return sorted(infos, key=lambda did: did.number)

    def delete_did(self, number: str, tenant_domain: str | None = None) -> None:
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            dids = DidDao(session=session)
            did = dids.find_by(tenant_id=tenant.id, number=number)
            if did is None:
                raise NotFound("Did", {"number": number, "tenant": tenant.domain})
            dids.delete(did)

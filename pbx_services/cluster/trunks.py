"""Trunk service: the tenants' SIP trunks to providers (see `models.trunk` for what one does).

A trunk is checked when it is saved: its name, host, port and transport; a username and a
password go together (a provider's challenge needs both), and `register` needs them. The
Call Manager reads the trunks with its own catalogue (`callmanager.trunks`).
"""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.models import OutboundRoute, OutboundRouteTrunk, Tenant, Trunk, TrunkTransport
from pbx_services.cluster.models.trunk import CREDENTIAL_MAX_LENGTH, TRUNK_NAME_MAX_LENGTH
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_host

PORT_RANGE = range(1, 65536)
MAX_CALLS_RANGE = range(0, 100_001)
_NAME_RE = re.compile(rf"[A-Za-z0-9._-]{{1,{TRUNK_NAME_MAX_LENGTH}}}")
_CALLER_ID_RE = re.compile(r"\+?[0-9]{1,31}")


@dataclass(frozen=True, slots=True)
class TrunkInfo:
    """A trunk as administrators see it (no password: `has_password` says whether one is kept)."""

    tenant_domain: str
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    register: bool
    max_calls: int
    caller_id: str | None
    enabled: bool

    @classmethod
    def of(cls, trunk: Trunk, tenant: Tenant) -> "TrunkInfo":
        return cls(tenant_domain=tenant.domain, name=trunk.name, host=trunk.host, port=trunk.port,
                   transport=TrunkTransport(trunk.transport).value, username=trunk.username,
                   has_password=trunk.password is not None, register=trunk.register,
                   max_calls=trunk.max_calls, caller_id=trunk.caller_id, enabled=trunk.enabled)


class TrunkDao(Dao[Trunk]):
    model = Trunk
    searchable_columns = ("name", "host")


def validate_trunk_name(name: str, what: str = "trunk") -> str:
    if not _NAME_RE.fullmatch(name):
        raise InvalidValue(f"{what} name {name[:80]!r}: 1 to {TRUNK_NAME_MAX_LENGTH} letters, digits, "
                           "'.', '_' or '-'")
    return name


def parse_transport(text: str) -> TrunkTransport:
    try:
        return TrunkTransport(text.lower())
    except ValueError:
        raise InvalidValue(f"transport {text[:20]!r}: one of "
                           f"{', '.join(t.value for t in TrunkTransport)}") from None


class TrunkService:
    """Trunks of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_trunk(self, name: str, *, host: str, port: int = 5060, transport: str = "udp",
                  username: str | None = None, password: str | None = None, register: bool = False,
                  max_calls: int = 0, caller_id: str | None = None, enabled: bool = True,
                  tenant_domain: str | None = None, replace: bool = False) -> TrunkInfo:
        """Add (or, with `replace`, change) the trunk `name`; InvalidValue names what is wrong,
        AlreadyExists if the tenant has a trunk of that name and not `replace`."""
        name = validate_trunk_name(name)
        try:
            host = validate_host(host)
        except InvalidValue as exc:
            raise InvalidValue(f"trunk {name}: host: {exc}") from None
        check_range(f"trunk {name}: port", port, PORT_RANGE)
        kind = parse_transport(transport)
        check_range(f"trunk {name}: max calls", max_calls, MAX_CALLS_RANGE, "(0: no limit)")
        if (username is None) != (password is None):
            raise InvalidValue(f"trunk {name}: a username and a password go together (a provider's "
                               "challenge needs both)")
        for what, value in (("username", username), ("password", password)):
            if value is not None and not 0 < len(value) <= CREDENTIAL_MAX_LENGTH:
                raise InvalidValue(f"trunk {name}: {what} must be 1 to {CREDENTIAL_MAX_LENGTH} characters")
        if register and username is None:
            raise InvalidValue(f"trunk {name}: --register needs a username and a password")
        if caller_id is not None and not _CALLER_ID_RE.fullmatch(caller_id):
            raise InvalidValue(f"trunk {name}: caller ID {caller_id[:40]!r} is not a number (digits, "
                               "an optional leading +)")
        settings: dict[str, Any] = dict(host=host, port=port, transport=kind, username=username,
                                        password=password, register=register, max_calls=max_calls,
                                        caller_id=caller_id, enabled=enabled)
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session)
            trunk = trunks.find_by(tenant_id=tenant.id, name=name)
            if trunk is not None and not replace:
                raise AlreadyExists(f"trunk {name} of {tenant.domain} already exists (replace it with "
                                    "--replace)")
            if trunk is None:
                trunk = Trunk(tenant_id=tenant.id, name=name, **settings)
                try:
                    trunks.create(trunk)
                except IntegrityError:
                    raise AlreadyExists(f"trunk {name} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(trunk, column, value)
                session.flush()
            return TrunkInfo.of(trunk, tenant)

    def list_trunks(self, tenant_domain: str | None = None) -> list[TrunkInfo]:
        """The tenant's trunks, by name."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session).find_all_by(tenant_id=tenant.id)
            return sorted((TrunkInfo.of(trunk, tenant) for trunk in trunks), key=lambda t: t.name)

    def delete_trunk(self, name: str, tenant_domain: str | None = None) -> None:
        """Delete the trunk; NotFound if there is none, InvalidValue while a route uses it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session)
            trunk = trunks.find_by(tenant_id=tenant.id, name=name)
            if trunk is None:
                raise NotFound("Trunk", {"name": name, "tenant": tenant.domain})
            routes = sorted(set(session.scalars(
                select(OutboundRoute.name).join(OutboundRouteTrunk)
                .where(OutboundRouteTrunk.trunk_id == trunk.id))))
            if routes:
                raise InvalidValue(f"trunk {name} of {tenant.domain} is used by route(s) "
                                   f"{', '.join(routes)}: change or delete them first")
            trunks.delete(trunk)

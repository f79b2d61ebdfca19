"""Outbound route service: which dialled numbers leave the PBX, and through which trunks
(see `models.outbound_route` and `dial_patterns`).

A route is checked when it is saved: its pattern compiles (a pattern that does not is
refused, named), its trunks exist in the tenant (an unknown one is named), its strip and
prefix make sense.
"""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.dial_patterns import compile_pattern
from pbx_services.cluster.models import OutboundRoute, OutboundRouteTrunk, PermissionClass, Tenant
from pbx_services.cluster.models.outbound_route import PREPEND_MAX_LENGTH
from pbx_services.cluster.trunks import TrunkDao, validate_trunk_name
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range

STRIP_RANGE = range(0, 32)
PRIORITY_RANGE = range(0, 10_000)
MAX_TRUNKS_PER_ROUTE = 8
_PREPEND_RE = re.compile(rf"[0-9*#+]{{0,{PREPEND_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class RouteInfo:
    tenant_domain: str
    name: str
    pattern: str
    strip: int
    prepend: str
    trunks: tuple[str, ...]
    """The trunks' names, in the order they are tried."""
    permission: str
    priority: int


class RouteDao(Dao[OutboundRoute]):
    model = OutboundRoute
    searchable_columns = ("name", "pattern")


def parse_permission(text: str) -> PermissionClass:
    try:
        return PermissionClass(text.lower())
    except ValueError:
        raise InvalidValue(f"permission class {text[:20]!r}: one of "
                           f"{', '.join(p.value for p in PermissionClass)}") from None


class RouteService:
    """Outbound routes of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_route(self, name: str, *, pattern: str, trunks: list[str], strip: int = 0, prepend: str = "",
                  permission: str = PermissionClass.NATIONAL.value, priority: int = 100,
                  tenant_domain: str | None = None, replace: bool = False) -> RouteInfo:
        """Add (or, with `replace`, change) the route `name`; InvalidValue names what is wrong
        (the pattern that does not compile, the trunk that does not exist)."""
        name = validate_trunk_name(name, "route")
        compile_pattern(pattern)
        check_range(f"route {name}: strip", strip, STRIP_RANGE, "characters")
        if not _PREPEND_RE.fullmatch(prepend):
            raise InvalidValue(f"route {name}: prepend {prepend[:40]!r}: up to {PREPEND_MAX_LENGTH} digits, "
                               "*, # or +")
        kind = parse_permission(permission)
        check_range(f"route {name}: priority", priority, PRIORITY_RANGE)
        if not trunks:
            raise InvalidValue(f"route {name}: needs at least one trunk")
        if len(trunks) > MAX_TRUNKS_PER_ROUTE:
            raise InvalidValue(f"route {name}: at most {MAX_TRUNKS_PER_ROUTE} trunks")
        if len(set(trunks)) != len(trunks):
            raise InvalidValue(f"route {name}: a trunk is named twice")
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunk_dao = TrunkDao(session=session)
            trunk_ids = []
            for trunk_name in trunks:
                trunk = trunk_dao.find_by(tenant_id=tenant.id, name=trunk_name)
                if trunk is None:
                    raise InvalidValue(f"route {name}: trunk {trunk_name!r} does not exist in "
                                       f"{tenant.domain}")
                trunk_ids.append(trunk.id)
            routes = RouteDao(session=session)
            route = routes.find_by(tenant_id=tenant.id, name=name)
            if route is not None and not replace:
                raise AlreadyExists(f"route {name} of {tenant.domain} already exists (replace it with "
                                    "--replace)")
            settings: dict[str, Any] = dict(pattern=pattern, strip=strip, prepend=prepend, permission=kind,
                                            priority=priority)
            if route is None:
                route = OutboundRoute(tenant_id=tenant.id, name=name, **settings)
                try:
                    routes.create(route)
                except IntegrityError:
                    raise AlreadyExists(f"route {name} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(route, column, value)
                route.trunks.clear()
                session.flush()
            route.trunks.extend(OutboundRouteTrunk(trunk_id=trunk_id, position=position)
                                for position, trunk_id in enumerate(trunk_ids))
            session.flush()
            return _info(route, tenant, trunks)

    def list_routes(self, tenant_domain: str | None = None) -> list[RouteInfo]:
        """The tenant's routes in the order calls try them (priority, then name)."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            names = {t.id: t.name for t in TrunkDao(session=session).find_all_by(tenant_id=tenant.id)}
            routes = RouteDao(session=session).find_all_by(tenant_id=tenant.id)
            routes.sort(key=lambda r: (r.priority, r.name))
            return [_info(route, tenant, [names[t.trunk_id] for t in route.trunks]) for route in routes]

    def delete_route(self, name: str, tenant_domain: str | None = None) -> None:
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            routes = RouteDao(session=session)
            route = routes.find_by(tenant_id=tenant.id, name=name)
            if route is None:
                raise NotFound("OutboundRoute", {"name": name, "tenant": tenant.domain})
            routes.delete(route)


def _info(route: OutboundRoute, tenant: Tenant, trunks: list[str]) -> RouteInfo:
    return RouteInfo(tenant_domain=tenant.domain, name=route.name, pattern=route.pattern, strip=route.strip,
                     prepend=route.prepend, trunks=tuple(trunks),
                     permission=PermissionClass(route.permission).value, priority=route.priority)

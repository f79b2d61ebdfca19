"""Who owns a number of a tenant's dial plan (a user's extension, an IVR menu, ...), and
what sends calls to it.

One number of a tenant reaches one thing, so every service that gives out numbers asks
here first (`number_owner`), and one that takes a number away asks what would then send
calls nowhere (`routes_to`). A new kind of numbered thing (queues, meeting rooms) adds
its table's columns to `_NUMBER_OWNERS`.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import Session

from pbx_services.cluster.dao import chunked
from pbx_services.cluster.models import IvrMenu, IvrOption, User

_NUMBER_OWNERS: tuple[tuple[str, Any, Any], ...] = (
    ("extension", User.tenant_id, User.extension),
    ("IVR menu", IvrMenu.tenant_id, IvrMenu.number),
)
"""(what it is, its tenant column, its number column) of each kind of numbered thing."""
_CHUNK_SIZE = 500


def number_owner(session: Session, tenant_id: int, number: str) -> str | None:
    """What `number` reaches in the tenant, as "extension 201" or "IVR menu 800"; None if nothing."""
    return number_owners(session, [(tenant_id, number)]).get((tenant_id, number))


def number_owners(session: Session, numbers: Iterable[tuple[int, str]]) -> dict[tuple[int, str], str]:
    """`number_owner` of many (tenant_id, number) pairs at once: those owned, with their owner."""
    wanted = list(numbers)
    owners: dict[tuple[int, str], str] = {}
    for kind, tenant_column, number_column in _NUMBER_OWNERS:
        key = tuple_(tenant_column, number_column)
        for chunk in chunked(wanted, _CHUNK_SIZE):
            rows = session.execute(select(tenant_column, number_column).where(key.in_(chunk)))
            for tenant_id, number in rows:
                owners.setdefault((tenant_id, number), f"{kind} {number}")
    return owners


def routes_to(session: Session, tenant_id: int, number: str, *, ivr_menu: bool = False) -> list[str]:
    """What in the tenant sends calls to `number` (also as `ivr:number` when it is an IVR
    menu, whose own options and destinations are left out): "IVR menu 801 option 1",
    "IVR menu 802 final destination", ..."""
    targets = [number, f"ivr:{number}"] if ivr_menu else [number]
    in_tenant = [IvrMenu.tenant_id == tenant_id]
    if ivr_menu:
        in_tenant.append(IvrMenu.number != number)
    options = session.execute(
        select(IvrMenu.number, IvrOption.digits).select_from(IvrMenu).join(IvrOption)
        .where(*in_tenant, IvrOption.destination.in_(targets)).order_by(IvrMenu.number, IvrOption.digits))
    routes = [f"IVR menu {menu} option {digits}" for menu, digits in options]
    leaving = or_(IvrMenu.final_destination.in_(targets), IvrMenu.closed_destination.in_(targets))
    menus = session.execute(
        select(IvrMenu.number, IvrMenu.final_destination, IvrMenu.closed_destination)
        .where(*in_tenant, leaving).order_by(IvrMenu.number))
    for menu, final, closed in menus:
        routes += [f"IVR menu {menu} {what}" for what, destination in
                   (("final destination", final), ("closed destination", closed)) if destination in targets]
    return routes

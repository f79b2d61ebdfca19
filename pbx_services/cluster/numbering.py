"""Who owns a number of a tenant's dial plan (a user's extension, an IVR menu, a meeting
room, a queue, a feature code of its own), and what sends calls to it.

One number of a tenant reaches one thing, so every service that gives out numbers asks
here first (`number_owner`, `find_to_replace`); one that saves a destination checks that it
reaches something (`check_destination`); and one that takes a number away asks what would
then send calls nowhere (`routes_to`, `check_unrouted`). A new kind of numbered thing adds
its table's columns to `_NUMBER_OWNERS`.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pbx_services.cluster.dao import AlreadyExists, Dao, ModelT, rows_with_pairs
from pbx_services.cluster.destinations import Destination, DestinationKind
from pbx_services.cluster.models import (
    CallForwarding,
    CallQueue,
    Did,
    FeatureCode,
    IvrMenu,
    IvrOption,
    MeetingRoom,
    RingGroup,
    Tenant,
    User,
)
from pbx_services.cluster.validation import InvalidValue

_NUMBER_OWNERS: tuple[tuple[str, Any, Any], ...] = (
    ("extension", User.tenant_id, User.extension),
    ("IVR menu", IvrMenu.tenant_id, IvrMenu.number),
    ("meeting room", MeetingRoom.tenant_id, MeetingRoom.number),
    ("queue", CallQueue.tenant_id, CallQueue.number),
    ("ring group", RingGroup.tenant_id, RingGroup.number),
    ("feature code", FeatureCode.tenant_id, FeatureCode.code),
)
"""(what it is, its tenant column, its number column) of each kind of numbered thing."""
_KINDS: dict[DestinationKind, tuple[str, Any, Any]] = {
    DestinationKind.IVR: ("IVR menu", IvrMenu.tenant_id, IvrMenu.number),
    DestinationKind.QUEUE: ("queue", CallQueue.tenant_id, CallQueue.number),
    DestinationKind.MEETING: ("meeting room", MeetingRoom.tenant_id, MeetingRoom.number),
}
"""What a destination of each prefixed kind (`queue:700`) is called, and its table's columns."""


def number_owner(session: Session, tenant_id: int, number: str) -> str | None:
    """What `number` reaches in the tenant, as "extension 201" or "IVR menu 800"; None if nothing."""
    return number_owners(session, [(tenant_id, number)]).get((tenant_id, number))


def number_owners(session: Session, numbers: Iterable[tuple[int, str]], *,
                  besides_users: bool = False) -> dict[tuple[int, str], str]:
    """`number_owner` of many (tenant_id, number) pairs at once: those owned, with their owner.
    `besides_users`: the caller has just found that no user has them (an import), so the users'
    table is not asked again."""
    wanted = list(numbers)
    owners: dict[tuple[int, str], str] = {}
    for kind, tenant_column, number_column in _NUMBER_OWNERS:
        if besides_users and tenant_column is User.tenant_id:
            continue
        for tenant_id, number in rows_with_pairs(session, tenant_column, number_column, wanted):
            owners.setdefault((tenant_id, number), f"{kind} {number}")
    return owners


def find_to_replace(dao: Dao[ModelT], tenant: Tenant, number: str, *, what: str,
                    replace: bool) -> ModelT | None:
    """The tenant's `what` ("IVR menu", a row of `dao`) of `number`, to be changed in place
    (`replace`); None when the number is free for a new one. AlreadyExists when there is one
    and not `replace`; InvalidValue naming the owner when something else has the number."""
    found = dao.find_by(tenant_id=tenant.id, number=number)
    if found is not None and not replace:
        raise AlreadyExists(f"{what} {number} of {tenant.domain} already exists (replace it with --replace)")
    if found is None:
        taken_by = number_owner(dao.session, tenant.id, number)
        if taken_by is not None:
            raise InvalidValue(f"{number} is already {taken_by} of {tenant.domain}")
    return found


def check_destination(session: Session, tenant: Tenant, role: str, destination: Destination) -> None:
    """InvalidValue naming `role` and the destination if it reaches nothing in the tenant: a
    plain number must be anything of the dial plan, `queue:N` a queue, and so on."""
    if destination.number is None:
        return
    if destination.kind is DestinationKind.EXTENSION:
        label, exists = "extension", number_owner(session, tenant.id, destination.number) is not None
    else:
        label, tenant_column, number_column = _KINDS[destination.kind]
        exists = session.execute(select(number_column).where(
            tenant_column == tenant.id, number_column == destination.number)).first() is not None
    if not exists:
        raise InvalidValue(f"{role}: {label} {destination.number} does not exist in {tenant.domain}")


def check_unrouted(session: Session, tenant: Tenant, number: str, *, kind: DestinationKind,
                   what: str) -> None:
    """InvalidValue naming what sends calls to the tenant's `what` ("IVR menu") of `number`
    (see `routes_to`), if anything does: it cannot go while they do."""
    routes = routes_to(session, tenant.id, number, kind=kind)
    if routes:
        raise InvalidValue(f"{what} {number} of {tenant.domain} is the destination of {', '.join(routes)}: "
                           "change or delete them first")


def routes_to(session: Session, tenant_id: int, number: str, *,
              kind: DestinationKind = DestinationKind.EXTENSION) -> list[str]:
    """What in the tenant sends calls to `number`, the number of a `kind` of destination, as
    plain `number` or `kind:number` (an IVR menu's own options and destinations are left out):
    "IVR menu 801 option 1", "IVR menu 802 final destination", ..."""
    targets = sorted({number, str(Destination(kind, number))})
    in_tenant = [IvrMenu.tenant_id == tenant_id]
    if kind is DestinationKind.IVR:
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
    other_queues = [CallQueue.number != number] if kind is DestinationKind.QUEUE else []
    overflows = session.execute(
        select(CallQueue.number).where(CallQueue.tenant_id == tenant_id, CallQueue.overflow.in_(targets),
                                       *other_queues).order_by(CallQueue.number))
    routes += [f"queue {queue} overflow" for queue in overflows.scalars()]
    finals = session.execute(
        select(RingGroup.number).where(RingGroup.tenant_id == tenant_id, RingGroup.number != number,
                                       RingGroup.final_destination.in_(targets)).order_by(RingGroup.number))
    routes += [f"ring group {group} final destination" for group in finals.scalars()]
    dids = session.execute(select(Did.number, Did.destination).where(
        Did.tenant_id == tenant_id, or_(Did.destination.in_(targets), Did.closed_destination.in_(targets)))
        .order_by(Did.number))
    routes += [f"DID {did}" if destination in targets else f"DID {did} closed destination"
               for did, destination in dids]
    if kind is DestinationKind.EXTENSION:  # forwards name plain numbers
        kinds = ("always", "busy", "no_answer", "unreachable")
        forwards = session.execute(
            select(User.extension, *(getattr(CallForwarding, k) for k in kinds))
            .join(CallForwarding, CallForwarding.user_id == User.id)
            .where(User.tenant_id == tenant_id,
                   or_(*(getattr(CallForwarding, k) == number for k in kinds))).order_by(User.extension))
        for extension, *destinations in forwards:
            routes += [f"the {k.replace('_', ' ')} forward of {extension}"
                       for k, destination in zip(kinds, destinations, strict=True) if destination == number]
    return routes

"""Ring groups of every tenant, in the system of record (`models.ring_group.RingGroup`).

A group's number is a number of the tenant's dial plan like an extension or a queue's; its
members are users of the tenant; its final destination, where calls nobody answered go, is a
number of the tenant. Each is checked when the group is saved, and refused naming what is
wrong. The Call Manager reads groups within 10 seconds (`callmanager.ring_groups`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import Dao, NotFound
from pbx_services.cluster.destinations import DestinationKind, parse_destination_for
from pbx_services.cluster.models import RingGroup, User
from pbx_services.cluster.numbering import check_destination, check_unrouted, find_to_replace
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_extension

MAX_MEMBERS = 32
RING_SECONDS = range(5, 301)
NAME_MAX_LENGTH = 64


class RingStrategy(enum.StrEnum):
    SIMULTANEOUS = "simultaneous"
    """Every member rings at once; the first to answer takes the call."""
    SEQUENTIAL = "sequential"
    """Each member in turn, for the group's seconds; one without a device, or busy, is skipped."""


@dataclass(frozen=True, slots=True)
class RingGroupInfo:
    number: str
    tenant_domain: str
    name: str | None
    strategy: str
    members: list[str]
    ring_seconds: int
    final_destination: str | None


class RingGroupDao(Dao[RingGroup]):
    model = RingGroup


def split_members(text: str) -> list[str]:
    """The members of a group as its row stores them (comma-separated extensions)."""
    return [member for member in text.split(",") if member]


class RingGroupService:
    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_group(self, number: str, *, members: Sequence[str], strategy: str = RingStrategy.SIMULTANEOUS,
                  ring_seconds: int = 20, final_destination: str | None = None, name: str | None = None,
                  tenant_domain: str | None = None, replace: bool = False) -> RingGroupInfo:
        """Add the group reached by dialling `number` (see `RingGroup`); InvalidValue names what
        is wrong, AlreadyExists if the tenant has that group (unless `replace`)."""
        try:
            number = validate_extension(number)
        except InvalidValue as exc:
            raise InvalidValue(f"ring group number: {exc}") from None
        try:
            strategy = RingStrategy(strategy.strip().lower()).value
        except ValueError:
            raise InvalidValue(f"ring group {number}: unknown strategy {strategy[:20]!r}: "
                               f"{' or '.join(RingStrategy)}") from None
        check_range(f"ring group {number}: ring seconds", ring_seconds, RING_SECONDS, "s")
        if name is not None and len(name) > NAME_MAX_LENGTH:
            raise InvalidValue(f"ring group {number}: name is longer than {NAME_MAX_LENGTH} characters")
        if not members:
            raise InvalidValue(f"ring group {number}: no member")
        if len(members) > MAX_MEMBERS:
            raise InvalidValue(f"ring group {number}: more than {MAX_MEMBERS} members")
        if len(set(members)) != len(members):
            raise InvalidValue(f"ring group {number}: a member is given twice")
        final = parse_destination_for("final destination", final_destination, repeat_allowed=False) \
            if final_destination is not None else None
        if final is not None and final.number is None:
            raise InvalidValue(f"final destination: {final} is not a number to send calls to")
        if final is not None and final.number == number:
            raise InvalidValue(f"final destination: ring group {number} cannot end in itself")
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            groups = RingGroupDao(session=session)
            group = find_to_replace(groups, tenant, number, what="ring group", replace=replace)
            known = set(session.scalars(select(User.extension).where(User.tenant_id == tenant.id,
                                                                     User.extension.in_(members))))
            missing = [member for member in members if member not in known]
            if missing:
                raise InvalidValue(f"ring group {number}: member {missing[0]} is no user of {tenant.domain}")
            if final is not None:
                check_destination(session, tenant, "final destination", final)
            ends_in = None if final is None else str(final)
            settings = dict(name=name, strategy=strategy, members=",".join(members),
                            ring_seconds=ring_seconds, final_destination=ends_in)
            if group is None:
                group = groups.create(RingGroup(tenant_id=tenant.id, number=number, **settings))
            else:
                for column, value in settings.items():
                    setattr(group, column, value)
            session.flush()
            return _info(group, tenant.domain)

    def list_groups(self, tenant_domain: str | None = None) -> list[RingGroupInfo]:
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            rows = session.scalars(select(RingGroup).where(RingGroup.tenant_id == tenant.id)
                                   .order_by(RingGroup.number))
            return [_info(row, tenant.domain) for row in rows]

    def delete_group(self, number: str, tenant_domain: str | None = None) -> None:
        """Delete the group; refused while something sends calls to its number."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            group = RingGroupDao(session=session).find_by(tenant_id=tenant.id, number=number)
            if group is None:
                raise NotFound("RingGroup", {"tenant": tenant.domain, "number": number})
            check_unrouted(session, tenant, number, kind=DestinationKind.EXTENSION, what="ring group")
            session.delete(group)


def _info(group: RingGroup, domain: str) -> RingGroupInfo:
    return RingGroupInfo(number=group.number, tenant_domain=domain, name=group.name, strategy=group.strategy,
                         members=split_members(group.members), ring_seconds=group.ring_seconds,
                         final_destination=group.final_destination)

"""IVR service and schedule service: the auto-attendant menus of the tenants and the business
hours they follow (see `models.ivr` for what a menu does with a call).

Everything a menu names is checked when it is saved: its number is free in the tenant's
dial plan, its prompts and schedule exist, and so does every destination, so that a menu
never sends a call to a number that reaches nothing.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.destinations import Destination, DestinationKind, parse_destination_for
from pbx_services.cluster.models import Holiday, IvrMenu, IvrOption, Schedule, Tenant
from pbx_services.cluster.numbering import check_destination, check_unrouted, find_to_replace
from pbx_services.cluster.prompts import PromptDao, validate_name
from pbx_services.cluster.schedules import parse_hours, validate_timezone
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_extension

MENU_NAME_MAX_LENGTH = 64
HOURS_MAX_LENGTH = 255
TIMEOUT_RANGE = range(1, 61)
"""Seconds, for both the timeout and the inter-digit timeout."""
RETRIES_RANGE = range(0, 11)
OPTION_DIGITS_MAX_LENGTH = 8

_OPTION_DIGITS_RE = re.compile(rf"[0-9*]{{1,{OPTION_DIGITS_MAX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class IvrMenuInfo:
    """A menu as the IVR server plays it; prompts, schedule and destinations by name."""

    tenant_id: int
    tenant_domain: str
    number: str
    name: str | None
    greeting: str
    options: Mapping[str, str]
    """Digits -> destination (see `destinations`), by digits."""
    timeout: int
    inter_digit_timeout: int
    retries: int
    invalid_prompt: str | None
    timeout_prompt: str | None
    final_destination: str
    dial_by_extension: bool
    schedule: str | None
    closed_destination: str | None

    @classmethod
    def of(cls, menu: IvrMenu, tenant: Tenant) -> "IvrMenuInfo":
        return cls(
            tenant_id=tenant.id,
            tenant_domain=tenant.domain,
            number=menu.number,
            name=menu.name,
            greeting=menu.greeting.name,
            options={option.digits: option.destination for option in menu.options},
            timeout=menu.timeout,
            inter_digit_timeout=menu.inter_digit_timeout,
            retries=menu.retries,
            invalid_prompt=menu.invalid_prompt.name if menu.invalid_prompt else None,
            timeout_prompt=menu.timeout_prompt.name if menu.timeout_prompt else None,
            final_destination=menu.final_destination,
            dial_by_extension=menu.dial_by_extension,
            schedule=menu.schedule.name if menu.schedule else None,
            closed_destination=menu.closed_destination,
        )


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    name: str
    hours: str
    """As written: see `schedules.parse_hours`."""
    timezone: str
    holidays: tuple[date, ...]
    """In date order."""

    @classmethod
    def of(cls, schedule: Schedule) -> "ScheduleInfo":
        return cls(name=schedule.name, hours=schedule.hours, timezone=schedule.timezone,
                   holidays=tuple(holiday.day for holiday in schedule.holidays))


class IvrMenuDao(Dao[IvrMenu]):
    model = IvrMenu
    searchable_columns = ("number", "name")

    def _select(self, criteria: Mapping[str, Any]) -> Select[Any]:
        # A menu is shown with its options, prompts and schedule: load them with it.
        return super()._select(criteria).options(
            selectinload(IvrMenu.options), joinedload(IvrMenu.greeting), joinedload(IvrMenu.invalid_prompt),
            joinedload(IvrMenu.timeout_prompt), joinedload(IvrMenu.schedule))


class ScheduleDao(Dao[Schedule]):
    model = Schedule
    searchable_columns = ("name",)

    def _select(self, criteria: Mapping[str, Any]) -> Select[Any]:
        return super()._select(criteria).options(selectinload(Schedule.holidays))


class IvrService:
    """IVR menus of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_menu(
        self,
        number: str,
        *,
        greeting: str,
        options: Mapping[str, str],
        timeout: int = 5,
        inter_digit_timeout: int = 3,
        retries: int = 3,
        invalid_prompt: str | None = None,
        timeout_prompt: str | None = None,
        final_destination: str = "hangup",
        dial_by_extension: bool = False,
        schedule: str | None = None,
        closed_destination: str | None = None,
        name: str | None = None,
        tenant_domain: str | None = None,
        replace: bool = False,
    ) -> IvrMenuInfo:
        """Add the menu reached by dialling `number` (see `models.ivr.IvrMenu` for the rest);
        `options` maps the digits pressed to a destination. InvalidValue names what is wrong;
        AlreadyExists if the tenant has a menu of that number, unless `replace`, which
        changes that menu in place."""
        try:
            number = validate_extension(number)
        except InvalidValue as exc:
            raise InvalidValue(f"IVR menu number: {exc}") from None
        if name is not None and len(name) > MENU_NAME_MAX_LENGTH:
            raise InvalidValue(f"IVR menu {number}: name is longer than {MENU_NAME_MAX_LENGTH} characters")
        check_range("timeout", timeout, TIMEOUT_RANGE, "seconds")
        check_range("inter-digit timeout", inter_digit_timeout, TIMEOUT_RANGE, "seconds")
        check_range("retries", retries, RETRIES_RANGE)
        if not options and not dial_by_extension:
            raise InvalidValue(f"IVR menu {number} has no option and no dialling by extension: "
                               "a caller could do nothing but wait")
        for digits in options:
            if not _OPTION_DIGITS_RE.fullmatch(digits):
                raise InvalidValue(f"option {digits[:20]!r}: 1 to {OPTION_DIGITS_MAX_LENGTH} keys of 0-9 "
                                   "and * (# ends the input)")
        if (schedule is None) != (closed_destination is None):
            raise InvalidValue("a schedule and a closed destination go together: give both or neither")
        parsed_options = {digits: parse_destination_for(f"option {digits}", text)
                          for digits, text in sorted(options.items())}
        final = parse_destination_for("final destination", final_destination, repeat_allowed=False)
        closed = (parse_destination_for("closed destination", closed_destination, repeat_allowed=False)
                  if closed_destination is not None else None)
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            menus = IvrMenuDao(session=session)
            menu = find_to_replace(menus, tenant, number, what="IVR menu", replace=replace)
            for role, destination in (*((f"option {digits}", destination)
                                        for digits, destination in parsed_options.items()),
                                      ("final destination", final), ("closed destination", closed)):
                if destination is not None:
                    _check_exists(session, tenant, role, destination, menu_number=number)
            prompts = PromptDao(session=session)
            settings = dict(
                name=name,
                greeting_id=_prompt_id(prompts, tenant, "greeting", greeting),
                invalid_prompt_id=_prompt_id(prompts, tenant, "invalid prompt", invalid_prompt),
                timeout_prompt_id=_prompt_id(prompts, tenant, "timeout prompt", timeout_prompt),
                timeout=timeout,
                inter_digit_timeout=inter_digit_timeout,
                retries=retries,
                final_destination=str(final),
                dial_by_extension=dial_by_extension,
                schedule_id=_schedule_id(session, tenant, schedule),
                closed_destination=str(closed) if closed is not None else None,
            )
            new_options = [IvrOption(digits=digits, destination=str(destination))
                           for digits, destination in parsed_options.items()]
            if menu is None:
                menu = IvrMenu(tenant_id=tenant.id, number=number, options=new_options, **settings)
                try:
                    menus.create(menu)
                except IntegrityError:  # added by someone else since the check above
                    raise AlreadyExists(f"IVR menu {number} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(menu, column, value)
                # The old options go first: the new ones may reuse their digits.
                menu.options.clear()
                session.flush()
                menu.options.extend(new_options)
            session.flush()
            session.refresh(menu)
            return IvrMenuInfo.of(menu, tenant)

    def list_menus(self, tenant_domain: str | None = None) -> list[IvrMenuInfo]:
        """The tenant's menus, by number."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            menus = IvrMenuDao(session=session).find_all_by(tenant_id=tenant.id)
            return sorted((IvrMenuInfo.of(menu, tenant) for menu in menus), key=lambda menu: menu.number)

    def find_menu(self, tenant_id: int, number: str) -> IvrMenuInfo | None:
        """The tenant's menu reached by `number`, or None."""
        with self._sessions() as session:
            menu = IvrMenuDao(session=session).find_by(tenant_id=tenant_id, number=number)
            return IvrMenuInfo.of(menu, session.get_one(Tenant, tenant_id)) if menu is not None else None

    def delete_menu(self, number: str, tenant_domain: str | None = None) -> None:
        """Delete the menu; NotFound if there is none, InvalidValue while another menu sends calls to it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            menus = IvrMenuDao(session=session)
            menu = menus.find_by(tenant_id=tenant.id, number=number)
            if menu is None:
                raise NotFound("IvrMenu", {"number": number, "tenant": tenant.domain})
            check_unrouted(session, tenant, number, kind=DestinationKind.IVR, what="IVR menu")
            menus.delete(menu)


class ScheduleService:
    """Business-hours schedules of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_schedule(self, name: str, hours: str, timezone: str = "UTC", holidays: Iterable[date] = (),
                     tenant_domain: str | None = None) -> ScheduleInfo:
        """Add a schedule open during `hours` (see `schedules.parse_hours`) in `timezone`,
        closed on `holidays`; AlreadyExists if the tenant has one of that name."""
        name = validate_name(name, kind="schedule")
        hours = hours.strip()
        if len(hours) > HOURS_MAX_LENGTH:
            raise InvalidValue(f"schedule {name}: hours are longer than {HOURS_MAX_LENGTH} characters")
        parse_hours(hours)
        validate_timezone(timezone)
        days = sorted({day.date() if isinstance(day, datetime) else day for day in holidays})
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            schedules = ScheduleDao(session=session)
            if schedules.find_by(tenant_id=tenant.id, name=name) is not None:
                raise AlreadyExists(f"schedule {name} of {tenant.domain} already exists")
            schedule = Schedule(tenant_id=tenant.id, name=name, hours=hours, timezone=timezone,
                                holidays=[Holiday(day=day) for day in days])
            try:
                schedules.create(schedule)
            except IntegrityError:  # added by someone else since the check above
                raise AlreadyExists(f"schedule {name} of {tenant.domain} already exists") from None
            return ScheduleInfo.of(schedule)

    def list(self, tenant_domain: str | None = None) -> list[ScheduleInfo]:
        """The tenant's schedules, by name."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            schedules = ScheduleDao(session=session).find_all_by(tenant_id=tenant.id)
            return sorted((ScheduleInfo.of(schedule) for schedule in schedules), key=lambda info: info.name)

    def delete(self, name: str, tenant_domain: str | None = None) -> None:
        """Delete the schedule; NotFound if there is none, InvalidValue while a menu follows it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            schedules = ScheduleDao(session=session)
            schedule = schedules.find_by(tenant_id=tenant.id, name=name)
            if schedule is None:
                raise NotFound("Schedule", {"name": name, "tenant": tenant.domain})
            followers = IvrMenuDao(session=session).find_all_by(tenant_id=tenant.id, schedule_id=schedule.id)
            menus = sorted(menu.number for menu in followers)
            if menus:
                raise InvalidValue(f"schedule {name} of {tenant.domain} is followed by IVR "
                                   f"menu{'s' if len(menus) > 1 else ''} {', '.join(menus)}: "
                                   "change or delete them first")
            schedules.delete(schedule)


def _check_exists(session: Session, tenant: Tenant, role: str, destination: Destination, *,
                  menu_number: str) -> None:
    """`check_destination`, except that the menu being saved (`menu_number`) may send calls to
    itself (as `ivr:N` or plain N, not as a queue or a room: none can have its number)."""
    if destination.number == menu_number and destination.kind in (DestinationKind.EXTENSION,
                                                                   DestinationKind.IVR):
        return
    check_destination(session, tenant, role, destination)


def _prompt_id(prompts: PromptDao, tenant: Tenant, role: str, name: str | None) -> int | None:
    if name is None:
        return None
    prompt = prompts.find_by(tenant_id=tenant.id, name=name)
    if prompt is None:
        raise InvalidValue(f"{role}: prompt {name!r} does not exist in {tenant.domain}")
    return prompt.id


def _schedule_id(session: Session, tenant: Tenant, name: str | None) -> int | None:
    if name is None:
        return None
    schedule = ScheduleDao(session=session).find_by(tenant_id=tenant.id, name=name)
    if schedule is None:
        raise InvalidValue(f"schedule {name!r} does not exist in {tenant.domain}")
    return schedule.id

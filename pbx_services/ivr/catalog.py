"""What the IVR server's menus are made of, read from the system of record and kept a while.

Menus (with their options, prompt names and schedule), prompts' audio (`prompts`, a
PromptCatalog) and the tenants' extensions are each loaded in one query and kept for `ttl`
seconds, so a call costs no database round trip while a change in the database takes
effect within `ttl` seconds. Every cache is bounded: least recently used entries go first. Callers pass `now`
(monotonic seconds) for expiry; the catalog reads no clock.

Rows that the services would have refused (a destination, hours or time zone edited by hand)
are logged and read as harmless: an option left out, a final destination of hang-up, a
closed destination of none, no schedule.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from types import MappingProxyType

from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session, joinedload

from pbx_services.appserver.cache import ExpiringLru
from pbx_services.appserver.prompt_catalog import DEFAULT_MAX_PROMPT_BYTES, PromptCatalog
from pbx_services.cluster.destinations import Destination, DestinationKind, parse_destination
from pbx_services.cluster.models import IvrMenu, Prompt, Schedule, Tenant, User
from pbx_services.cluster.schedules import BusinessHours, parse_hours, validate_timezone
from pbx_services.cluster.validation import InvalidValue
from pbx_services.ivr.menu import Menu

logger = logging.getLogger(__name__)

DEFAULT_MAX_MENUS = 4096
DEFAULT_MAX_TENANTS = 1024
HANGUP = Destination(DestinationKind.HANGUP)

# Built once. The menu with its options, prompt names (not their audio) and schedule with
# its holidays, in one SELECT of outer joins.
_MENU = (
    select(IvrMenu)
    .join(Tenant, Tenant.id == IvrMenu.tenant_id)
    .where(Tenant.domain == bindparam("domain"), IvrMenu.number == bindparam("number"))
    .options(
        joinedload(IvrMenu.options),
        joinedload(IvrMenu.greeting).load_only(Prompt.name),
        joinedload(IvrMenu.invalid_prompt).load_only(Prompt.name),
        joinedload(IvrMenu.timeout_prompt).load_only(Prompt.name),
        joinedload(IvrMenu.schedule).joinedload(Schedule.holidays),
    )
)
_EXTENSIONS = (
    select(User.extension)
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(Tenant.domain == bindparam("domain"), User.enabled.is_(True))
)

@dataclass(frozen=True, slots=True)
class _Extensions:
    """A tenant's extensions, sorted, for exact and prefix look-ups."""

    numbers: frozenset[str]
    ordered: tuple[str, ...]

    def has_longer(self, prefix: str) -> bool:
        # The smallest string that starts with `prefix` and is longer sorts right after it.
        index = bisect.bisect_right(self.ordered, prefix)
        return index < len(self.ordered) and self.ordered[index].startswith(prefix)


class MenuCatalog:
    """The menus, prompts and extensions of every tenant, by the tenant's SIP domain."""

    def __init__(self, engine: Engine, ttl: float = 10.0, *, max_menus: int = DEFAULT_MAX_MENUS,
                 max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES,
                 max_tenants: int = DEFAULT_MAX_TENANTS) -> None:
        self._engine = engine
        self._menus: ExpiringLru[tuple[str, str], Menu | None] = ExpiringLru(ttl=ttl, max_weight=max_menus)
        self.prompts = PromptCatalog(engine, ttl, max_prompt_bytes=max_prompt_bytes)
        self._extensions: ExpiringLru[str, _Extensions] = ExpiringLru(ttl=ttl, max_weight=max_tenants)

    def menu(self, domain: str, number: str, now: float) -> Menu | None:
        """The menu `number` of the tenant of `domain`; None if it has none."""
        key = (domain, number)
        entry = self._menus.lookup(key, now)
        if entry is not None:
            return entry.value
        with Session(self._engine) as session:
            row = session.scalars(_MENU, {"domain": domain, "number": number}).unique().first()
            menu = None if row is None else _menu_of(row, domain)
        logger.debug("catalog: menu %s of %s loaded (%s)", number, domain, "found" if menu else "none")
        return self._menus.store(key, menu, now)

    def extension_exists(self, domain: str, number: str, now: float) -> bool:
        """An enabled user of the tenant has extension `number`."""
        return number in self._tenant_extensions(domain, now).numbers

    def extension_prefix(self, domain: str, prefix: str, now: float) -> bool:
        """An enabled user of the tenant has an extension longer than `prefix` that starts with it."""
        return self._tenant_extensions(domain, now).has_longer(prefix)

    def _tenant_extensions(self, domain: str, now: float) -> _Extensions:
        entry = self._extensions.lookup(domain, now)
        if entry is not None:
            return entry.value
        with self._engine.connect() as connection:
            numbers = sorted(connection.scalars(_EXTENSIONS, {"domain": domain}))
        logger.debug("catalog: %d extensions of %s loaded", len(numbers), domain)
        return self._extensions.store(domain, _Extensions(frozenset(numbers), tuple(numbers)), now)


def _menu_of(row: IvrMenu, domain: str) -> Menu:
    where = f"menu {row.number} of {domain}"
    options: dict[str, Destination] = {}
    for option in row.options:
        destination = _destination(option.destination, f"{where}, option {option.digits}")
        if destination is not None:
            options[option.digits] = destination
    closed = (_destination(row.closed_destination, f"{where}, closed destination")
              if row.closed_destination is not None else None)
    return Menu(
        number=row.number,
        greeting=row.greeting.name,
        invalid_prompt=row.invalid_prompt.name if row.invalid_prompt is not None else None,
        timeout_prompt=row.timeout_prompt.name if row.timeout_prompt is not None else None,
        timeout=float(row.timeout),
        inter_digit_timeout=float(row.inter_digit_timeout),
        retries=row.retries,
        final_destination=_destination(row.final_destination, f"{where}, final destination") or HANGUP,
        dial_by_extension=row.dial_by_extension,
        options=MappingProxyType(options),
        hours=_business_hours(row.schedule, where) if row.schedule is not None else None,
        closed_destination=closed,
    )


def _destination(text: str, where: str) -> Destination | None:
    try:
        return parse_destination(text)
    except InvalidValue as error:
        logger.warning("%s left out: %s", where, error)
        return None


def _business_hours(schedule: Schedule, where: str) -> BusinessHours | None:
    try:
        return BusinessHours(parse_hours(schedule.hours), validate_timezone(schedule.timezone),
                             frozenset(holiday.day for holiday in schedule.holidays))
    except InvalidValue as error:
        logger.warning("%s: schedule %s left out (always open): %s", where, schedule.name, error)
        return None

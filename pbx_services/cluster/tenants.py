"""Tenant service: the organizations, each with its own SIP domain.

A tenant's users, menus, queues and rooms are its own: the same extension numbers live in
two tenants, and a call never crosses from one to another (the Call Manager refuses a call
naming another tenant's domain). The default tenant (`callmanager.default_domain`) is made
by `pbx init` and cannot be deleted.
"""

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, TenantDao
from pbx_services.cluster.models import CallQueue, IvrMenu, MeetingRoom, Prompt, Tenant, User
from pbx_services.cluster.users import check_max_calls, set_given
from pbx_services.cluster.validation import InvalidValue, validate_display_name, validate_domain

_CONTENTS = (("users", User), ("IVR menus", IvrMenu), ("queues", CallQueue), ("meeting rooms", MeetingRoom),
             ("prompts", Prompt))
"""What a tenant holds, by the name an administrator knows it by."""


@dataclass(frozen=True, slots=True)
class TenantInfo:
    domain: str
    name: str
    default: bool
    """The default tenant: users added without a tenant belong to it."""
    max_calls: int
    """How many calls its users may have at once (0: no limit)."""
    users: int
    ivr_menus: int
    queues: int
    meeting_rooms: int
    prompts: int


class TenantService:
    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str | None = None) -> None:
        """`default_domain`: the default tenant's (`callmanager.default_domain`), never deleted."""
        self._sessions = sessions
        self._default_domain = default_domain

    def ensure_tenant(self, domain: str, *, name: str | None = None) -> tuple[Tenant, bool]:
        """The tenant of `domain`, created (named `name`, default the domain) if it does not
        exist; the flag says whether it was created."""
        domain = validate_domain(domain)
        with self._sessions.begin() as session:
            tenants = TenantDao(session=session)
            existing = tenants.find_by(domain=domain)
            if existing is not None:
                return existing, False
            return tenants.create(Tenant(name=name or domain, domain=domain)), True

    def add_tenant(self, domain: str, *, name: str | None = None, max_calls: int = 0) -> Tenant:
        """A new tenant of SIP domain `domain`; AlreadyExists if it has one. `max_calls`: how
        many calls its users may have at once (0: no limit)."""
        if name is not None:
            validate_display_name(name)
        check_max_calls(f"tenant {domain}", max_calls)
        tenant, created = self.ensure_tenant(domain, name=name)
        if not created:
            raise AlreadyExists(f"tenant {tenant.domain} exists already")
        if max_calls:
            tenant = self.set_tenant(tenant.domain, max_calls=max_calls)
        return tenant

    def set_tenant(self, domain: str, *, name: str | None = None, max_calls: int | None = None) -> Tenant:
        """Change the tenant's name and concurrent-call limit (those given); NotFound if none has
        `domain`."""
        domain = validate_domain(domain)
        if name is not None:
            validate_display_name(name)
        if max_calls is not None:
            check_max_calls(f"tenant {domain}", max_calls)
        with self._sessions.begin() as session:
            tenant = TenantDao(session=session).get_by(domain=domain)
            set_given(tenant, name=name, max_calls=max_calls)
            session.flush()
            return tenant

    def list_tenants(self) -> list[Tenant]:
        with self._sessions() as session:
            return TenantDao(session=session).find_all_by()

    def describe_tenants(self) -> list[TenantInfo]:
        """Every tenant with what it holds, by domain."""
        with self._sessions() as session:
            counts = {label: dict(session.execute(
                select(model.tenant_id, func.count()).group_by(model.tenant_id)).all())
                for label, model in _CONTENTS}
            tenants = session.scalars(select(Tenant).order_by(Tenant.domain)).all()
            return [TenantInfo(domain=t.domain, name=t.name, default=t.domain == self._default_domain,
                               max_calls=t.max_calls,
                               **{label.replace(" ", "_").replace("IVR", "ivr"): counts[label].get(t.id, 0)
                                  for label, _ in _CONTENTS})
                    for t in tenants]

    def delete_tenant(self, domain: str, *, everything: bool = False) -> None:
        """Delete the tenant of `domain`. One that still holds users, menus, queues, rooms or
        prompts is refused, naming them, unless `everything`: then they go with it (its CDRs
        stay, without a tenant). The default tenant is never deleted."""
        domain = validate_domain(domain)
        if domain == self._default_domain:
            raise InvalidValue(f"tenant {domain} is the default tenant (callmanager.default_domain):"
                               " it cannot be deleted")
        with self._sessions.begin() as session:
            tenant = TenantDao(session=session).get_by(domain=domain)
            held = [f"{label} ({count})" for label, model in _CONTENTS
                    if (count := session.scalar(select(func.count()).select_from(model)
                                                .where(model.tenant_id == tenant.id)))]
            if held and not everything:
                raise InvalidValue(f"tenant {domain} still has {', '.join(held)}: delete them first, "
                                   "or delete the tenant with everything in it (--everything)")
            # Users are not deleted with their tenant by the database (their CDRs name them):
            # explicitly, then the rest by the foreign keys' cascades.
            session.execute(delete(User).where(User.tenant_id == tenant.id))
            session.delete(tenant)

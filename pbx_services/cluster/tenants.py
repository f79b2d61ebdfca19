"""Tenant service: the organizations, each with its own SIP domain."""

from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import TenantDao
from pbx_services.cluster.models import Tenant
from pbx_services.cluster.validation import validate_domain


class TenantService:
    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

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

    def list_tenants(self) -> list[Tenant]:
        with self._sessions() as session:
            return TenantDao(session=session).find_all_by()

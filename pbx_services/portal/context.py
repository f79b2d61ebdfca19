"""What every request of the portal reaches: the configuration, the database, the services.

A view gets it with `portal_context()`; a tenant's service (users, queues, rooms...) with
`portal_context().service(UserService)`, built like the CLI builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.admins import AdminService, Lockout
from pbx_services.cluster.config import PbxConfig
from pbx_services.portal.cluster_monitor import ClusterMonitor
from pbx_services.portal.login_limit import LoginLimiter

EXTENSION_KEY = "pbx"

ServiceT = TypeVar("ServiceT")


@dataclass(frozen=True)
class PortalContext:
    config: PbxConfig
    sessions: sessionmaker[Session]
    """SQLAlchemy sessions of the system of record (`with ctx.sessions.begin() as session:`)."""
    admins: AdminService
    monitor: ClusterMonitor
    """The servers' probed state, refreshed in the background."""
    login_limiter: LoginLimiter
    """Failed logins by source address (the lockout counts them by account)."""

    @property
    def lockout(self) -> Lockout:
        portal = self.config.portal
        return Lockout(failures=portal.lockout_failures, minutes=portal.lockout_minutes)

    def service(self, factory: Callable[..., ServiceT]) -> ServiceT:
        """A tenants' service (TenantService, UserService, QueueService...), whose tenant is the
        default one when a call names none; scope it with `auth.scoped_domain` first."""
        return factory(sessions=self.sessions, default_domain=self.config.callmanager.default_domain)


def portal_context() -> PortalContext:
    context: PortalContext = current_app.extensions[EXTENSION_KEY]
    return context

"""The portal's administrators and the audit log of what they did."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, SmallInteger, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.models.tenant import Tenant

ADMIN_NAME_MAX_LENGTH = 64


class AdminRole(StrEnum):
    """What an administrator may do (PortSIP's system, operation and tenant administrators)."""

    SYSTEM = "system"
    """Everything, administrators included."""
    OPERATOR = "operator"
    """Operations of every tenant and of the cluster (servers enabled or disabled); not administrators."""
    TENANT = "tenant"
    """Only its own tenant's data."""


class Administrator(Base):
    """Someone who logs in to the portal. A tenant administrator has a tenant; the others none."""

    __tablename__ = "administrators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(ADMIN_NAME_MAX_LENGTH), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    """`scrypt$N$r$p$salt$hash` (hex), see `cluster.admins`."""
    role: Mapped[AdminRole] = mapped_column(
        Enum(AdminRole, name="admin_role", native_enum=False, create_constraint=True, length=16,
             values_callable=lambda roles: [role.value for role in roles]))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), default=None)
    tenant: Mapped[Tenant | None] = relationship(lazy="joined")
    must_change_password: Mapped[bool] = mapped_column(default=False, server_default=false())
    """A one-time password: the next login must set a new one before anything else."""
    failed_logins: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    """Wrong passwords in a row since the last good one."""
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    """Sessions opened before it are no longer valid (a changed password logs the others out)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Administrator(id={self.id!r}, name={self.name!r}, role={self.role!r})"


class AuditEntry(Base):
    """One thing an administrator did (who, when, what); kept when the administrator is deleted."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(ADMIN_NAME_MAX_LENGTH + 16))
    """The administrator's name, or `cli:USER` for the pbx command."""
    action: Mapped[str] = mapped_column(String(64))
    """What was done: `server.disable`, `admin.add`, `login.failed`..."""
    target: Mapped[str] = mapped_column(String(255), default="")
    """What it was done to: a server's name, an administrator's..."""
    detail: Mapped[str] = mapped_column(Text, default="")
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"), default=None)
    """The tenant whose data it touched, so its tenant administrators see it; None: the cluster's."""
    source: Mapped[str] = mapped_column(String(64), default="")
    """The client's address, for the portal."""

    def __repr__(self) -> str:
        return f"AuditEntry(id={self.id!r}, actor={self.actor!r}, action={self.action!r})"

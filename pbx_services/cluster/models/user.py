from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.models.tenant import Tenant
from pbx_services.cluster.validation import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, EXTENSION_MAX_LENGTH


class User(Base):
    """A SIP user of a tenant, reachable and authenticated as `extension@tenant.domain`.

    Only digest HA1 hashes are stored (hex of H(extension:domain:password) with MD5 and
    SHA-256), never the password itself.
    """

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "extension"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    extension: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    display_name: Mapped[str | None] = mapped_column(String(DISPLAY_NAME_MAX_LENGTH))
    email: Mapped[str | None] = mapped_column(String(EMAIL_MAX_LENGTH))
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    tenant: Mapped[Tenant] = relationship()

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, tenant_id={self.tenant_id!r}, extension={self.extension!r})"

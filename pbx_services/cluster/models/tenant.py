from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base
from pbx_services.cluster.validation import DOMAIN_MAX_LENGTH


class Tenant(Base):
    """An organization with its own SIP domain.

    `domain` is also the digest realm, so the users' HA1 hashes depend on it: changing
    a tenant's domain requires every user's password to be set again.
    """

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    domain: Mapped[str] = mapped_column(String(DOMAIN_MAX_LENGTH), unique=True)
    max_calls: Mapped[int] = mapped_column(default=0, server_default="0")
    """How many calls the tenant's users may have at once (0: no limit; emergency calls are
    never refused for it)."""

    def __repr__(self) -> str:
        return f"Tenant(id={self.id!r}, domain={self.domain!r})"

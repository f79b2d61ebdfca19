"""SIP trunks: the connections to providers through which calls leave and enter the PBX."""

import enum
from datetime import datetime

from sqlalchemy import Enum, Integer, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import DOMAIN_MAX_LENGTH, EXTENSION_MAX_LENGTH

TRUNK_NAME_MAX_LENGTH = 64
CREDENTIAL_MAX_LENGTH = 128


class TrunkTransport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"


class Trunk(Base):
    """A provider's SIP server at `host`:`port`. Calls out go there with `caller_id` as the From
    user; a challenge (401/407) is answered with `username`/`password`, which is kept in clear
    because a digest answer needs the password itself. With `register`, the Call Manager
    registers `username` there and keeps the registration fresh. Calls in are accepted
    without digest from the trunk's host (IP authentication). At most `max_calls` calls at
    once go through it (0: no limit); a disabled trunk carries none."""

    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(TRUNK_NAME_MAX_LENGTH))
    host: Mapped[str] = mapped_column(String(DOMAIN_MAX_LENGTH))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[TrunkTransport] = mapped_column(
        Enum(TrunkTransport, native_enum=False, length=8, values_callable=lambda e: [m.value for m in e]),
        default=TrunkTransport.UDP)
    username: Mapped[str | None] = mapped_column(String(CREDENTIAL_MAX_LENGTH))
    password: Mapped[str | None] = mapped_column(String(CREDENTIAL_MAX_LENGTH))
    register: Mapped[bool] = mapped_column(default=False, server_default=false())
    max_calls: Mapped[int] = mapped_column(Integer, default=0)
    caller_id: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Trunk(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"

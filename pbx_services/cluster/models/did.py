"""DIDs: the provider's numbers that reach the PBX, each sent to a destination of its tenant."""

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.destinations import DESTINATION_MAX_LENGTH
from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH

HOURS_MAX_LENGTH = 255
TIMEZONE_MAX_LENGTH = 64


class Did(Base):
    """A call from a trunk to `number` (its Request-URI or To user) goes to `destination`, in
    the syntax of `cluster.destinations` (an extension, queue:N, meeting:N, ivr:N). With `hours`
    (as `cluster.schedules` writes them, in `timezone`), outside them and on `holidays`
    (ISO dates separated by commas) it goes to `closed_destination` instead."""

    __tablename__ = "dids"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    destination: Mapped[str] = mapped_column(String(DESTINATION_MAX_LENGTH))
    hours: Mapped[str | None] = mapped_column(String(HOURS_MAX_LENGTH))
    timezone: Mapped[str | None] = mapped_column(String(TIMEZONE_MAX_LENGTH))
    holidays: Mapped[str | None] = mapped_column(Text)
    closed_destination: Mapped[str | None] = mapped_column(String(DESTINATION_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Did(id={self.id!r}, tenant_id={self.tenant_id!r}, number={self.number!r})"

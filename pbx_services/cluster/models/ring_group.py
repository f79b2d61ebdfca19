"""Ring groups: a number that rings several users, all at once or one after another."""

from datetime import datetime

from sqlalchemy import SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.destinations import DESTINATION_MAX_LENGTH
from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH


class RingGroup(Base):
    """Dialling `number` rings `members` (extensions, comma-separated, in order): all of them
    for `ring_seconds` (simultaneous), or each in turn for `ring_seconds` (sequential, a member
    without a registered device or busy is skipped at once). When nobody answered the call goes
    to `final_destination` (a number of the tenant), or is refused 480 without one."""

    __tablename__ = "ring_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    name: Mapped[str | None] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16), default="simultaneous")
    members: Mapped[str] = mapped_column(Text)
    ring_seconds: Mapped[int] = mapped_column(SmallInteger, default=20)
    final_destination: Mapped[str | None] = mapped_column(String(DESTINATION_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"RingGroup(id={self.id!r}, tenant_id={self.tenant_id!r}, number={self.number!r})"

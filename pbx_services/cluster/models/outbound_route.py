"""Outbound routes: which dialled numbers leave the PBX, rewritten how, through which trunks."""

import enum
from datetime import datetime

from sqlalchemy import Enum, Integer, SmallInteger, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.models.trunk import TRUNK_NAME_MAX_LENGTH

PATTERN_MAX_LENGTH = 128
PREPEND_MAX_LENGTH = 16


class PermissionClass(enum.StrEnum):
    """What kind of call a route makes, from the cheapest; emergency calls are always allowed."""

    INTERNAL = "internal"
    LOCAL = "local"
    NATIONAL = "national"
    INTERNATIONAL = "international"
    PREMIUM = "premium"
    EMERGENCY = "emergency"


class OutboundRoute(Base):
    """A dialled number matching `pattern` (see `cluster.dial_patterns`) that no extension or
    service of the tenant has goes out: `strip` leading characters off, `prepend` in front, to
    the route's first trunk, then the next when one fails. Routes are tried by `priority`
    (lowest first), then name."""

    __tablename__ = "outbound_routes"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(TRUNK_NAME_MAX_LENGTH))
    pattern: Mapped[str] = mapped_column(String(PATTERN_MAX_LENGTH))
    strip: Mapped[int] = mapped_column(SmallInteger, default=0)
    prepend: Mapped[str] = mapped_column(String(PREPEND_MAX_LENGTH), default="")
    permission: Mapped[PermissionClass] = mapped_column(
        Enum(PermissionClass, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=PermissionClass.NATIONAL)
    priority: Mapped[int] = mapped_column(Integer, default=100)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    trunks: Mapped[list["OutboundRouteTrunk"]] = relationship(
        order_by="OutboundRouteTrunk.position", cascade="all, delete-orphan", lazy="selectin")

    def __repr__(self) -> str:
        return f"OutboundRoute(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"


class OutboundRouteTrunk(Base):
    """The trunk a route tries in `position` (0 first)."""

    __tablename__ = "outbound_route_trunks"
    __table_args__ = (UniqueConstraint("route_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("outbound_routes.id", ondelete="CASCADE"))
    trunk_id: Mapped[int] = mapped_column(ForeignKey("trunks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)

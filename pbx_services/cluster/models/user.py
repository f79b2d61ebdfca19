from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.models.outbound_route import PermissionClass
from pbx_services.cluster.models.tenant import Tenant
from pbx_services.cluster.validation import DISPLAY_NAME_MAX_LENGTH, EMAIL_MAX_LENGTH, EXTENSION_MAX_LENGTH

USER_PERMISSIONS = (PermissionClass.INTERNAL, PermissionClass.LOCAL, PermissionClass.NATIONAL,
                    PermissionClass.INTERNATIONAL, PermissionClass.PREMIUM)
"""The outbound permissions a user may have, from the narrowest: each allows the routes of its
class and of the classes before it. Emergency routes are allowed to everyone."""
DEFAULT_PERMISSION = PermissionClass.NATIONAL
PICKUP_GROUP_MAX_LENGTH = 64


def permits(permission: str, route_class: str) -> bool:
    """Whether a user of outbound `permission` may dial through a route of class `route_class`."""
    if route_class == PermissionClass.EMERGENCY:
        return True
    order = [p.value for p in USER_PERMISSIONS]
    return order.index(route_class) <= order.index(permission)


class User(Base):
    """A SIP user of a tenant, reachable and authenticated as `extension@tenant.domain`.

    Only digest HA1 hashes are stored (hex of H(extension:domain:password) with MD5 and
    SHA-256), never the password itself. `permission` is the widest class of outbound route
    the user may dial (`permits`); `max_calls` how many calls the user may have at once
    (0: no limit; emergency calls are never refused for it); `pickup_group` whose ringing
    calls it may pick up (`callmanager.pickup`).
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
    permission: Mapped[PermissionClass] = mapped_column(
        Enum(PermissionClass, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=DEFAULT_PERMISSION, server_default=DEFAULT_PERMISSION.value)
    max_calls: Mapped[int] = mapped_column(default=0, server_default="0")
    pickup_group: Mapped[str | None] = mapped_column(String(PICKUP_GROUP_MAX_LENGTH))
    """Whose ringing calls the user may pick up with the group pickup code; None: the tenant's
    default group (every user of the tenant without a group of its own)."""
    withhold_number: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Its number is withheld on every call out through a trunk, as when its phone asks for it
    (`callmanager.trunks.TrunkCall.identity`); inside the PBX it is shown."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    tenant: Mapped[Tenant] = relationship()

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, tenant_id={self.tenant_id!r}, extension={self.extension!r})"

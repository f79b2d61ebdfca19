from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, SmallInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow


class ServerRole(StrEnum):
    """What a server does. The Call Managers balance calls over the media and application
    servers of each role; the Call Managers' own rows are there to be watched (probed, shown
    by the portal, reported down), never given calls."""

    MEDIA = "media"
    IVR = "ivr"
    QUEUE = "queue"
    MEETING = "meeting"
    CALLMANAGER = "callmanager"

    @property
    def is_application(self) -> bool:
        """A SIP application server, which the Call Managers send calls to."""
        return self in (ServerRole.IVR, ServerRole.QUEUE, ServerRole.MEETING)

    @property
    def answers_sip(self) -> bool:
        """Probed by the Call Managers with SIP OPTIONS: an application server or a Call Manager
        (on its own address, `sip.node_host`)."""
        return self is not ServerRole.MEDIA

    @property
    def can_be_disabled(self) -> bool:
        """A Call Manager takes calls by holding the VIP (keepalived), not by being chosen."""
        return self is not ServerRole.CALLMANAGER


class Server(Base):
    """A server of the cluster, and whether the Call Managers may give it new calls.

    A media server is reached on its control port, an application server (IVR, queue,
    meeting) on its SIP port: `port` for its first worker, `port + i` for worker i of
    `workers`. A disabled server takes no new calls; the calls it has go on. A Call Manager
    is listed at its own SIP address (`sip.node_host`, not the VIP), its workers sharing the port.
    """

    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[ServerRole] = mapped_column(
        Enum(ServerRole, name="server_role", native_enum=False, create_constraint=True, length=16,
             values_callable=lambda roles: [role.value for role in roles]))
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int]
    workers: Mapped[int] = mapped_column(SmallInteger, default=1)
    weight: Mapped[int] = mapped_column(SmallInteger, default=1)
    """Share of new calls relative to the other servers of the role (least calls per weight wins)."""
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    http_port: Mapped[int | None] = mapped_column(default=None)
    """Where its /health, /metrics and control API answer, on `host`; None: not known."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Server(id={self.id!r}, name={self.name!r}, role={self.role!r})"

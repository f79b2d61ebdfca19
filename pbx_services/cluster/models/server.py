from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, SmallInteger, String, true
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow


class ServerRole(StrEnum):
    """What a backend server does; the Call Manager balances calls over each role's servers."""

    MEDIA = "media"
    IVR = "ivr"
    QUEUE = "queue"
    MEETING = "meeting"

    @property
    def is_application(self) -> bool:
        """A SIP application server (reached by SIP, probed with OPTIONS), not a media server."""
        return self is not ServerRole.MEDIA


class Server(Base):
    """A backend server the Call Managers use, and whether they may give it new calls.

    A media server is reached on its control port, an application server (IVR, queue,
    meeting) on its SIP port: `port` for its first worker, `port + i` for worker i of
    `workers`. A disabled server takes no new calls; the calls it has go on.
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

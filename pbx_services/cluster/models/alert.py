"""Alerts about servers down (`cluster/alerts.py`): their history, the e-mails told about them
(also the outbox the sending portal works from), and the alert engine's saved state."""

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow

REASON_MAX_LENGTH = 400
SUBJECT_MAX_LENGTH = 400
ERROR_MAX_LENGTH = 400
SENDER_MAX_LENGTH = 128
"""A portal instance's name (`host:pid`)."""


class AlertRecord(Base):
    """A server down once: from when it went down until it came back (open while it is down)."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_role_server_resolved_at", "role", "server", "resolved_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    server: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    """The state that fired it (down, fault), as `events.ServerState` names it."""
    reason: Mapped[str] = mapped_column(String(REASON_MAX_LENGTH), default="")
    since: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)

    def __repr__(self) -> str:
        return f"AlertRecord(id={self.id!r}, role={self.role!r}, server={self.server!r})"


class EmailDelivery(enum.StrEnum):
    PENDING = "pending"
    """To send (again) at `next_attempt_at`."""
    SENT = "sent"
    FAILED = "failed"
    """Given up after the last retry."""


class AlertEmail(Base):
    """One notification of the alert engine, as the e-mail it is: written with the engine's state
    in one transaction, then sent by the portal holding the alerts' lease."""

    __tablename__ = "alert_emails"
    __table_args__ = (Index("ix_alert_emails_delivery_next_attempt_at", "delivery", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    role: Mapped[str] = mapped_column(String(32))
    """The group: the role whose servers it is about."""
    status: Mapped[str] = mapped_column(String(16))
    """firing or resolved (`alerts.NotificationStatus`)."""
    servers_down: Mapped[str] = mapped_column(Text, default="")
    """The servers it says are down, comma-separated."""
    servers_back: Mapped[str] = mapped_column(Text, default="")
    """The servers it says are back up, comma-separated."""
    subject: Mapped[str] = mapped_column(String(SUBJECT_MAX_LENGTH))
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[str] = mapped_column(Text)
    """Comma-separated addresses."""
    delivery: Mapped[EmailDelivery] = mapped_column(
        Enum(EmailDelivery, name="alert_email_delivery", native_enum=False, length=8,
             values_callable=lambda kinds: [kind.value for kind in kinds]),
        default=EmailDelivery.PENDING)
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    """When it may be tried; a portal trying it moves this on first, so no other tries it meanwhile."""
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    sent_by: Mapped[str | None] = mapped_column(String(SENDER_MAX_LENGTH), default=None)
    """The portal instance that sent it (or tried last)."""
    last_error: Mapped[str | None] = mapped_column(String(ERROR_MAX_LENGTH), default=None)

    def __repr__(self) -> str:
        return f"AlertEmail(id={self.id!r}, role={self.role!r}, status={self.status!r})"


class AlertEngineState(Base):
    """The alert engine's state and where it is in the bus, saved by the sending portal after each
    change; the next sender takes on from it. `version` grows with each save: a save that does not
    find the version it loaded was beaten by another sender, and is rolled back."""

    __tablename__ = "alert_engine_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream_id: Mapped[str] = mapped_column(String(64))
    """The last bus entry taken into account."""
    engine: Mapped[str] = mapped_column(Text)
    """`AlertEngine.snapshot()` as JSON."""
    version: Mapped[int] = mapped_column(Integer)
    saved_by: Mapped[str] = mapped_column(String(SENDER_MAX_LENGTH))
    saved_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"AlertEngineState(version={self.version!r}, stream_id={self.stream_id!r})"

"""Users' voicemail: a mailbox per user that has one, and the messages left in it."""

import enum
from datetime import datetime

from sqlalchemy import Enum, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow

DEFAULT_MAX_MESSAGES = 100
DEFAULT_MAX_SECONDS = 180
PIN_HASH_MAX_LENGTH = 200
MESSAGE_PATH_MAX_LENGTH = 400


class MessageStatus(enum.StrEnum):
    NEW = "new"
    """Not listened to yet: counts in the phone's message-waiting light."""
    SAVED = "saved"
    """Listened to (or saved) through the voicemail menu."""


class Mailbox(Base):
    """The voicemail settings of one user. `changed_at` moves whenever its messages change:
    the Call Managers poll it to tell subscribed phones (message-waiting indication)."""

    __tablename__ = "voicemail_boxes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    pin_hash: Mapped[str] = mapped_column(String(PIN_HASH_MAX_LENGTH))
    """scrypt of the PIN (`cluster.voicemail.hash_pin`): what the menu's caller enters is checked
    against it; the PIN itself is kept nowhere."""
    email: Mapped[str | None] = mapped_column(String(255))
    """Where each new message is sent, its WAV attached; none: no email."""
    greeting_prompt: Mapped[str | None] = mapped_column(String(64))
    """A prompt of the tenant's (`pbx prompt`) played instead of the spoken greeting."""
    max_messages: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_MESSAGES)
    max_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_MAX_SECONDS)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)

    def __repr__(self) -> str:
        return f"Mailbox(user_id={self.user_id!r})"


class VoicemailMessage(Base):
    """A message left in a mailbox: its audio is the WAV at `path` (relative to the voicemail
    directory of the IVR servers, `ivr.recording_dir`/voicemail)."""

    __tablename__ = "voicemail_messages"
    __table_args__ = (Index("ix_voicemail_messages_user_id_status", "user_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("voicemail_boxes.user_id", ondelete="CASCADE"))
    caller: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    duration: Mapped[float] = mapped_column(Float)
    """Seconds of audio."""
    path: Mapped[str] = mapped_column(String(MESSAGE_PATH_MAX_LENGTH))
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, name="voicemail_message_status", native_enum=False, length=8,
             values_callable=lambda kinds: [kind.value for kind in kinds]),
        default=MessageStatus.NEW)

    def __repr__(self) -> str:
        return f"VoicemailMessage(id={self.id!r}, user_id={self.user_id!r})"

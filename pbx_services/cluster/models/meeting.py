"""Meeting rooms: audio conferences reached by dialling their number in their tenant."""

from datetime import datetime

from sqlalchemy import SmallInteger, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH

PIN_MAX_LENGTH = 16


class MeetingRoom(Base):
    """A conference room. Callers enter `pin` (when set) to join, or `moderator_pin` to join as
    a moderator, who can lock the room, mute everyone and end the meeting. With
    `wait_for_moderator`, participants hear music until a moderator joins; with
    `end_with_moderator`, the meeting ends when the last moderator leaves. The room's audio
    is mixed on one meeting server at a time (see docs/meetings.md)."""

    __tablename__ = "meeting_rooms"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    name: Mapped[str | None] = mapped_column(String(64))
    pin: Mapped[str | None] = mapped_column(String(PIN_MAX_LENGTH))
    moderator_pin: Mapped[str | None] = mapped_column(String(PIN_MAX_LENGTH))
    max_participants: Mapped[int] = mapped_column(SmallInteger, default=50)
    pin_tries: Mapped[int] = mapped_column(SmallInteger, default=3)
    """Wrong PINs after which the caller hears so and is hung up."""
    wait_for_moderator: Mapped[bool] = mapped_column(default=False, server_default=false())
    end_with_moderator: Mapped[bool] = mapped_column(default=False, server_default=false())
    mute_on_entry: Mapped[bool] = mapped_column(default=False, server_default=false())
    entry_tones: Mapped[bool] = mapped_column(default=True, server_default=true())
    """A rising tone when someone joins, a falling one when someone leaves."""
    record: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Record the mix of every meeting held in the room (a WAV per meeting, in the CDRs)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"MeetingRoom(id={self.id!r}, tenant_id={self.tenant_id!r}, number={self.number!r})"

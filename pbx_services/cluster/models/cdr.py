from datetime import datetime
from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from pbx_services.cluster.events import Disposition, HangupBy
from pbx_services.cluster.models.base import Base, UtcDateTime


def _enum_values(enum: type[StrEnum]) -> list[str]:
    return [member.value for member in enum]


class Cdr(Base):
    """A call detail record: one per call, written when the call ends.

    `duration` is the talk time in seconds (answer to end), 0 for unanswered calls; the
    whole call lasted `end_time - start_time`.
    """

    __tablename__ = "cdrs"
    __table_args__ = (
        Index(None, "start_time"),
        Index(None, "caller", "start_time"),
        Index(None, "callee", "start_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(String(255), index=True)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    caller: Mapped[str] = mapped_column(String(255))
    callee: Mapped[str] = mapped_column(String(255))
    caller_ip: Mapped[str] = mapped_column(String(45))
    start_time: Mapped[datetime] = mapped_column(UtcDateTime())
    answer_time: Mapped[datetime | None] = mapped_column(UtcDateTime())
    end_time: Mapped[datetime] = mapped_column(UtcDateTime())
    disposition: Mapped[Disposition] = mapped_column(
        Enum(
            Disposition,
            name="cdr_disposition",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_enum_values,
        )
    )
    sip_code: Mapped[int] = mapped_column(SmallInteger)
    hangup_by: Mapped[HangupBy | None] = mapped_column(
        Enum(
            HangupBy,
            name="cdr_hangup_by",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_enum_values,
        )
    )
    duration: Mapped[int]
    recording: Mapped[str | None] = mapped_column(String(1024))
    """Path of the call's recording on its media server (a stereo WAV: caller left, callee right)."""
    end_reason: Mapped[str | None] = mapped_column(String(32))
    """Why the PBX ended the call itself (`EndReason`: media_lost, rtp_timeout, ...); NULL otherwise.
    A plain string, so that a new reason needs no migration."""
    dialed: Mapped[str | None] = mapped_column(String(255))
    """The number the caller dialled when the call went elsewhere (a forward, a ring group's final
    destination, a pickup by another user): `callee` is who it went to. NULL when it is `callee`."""

    def __repr__(self) -> str:
        return f"Cdr(id={self.id!r}, call_id={self.call_id!r}, disposition={self.disposition!r})"

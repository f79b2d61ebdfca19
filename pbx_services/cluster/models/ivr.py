"""IVR menus, their options, the prompts they play and the schedules that choose between them."""

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, LargeBinary, SmallInteger, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbx_services.cluster.destinations import DESTINATION_MAX_LENGTH
from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import EXTENSION_MAX_LENGTH

PROMPT_NAME_MAX_LENGTH = 64
"""An extension number or `queue:N`, `meeting:N`, `ivr:N`, `dial`, `repeat`, `hangup`."""


class Prompt(Base):
    """A recorded or synthesised announcement of a tenant, kept in the database so that every
    IVR server of the cluster plays the same one: 16-bit little-endian PCM, mono, 8 kHz."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(PROMPT_NAME_MAX_LENGTH))
    audio: Mapped[bytes] = mapped_column(LargeBinary)
    source: Mapped[str] = mapped_column(String(255))
    """Where it came from: "say: <text>" or "file: <name>"."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Prompt(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"


class Schedule(Base):
    """Business hours of a tenant ("mon-fri 09:00-17:00; sat 10:00-12:00" in `timezone`) and the
    holidays on which it is closed all day; menus (later inbound routes) follow it."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    hours: Mapped[str] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")

    holidays: Mapped[list["Holiday"]] = relationship(cascade="all, delete-orphan", order_by="Holiday.day")

    def __repr__(self) -> str:
        return f"Schedule(id={self.id!r}, name={self.name!r})"


class Holiday(Base):
    __tablename__ = "holidays"
    __table_args__ = (UniqueConstraint("schedule_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str | None] = mapped_column(String(64))


class IvrMenu(Base):
    """An auto-attendant reached by dialling `number` in its tenant.

    The greeting plays; digits pressed during it stop it (barge-in). Input ends with `#`, when
    no option starts with what was pressed, or `inter_digit_timeout` seconds after the last
    digit. Nothing pressed within `timeout` seconds of the greeting's end, or input matching
    no option, plays the timeout or invalid prompt and the greeting again, `retries` times at
    most; then the call goes to `final_destination`. Outside the `schedule`'s hours (or on
    one of its holidays) the call goes to `closed_destination` instead.
    """

    __tablename__ = "ivr_menus"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(EXTENSION_MAX_LENGTH))
    name: Mapped[str | None] = mapped_column(String(64))
    greeting_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"))
    invalid_prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"))
    timeout_prompt_id: Mapped[int | None] = mapped_column(ForeignKey("prompts.id"))
    timeout: Mapped[int] = mapped_column(SmallInteger, default=5)
    inter_digit_timeout: Mapped[int] = mapped_column(SmallInteger, default=3)
    retries: Mapped[int] = mapped_column(SmallInteger, default=3)
    final_destination: Mapped[str] = mapped_column(String(DESTINATION_MAX_LENGTH), default="hangup")
    dial_by_extension: Mapped[bool] = mapped_column(default=False, server_default=false())
    """Input that is no option but an extension of the tenant is transferred there."""
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("schedules.id", ondelete="SET NULL"))
    closed_destination: Mapped[str | None] = mapped_column(String(DESTINATION_MAX_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    options: Mapped[list["IvrOption"]] = relationship(cascade="all, delete-orphan",
                                                      order_by="IvrOption.digits")
    greeting: Mapped[Prompt] = relationship(foreign_keys=[greeting_id])
    invalid_prompt: Mapped[Prompt | None] = relationship(foreign_keys=[invalid_prompt_id])
    timeout_prompt: Mapped[Prompt | None] = relationship(foreign_keys=[timeout_prompt_id])
    schedule: Mapped[Schedule | None] = relationship()

    def __repr__(self) -> str:
        return f"IvrMenu(id={self.id!r}, tenant_id={self.tenant_id!r}, number={self.number!r})"


class IvrOption(Base):
    """What pressing `digits` (one key, or several: "11") in a menu does."""

    __tablename__ = "ivr_options"
    __table_args__ = (UniqueConstraint("menu_id", "digits"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    menu_id: Mapped[int] = mapped_column(ForeignKey("ivr_menus.id", ondelete="CASCADE"))
    digits: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(DESTINATION_MAX_LENGTH))

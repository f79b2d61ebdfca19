"""SIP trunks: the connections to providers through which calls leave and enter the PBX."""

import enum
from datetime import datetime

from sqlalchemy import Enum, Integer, String, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.schema import ForeignKey

from pbx_services.cluster.models.base import Base, UtcDateTime, utcnow
from pbx_services.cluster.validation import DOMAIN_MAX_LENGTH, EXTENSION_MAX_LENGTH

TRUNK_NAME_MAX_LENGTH = 64
CREDENTIAL_MAX_LENGTH = 128
CODECS_MAX_LENGTH = 64
PREFIX_MAX_LENGTH = 4
DEFAULT_PROBE_INTERVAL = 30
DEFAULT_DOWN_AFTER = 2
"""Failed probes in a row after which a trunk is down (Kamailio dispatcher's default too)."""
DEFAULT_UP_AFTER = 2
"""Answered probes in a row after which a down trunk is up again."""
DEFAULT_INTERNATIONAL_PREFIX = "00"


class TrunkTransport(enum.StrEnum):
    UDP = "udp"
    TCP = "tcp"


class NumberFormat(enum.StrEnum):
    """How numbers are written toward the trunk (`callmanager.numbers`)."""

    E164 = "e164"
    """+33612345678"""
    NATIONAL = "national"
    """0612345678"""
    AS_DIALLED = "as-dialled"
    """Left as the route made it."""


class Trunk(Base):
    """A provider's SIP server at `host`:`port`. Calls out go there with `caller_id` as the From
    user; a challenge (401/407) is answered with `username`/`password`, which is kept in clear
    because a digest answer needs the password itself. With `register`, the Call Manager
    registers `username` there and keeps the registration fresh. Calls in are accepted
    without digest from the trunk's host (IP authentication). At most `max_calls` calls at
    once go through it (0: no limit); a disabled trunk carries none. Every `probe_interval`
    seconds (0: never) it is probed with OPTIONS; `down_after` failures in a row take it down
    (passed over by its routes), `up_after` answers in a row bring it up again.
    `codecs` (comma-separated, in order of preference; None: any) restricts what is offered to
    it and accepted from it. Numbers toward it are written in `number_format` with its
    `country_code`, `national_prefix` and `international_prefix`, and callers from it are
    shown in E.164 when those are set."""

    __tablename__ = "trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(TRUNK_NAME_MAX_LENGTH))
    host: Mapped[str] = mapped_column(String(DOMAIN_MAX_LENGTH))
    port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[TrunkTransport] = mapped_column(
        Enum(TrunkTransport, native_enum=False, length=8, values_callable=lambda e: [m.value for m in e]),
        default=TrunkTransport.UDP)
    username: Mapped[str | None] = mapped_column(String(CREDENTIAL_MAX_LENGTH))
    password: Mapped[str | None] = mapped_column(String(CREDENTIAL_MAX_LENGTH))
    register: Mapped[bool] = mapped_column(default=False, server_default=false())
    max_calls: Mapped[int] = mapped_column(Integer, default=0)
    caller_id: Mapped[str | None] = mapped_column(String(EXTENSION_MAX_LENGTH))
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    probe_interval: Mapped[int] = mapped_column(Integer, default=DEFAULT_PROBE_INTERVAL,
                                                server_default=str(DEFAULT_PROBE_INTERVAL))
    down_after: Mapped[int] = mapped_column(Integer, default=DEFAULT_DOWN_AFTER,
                                            server_default=str(DEFAULT_DOWN_AFTER))
    up_after: Mapped[int] = mapped_column(Integer, default=DEFAULT_UP_AFTER,
                                          server_default=str(DEFAULT_UP_AFTER))
    codecs: Mapped[str | None] = mapped_column(String(CODECS_MAX_LENGTH))
    number_format: Mapped[NumberFormat] = mapped_column(
        Enum(NumberFormat, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=NumberFormat.AS_DIALLED, server_default=NumberFormat.AS_DIALLED.value)
    country_code: Mapped[str | None] = mapped_column(String(PREFIX_MAX_LENGTH))
    national_prefix: Mapped[str | None] = mapped_column(String(PREFIX_MAX_LENGTH))
    international_prefix: Mapped[str] = mapped_column(String(PREFIX_MAX_LENGTH),
                                                      default=DEFAULT_INTERNATIONAL_PREFIX,
                                                      server_default=DEFAULT_INTERNATIONAL_PREFIX)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Trunk(id={self.id!r}, tenant_id={self.tenant_id!r}, name={self.name!r})"

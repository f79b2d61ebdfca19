"""Events about calls, registrations and servers, published on the event bus.

Small frozen dataclasses of plain values (no ORM objects, no sockets) so that a bus
that serializes them, such as Redis Streams, carries them unchanged. Times are
timezone-aware UTC datetimes.
"""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Disposition(StrEnum):
    """How a call ended, as reported in CDRs."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class HangupBy(StrEnum):
    """Who ended an answered call."""

    CALLER = "caller"
    CALLEE = "callee"
    SYSTEM = "system"


class EndReason(StrEnum):
    """Why the PBX itself ended a call (`HangupBy.SYSTEM`), or refused one it had started."""

    MEDIA_LOST = "media_lost"
    """Its media server died or restarted and no media server could take the call in time."""
    RTP_TIMEOUT = "rtp_timeout"
    """The media server heard no RTP for `media.rtp_timeout` seconds."""
    NO_ACK = "no_ack"
    """A phone never acknowledged our 200 to its INVITE."""
    PHONE_GONE = "phone_gone"
    """A phone answered a re-INVITE with 408 or 481: it has forgotten the call."""
    TRANSFER_FAILED = "transfer_failed"
    """A transfer's target could not be reached and the transferor had already left."""
    APP_SERVER_LOST = "app_server_lost"
    """The application server holding the call died and no other of its role took the call."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted:
    """The Call Manager accepted an INVITE and started routing it."""

    call_id: str
    """Call-ID of the caller's leg; the key that ties the events of one call together."""
    tenant_id: int | None
    """Tenant of the caller, None for a call from a trunk that no tenant owns."""
    caller: str
    """Caller's user part (extension or number) as authenticated or presented."""
    callee: str
    """Dialled user part, before any routing rewrite."""
    caller_ip: str
    """Source IP address of the INVITE."""
    time: datetime
    """When the INVITE was received."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered:
    """The callee answered (a 2xx reached the caller's leg)."""

    call_id: str
    """Call-ID of the caller's leg, as in `CallStarted`."""
    time: datetime
    """When the 2xx was received from the callee."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded:
    """A call is over; it carries everything a CDR records."""

    call_id: str
    """Call-ID of the caller's leg, as in `CallStarted`."""
    tenant_id: int | None
    """Tenant of the caller, None for a call from a trunk that no tenant owns."""
    caller: str
    """Caller's user part, as in `CallStarted`."""
    callee: str
    """Dialled user part, as in `CallStarted`."""
    caller_ip: str
    """Source IP address of the INVITE."""
    start_time: datetime
    """When the INVITE was received."""
    answer_time: datetime | None
    """When the callee answered; None when it never did."""
    end_time: datetime
    """When the BYE, CANCEL or final failure response ended the call."""
    disposition: Disposition
    """How the call ended."""
    sip_code: int
    """Final response code of the INVITE (200 for answered calls, 486, 487, 603, ...)."""
    hangup_by: HangupBy | None
    """Who hung up an answered call; None when the call was never answered."""
    recording: str | None = None
    """Path of the call's recording on its media server, when it was recorded."""
    end_reason: EndReason | None = None
    """Why the PBX ended the call itself; None when a phone did (or the call failed normally)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationChanged:
    """A contact of an address of record was added, refreshed or removed."""

    tenant_id: int
    """Tenant whose user registered."""
    extension: str
    """The user part of the address of record."""
    contact: str
    """The Contact URI concerned."""
    source_address: str
    """`ip:port` the REGISTER came from (where requests to this contact are sent)."""
    expires: int
    """Seconds the binding stays valid; 0 when it was removed or expired."""
    time: datetime
    """When the registrar applied the change."""


class ServerState(StrEnum):
    """What became of a server: up or down, or its part in a VRRP group (keepalived's states)."""

    UP = "up"
    DOWN = "down"
    MASTER = "master"
    BACKUP = "backup"
    FAULT = "fault"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStateChanged:
    """A server of the cluster came up, went down or changed its VRRP state (keepalived's notify)."""

    server: str
    """Host name of the server (`hostname` on it)."""
    role: str
    """What the server is: callmanager, media, ..."""
    state: ServerState
    """Its new state."""
    reason: str
    """Why, in words (for a VRRP change: the instance and the previous state); may be empty."""
    time: datetime
    """When the change was seen, UTC."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MeetingTalker:
    """A participant of a meeting started or stopped talking (the meeting server's talker detection)."""

    domain: str
    """The room's tenant domain."""
    room: str
    """The room's number."""
    participant: int
    """The participant's number in the meeting (`pbx meeting participants`)."""
    caller: str
    """Who the participant is (the caller's user part)."""
    talking: bool
    server: str
    """The meeting server's host name."""
    time: datetime

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
    dialed: str | None = None
    """The number the caller dialled when the call went elsewhere (a forward, a ring group's
    final destination, a pickup): `callee` is then who it went to; None when it is that number."""


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


class QueueOutcome(StrEnum):
    """How a caller left a queue's line (each caller offered to a queue leaves it once)."""

    ANSWERED = "answered"
    """Joined to an agent (directly, or once called back)."""
    ABANDONED = "abandoned"
    """Hung up while waiting, or was not there when called back."""
    OVERFLOWED = "overflowed"
    """Sent to the queue's overflow destination: full, unattended, or past its maximum wait."""
    REFUSED = "refused"
    """Told that nobody can answer and hung up: overflow was due and the queue has none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerJoined:
    """A caller joined a queue's line (a caller overflowed or refused on arrival never joins)."""

    domain: str
    """The queue's tenant domain."""
    queue: str
    """The queue's number."""
    caller: str
    """The caller's user part."""
    position: int
    """The caller's place in the line, from 1."""
    server: str
    """The queue worker holding the caller (`host/worker`)."""
    time: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueCallerLeft:
    """A caller offered to a queue left it: once per caller, whether it joined the line or not."""

    domain: str
    """The queue's tenant domain."""
    queue: str
    """The queue's number."""
    caller: str
    """The caller's user part."""
    outcome: QueueOutcome
    waited: float
    """Seconds from the caller's arrival to leaving (0 for a caller overflowed or refused on arrival)."""
    agent: str | None
    """The agent's extension when answered, else None."""
    callback: str | None
    """The number the caller was called back at, when they hung up keeping their place; else None."""
    server: str
    """The queue worker holding the caller (`host/worker`)."""
    time: datetime


class AgentState(StrEnum):
    """What a queue agent is doing, as the queue servers see it."""

    AVAILABLE = "available"
    """Logged in, not paused, free for a call (after a ring, a wrap-up, a login or an unpause)."""
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged:
    """A queue agent's state changed, told by the queue server that changed it (or that saw the Call
    Manager end the call it had joined)."""

    domain: str
    """The agent's tenant domain."""
    extension: str
    """The agent's extension."""
    state: AgentState
    """Its new state."""
    queue: str | None
    """The queue concerned (the call's, or the one logged in or paused); None: all the agent's queues."""
    reason: str
    """Why, in words ("caller 1001", "no answer (408)", "missed 3 queue calls", "*47", ...); may be empty."""
    server: str
    """The queue worker that changed it (`host/worker`)."""
    time: datetime
    """When it changed, UTC (a wrap-up's start is the end of the call, as the Call Manager recorded it)."""

"""What the B2BUA keeps about one call: its two legs, the branches that try to reach the
callee, and the phases the call goes through.

Rules:
- A call's phase moves only through `TRANSITIONS` below, by `Call.transition`; any other
  move is a bug here and raises. A call starts Routing (or Connected, when taken over from
  the state store, which keeps answered calls only) and ends Ended, whatever ended it.
- A branch's state moves only through `BRANCH_TRANSITIONS`, by `Branch.transition`. A branch
  to be cancelled before any provisional answer waits for one before its CANCEL goes
  (RFC 3261 9.1); its final status is kept apart (`Branch.final`).
- What runs alongside a phase stays in fields of its own: the 2xx of ours a leg has not
  ACKed yet (`Leg.unacked`, also for re-INVITEs), our own re-INVITE on a leg (`Leg.moving`)
  and a re-INVITE relayed from one phone to the other (`Call.reinvite_pending`) can overlap,
  and each may start or finish in the Connecting or the Connected phase.
- A join (attended transfer: a REFER with Replaces, `joins.py`) moves two Connected calls at
  once: the one the REFER came in becomes Joining (it gets the other call's far party), the one
  its Replaces names Handing over (it gives that party away). Both go back to Connected when
  the join fails; on success the first is Connected again and the second Ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..cluster.events import HangupBy
from ..runtime.timers import Timer
from ..sip.dialog import Dialog
from ..sip.message import SipRequest, SipResponse
from ..sip.transaction import ClientTransaction, ServerTransaction
from .appservers import AppEndpoint
from .trunk_codecs import restrict_offer

if TYPE_CHECKING:
    from .anchoring import MediaAnchor
    from .joins import Join, QueueAgent
    from .permissions import Caller
    from .ring_groups import Hunt
    from .transfer import Transfer
    from .trunks import TrunkCall


class CallPhase(Enum):
    ROUTING = "INVITE sent to the callee's contacts (or an application server), no answer yet"
    CONNECTING = ("a branch answered: the caller's 2xx waits for the media server's answer, then is "
                  "sent again until the caller ACKs it")
    CONNECTED = "the caller ACKed our 2xx: the call is up"
    JOINING = ("a party REFERred it with Replaces naming its dialog of another call: that call's far "
               "party is re-INVITEd onto this call's media, to take the referrer's place here")
    HANDING_OVER = "its far party is being moved into the call whose REFER named this call's dialog"
    ENDED = "refused, cancelled, failed or hung up, its CDR written; a branch answering late is hung up"


ROUTING, CONNECTING, CONNECTED, JOINING, HANDING_OVER, ENDED = CallPhase

ANSWERED_PHASES = frozenset({CONNECTING, CONNECTED, JOINING, HANDING_OVER})
"""The callee answered: the call has both its dialogs."""


class CallInput(Enum):
    ANSWERED = "the first 2xx of a branch to the INVITE"
    ACKED = "the caller's ACK to our 2xx"
    JOIN = "a REFER in this call with Replaces naming a dialog of another call"
    HAND_OVER = "a REFER in another call with Replaces naming a dialog of this one"
    JOINED = "the far party of the other call took the referrer's place in this one"
    JOIN_FAILED = "that party refused the move, or a call of the join ended first"
    ENDED = "a final failure to the caller, a BYE, or the call given up (no ACK, media lost, ...)"


TRANSITIONS: dict[tuple[CallPhase, CallInput], CallPhase] = {
    (ROUTING, CallInput.ANSWERED): CONNECTING,
    (ROUTING, CallInput.ENDED): ENDED,
    (CONNECTING, CallInput.ACKED): CONNECTED,
    (CONNECTING, CallInput.ENDED): ENDED,
    (CONNECTED, CallInput.ENDED): ENDED,
    (CONNECTED, CallInput.JOIN): JOINING,
    (CONNECTED, CallInput.HAND_OVER): HANDING_OVER,
    (JOINING, CallInput.JOINED): CONNECTED,
    (JOINING, CallInput.JOIN_FAILED): CONNECTED,
    (JOINING, CallInput.ENDED): ENDED,
    (HANDING_OVER, CallInput.JOIN_FAILED): CONNECTED,
    (HANDING_OVER, CallInput.ENDED): ENDED,
}
"""(phase, input) -> next phase; no other pair is allowed. Ended is final."""


class BranchState(Enum):
    CALLING = "INVITE sent, no provisional answer (100 Trying aside)"
    RINGING = "a provisional answer came"
    CANCEL_WAITING = "to be cancelled: its CANCEL waits for a provisional answer"
    CANCELLED = "CANCEL sent"


CALLING, RINGING, CANCEL_WAITING, CANCELLED = BranchState


class BranchInput(Enum):
    PROVISIONAL = "a 1xx other than 100"
    CANCEL = "we want the branch to stop ringing"


BRANCH_TRANSITIONS: dict[tuple[BranchState, BranchInput], BranchState] = {
    (CALLING, BranchInput.PROVISIONAL): RINGING,
    (CALLING, BranchInput.CANCEL): CANCEL_WAITING,
    (RINGING, BranchInput.PROVISIONAL): RINGING,
    (RINGING, BranchInput.CANCEL): CANCELLED,
    (CANCEL_WAITING, BranchInput.PROVISIONAL): CANCELLED,
    (CANCELLED, BranchInput.PROVISIONAL): CANCELLED,
}
"""(state, input) -> next state; no other pair is allowed (a branch is cancelled once)."""


@dataclass(eq=False)
class Unacked:
    """A 2xx to an INVITE that we sent and retransmit until the ACK arrives."""

    response: SipResponse
    cseq: int
    timer: Timer | None
    on_ack: Callable[[SipRequest, float], None]


@dataclass(eq=False)
class Leg:
    """Our side of a dialog with one phone."""

    side: HangupBy
    """Who this phone is in the call, for the CDR's hangup_by."""
    peer: tuple[str, int]
    """Where this phone's requests come from and where ours go (works behind NAT)."""
    transport: str
    dialog: Dialog | None = None
    unacked: Unacked | None = None
    acks_sent: dict[int, SipRequest] = field(default_factory=dict)
    """ACKs we sent for the phone's 2xx answers, by CSeq, re-sent on its retransmissions."""
    relayed_2xx: set[int] = field(default_factory=set)
    """CSeqs of the phone's re-INVITE 2xx answers being relayed (or relayed) to the other phone."""
    moving: bool = False
    """Our own re-INVITE (the media moved) is in progress on this leg."""
    codecs: tuple[str, ...] = ()
    """A trunk's leg: the only codecs its provider is offered and offers (the trunk's list, in
    its order), in a re-INVITE as in the first INVITE; (): any."""
    trunk: str | None = None
    """A leg out through a trunk: the trunk's key, which the call counts under for the trunk's
    `max_calls` (kept in the call's record, so a call taken over still counts)."""

    def offer_to(self, body: bytes) -> bytes:
        """`body`, an offer to this leg's peer, with this leg's codecs only; as it is when it has
        none of them (the peer may refuse it)."""
        if not self.codecs or not body:
            return body
        return restrict_offer(body, self.codecs) or body


@dataclass(eq=False)
class Branch:
    """One attempt to reach one registered contact of the callee."""

    leg: Leg
    invite: SipRequest
    tx: ClientTransaction | None = None
    state: BranchState = CALLING
    final: int | None = None
    app_endpoint: AppEndpoint | None = None
    """The application server this branch goes to (IVR, queue, meeting), None for a phone."""
    answer_timer: Timer | None = None
    """Until the application server answers anything: silent past it, the next one is tried."""
    trunk: TrunkCall | None = None
    """The trunk this branch goes out through (and the route's trunks left), None otherwise."""
    user: str | None = None
    """The user whose device it rings (a ring group's member, a forward's destination...), None
    for an application server or a trunk."""
    cancel_reason: str | None = None
    """The Reason header of its CANCEL (RFC 3326), if it says why (the call was picked up)."""

    @property
    def cancelled(self) -> bool:
        """We want this branch to stop ringing (its CANCEL sent or waiting)."""
        return self.state in (CANCEL_WAITING, CANCELLED)

    def transition(self, branch_input: BranchInput) -> bool:
        """Move on `branch_input`; whether the CANCEL is to be sent now (the branch just became
        Cancelled). RuntimeError if the table has no such move."""
        before = self.state
        after = BRANCH_TRANSITIONS.get((before, branch_input))
        if after is None:
            raise RuntimeError(f"branch to {self.invite.uri}: no move from {before.name} on "
                               f"{branch_input.name}")
        self.state = after
        return after is CANCELLED and before is not CANCELLED


@dataclass(eq=False)
class Call:
    a: Leg
    call_id: str
    """The caller's Call-ID: the CDR's, and the media server's name of the call."""
    a_tx: ServerTransaction | None
    """The caller's INVITE transaction; None for a call taken over from the state store."""
    a_invite: SipRequest | None
    a_tag: str
    b_call_id: str
    b_tag: str
    caller: str
    callee: str
    tenant_id: int | None
    started_at: float
    branches: list[Branch] = field(default_factory=list)
    b: Leg | None = None
    phase: CallPhase = ROUTING
    """Changed only by `transition`."""
    answered_at: float | None = None
    ring_timer: Timer | None = None
    reinvite_pending: bool = False
    """A re-INVITE from one phone is being relayed to the other (until the far end's final answer)."""
    media: MediaAnchor | None = None
    b_offer: bytes = b""
    """The body of the INVITE sent to the callee's devices."""
    saved_at: float | None = None
    """When its record was last written to the state store; None: not yet (or not since a change)."""
    recorded: bool = False
    """Its record in the store names us: later writes go only over a record still naming us."""
    realm: str = ""
    """The tenant's domain: where the dialled number (and a transfer's target) is looked up."""
    app_endpoint: AppEndpoint | None = None
    """The application server that answered the call and holds it now."""
    transfer: Transfer | None = None
    """A REFER being carried out."""
    join: Join | None = None
    """The join this call takes part in (Joining or Handing over)."""
    queue_agent: QueueAgent | None = None
    """The queue agent talking in this call since a queue server joined it: put in wrap-up when it ends."""
    app_recording: str | None = None
    """Where the application server that answered records the call (a meeting's mix), for the CDR."""
    limits: Caller | None = None
    """The calling user's permission and limits, which a forward's destination is dialled under too."""
    forwards: int = 0
    """Times the call was forwarded (`callmanager.forwarding`), bounded against loops."""
    dialed: str | None = None
    """The number the caller dialled, once the call went elsewhere (a forward, a ring group's
    final destination, a pickup by another user) and `callee` is another; None before."""
    forward_timer: Timer | None = None
    """Forwards the call when nobody answers within the callee's no-answer seconds (or rings a
    ring group's next member)."""
    hunt: Hunt | None = None
    """The ring group being rung, with its members still to ring."""
    counted: tuple[str, ...] = ()
    """The keys the call is counted under for the limits (`permissions.CallCounter`)."""

    def goes_to(self, callee: str) -> None:
        """`callee` takes the call instead of the one it was for."""
        if self.dialed is None and callee != self.callee:
            self.dialed = self.callee
        self.callee = callee

    def transition(self, call_input: CallInput) -> None:
        """Move to the phase `TRANSITIONS` gives; RuntimeError if it has none (a bug here)."""
        after = TRANSITIONS.get((self.phase, call_input))
        if after is None:
            raise RuntimeError(f"call {self.call_id}: no move from {self.phase.name} on {call_input.name}")
        self.phase = after

    @property
    def answered(self) -> bool:
        """The callee answered and the call has not ended (Connecting or Connected)."""
        return self.phase in ANSWERED_PHASES

    @property
    def invite_tx(self) -> ServerTransaction:
        """The caller's INVITE transaction, which only a call set up here has (not one taken over,
        which is answered already)."""
        assert self.a_tx is not None, "a call taken over has no INVITE transaction"
        return self.a_tx

    @property
    def invite(self) -> SipRequest:
        assert self.a_invite is not None, "a call taken over has no INVITE"
        return self.a_invite

    @property
    def record_key(self) -> str:
        return f"{self.call_id}/{self.a_tag}"

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    def leg_name(self, leg: Leg) -> str:
        return "a" if leg is self.a else "b"

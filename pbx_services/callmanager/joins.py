"""Attended transfer: a REFER with Replaces joins the far parties of two calls (RFC 3515,
RFC 3891, RFC 5589 section 7).

A party X of call 1 (X talks to T through us) sends, in its dialog of call 1, a REFER whose
Refer-To carries Replaces naming another dialog X has with us, in call 2 (X talks to C). A
transferee phone would send C an INVITE with Replaces; the Call Manager, the only B2BUA,
carries the join out itself and sends T nothing new: C's dialog of call 2 takes X's place in
call 1. C is re-INVITEd with an offer of call 1's media server from T's side (as a blind
transfer's target is offered), so that media flows T <-> media server <-> C, and C's answer
takes X's place on that media server. T is re-INVITEd only when its own SDP changes (another
codec; or X had put T on hold: T's SDP is offered to C as if it were not, and T is re-INVITEd
off hold). X gets NOTIFY 100 Trying, then 200 OK, on the REFER's implicit subscription and a
BYE on each of its two dialogs; call 2's media session is released.

The dialog named is looked up as a request's is (`B2bua.find_dialog`): Call-ID, to-tag (our
tag in it) and from-tag (X's), as the a leg or the b leg of a call, taken over from the state
store when another worker held it. It must be another call's, confirmed (Connected: RFC 3891
section 3 refuses an unconfirmed one with 481), X's (from the same host as the REFER's
dialog), and have nothing else going on (491). The REFER is answered 202 whatever follows, and
a failure is NOTIFYed (a 481 to the REFER itself would tell X that its dialog with T is gone,
RFC 3261 12.2.1.2): the dialog unknown 481; C refusing the re-INVITE, its status. Then X's
place on call 1's media server is given back and both calls go on as they were. While the join
runs the two calls are Joining and Handing over (`call.py`); X hanging up either dialog
meanwhile lets the join go on (if it then fails, the party left alone is hung up), T or C hanging
up ends the join.

CDRs: call 1's CDR goes on (its caller, the number dialled and the answer time stay) with C
in X's side for `hangup_by`, and ends when T or C hangs up; call 2's CDR ends at the join, hung
up by X's side of it. So the conversation of T with C is in call 1's CDR, and there is no third.

A queue server joining a waiting caller to the agent who answered sends
`Pbx-Queue-Agent: DOMAIN/EXT;claim=ID;wrap-up=S` in its REFER. Trusted only from an application
server's endpoint (as `Pbx-Recording` is), it makes the end of the agent's part in the joined
call (the call ends, or the agent transfers the caller on) move the agent's record in the state
store to wrap-up (`agents.ended`, with the talk time since the join).

A join in progress is not written to the state store: after a failover both calls go on as they
were, and X hears nothing more of its REFER.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..cluster.events import Disposition, EndReason, HangupBy
from ..cluster.state.agents import AgentStore, ended
from ..cluster.state.errors import StateStoreUnavailable
from ..sip.errors import RemoteProtocolError
from ..sip.headers import PBX_QUEUE_AGENT
from ..sip.message import SipRequest, SipResponse
from ..sip.sdp import Direction, SessionDescription
from ..sip.transaction import ServerTransaction
from .anchoring import SdpOrigin
from .call import CONNECTED, CONNECTING, ENDED, HANDING_OVER, JOINING, CallInput

if TYPE_CHECKING:
    from ..sip.headers import Replaces
    from .b2bua import B2bua
    from .call import Call, Leg

log = logging.getLogger(__name__)

SDP = "application/sdp"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a join cannot be: the status NOTIFYed to the transferor."""

    code: int
    reason: str


@dataclass(eq=False)
class QueueAgent:
    """A queue agent talking in a call a queue server joined (`Pbx-Queue-Agent`)."""

    key: str
    """The agent's record in the state store: "DOMAIN/EXT"."""
    claim: str
    """The queue call the agent answered, as its record names it."""
    wrap_up: float
    """Seconds of wrap-up once the agent's part in the call ends."""
    leg: Leg | None = None
    """The agent's leg in the joined call."""
    since: float = 0.0
    """When the agent started talking to the caller (the join)."""

    @classmethod
    def parse(cls, text: str) -> QueueAgent:
        """RemoteProtocolError when `text` is not "DOMAIN/EXT;claim=ID;wrap-up=S"."""
        key, *items = [item.strip() for item in text.split(";")]
        params = {name.strip().lower(): value.strip()
                  for name, eq, value in (item.partition("=") for item in items) if eq}
        if "/" not in key or not params.get("claim"):
            raise RemoteProtocolError(f"{PBX_QUEUE_AGENT} needs DOMAIN/EXT and a claim")
        try:
            wrap_up = float(params.get("wrap-up", "0"))
        except ValueError:
            raise RemoteProtocolError(f"{PBX_QUEUE_AGENT} has a wrap-up that is no number") from None
        return cls(key=key, claim=params["claim"], wrap_up=max(wrap_up, 0.0))


@dataclass(eq=False)
class Join:
    """One REFER with Replaces being carried out."""

    call: Call
    """Call 1, the REFER's: it keeps T and gets C."""
    place: str
    """X's place in call 1 ("a" or "b"): C takes it."""
    side: HangupBy
    referrer: Leg | None
    """X's leg in call 1; None once X hung it up."""
    other: Call
    """Call 2, whose dialog the Replaces names: it gives C away and ends."""
    target: Leg
    """C's leg, call 2's far party."""
    target_place: str
    replaced: Leg | None
    """X's leg in call 2; None once X hung it up."""
    replaced_side: HangupBy
    saved_origin: SdpOrigin
    """The o= line X was shown in call 1, given back if the join fails."""
    target_origin: SdpOrigin
    """The o= line C was shown in call 2 before the re-INVITE, given back if C refuses it."""
    transferee_sdp: bytes
    """T's SDP as it was (the one offered to C may be taken off hold)."""
    queue_agent: QueueAgent | None = None


class CallJoins:
    """The B2BUA's handling of a REFER with Replaces: a part of `B2bua` in a module of its own (it
    works on the B2BUA's calls, legs and media anchoring directly)."""

    def __init__(self, b2bua: B2bua, agents: AgentStore | None) -> None:
        self.b2bua = b2bua
        self._agents = agents
        self._agents_failing = False

    def handle_refer(self, call: Call, leg: Leg, replaces: Replaces, request: SipRequest,
                     tx: ServerTransaction, now: float) -> None:
        """A REFER whose Refer-To has Replaces, in a call `CallTransfers` found able to take one."""
        b = self.b2bua
        queue_agent = self._queue_agent(leg, request)
        b._stack.respond(tx, 202, now=now)
        b.transfers.notify(leg, 100, "Trying", now, final=False)
        found = self._replaced_dialog(call, leg, replaces, now)
        if isinstance(found, Refusal):
            log.info("call %s: no join with dialog %s: %d %s", call.call_id, replaces.call_id, found.code,
                     found.reason)
            b.transfers.notify(leg, found.code, found.reason, now, final=True)
            return
        other, replaced = found
        self._start(call, leg, other, replaced, queue_agent, now)

    def _queue_agent(self, leg: Leg, request: SipRequest) -> QueueAgent | None:
        value = request.headers.get(PBX_QUEUE_AGENT)
        if value is None:
            return None
        if not self.b2bua.is_app_endpoint(leg.peer):
            log.info("ignored %s from %s:%s, which is no application server", PBX_QUEUE_AGENT, *leg.peer)
            return None
        try:
            return QueueAgent.parse(value)
        except RemoteProtocolError as exc:
            log.warning("ignored %s from %s:%s: %s", PBX_QUEUE_AGENT, *leg.peer, exc.reason)
            return None

    def _replaced_dialog(self, call: Call, leg: Leg, replaces: Replaces,
                         now: float) -> tuple[Call, Leg] | Refusal:
        """The call and X's leg the Replaces names, or the status refusing the join."""
        try:
            found = self.b2bua.dialog_by_id(replaces.call_id, replaces.to_tag, replaces.from_tag, now)
        except StateStoreUnavailable:
            return Refusal(503, "State Store Unavailable")
        if found is None:
            return Refusal(481, "Call/Transaction Does Not Exist")
        other, replaced = found
        target = other.other(replaced)
        if other is call:
            return Refusal(481, "Replaces Names The Call Itself")
        if not other.answered or other.phase is CONNECTING:
            return Refusal(481, "Call/Transaction Does Not Exist")  # not confirmed
        if replaces.early_only:
            return Refusal(486, "Busy Here")  # the dialog named is confirmed (RFC 3891 section 3)
        if replaced.peer[0] != leg.peer[0]:
            return Refusal(403, "Replaces Names Another Party's Dialog")
        if other.phase is not CONNECTED or other.transfer is not None or other.reinvite_pending \
                or target is None or target.dialog is None or target.moving or replaced.moving \
                or target.unacked is not None or replaced.unacked is not None:
            return Refusal(491, "Request Pending")
        target_place = other.leg_name(target)
        if other.media is None or target_place not in other.media.sdp_from:
            return Refusal(501, "Transfer Needs Anchored Media")
        return other, replaced

    def _start(self, call: Call, leg: Leg, other: Call, replaced: Leg, queue_agent: QueueAgent | None,
               now: float) -> None:
        b = self.b2bua
        media, other_media = call.media, other.media
        target = other.other(replaced)
        assert media is not None and other_media is not None and target is not None
        place, target_place = call.leg_name(leg), other.leg_name(target)
        transferee = _other(place)
        target_origin = other_media.origins[target_place]
        join = Join(call=call, place=place, side=leg.side, referrer=leg, other=other, target=target,
                    target_place=target_place, replaced=replaced, replaced_side=replaced.side,
                    saved_origin=media.origins[place], target_origin=replace(target_origin),
                    transferee_sdp=media.sdp_from[transferee], queue_agent=queue_agent)
        call.transition(CallInput.JOIN)
        other.transition(CallInput.HAND_OVER)
        call.join = other.join = join
        log.info("call %s: %s joins its other party with %s's far party", call.call_id, place, other.call_id)
        # C goes on with the SDP session it knows: its o= line, one version up.
        media.origins[place] = target_origin

        def offered(body: bytes | None, t: float) -> None:
            if call.join is not join:
                return
            if body is None:
                self._failed(join, 503, "Media Unavailable", t)
                return
            self._reinvite_target(join, body, t)

        b.anchoring.step(call, "offer", transferee, _off_hold(join.transferee_sdp), now, offered)

    def _reinvite_target(self, join: Join, body: bytes, now: float) -> None:
        """Offer C call 1's media: our re-INVITE in its dialog of call 2."""
        b = self.b2bua
        target = join.target
        assert target.dialog is not None
        target.moving = True
        invite = target.dialog.create_request(
            "INVITE", via_host=b._stack.host, via_port=b._stack.port, transport=target.transport,
            contact=b._stack.contact(target.transport), body=body, content_type=SDP)
        tx = b._stack.send_request(invite, target.peer, target.transport, now)
        seq = invite.cseq.seq

        def on_response(response: SipResponse, t: float) -> None:
            code = response.status_code
            if code < 200:
                return
            if code >= 300:
                target.moving = False
                if join.call.join is join:
                    self._failed(join, code, response.reason, t)
                    if code in (408, 481) and join.other.answered:  # C has forgotten the call
                        b._hang_up(join.other, t, hangup_by=HangupBy.SYSTEM, skip=target,
                                   reason=EndReason.PHONE_GONE)
                else:
                    self._send_back(join, t, accepted=False)
                return
            if seq in target.acks_sent:  # a retransmission: our ACK was lost
                b._stack.send_stateless(target.acks_sent[seq], target.peer, target.transport)
                return
            target.moving = False
            if target.dialog is not None:
                target.dialog.receive_response(response)
            b._send_ack(target, seq, b"", None, t)
            if join.call.join is not join:
                self._send_back(join, t, accepted=True)
                return
            if response.content_type != SDP or not response.body:
                self._failed(join, 488, "Not Acceptable Here", t, accepted=True)
                self._send_back(join, t, accepted=True)
                return
            shown = join.call.media.origins[_other(join.place)].last_sent if join.call.media else None

            def answered(for_transferee: bytes | None, t2: float) -> None:
                if join.call.join is not join:
                    self._send_back(join, t2, accepted=True)
                    return
                if for_transferee is None:
                    self._failed(join, 503, "Media Unavailable", t2, accepted=True)
                    self._send_back(join, t2, accepted=True)
                    return
                self._complete(join, for_transferee, shown, t2)

            b.anchoring.step(join.call, "answer", join.place, response.body, t, answered)

        tx.user_data = on_response

    def _complete(self, join: Join, for_transferee: bytes, shown: bytes | None, now: float) -> None:
        """C answered on call 1's media: it takes X's place there, X leaves both calls, call 2 ends."""
        b = self.b2bua
        call, other, target = join.call, join.other, join.target
        call.join = other.join = None
        referrer, replaced = join.referrer, join.replaced
        if referrer is not None and referrer.dialog is not None:
            b.transfers.notify(referrer, 200, "OK", now, final=True)
            b._send_bye(referrer, now)
            b._dialogs.pop(referrer.dialog.id, None)
        if replaced is not None and replaced.dialog is not None:
            b._send_bye(replaced, now)
        self.agent_left(call, referrer, now)
        app_endpoint = other.app_endpoint if join.target_place == "b" else None
        app_recording = other.app_recording if join.target_place == "b" else None
        # Call 2 ends here: its CDR, its media session and its record; C's dialog goes to call 1.
        b._end(other, now, Disposition.ANSWERED, 200, join.replaced_side)
        target.side = join.side
        if join.place == "a":
            call.a = target
        else:
            call.b = target
        b._register_dialog(call, target)
        b._hold_app_endpoint(call, app_endpoint)
        call.app_recording = app_recording
        call.transition(CallInput.JOINED)
        if join.queue_agent is not None:
            call.queue_agent = replace(join.queue_agent, leg=target, since=now)
        b.records.mark_changed(call)
        log.info("call %s joined with %s's far party; %s ended", call.call_id, other.call_id, other.call_id)
        if for_transferee != shown:
            transferee = call.b if join.place == "a" else call.a
            if transferee is not None:
                b._reinvite(call, transferee, for_transferee, now)

    def _failed(self, join: Join, code: int, reason: str, now: float, *, accepted: bool = False) -> None:
        """The join did not happen (`accepted`: C took call 1's media all the same, and is sent back
        by `_send_back`): X gets its place back on call 1's media and hears why."""
        b = self.b2bua
        call, other = join.call, join.other
        if call.join is not join:
            return
        log.info("call %s: join with %s failed: %d %s", call.call_id, other.call_id, code, reason)
        call.join = other.join = None
        if call.phase is JOINING:
            call.transition(CallInput.JOIN_FAILED)
        if other.phase is HANDING_OVER:
            other.transition(CallInput.JOIN_FAILED)
        if not accepted and other.media is not None:
            other.media.origins[join.target_place] = join.target_origin
        self._give_back(join, now)
        gone_x1 = call.a if join.place == "a" else call.b
        if join.referrer is not None:
            b.transfers.notify(join.referrer, code, reason, now, final=True)
        elif call.answered:
            b._hang_up(call, now, hangup_by=HangupBy.SYSTEM, skip=gone_x1, reason=EndReason.TRANSFER_FAILED)
        if join.replaced is None and other.answered and not accepted:
            b._hang_up(other, now, hangup_by=HangupBy.SYSTEM, skip=other.other(join.target),
                       reason=EndReason.TRANSFER_FAILED)

    def _give_back(self, join: Join, now: float) -> None:
        """X's place on call 1's media server (and T's own SDP, if it was taken off hold)."""
        b = self.b2bua
        call = join.call
        media = call.media
        if media is None or call.phase is ENDED:
            return
        media.origins[join.place] = join.saved_origin
        place, transferee = join.place, _other(join.place)
        x_sdp = media.sdp_from.get(place)
        if x_sdp is None:
            return

        def answer(body: bytes | None, t: float) -> None:
            if call.media is media and call.answered:
                b.anchoring.step(call, "answer", place, x_sdp, t, _ignore_body)

        if _off_hold(join.transferee_sdp) != join.transferee_sdp:
            b.anchoring.step(call, "offer", transferee, join.transferee_sdp, now, answer)
        else:
            answer(None, now)

    def _send_back(self, join: Join, now: float, *, accepted: bool) -> None:
        """C's re-INVITE was answered after the join ended without it: call 2 goes on, C offered
        call 2's media again if it `accepted` call 1's; or, when X left call 2, C is hung up."""
        b = self.b2bua
        other, target = join.other, join.target
        media = other.media
        if not other.answered or media is None:
            return  # call 2 ended meanwhile: C has had its BYE
        if join.replaced is None:
            b._hang_up(other, now, hangup_by=HangupBy.SYSTEM, skip=other.other(target),
                       reason=EndReason.TRANSFER_FAILED)
            return
        if not accepted:
            media.origins[join.target_place] = join.target_origin
            return
        x_place = _other(join.target_place)

        def offered(body: bytes | None, t: float) -> None:
            if body is not None and other.answered:
                b._reinvite(other, target, body, t)

        b.anchoring.step(other, "offer", x_place, media.sdp_from[x_place], now, offered)

    # -- the calls around a join ---------------------------------------------------------------

    def join_request(self, call: Call, leg: Leg, request: SipRequest, tx: ServerTransaction,
                     now: float) -> bool:
        """A request in a call being joined: X's BYE on either dialog lets it leave (the join goes
        on); whether it was handled here."""
        b = self.b2bua
        join = call.join
        if join is None or request.method != "BYE" or leg not in (join.referrer, join.replaced):
            return False
        b._stack.respond(tx, 200, now=now)
        if leg is join.referrer:
            join.referrer = None
        else:
            join.replaced = None
        if leg.dialog is not None:
            b._dialogs.pop(leg.dialog.id, None)
        log.info("call %s: the transferor left; the join goes on", call.call_id)
        return True

    def abort(self, call: Call, now: float) -> None:
        """`call` ends while its join runs (T or C hung up): the other call goes on."""
        join = call.join
        assert join is not None
        if call is join.call:
            # C's re-INVITE may still be answered: then it is sent back to call 2's media.
            other = join.other
            call.join = other.join = None
            if other.phase is HANDING_OVER:
                other.transition(CallInput.JOIN_FAILED)
            if not join.target.moving:  # C was not offered call 1's media: nothing to undo there
                self._send_back(join, now, accepted=False)
            return
        self._failed(join, 487, "Request Terminated", now)

    def drop(self, call: Call) -> None:
        """`call` is no longer held here (another worker took it over): the join is given up."""
        join = call.join
        assert join is not None
        join.call.join = join.other.join = None
        for each in (join.call, join.other):
            if each is not call and each.phase in (JOINING, HANDING_OVER):
                each.transition(CallInput.JOIN_FAILED)

    # -- queue agents ------------------------------------------------------------------------------

    def agent_left(self, call: Call, leg: Leg | None, now: float) -> None:
        """`leg` leaves `call` (None: the call ended): if it is the queue agent's, the agent's
        record goes to wrap-up."""
        agent = call.queue_agent
        if agent is None or (leg is not None and leg is not agent.leg):
            return
        call.queue_agent = None
        if self._agents is None:
            return
        wall = now + self.b2bua.wall_offset
        try:
            changed = self._agents.change(agent.key,
                                          ended(agent.claim, wall, now - agent.since, agent.wrap_up))
        except StateStoreUnavailable as exc:
            if not self._agents_failing:
                log.error("queue agent %s: its wrap-up is not recorded, the state store is away: %s",
                          agent.key, exc)
            self._agents_failing = True
            return
        self._agents_failing = False
        if changed is None:
            log.info("queue agent %s: its record is no longer on call %s", agent.key, agent.claim)
        else:
            log.info("queue agent %s: wrap-up for %g s after %.0f s on call %s", agent.key, agent.wrap_up,
                     now - agent.since, call.call_id)


def _off_hold(sdp: bytes) -> bytes:
    """`sdp` without the direction attributes of a hold (sendonly, recvonly, inactive), unchanged
    when it has none."""
    try:
        description = SessionDescription.parse(sdp)
    except RemoteProtocolError:
        return sdp
    directions = [description.direction, *(media.direction for media in description.media)]
    if all(direction in (None, Direction.SENDRECV) for direction in directions):
        return sdp
    description.direction = None
    for media in description.media:
        media.direction = None
    return description.serialize()


def _other(place: str) -> str:
    return "b" if place == "a" else "a"


def _ignore_body(body: bytes | None, now: float) -> None:
    return None

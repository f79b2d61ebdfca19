"""Blind transfer (RFC 3515 REFER, RFC 5589): a party of a call sends the other one elsewhere.

The Call Manager stays the only B2BUA: it carries the transfer out itself. The party that
REFERs (the transferor: an IVR, a queue server, a phone) gets 202 and NOTIFYs of the
progress in message/sipfrag (100 Trying, 180 Ringing, then the final status). The target
is routed as a new call to that number would be, in the call's tenant. Meanwhile the
other party (the transferee) stays connected to the transferor, and hears ringback from
the media server once the target rings.

The media server gives the target a fresh offer from the transferee's side of the call.
When the target answers, its answer takes the transferor's place on the media server: the
transferee's own SDP changes only if the codec does (then it is re-INVITEd), so its audio
simply comes from the target from then on. The transferor gets NOTIFY 200 and a BYE, and
leaves the call. When the target fails, the transferor's place is given back to it and
the NOTIFY says why; the call goes on with the transferor, which decides what next (an IVR
says the extension is busy and plays its menu again). A transferor that hangs up while
its transfer runs leaves the transfer going on; if it then fails, the call ends.

The Call Manager moves a call itself the same way (`move`) when the application server
holding it dies and its role keeps calls of one number together (a meeting room): the call
goes to the number's new home as to a transfer target, with no transferor to tell; if that
fails too, the caller is hung up with the reason app_server_lost.

A transfer in progress is not written to the state store: after a failover the call goes
on with the transferor (whose REFER then times out).

A REFER whose Refer-To carries Replaces (RFC 3891) is an attended transfer: it joins the
transferee with the far party of the transferor's other call, which `joins.py` carries out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ..cluster.events import EndReason, HangupBy
from ..runtime.timers import Timer
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from ..sip.headers import Address, Replaces
from ..sip.message import SipRequest, SipResponse
from ..sip.transaction import ServerTransaction, make_tag
from ..sip.uri import SipUri
from .anchoring import SdpOrigin
from .routing import best_final_status, server_failed

if TYPE_CHECKING:
    from .b2bua import B2bua
    from .call import Branch, Call, Leg
    from .routing import Target

log = logging.getLogger(__name__)

SIPFRAG = "message/sipfrag;version=2.0"
SUBSCRIPTION_EXPIRES = 60


@dataclass(eq=False)
class Transfer:
    referrer: Leg | None
    """The transferor's leg; None once it hung up."""
    place: str
    """Its place in the call ("a" or "b"): the target's leg takes it."""
    side: HangupBy
    number: str
    branches: list[Branch] = field(default_factory=list)
    timer: Timer | None = None
    saved_origin: SdpOrigin | None = None
    """The o= line the transferor was shown, given back if the transfer fails."""
    offered: bool = False
    """The media server made an offer for the target (so the transferor's place must be given back)."""
    ringback: bool = False
    answered: bool = False
    failure: EndReason = EndReason.TRANSFER_FAILED
    """Why the call ends when the transfer fails and the transferor is gone."""


class CallTransfers:
    """The B2BUA's handling of REFER: a part of `B2bua` in a module of its own (it works on the
    B2BUA's legs, branches and media anchoring directly)."""

    def __init__(self, b2bua: B2bua) -> None:
        self.b2bua = b2bua

    def handle_refer(self, call: Call, leg: Leg, request: SipRequest, tx: ServerTransaction,
                     now: float) -> None:
        b = self.b2bua
        far = call.other(leg)
        if not call.answered or far is None or far.dialog is None:
            b._stack.respond(tx, 481, now=now)
            return
        if call.transfer is not None or call.join is not None or call.reinvite_pending or leg.moving \
                or far.moving or leg.unacked is not None or far.unacked is not None:
            b._stack.respond(tx, 491, now=now)
            return
        media = call.media
        place, other = call.leg_name(leg), call.leg_name(far)
        if b.anchoring.pool is None or media is None or other not in media.sdp_from:
            b._stack.respond(tx, 501, "Transfer Needs Anchored Media", now=now)
            return
        target = _refer_target(request)
        if isinstance(target, tuple):
            b._stack.respond(tx, target[0], target[1], now=now)
            return
        number, replaces = target.number, target.replaces
        if replaces is not None:
            b.joins.handle_refer(call, leg, replaces, request, tx, now)
            return
        b._stack.respond(tx, 202, now=now)
        transfer = call.transfer = Transfer(referrer=leg, place=place, side=leg.side, number=number)
        log.info("call %s: %s transfers it to %s", call.call_id, place, number)
        self.notify(leg, 100, "Trying", now, final=False)
        self._start(call, transfer, now)

    def move(self, call: Call, now: float) -> None:
        """The application server holding the call (its b leg) is gone: send the call to the
        number's home among the others of its role, as a transfer with no transferor."""
        b = self.b2bua
        lost = call.b
        media = call.media
        if not call.answered or lost is None:
            return
        if lost.dialog is not None:
            b._dialogs.pop(lost.dialog.id, None)
        if call.transfer is not None or b.anchoring.pool is None or media is None \
                or "a" not in media.sdp_from:
            log.info("call %s lost its application server and cannot be moved: hanging up", call.call_id)
            # The BYE goes to the lost server too: one only slow to answer probes learns that its
            # caller is gone (a dead one never answers it).
            b._hang_up(call, now, hangup_by=HangupBy.SYSTEM, reason=EndReason.APP_SERVER_LOST)
            return
        log.info("call %s lost its application server: moving it to another", call.call_id)
        transfer = call.transfer = Transfer(referrer=None, place="b", side=HangupBy.CALLEE,
                                            number=call.callee, failure=EndReason.APP_SERVER_LOST)
        self._start(call, transfer, now)

    def _start(self, call: Call, transfer: Transfer, now: float) -> None:
        """Route the transfer's number and ring the targets with a fresh offer from the party
        staying in the call."""
        b = self.b2bua
        media = call.media
        assert media is not None
        place, other, number = transfer.place, _other(transfer.place), transfer.number
        targets = b.redirection.transfer_targets(call.realm, number, now)
        if isinstance(targets, tuple):
            self._transfer_failed(call, transfer, targets[0], targets[1], now)
            return
        transfer.saved_origin = media.origins[place]
        media.origins[place] = SdpOrigin()  # the target is a new SDP session

        def offered(body: bytes | None, t: float) -> None:
            if call.transfer is not transfer:
                return
            if body is None:
                self._transfer_failed(call, transfer, 503, "Media Unavailable", t)
                return
            for target in targets:
                self._start_transfer_branch(call, transfer, target, body, t)

        transfer.offered = True
        b.anchoring.step(call, "offer", other, media.sdp_from[other], now, offered)
        transfer.timer = b._timers.schedule(
            now + b._no_answer_timeout,
            lambda t: self._transfer_failed(call, transfer, 480, "No Answer", t))

    def transfer_request(self, call: Call, leg: Leg, request: SipRequest, tx: ServerTransaction,
                         now: float) -> bool:
        """A request in a call whose transfer runs: the transferor's BYE lets it leave (the
        transfer goes on); whether it was handled here."""
        b = self.b2bua
        transfer = call.transfer
        if transfer is None or leg is not transfer.referrer or request.method != "BYE":
            return False
        b._stack.respond(tx, 200, now=now)
        transfer.referrer = None
        if leg.dialog is not None:
            b._dialogs.pop(leg.dialog.id, None)
        log.info("call %s: the transferor left; the transfer to %s goes on", call.call_id, transfer.number)
        return True

    # -- the target's branches ------------------------------------------------------------------

    def _start_transfer_branch(self, call: Call, transfer: Transfer, target: Target, body: bytes,
                               now: float) -> None:
        b = self.b2bua
        transferee = call.b if transfer.place == "a" else call.a
        identity = call.callee if transfer.place == "a" else call.caller
        display = call.a_invite.from_.display_name if call.a_invite is not None and transfer.place == "b" \
            else None
        assert transferee is not None
        branch = b._send_invite(
            target, call_id=make_tag() + make_tag(), from_tag=b._make_tag(), caller=identity,
            callee=transfer.number, realm=call.realm, display_name=display, max_forwards=69, body=body,
            content_type="application/sdp", now=now,
            on_response=lambda b, response, t: self._on_transfer_response(call, transfer, b, response, t),
            on_silent=lambda b, t: self._retry_transfer_branch(call, transfer, b, 408, t))
        branch.leg.side = transfer.side
        transfer.branches.append(branch)

    def _retry_transfer_branch(self, call: Call, transfer: Transfer, branch: Branch, code: int,
                               now: float) -> bool:
        b = self.b2bua
        if branch.app_endpoint is None or call.transfer is not transfer or transfer.answered \
                or branch.cancelled:
            return False
        body = branch.invite.body
        return b._replace_app_branch(
            branch, code, now, transfer.branches,
            lambda target, t: self._start_transfer_branch(call, transfer, target, body, t))

    def _on_transfer_response(self, call: Call, transfer: Transfer, branch: Branch,
                              response: SipResponse, now: float) -> None:
        b = self.b2bua
        code = response.status_code
        if b.branch_responded(branch, code, now):
            return
        if code < 200:
            if code == 180 and call.transfer is transfer and not transfer.ringback:
                transfer.ringback = True
                b.anchoring.request(call, "play_tone", now, leg=_other(transfer.place), tone="ringback")
                if transfer.referrer is not None:
                    self.notify(transfer.referrer, 180, "Ringing", now, final=False)
            return
        if code < 300:
            self._on_transfer_answer(call, transfer, branch, response, now)
            return
        if server_failed(code) and self._retry_transfer_branch(call, transfer, branch, code, now):
            return
        branch.final = code
        if call.transfer is transfer and all(b.final is not None for b in transfer.branches):
            status = best_final_status([b.final for b in transfer.branches if b.final is not None])
            self._transfer_failed(call, transfer, status, response.reason if status == code else "", now)

    def _on_transfer_answer(self, call: Call, transfer: Transfer, branch: Branch,
                            response: SipResponse, now: float) -> None:
        b = self.b2bua
        leg = branch.leg
        if leg.dialog is not None:  # a retransmission: our ACK was lost
            ack = leg.acks_sent.get(response.cseq.seq)
            if ack is not None:
                b._stack.send_stateless(ack, leg.peer, leg.transport)
            return
        if not response.contacts:
            patched = SipResponse(response.status_code, response.reason, response.headers.copy(),
                                  response.body)
            patched.headers.add("Contact", f"<{branch.invite.uri}>")
            response = patched
        leg.dialog = Dialog.from_uac(branch.invite, response)
        b._send_ack(leg, branch.invite.cseq.seq, b"", None, now)
        if call.transfer is not transfer or transfer.answered or not call.answered:
            b._send_bye(leg, now)  # answered too late
            return
        branch.final = response.status_code
        transfer.answered = True
        for other in transfer.branches:
            if other is not branch:
                b._cancel_branch(other, now)
        media = call.media
        assert media is not None
        transferee = _other(transfer.place)
        shown = media.origins[transferee].last_sent
        if transfer.ringback:
            transfer.ringback = False
            b.anchoring.request(call, "stop_playback", now, leg=transferee)

        def answered(body: bytes | None, t: float) -> None:
            if call.transfer is not transfer or not call.answered:
                if leg.dialog is not None:
                    b._send_bye(leg, t)
                return
            if body is None or not response.body:
                b._send_bye(leg, t)
                transfer.answered = False
                self._transfer_failed(call, transfer, 503, "Media Unavailable", t)
                return
            self._complete_transfer(call, transfer, branch, t)
            if body != shown:  # the codec changed: the transferee must hear of it
                held = call.a if transferee == "a" else call.b
                if held is not None:
                    b._reinvite(call, held, body, t)

        b.anchoring.step(call, "answer", transfer.place, response.body, now, answered)

    def _complete_transfer(self, call: Call, transfer: Transfer, branch: Branch, now: float) -> None:
        b = self.b2bua
        call.transfer = None
        b._cancel_timer(transfer.timer)
        referrer = transfer.referrer
        b.joins.agent_left(call, call.a if transfer.place == "a" else call.b, now)
        if referrer is not None and referrer.dialog is not None:
            self.notify(referrer, 200, "OK", now, final=True)
            b._send_bye(referrer, now)
            b._dialogs.pop(referrer.dialog.id, None)
        leg = branch.leg
        if transfer.place == "a":
            call.a = leg
        else:
            call.b = leg
        b._register_dialog(call, leg)
        b._hold_app_endpoint(call, branch.app_endpoint)
        b.records.mark_changed(call)
        log.info("call %s transferred to %s", call.call_id, transfer.number)

    def _transfer_failed(self, call: Call, transfer: Transfer, code: int, reason: str,
                         now: float) -> None:
        b = self.b2bua
        if call.transfer is not transfer:
            return
        log.info("call %s: transfer to %s failed: %d", call.call_id, transfer.number, code)
        call.transfer = None
        b._cancel_timer(transfer.timer)
        for branch in transfer.branches:
            b._cancel_branch(branch, now)
        media = call.media
        transferee = _other(transfer.place)
        if media is not None:
            if transfer.ringback:
                b.anchoring.request(call, "stop_playback", now, leg=transferee)
            if transfer.saved_origin is not None:
                media.origins[transfer.place] = transfer.saved_origin
            if transfer.offered and transfer.place in media.sdp_from:
                # Give the transferor its place back on the media server.
                b.anchoring.step(call, "answer", transfer.place, media.sdp_from[transfer.place], now,
                                 _ignore_body)
        if transfer.referrer is not None:
            self.notify(transfer.referrer, code, reason, now, final=True)
            return
        held = call.a if transferee == "a" else call.b
        gone = call.b if transferee == "a" else call.a
        if transfer.failure is EndReason.APP_SERVER_LOST:
            gone = None  # a move: its lost server gets the BYE too (see `move`)
        if held is not None:
            b._hang_up(call, now, hangup_by=HangupBy.SYSTEM, skip=gone, reason=transfer.failure)

    def abort(self, call: Call, now: float) -> None:
        """The call ends while its transfer runs: the target stops ringing (or is hung up)."""
        b = self.b2bua
        transfer = call.transfer
        assert transfer is not None
        call.transfer = None
        b._cancel_timer(transfer.timer)
        for branch in transfer.branches:
            if branch.leg.dialog is not None and branch.final is not None and 200 <= branch.final < 300:
                b._send_bye(branch.leg, now)
            else:
                b._cancel_branch(branch, now)

    def drop(self, call: Call) -> None:
        b = self.b2bua
        transfer = call.transfer
        assert transfer is not None
        call.transfer = None
        b._cancel_timer(transfer.timer)

    def notify(self, leg: Leg, code: int, reason: str, now: float, *, final: bool) -> None:
        """A NOTIFY of the refer subscription to the transferor: `code` as a sipfrag."""
        b = self.b2bua
        if leg.dialog is None:
            return
        state = "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION_EXPIRES}"
        body = f"SIP/2.0 {code} {reason or _reason(code)}\r\n".encode()
        try:
            notify = leg.dialog.create_request(
                "NOTIFY", via_host=b._stack.host, via_port=b._stack.port, transport=leg.transport,
                body=body, content_type=SIPFRAG,
                extra_headers=[("Event", "refer"), ("Subscription-State", state)])
        except RemoteProtocolError:
            return
        tx = b._stack.send_request(notify, leg.peer, leg.transport, now)
        tx.user_data = _ignore_response


@dataclass(frozen=True, slots=True)
class ReferTarget:
    number: str
    replaces: Replaces | None
    """The dialog the Refer-To's Replaces names (an attended transfer), if any."""


def _refer_target(request: SipRequest) -> ReferTarget | tuple[int, str]:
    """The number a REFER sends the call to and the dialog it replaces (an attended transfer), or
    the status refusing it."""
    values = request.headers.get_all("Refer-To")
    if len(values) != 1:
        return 400, "One Refer-To Needed"
    try:
        address = Address.parse(values[0], header="Refer-To")
    except RemoteProtocolError:
        return 400, "Bad Refer-To"
    uri = address.uri
    if not isinstance(uri, SipUri) or not uri.user_unescaped:
        return 416, "Refer-To Must Be A SIP URI With A Number"
    replaces = [value for name, value in uri.headers.items() if name.lower() == "replaces"]
    if not replaces:
        return ReferTarget(uri.user_unescaped, None)
    try:
        return ReferTarget(uri.user_unescaped, Replaces.parse(unquote(replaces[0])))
    except RemoteProtocolError as exc:
        return 400, exc.reason


def _other(place: str) -> str:
    return "b" if place == "a" else "a"


def _reason(code: int) -> str:
    return {100: "Trying", 180: "Ringing", 200: "OK", 404: "Not Found", 408: "Request Timeout",
            480: "Temporarily Unavailable", 486: "Busy Here", 487: "Request Terminated",
            503: "Service Unavailable"}.get(code, "Failed")


def _ignore_response(response: SipResponse, now: float) -> None:
    return None


def _ignore_body(body: bytes | None, now: float) -> None:
    return None


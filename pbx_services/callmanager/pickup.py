"""Call pickup: a user answers, from its own phone, a call ringing a colleague's.

The tenant's pickup code (`*8` by default, `cluster.feature_codes`) picks up a call ringing
any user of the picker's pickup group (`pbx user set EXT --pickup-group NAME`; a user without
one is in its tenant's default group); the directed pickup code followed by an extension
(`**1002`) picks up the call ringing 1002. A call is picked up when it is of the picker's
tenant, still unanswered, and a user's phone rings for it (a 180 or 183 came; the callee's, a
ring group's member's, a forward's destination's: `Branch.user`): the oldest such call (one
whose caller sent no offer, which the picker's offer could not answer, is left alone, and so is
a queue server's ring of an agent, which the queue then joins to its caller). None:
`480 No Call To Pick Up` (`404 No Such Extension` for a directed pickup of a number no user
has).

The picker's INVITE becomes the call's answering leg (`CallPickup.pick_up`): the ringing
phones get a CANCEL with `Reason: SIP;cause=200;text="Call completed elsewhere"` (RFC 3326:
they log no missed call), the picker's offer is given to the call's media server as the
callee's answer, and the caller and the picker each get a 200: the caller the server's answer,
the picker the server's side for the callee (the offer the ringing phones got) cut down to the
codecs the picker offered (`answer_for_picker`). From then on it is any answered call, whose
callee is the picker (its CDR, the BLF of both lines).

Several Call Manager workers: a call lives in the worker its caller's INVITE reached, and the
picker's INVITE reaches the worker its own address hashes to. A worker that holds no call to
pick up hands the INVITE, before it is authenticated (a nonce-count is accepted once, on one
worker), to the next worker that has not seen it (`hand_over`), naming those that have in
`Pbx-Pickup-Tried`; the last one answers 480. As with `Pbx-Join-Tag` (`workers.py`) the
message goes whole over the workers' channel, and the worker that takes it answers the
phone, whose later requests name that worker in our To tag.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from copy import deepcopy
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from ..cluster.events import HangupBy
from ..cluster.feature_codes import Feature, FeatureMatch
from ..media.negotiation import NegotiationError, audio_stream_index, codec_key, is_audio_codec
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from ..sip.message import SipRequest
from ..sip.sdp import ATTR_FMTP, ATTR_RTPMAP, SessionDescription
from ..sip.transaction import ServerTransaction
from ..sip.uri import SipUri
from .call import CONNECTING, RINGING, ROUTING, Call, CallInput, Leg

if TYPE_CHECKING:
    from .b2bua import B2bua

log = logging.getLogger(__name__)

SDP = "application/sdp"
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'
"""The Reason of the CANCEL the phones a call rang get when it was picked up or answered on
another of them (RFC 3326): they show it answered elsewhere, not missed."""
PBX_PICKUP_TRIED = "Pbx-Pickup-Tried"
"""The workers that found nothing to pick up for a pickup INVITE, comma-separated."""
_WORKER_LIST = re.compile(r"\b[0-9]{1,4}\b")


class FeatureDirectory(Protocol):
    def feature(self, domain: str, dialed: str) -> FeatureMatch | None:
        """The feature `dialed` is the code of in the tenant, if any."""

    def pickup_group(self, domain: str, extension: str) -> str | None:
        """The user's pickup group ("" the tenant's default one); None if no user has `extension`."""


HandOver = Callable[[int, bytes, tuple[str, int], str], None]
"""Hand a message (data, source, transport) to the worker of that index."""


class CallPickup:
    """The B2BUA's pickup: a part of `B2bua` in a module of its own, as `CallTransfers` is."""

    def __init__(self, b2bua: B2bua, *, directory: FeatureDirectory | None, worker: int = 0,
                 workers: int = 1, hand_over: HandOver | None = None) -> None:
        """`worker` is this worker's index of `workers`; `hand_over` sends a message to another."""
        self._b = b2bua
        self._directory = directory
        self._worker = worker
        self._workers = workers
        self._hand_over = hand_over

    def feature(self, realm: str, dialed: str) -> FeatureMatch | None:
        return self._directory.feature(realm, dialed) if self._directory is not None else None

    # -- several workers ------------------------------------------------------------------------

    def hand_over(self, request: SipRequest, tx: ServerTransaction, realm: str, source: tuple[str, int],
                  transport: str) -> bool:
        """Before authentication: a pickup INVITE that no call here answers goes to the next worker
        that has not tried it (see the module's doc); whether it went."""
        if self._workers <= 1 or self._hand_over is None:
            return False
        dialed = request.uri.user_unescaped if isinstance(request.uri, SipUri) else None
        match = self.feature(realm, dialed) if dialed else None
        if match is None or match.feature.role is not None:
            return False
        if self._ringing_call(realm, request.from_.sip_uri.user_unescaped or "", match) is not None:
            return False
        # A phone may send the header too: at worst its pickup is answered by fewer workers.
        tried = {self._worker} | {int(item) for value in request.headers.get_all(PBX_PICKUP_TRIED)
                                  for item in _WORKER_LIST.findall(value)}
        following = next((index for index in range(self._workers) if index not in tried), None)
        if following is None:
            return False
        request.headers.set(PBX_PICKUP_TRIED, ",".join(str(index) for index in sorted(tried)))
        self._b._stack.layer.abandon(tx)
        log.info("pickup %s from %s@%s: nothing rings on worker %d, handed to worker %d", dialed,
                 request.from_.sip_uri.user_unescaped, realm, self._worker, following)
        self._hand_over(following, request.serialize(), source, transport)
        return True

    # -- the pickup -------------------------------------------------------------------------------

    def pick_up(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int], transport: str,
                now: float, *, realm: str, picker: str, match: FeatureMatch) -> None:
        """The authenticated `picker` dialled a pickup code (`match`): the call it picks up is
        answered by this INVITE, or the INVITE is refused."""
        b = self._b
        call = self._ringing_call(realm, picker, match)
        if call is None:
            if match.feature is Feature.DIRECTED_PICKUP and self._group_of(realm, match.argument) is None:
                log.info("pickup of %s by %s@%s: no such extension", match.argument, picker, realm)
                b._stack.respond(tx, 404, "No Such Extension", now=now, to_tag=b._make_tag())
                return
            log.info("pickup (%s%s) by %s@%s: no call rings", match.feature.value,
                     f" {match.argument}" if match.argument else "", picker, realm)
            b._stack.respond(tx, 480, "No Call To Pick Up", now=now, to_tag=b._make_tag())
            return
        media = call.media
        if request.content_type != SDP or not request.body:
            b._stack.respond(tx, 488, "Pickup Needs An SDP Offer", now=now, to_tag=b._make_tag())
            return
        offer = request.body
        try:
            answer = call.b_offer if media is None else answer_for_picker(call.b_offer, offer,
                                                                           media.sdp_from.get("a"))
        except (RemoteProtocolError, NegotiationError) as exc:
            log.info("pickup of call %s by %s@%s: %s", call.call_id, picker, realm, exc)
            b._stack.respond(tx, 488, "Not Acceptable Here", now=now, to_tag=b._make_tag())
            return
        self._take(call, request, tx, source, transport, now, picker=picker, offer=offer, answer=answer)

    def _take(self, call: Call, request: SipRequest, tx: ServerTransaction, source: tuple[str, int],
              transport: str, now: float, *, picker: str, offer: bytes, answer: bytes) -> None:
        b = self._b
        log.info("call %s from %s to %s: picked up by %s", call.call_id, call.caller, call.callee, picker)
        for branch in call.branches:
            branch.cancel_reason = COMPLETED_ELSEWHERE
            b._cancel_branch(branch, now)
        b._cancel_timer(call.ring_timer)
        b._cancel_timer(call.forward_timer)
        call.hunt = None
        leg = Leg(HangupBy.CALLEE, source, transport)
        tag = b._make_tag()
        leg.dialog = Dialog.from_uas(request, local_tag=tag, local_contact=b._stack.contact(transport))
        leg.dialog.confirm()
        call.b = leg
        call.goes_to(picker)
        call.transition(CallInput.ANSWERED)
        call.answered_at = now
        b._register_dialog(call, leg)
        b._confirm_caller_dialog(call)
        b.records.mark_changed(call)
        media = call.media

        def answered(for_caller: bytes | None, t: float) -> None:
            if call.phase is not CONNECTING:
                b._stack.respond(tx, 487, "Request Terminated", now=t, to_tag=tag)
                return
            if for_caller is None:
                b._stack.respond(tx, 503, "Media Unavailable", now=t, to_tag=tag)
                if leg.dialog is not None:
                    b._dialogs.pop(leg.dialog.id, None)
                leg.dialog = None
                b._refuse_answered(call, t)
                return
            for_picker = answer if media is None else media.origins["b"].stamp(answer)
            b._answer(call, call.a, call.invite_tx, 200, "OK", for_caller, SDP,
                      lambda ack, t2: call.transition(CallInput.ACKED), t)
            b._answer(call, leg, tx, 200, "OK", for_picker, SDP, _ignore_ack, t, to_tag=tag)

        if media is None:
            answered(offer, now)
            return
        if media.ringback:
            media.ringback = False
            b.anchoring.request(call, "stop_playback", now, leg="a")
        b.anchoring.step(call, "answer", "b", offer, now, answered)

    def _ringing_call(self, realm: str, picker: str, match: FeatureMatch) -> Call | None:
        """The oldest call of the tenant ringing a phone that `picker` may pick up with `match`."""
        group = None if match.feature is Feature.DIRECTED_PICKUP else self._group_of(realm, picker)
        if match.feature is Feature.PICKUP and group is None:
            return None  # the picker is no user of the tenant
        candidates = []
        for call in self._b.calls:
            if call.phase is not ROUTING or call.realm != realm or not call.b_offer or call.caller == picker \
                    or self._b.is_app_endpoint(call.a.peer):
                continue  # a queue's ring of an agent is the agent's: the queue joins its caller to it
            ringing = _ringing_users(call) - {picker}
            if match.feature is Feature.DIRECTED_PICKUP:
                wanted = match.argument in ringing
            else:
                wanted = any(self._group_of(realm, user) == group for user in ringing)
            if wanted:
                candidates.append(call)
        return min(candidates, key=lambda call: call.started_at, default=None)

    def _group_of(self, realm: str, extension: str) -> str | None:
        if self._directory is None or not extension:
            return None
        return self._directory.pickup_group(realm, extension)


def _ringing_users(call: Call) -> set[str]:
    """The users whose phones ring for the call (a 180 or 183 came): its callee's, a ring group's
    members' rung so far; not an application server or a trunk."""
    return {branch.user for branch in call.branches if branch.state is RINGING and branch.user}


def answer_for_picker(server_sdp: bytes, picker_sdp: bytes, caller_sdp: bytes | None) -> bytes:
    """The answer to the picker's offer: the media server's SDP for the callee's side
    (`server_sdp`, the offer the ringing phones got) with only the codecs the picker offered
    too, numbered as the picker numbered them; first the one the media server will send the
    picker (the first of the picker's that the caller offered, as the server picks; else the
    picker's first). Every other stream of the picker's offer is rejected (port 0), in place.
    RemoteProtocolError or NegotiationError when the two share no audio codec."""
    server = SessionDescription.parse(server_sdp)
    picker = SessionDescription.parse(picker_sdp)
    picker_index, server_index = audio_stream_index(picker), audio_stream_index(server)
    server_media = server.media[server_index]
    server_codecs = {codec_key(rtpmap): pt for pt, rtpmap in server_media.rtpmap().items()}
    server_fmtp = server_media.fmtp()
    caller_keys: set[tuple[str, int, int]] = set()
    if caller_sdp:
        caller = SessionDescription.parse(caller_sdp)
        caller_keys = {codec_key(r) for r in caller.media[audio_stream_index(caller)].rtpmap().values()}
    shared = [(pt, rtpmap) for pt, rtpmap in picker.media[picker_index].rtpmap().items()
              if codec_key(rtpmap) in server_codecs]
    audio = [item for item in shared if is_audio_codec(item[1])]
    if not audio:
        raise NegotiationError("no codec of the picker's offer is the call's")
    audio.sort(key=lambda item: codec_key(item[1]) not in caller_keys)  # stable: the picker's order
    kept = [audio[0], *audio[1:], *(item for item in shared if not is_audio_codec(item[1]))]
    answer_media = deepcopy(server_media)
    answer_media.formats = [str(pt) for pt, _ in kept]
    codec_lines: list[tuple[str, str | None]] = []
    for pt, rtpmap in kept:
        channels = f"/{rtpmap.channels}" if rtpmap.channels else ""
        codec_lines.append((ATTR_RTPMAP, f"{pt} {rtpmap.encoding}/{rtpmap.clock_rate}{channels}"))
        fmtp = server_fmtp.get(server_codecs[codec_key(rtpmap)])
        if fmtp is not None:
            codec_lines.append((ATTR_FMTP, f"{pt} {fmtp}"))
    answer_media.attributes = codec_lines + [(name, value) for name, value in server_media.attributes
                                             if name not in (ATTR_RTPMAP, ATTR_FMTP)]
    streams = []
    for index, offered in enumerate(picker.media):
        streams.append(answer_media if index == picker_index else replace(deepcopy(offered), port=0))
    return replace(server, media=streams).serialize()


def _ignore_ack(ack: SipRequest, now: float) -> None:
    return None

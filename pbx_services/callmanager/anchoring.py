"""Media anchoring: every call's media goes through a media server, and each phone is shown
only that server.

Each SDP a phone sends goes to the call's media endpoint (`offer` or `answer`) and the other
phone gets the server's rewrite, so the B2BUA's SIP flow waits for the server's reply at
those points. When a media endpoint dies (or restarts without its calls), its calls are
re-homed: anchored anew on another endpoint and both phones re-INVITEd to it; a call no
endpoint can take is ended after the pool's `rehome_timeout`.

Each phone sees one SDP session from us for the whole call, even when the media server
that builds the bodies changes (re-homing): its o= line keeps our session id, and its
version goes up exactly when the body changes (RFC 3264 section 8).

`MediaAnchor` is what a call keeps about its media, `MediaAnchoring` the B2BUA's part that
talks to the media servers (sans-IO: through `MediaPool`, with the time passed in).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..cluster.events import EndReason
from ..cluster.media_control import ERROR_UNKNOWN_CALL
from ..runtime.timers import TimerQueue
from ..sip.errors import RemoteProtocolError
from ..sip.sdp import SessionDescription
from .call import ENDED, ROUTING
from .mediapool import MediaEndpoint, MediaPool, ReplyCallback

if TYPE_CHECKING:
    from .call import Call, Leg

log = logging.getLogger(__name__)

LEG_NAMES = ("a", "b")


@dataclass(eq=False)
class SdpOrigin:
    """The o= line we present to one phone."""

    session_id: str = field(default_factory=lambda: str(random.randrange(10**9, 10**10)))
    version: int = 0
    last_sent: bytes | None = None
    """The last body sent, o= line included, to tell a repeat from a change."""
    last_content: bytes | None = None

    def stamp(self, body: bytes) -> bytes:
        """`body` (from the media server) with our o= line, versioned."""
        description = SessionDescription.parse(body)
        connection = description.connection or next(
            (media.connection for media in description.media if media.connection), None)
        address = connection.address if connection is not None else description.origin.address
        unversioned = replace(description, origin=replace(description.origin, username="-", session_id="0",
                                                          session_version="0", address=address)).serialize()
        if unversioned == self.last_content and self.last_sent is not None:
            return self.last_sent
        if self.last_content is not None:
            self.version += 1
        self.last_content = unversioned
        origin = replace(description.origin, username="-", session_id=self.session_id,
                         session_version=str(self.version), address=address)
        self.last_sent = replace(description, origin=origin).serialize()
        return self.last_sent


@dataclass(eq=False)
class MediaAnchor:
    """A call's media on one media endpoint."""

    endpoint: MediaEndpoint
    media_call_id: str
    """The `call_id` the media server knows the call by."""
    sdp_from: dict[str, bytes] = field(default_factory=dict)
    """The last SDP each phone ("a", "b") sent."""
    origins: dict[str, SdpOrigin] = field(default_factory=lambda: {leg: SdpOrigin() for leg in LEG_NAMES})
    offer_for_b: bytes | None = None
    """The body the callee's INVITE carried (or should have, after re-homing)."""
    early_sdp_for_a: bytes | None = None
    """The answer the caller got in a provisional (early media or ringback); the 2xx repeats it."""
    ringback: bool = False
    """The media server plays ringback to the caller."""
    b_stale: bool = False
    """The callee was offered an endpoint that died before it answered: re-INVITE it once it has."""
    recording: str | None = None
    stranded: bool = False
    """Its endpoint was lost and no other could take it yet: re-homing is retried until a deadline."""


SdpCallback = Callable[[bytes | None, float], None]
"""Gets the body for the other phone, or None when the media server could not make one."""


class MediaAnchoring:
    """The calls' media on the media pool's endpoints. Without a pool (`pool` None: unit tests
    of signalling alone) no call is anchored and `translate` passes SDP through unchanged."""

    def __init__(self, *, pool: MediaPool | None, timers: TimerQueue, record_calls: bool,
                 changed: Callable[[Call], None], reinvite: Callable[[Call, Leg, bytes, float], None],
                 hang_up: Callable[[Call, float, EndReason], None],
                 refuse: Callable[[Call, float, EndReason], None]) -> None:
        """`changed` marks a call whose record is to be written again; `reinvite` offers a body
        to a leg's phone (the media moved); `hang_up` ends an answered call and `refuse` one
        still routing, each for the reason given."""
        self.pool = pool
        self._timers = timers
        self._record_calls = record_calls
        self._changed = changed
        self._reinvite = reinvite
        self._hang_up = hang_up
        self._refuse = refuse
        self._calls: dict[str, Call] = {}
        """Anchored calls by the call id their media server knows them by."""

    def anchor(self, call: Call, leg: str, sdp: bytes, now: float, then: SdpCallback) -> None:
        """Anchor the call on the least loaded media endpoint with `leg`'s offer; `then` gets the
        body for the other phone, or None when no media server could take the call."""
        assert self.pool is not None
        endpoint = self.pool.pick()
        if endpoint is None:
            log.warning("no media server available for call %s", call.call_id)
            then(None, now)
            return
        call.media = MediaAnchor(endpoint=endpoint, media_call_id=call.call_id)
        endpoint.calls.add(call)
        self._calls[call.media.media_call_id] = call
        self.step(call, "offer", leg, sdp, now, then)

    def step(self, call: Call, kind: str, leg: str, sdp: bytes, now: float, then: SdpCallback) -> None:
        """Give the media server `leg`'s SDP (`offer` or `answer`); `then` gets the other phone's body."""
        media = call.media
        assert media is not None
        media.sdp_from[leg] = sdp
        self._changed(call)
        other = "b" if leg == "a" else "a"
        fields: dict[str, object] = {"leg": leg, "sdp": sdp.decode("utf-8", "replace")}
        if kind == "offer" and self._record_calls:
            fields["record"] = True

        def on_reply(body: dict[str, Any] | None, t: float) -> None:
            if body is not None and isinstance(body.get("recording"), str):
                media.recording = body["recording"]
            then(self.sdp_of_reply(call, other, body), t)

        self.request(call, kind, now, on_reply, **fields)

    def sdp_of_reply(self, call: Call, leg: str, body: dict[str, Any] | None) -> bytes | None:
        """The reply's `sdp`, with our o= line for `leg`'s phone; None if the request failed."""
        media = call.media
        usable = body is not None and body.get("result") == "ok" and isinstance(body.get("sdp"), str)
        if body is None or not usable or media is None:
            if body is not None:
                log.warning("media server %s refused call %s: %s", media.endpoint if media else "?",
                            call.call_id, body.get("error_reason"))
            return None
        try:
            self._changed(call)
            return media.origins[leg].stamp(body["sdp"].encode())
        except RemoteProtocolError as exc:
            log.warning("media server sent a broken SDP for call %s: %s", call.call_id, exc.reason)
            return None

    def request(self, call: Call, command: str, now: float, on_reply: ReplyCallback | None = None,
                **fields: Any) -> None:
        """A control request about the call to its media endpoint."""
        media = call.media
        assert self.pool is not None and media is not None
        self.pool.request(media.endpoint, command, now, on_reply or _ignore_reply,
                          call_id=media.media_call_id, **fields)

    def translate(self, call: Call, kind: str, leg: Leg, body: bytes, now: float, then: SdpCallback) -> None:
        """An SDP from `leg` through the call's media server; unchanged when there is none."""
        if call.media is None or not body:
            then(body, now)
            return
        self.step(call, kind, call.leg_name(leg), body, now, then)

    def forget(self, call: Call) -> None:
        """The call is no longer held here: its endpoint stops counting it, nothing is sent."""
        media = call.media
        assert media is not None
        media.endpoint.calls.discard(call)
        self._calls.pop(media.media_call_id, None)

    def release(self, call: Call, now: float) -> None:
        """The call ended: its media server frees it."""
        self.forget(call)
        assert call.media is not None
        if call.media.endpoint.up:
            self.request(call, "delete", now)

    def rehome(self, endpoint: MediaEndpoint, now: float) -> None:
        """Move every call anchored on `endpoint` (down, or restarted and so without its calls) to
        an available endpoint: another, or the restarted one itself once it answers. A call no
        endpoint can take waits for one (another added or enabled, this one back) for at most
        the pool's `rehome_timeout`, then is ended: never left without audio for ever."""
        assert self.pool is not None
        give_up_at = now + self.pool.rehome_timeout
        for call in list(endpoint.calls):
            endpoint.calls.discard(call)
            media = call.media
            if media is None or media.endpoint is not endpoint or call.phase is ENDED:
                continue
            self._rehome_call(call, media, now, give_up_at)

    def _rehome_call(self, call: Call, media: MediaAnchor, now: float, give_up_at: float) -> None:
        assert self.pool is not None
        if call.phase is ENDED or call.media is not media:
            return
        lost = media.endpoint
        target = self.pool.pick()
        if target is None and now < give_up_at:
            if not media.stranded:
                log.error("call %s lost its media server %s and none can take it now: waiting up to %g s",
                          call.call_id, lost, give_up_at - now)
            media.stranded = True
            self._timers.schedule(min(now + self.pool.ping_interval, give_up_at),
                                  lambda t: self._rehome_call(call, media, t, give_up_at))
            return
        media.stranded = False
        if target is None:
            log.error("call %s: no media server could take it after %s was lost: ending it",
                      call.call_id, lost)
            media.endpoint = GONE
            self._calls.pop(media.media_call_id, None)
            if call.answered:
                self._hang_up(call, now, EndReason.MEDIA_LOST)
            else:
                self._refuse(call, now, EndReason.MEDIA_LOST)
            return
        log.info("re-homing call %s from %s to %s", call.call_id, lost, target)
        media.endpoint = target
        self._changed(call)
        target.calls.add(call)
        self._reanchor(call, media, now)

    def _reanchor(self, call: Call, media: MediaAnchor, now: float) -> None:
        sdp_a, sdp_b = media.sdp_from.get("a"), media.sdp_from.get("b")
        if sdp_a is None:
            return  # late offer still ringing: the callee's answer anchors it on the new endpoint

        def offered(body_for_b: bytes | None, t: float) -> None:
            if body_for_b is None or call.phase is ENDED:
                return
            media.offer_for_b = body_for_b
            if sdp_b is None or call.b is None:
                media.b_stale = call.phase is ROUTING
                return

            def answered(body_for_a: bytes | None, t2: float) -> None:
                if body_for_a is None or call.b is None:
                    return
                self._reinvite(call, call.a, body_for_a, t2)
                self._reinvite(call, call.b, body_for_b, t2)

            self.step(call, "answer", "b", sdp_b, t, answered)

        self.step(call, "offer", "a", sdp_a, now, offered)

    def media_timed_out(self, media_call_id: str, now: float) -> None:
        """The media server freed the call: no RTP for too long. Hang it up."""
        call = self._calls.pop(media_call_id, None)
        if call is None or call.media is None:
            return
        log.info("call %s had no RTP for too long: hanging up", call.call_id)
        call.media.endpoint.calls.discard(call)
        call.media.endpoint = GONE
        if call.answered:
            self._hang_up(call, now, EndReason.RTP_TIMEOUT)

    # -- calls taken over from the state store -------------------------------------------

    def rebuild_anchor(self, call: Call, media: dict[str, Any]) -> MediaAnchor:
        """The anchor `describe_anchor` described, for a call taken over; its endpoint counts it."""
        address = (str(media["address"][0]), int(media["address"][1]))
        pool = self.pool
        endpoint = pool.endpoint_for(str(media["server"]), address) if pool is not None else GONE
        anchor = MediaAnchor(
            endpoint=endpoint, media_call_id=str(media["media_call_id"]),
            sdp_from={leg: sdp.encode() for leg, sdp in media["sdp_from"].items()},
            origins={leg: _rebuild_origin(origin) for leg, origin in media["origins"].items()},
            recording=media["recording"])
        endpoint.calls.add(call)
        self._calls[anchor.media_call_id] = call
        return anchor

    def claim(self, call: Call, now: float) -> None:
        """Tell the media server of a call taken over that we hold it now (its timeout notice
        comes here); hang the call up if the server freed it while nobody held it."""
        if self.pool is None or call.media is None:
            return

        def on_reply(reply: dict[str, Any] | None, t: float) -> None:
            if reply is not None and reply.get("error_reason") == ERROR_UNKNOWN_CALL:
                log.info("call %s taken over had lost its media: hanging up", call.call_id)
                if call.media is not None:
                    call.media.endpoint.calls.discard(call)
                    call.media.endpoint = GONE
                self._hang_up(call, t, EndReason.MEDIA_LOST)

        self.request(call, "query", now, on_reply)


def describe_anchor(media: MediaAnchor) -> dict[str, Any]:
    """What `MediaAnchoring.rebuild_anchor` needs to go on with the call's media in another process."""
    return {"server": media.endpoint.server, "address": list(media.endpoint.address),
            "media_call_id": media.media_call_id, "recording": media.recording,
            "sdp_from": {leg: sdp.decode("utf-8", "replace") for leg, sdp in media.sdp_from.items()},
            "origins": {leg: _describe_origin(origin) for leg, origin in media.origins.items()}}


def _describe_origin(origin: SdpOrigin) -> dict[str, Any]:
    last_sent, last_content = origin.last_sent, origin.last_content
    return {"session_id": origin.session_id, "version": origin.version,
            "last_sent": last_sent.decode("utf-8", "replace") if last_sent is not None else None,
            "last_content": last_content.decode("utf-8", "replace") if last_content is not None else None}


def _rebuild_origin(data: dict[str, Any]) -> SdpOrigin:
    last_sent, last_content = data["last_sent"], data["last_content"]
    return SdpOrigin(session_id=str(data["session_id"]), version=int(data["version"]),
                     last_sent=last_sent.encode() if last_sent is not None else None,
                     last_content=last_content.encode() if last_content is not None else None)


def _ignore_reply(reply: dict[str, Any] | None, now: float) -> None:
    return None


GONE = MediaEndpoint(server="(gone)", address=("0.0.0.0", 0), weight=1, enabled=False, up=False)
"""Where a call's media is when its server already freed it: nothing more is asked of it."""

"""One media worker's core: the control protocol's commands, its calls, their timers.

Sans-IO: control datagrams and RTP/RTCP packets come in with the time (`now`, the event
loop's clock), and what to send comes out of `take_control_datagrams` and
`take_rtp_datagrams`; `next_timer`/`handle_timer` drive playback, timeouts and
notifications. Two things are injected: `bind_ports`/`unbind_ports`, which open and close a
leg's RTP and RTCP sockets (a port another process holds is skipped), and the wall clock's
offset from `now`, for the times a controller reads.

Replies are kept 30 s by (sender, cookie): a retransmitted request gets the same reply
and does nothing again (an `offer` does not allocate twice).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pbx_services.rtp.tones import TONE_NAMES, TONE_PLANS
from pbx_services.sip.errors import RemoteProtocolError
from pbx_services.sip.sdp import SessionDescription

from ..cluster.media_control import (
    ERROR_UNKNOWN_CALL,
    LEGS,
    RESULT_ERROR,
    RESULT_OK,
    RESULT_PONG,
    ControlMessage,
    ControlProtocolError,
    error_reply,
    request,
)
from ..rtp.ports import PortAllocator
from .negotiation import (
    NegotiationError,
    StreamInfo,
    answer_ourselves,
    audio_stream_index,
    codec_key,
    pick_codec,
    rewrite_answer,
    rewrite_offer,
    stream_info,
)
from .playback import Playback, PlaybackError, file_frames, tone_frames
from .recording import CallRecorder, recording_path
from .relay import Datagram, RtpRelay
from .session import NO_FAST_PATH, Address, Call, Leg
from .transcoding import Transcoding

log = logging.getLogger(__name__)

REPLY_CACHE_SECONDS = 30.0
HOUSEKEEPING_INTERVAL = 1.0
NOTIFICATION_INTERVAL = 1.0
NOTIFICATION_ATTEMPTS = 5
MAX_CALL_ID_LENGTH = 256

ERROR_NO_FREE_PORTS = "no free ports"
ERROR_NO_COMMON_CODEC = "no common codec"


class CommandError(Exception):
    """A request that cannot be carried out; `reason` goes in the error reply."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Notification:
    __slots__ = ("message", "destination", "attempts", "next_at")

    def __init__(self, message: ControlMessage, destination: Address, now: float) -> None:
        self.message = message
        self.destination = destination
        self.attempts = 0
        self.next_at = now


class MediaServer:
    """The calls of one worker and the control protocol that drives them."""

    def __init__(
        self,
        *,
        worker: int,
        boot_id: str,
        process_id: int,
        port_min: int,
        port_max: int,
        sdp_address: str,
        recording_dir: Path,
        tone_plan: str,
        rtp_timeout: float,
        hold_timeout: float,
        bind_ports: Callable[[Leg], bool],
        unbind_ports: Callable[[Leg], None],
        wall_offset: float,
        now: float,
        transcoding: Transcoding | None = None,
    ) -> None:
        self.worker = worker
        self.boot_id = boot_id
        self.process_id = process_id
        self.sdp_address = sdp_address
        self.recording_dir = recording_dir
        self.tone_plan = tone_plan
        self.rtp_timeout = rtp_timeout
        self.hold_timeout = hold_timeout
        self.wall_offset = wall_offset
        self.ports = PortAllocator(port_min, port_max)
        self.calls: dict[str, Call] = {}
        self.transcoding = transcoding or Transcoding()
        self.relay = RtpRelay(transcoding=self.transcoding, on_media_started=self._start_pending_recording)
        self.sessions_timed_out = 0
        self.control_errors = 0
        """Control datagrams dropped because no reply could be sent (no cookie)."""
        self._bind_ports = bind_ports
        self._unbind_ports = unbind_ports
        self._replies: dict[tuple[Address, str], bytes] = {}
        self._reply_expiry: deque[tuple[float, tuple[Address, str]]] = deque()
        self._control_out: list[tuple[bytes, Address]] = []
        self._notifications: dict[str, _Notification] = {}
        self._notification_count = 0
        self._playing: set[Leg] = set()
        self._housekeeping_at = now + HOUSEKEEPING_INTERVAL
        self._freed_relayed = 0
        self._handlers: dict[str, Callable[[dict[str, Any], Address, float], dict[str, Any]]] = {
            "ping": self._ping,
            "offer": self._offer,
            "answer": self._answer,
            "delete": self._delete,
            "query": self._query,
            "record_start": self._record_start,
            "record_stop": self._record_stop,
            "play_tone": self._play_tone,
            "play_file": self._play_file,
            "stop_playback": self._stop_playback,
            "statistics": self._statistics,
        }

    # I/O

    def take_control_datagrams(self) -> list[tuple[bytes, Address]]:
        out, self._control_out = self._control_out, []
        return out

    def take_rtp_datagrams(self) -> list[Datagram]:
        out, self.relay.outgoing = self.relay.outgoing, []
        return out

    def receive_control(self, data: bytes, source: Address, now: float) -> None:
        self._expire_replies(now)
        try:
            message = ControlMessage.parse(data)
        except ControlProtocolError as exc:
            if exc.cookie is None:
                self.control_errors += 1
                log.debug("dropped control datagram from %s: %s", source, exc.reason)
            else:
                self._control_out.append((error_reply(exc.cookie, exc.reason).serialize(), source))
            return
        if not message.is_request:
            self._notification_answered(message)
            return
        key = (source, message.cookie)
        cached = self._replies.get(key)
        if cached is not None:
            self._control_out.append((cached, source))
            return
        handler = self._handlers.get(message.command)
        try:
            if handler is None:  # a command only the media server sends, such as timeout
                raise CommandError(f"unknown command {message.command!r}")
            body = {"result": RESULT_OK, **handler(message.body, source, now)}
        except CommandError as exc:
            body = error_reply(message.cookie, exc.reason).body
        except Exception:
            log.exception("control request %s from %s failed", message.command, source)
            body = error_reply(message.cookie, "internal error").body
        data_out = ControlMessage(message.cookie, body).serialize()
        self._replies[key] = data_out
        self._reply_expiry.append((now + REPLY_CACHE_SECONDS, key))
        self._control_out.append((data_out, source))

    def receive_rtp(self, leg: Leg, data: bytes, source: Address, now: float) -> None:
        self.relay.receive_rtp(leg, data, source, now)

    def receive_rtcp(self, leg: Leg, data: bytes, source: Address) -> None:
        self.relay.receive_rtcp(leg, data, source)

    def leg_ready(self, leg: Leg) -> None:
        """The transport has set `leg.sendto`: the other leg may now take the fast path."""
        leg.call.update_fast_paths()

    # timers

    def next_timer(self) -> float:
        deadline = self._housekeeping_at
        for leg in self._playing:
            deadline = min(deadline, leg.playback.next_at if leg.playback is not None else deadline)
        for notification in self._notifications.values():
            deadline = min(deadline, notification.next_at)
        return deadline

    def handle_timer(self, now: float) -> None:
        if self._playing:
            self._play(now)
        for cookie, notification in list(self._notifications.items()):
            if notification.next_at <= now:
                if notification.attempts == NOTIFICATION_ATTEMPTS:
                    del self._notifications[cookie]
                    continue
                notification.attempts += 1
                notification.next_at = now + NOTIFICATION_INTERVAL
                self._control_out.append((notification.message.serialize(), notification.destination))
        if now >= self._housekeeping_at:
            self._housekeeping_at = now + HOUSEKEEPING_INTERVAL
            self._housekeep(now)

    def _housekeep(self, now: float) -> None:
        self._expire_replies(now)
        for call in list(self.calls.values()):
            self._note_activity(call, now)
            if call.recorder is not None:
                call.recorder.flush()
            timeout = self.hold_timeout if call.on_hold else self.rtp_timeout
            if now - call.last_activity >= timeout:
                log.info("call %s: no RTP for %d s, freed", call.call_id, timeout)
                self.sessions_timed_out += 1
                self._free(call)
                self._notify(call, "timeout", now)

    def _note_activity(self, call: Call, now: float) -> None:
        for leg in (call.a, call.b):
            if leg.packets_in != leg.packets_seen:
                leg.packets_seen = leg.packets_in
                leg.last_packet = now
                call.last_activity = now

    def _expire_replies(self, now: float) -> None:
        expiry = self._reply_expiry
        while expiry and expiry[0][0] <= now:
            self._replies.pop(expiry.popleft()[1], None)

    def _notify(self, call: Call, command: str, now: float) -> None:
        self._notification_count += 1
        cookie = f"{self.boot_id[:8]}-{self.worker}-{self._notification_count}"
        notification = _Notification(request(cookie, command, call_id=call.call_id), call.controller, now)
        self._notifications[cookie] = notification
        notification.attempts = 1
        notification.next_at = now + NOTIFICATION_INTERVAL
        self._control_out.append((notification.message.serialize(), call.controller))

    def _notification_answered(self, message: ControlMessage) -> None:
        if message.result in (RESULT_OK, RESULT_ERROR, RESULT_PONG):
            self._notifications.pop(message.cookie, None)

    def _play(self, now: float) -> None:
        for leg in list(self._playing):
            playback = leg.playback
            if playback is None:
                self._playing.discard(leg)
                continue
            codec = leg.send_codec
            destination = leg.destination
            for frame in playback.due_frames(now):
                if codec is None or destination is None:
                    continue
                payload = self.transcoding.encode(leg, codec, frame)
                if payload is not None:
                    leg.generated += 1
                    packet = playback.packet(codec.payload_type, payload, codec.clock_rate)
                    self.relay.outgoing.append((leg.port, packet, destination))
            if playback.finished:
                leg.stop_playback()
                self._playing.discard(leg)
                leg.call.update_fast_paths()

    # calls

    def _open_ports(self, leg: Leg) -> bool:
        """Give the leg a free port pair whose sockets could be bound."""
        for _ in range(self.ports.free):
            port = self.ports.allocate()
            if port is None:
                return False
            leg.port = port
            if self._bind_ports(leg):
                return True
            self.ports.release(port)  # another process holds it: try the others first
        return False

    def _new_call(self, call_id: str, source: Address, now: float) -> Call:
        call = Call(call_id, ports=(0, 0), created=now, controller=source)
        if not self._open_ports(call.a):
            raise CommandError(ERROR_NO_FREE_PORTS)
        if not self._open_ports(call.b):
            self._unbind_ports(call.a)
            self.ports.release(call.a.port)
            raise CommandError(ERROR_NO_FREE_PORTS)
        self.calls[call_id] = call
        return call

    def _free(self, call: Call) -> None:
        """Forget the call: stop its recording and playback, close and release its ports."""
        self.calls.pop(call.call_id, None)
        self._stop_recording(call)
        for leg in (call.a, call.b):
            leg.playback = None
            self._playing.discard(leg)
            leg.fast_pt, leg.sendto = NO_FAST_PATH, None
            self._freed_relayed += leg.relayed
            self._unbind_ports(leg)
            self.ports.release(leg.port)

    def close(self) -> None:
        """Free every call (the worker stops): recordings are finished."""
        for call in list(self.calls.values()):
            self._free(call)

    def _start_pending_recording(self, call: Call, now: float) -> None:
        try:
            self._start_recording(call, now)
        except CommandError:
            pass  # logged: the call goes on unrecorded

    def _start_recording(self, call: Call, now: float) -> None:
        if call.recorder is not None:
            return
        path = call.pending_recording or recording_path(
            self.recording_dir, call.call_id, now + self.wall_offset
        )
        call.pending_recording = None
        try:
            call.recorder = CallRecorder(path, started=now)
        except OSError as exc:
            log.error("call %s: cannot record to %s: %s", call.call_id, path, exc)
            raise CommandError(f"cannot record: {exc.strerror or exc}") from None
        call.last_recording = str(path)
        call.update_fast_paths()

    def _stop_recording(self, call: Call) -> None:
        if call.recorder is not None:
            try:
                call.recorder.close()
            except OSError as exc:
                log.error("call %s: recording %s failed: %s", call.call_id, call.recorder.path, exc)
            call.recorder = None
            call.update_fast_paths()

    # commands

    def _call(self, body: dict[str, Any]) -> Call:
        call = self.calls.get(_call_id(body))
        if call is None:
            raise CommandError(ERROR_UNKNOWN_CALL)
        return call

    def _ping(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        return {
            "result": RESULT_PONG,
            "boot_id": self.boot_id,
            "worker": self.worker,
            "pid": self.process_id,
            "calls": len(self.calls),
            "ports_free": self.ports.free,
        }

    def _offer(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call_id = _call_id(body)
        leg_name = _leg_name(body)
        sdp = _sdp(body)
        # By default every codec the server transcodes may be added: a phone with one codec
        # (G.722 alone, Opus alone) can then take a call from any phone with a codec we decode.
        transcode = _optional(body, "transcode", list, list(self.transcoding.names.values()))
        if not all(isinstance(name, str) for name in transcode):
            raise CommandError("bad field: transcode")
        record = _optional(body, "record", bool, False)
        try:
            index = audio_stream_index(sdp)
        except NegotiationError as exc:
            raise CommandError(exc.reason) from None
        call = self.calls.get(call_id)
        new = call is None
        if call is None:
            call = self._new_call(call_id, source, now)
        leg = call.legs[leg_name]
        peer = leg.peer
        try:
            relayed = rewrite_offer(
                sdp,
                address=self.sdp_address,
                port=peer.port,
                transcode=transcode,
                transcodable=self.transcoding.codecs,
            )
        except NegotiationError as exc:
            if new:
                self._free(call)
            raise CommandError(exc.reason) from None
        info = stream_info(sdp, index)
        leg.unlatch(info, now)
        leg.update_media(info, dict(info.payloads), None)
        if peer.stream is None:  # until it answers, the other phone uses what we offered it
            peer.update_media(None, relayed.media[index].rtpmap(), None)
        call.offer_leg = leg_name
        call.offer_sdp = sdp
        call.sdp_for[peer.name] = relayed
        call.answered_ourselves = False
        call.controller = source
        if record and call.recorder is None and call.pending_recording is None:
            call.pending_recording = recording_path(self.recording_dir, call_id, now + self.wall_offset)
            call.last_recording = str(call.pending_recording)
        call.update_fast_paths()
        return self._with_recording(call, {"sdp": relayed.serialize().decode("utf-8", "surrogateescape")})

    def _answer(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        leg_name = _leg_name(body)
        sdp = _sdp(body)
        if call.offer_leg is None or call.offer_sdp is None:
            raise CommandError("bad field: leg")
        if call.offer_leg == leg_name:
            return self._answer_to_our_offer(call, call.legs[leg_name], sdp, source, now)
        answerer = call.legs[leg_name]
        offerer = answerer.peer
        if call.answered_ourselves:
            return self._answer_after_ours(call, answerer, sdp, source, now)
        try:
            outcome = rewrite_answer(
                sdp,
                call.offer_sdp,
                address=self.sdp_address,
                port=offerer.port,
                transcodable=self.transcoding.codecs,
            )
        except NegotiationError as exc:
            raise CommandError(exc.reason) from None
        index = audio_stream_index(call.offer_sdp)
        info = stream_info(sdp, index)
        answerer.unlatch(info, now)
        answerer.update_media(info, dict(info.payloads), outcome.answerer_payload_type)
        assert offerer.stream is not None
        offerer.update_media(offerer.stream, outcome.sdp.media[index].rtpmap(), outcome.offerer_payload_type)
        call.sdp_for[offerer.name] = outcome.sdp
        call.controller = source
        call.update_fast_paths()
        return self._with_recording(call, {"sdp": outcome.sdp.serialize().decode("utf-8", "surrogateescape")})

    def _answer_to_our_offer(self, call: Call, leg: Leg, sdp: SessionDescription,
                             source: Address, now: float) -> dict[str, Any]:
        """The offering phone answers an SDP we offered it ourselves (the call moved here from a
        media server that died): take its address and codec; the other leg stays as it is."""
        info = _phone_stream(sdp)
        chosen = next(iter(info.audio_payloads), None)
        if chosen is None:
            raise CommandError(ERROR_NO_COMMON_CODEC)
        leg.unlatch(info, now)
        leg.update_media(info, dict(info.payloads), chosen)
        call.controller = source
        call.update_fast_paths()
        return self._with_recording(call, _sdp_reply(call.sdp_for.get(leg.peer.name)))

    def _answer_after_ours(self, call: Call, answerer: Leg, sdp: SessionDescription,
                           source: Address, now: float) -> dict[str, Any]:
        """The answering phone's answer after we answered the offerer ourselves: the offerer
        keeps the codec it was given, relayed unchanged when the answer lists it too, else
        transcoded to from the first codec of the answer that the server transcodes."""
        info = _phone_stream(sdp)
        given = answerer.peer.send_codec
        chosen = None if given is None else pick_codec(
            info.payloads, shared={codec_key(given)}, transcodable=self.transcoding.codecs)
        if chosen is None:
            raise CommandError(ERROR_NO_COMMON_CODEC)
        answerer.unlatch(info, now)
        answerer.update_media(info, dict(info.payloads), chosen)
        call.controller = source
        call.update_fast_paths()
        return self._with_recording(call, _sdp_reply(call.sdp_for.get(answerer.peer.name)))

    def _answer_offerer_ourselves(self, call: Call, leg: Leg) -> dict[str, Any]:
        """Before the other phone answers, the offering phone only hears us once it has an
        answer: give it ours (the reply's `sdp`); the same one again on a later request."""
        if leg.name != call.offer_leg or call.offer_sdp is None or leg.peer.stream is not None:
            return {}
        if not call.answered_ourselves:
            try:
                outcome = answer_ourselves(call.offer_sdp, address=self.sdp_address, port=leg.port,
                                           transcodable=self.transcoding.codecs)
            except NegotiationError as exc:
                raise CommandError(exc.reason) from None
            index = audio_stream_index(outcome.sdp)
            leg.update_media(leg.stream, outcome.sdp.media[index].rtpmap(), outcome.offerer_payload_type)
            call.sdp_for[leg.name] = outcome.sdp
            call.answered_ourselves = True
        return _sdp_reply(call.sdp_for.get(leg.name))

    @staticmethod
    def _with_recording(call: Call, reply: dict[str, Any]) -> dict[str, Any]:
        """An offer's or answer's reply, with the recording's path when the call is recorded."""
        if call.last_recording is not None:
            reply["recording"] = call.last_recording
        return reply

    def _delete(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        self._note_activity(call, now)
        self._free(call)
        return {
            "recording": call.last_recording,
            "legs": {leg.name: _leg_report(leg) for leg in (call.a, call.b)},
        }

    def _query(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        # A Call Manager worker that took the call over asks this first: tell it, not the
        # worker that died, when the call times out.
        call.controller = source
        self._note_activity(call, now)
        return {
            "legs": {leg.name: _leg_report(leg) for leg in (call.a, call.b)},
            "recording": call.last_recording,
            "created": round(call.created + self.wall_offset, 3),
            "last_packet_age": round(now - call.last_activity, 3),
        }

    def _record_start(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        call.controller = source
        self._start_recording(call, now)
        return {"recording": call.last_recording}

    def _record_stop(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        call.controller = source
        if call.pending_recording is not None:  # no packet came: there is no file
            call.pending_recording = None
            call.last_recording = None
        self._stop_recording(call)
        return {"recording": call.last_recording}

    def _play_tone(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        leg = call.legs[_leg_name(body)]
        tone = _required(body, "tone", str)
        if tone not in TONE_NAMES:
            raise CommandError("bad field: tone")
        plan = _optional(body, "plan", str, self.tone_plan)
        if plan not in TONE_PLANS:
            raise CommandError("bad field: plan")
        answer = self._answer_offerer_ourselves(call, leg)
        self._start_playback(call, leg, Playback(tone_frames(tone, plan), description=tone, now=now), source)
        return answer

    def _play_file(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        leg = call.legs[_leg_name(body)]
        path = _required(body, "file", str)
        loop = _optional(body, "loop", bool, False)
        try:
            frames = file_frames(Path(path), loop=loop)
        except PlaybackError as exc:
            raise CommandError(exc.reason) from None
        answer = self._answer_offerer_ourselves(call, leg)
        self._start_playback(call, leg, Playback(frames, description=path, now=now), source)
        return answer

    def _start_playback(self, call: Call, leg: Leg, playback: Playback, source: Address) -> None:
        codec = leg.send_codec
        if codec is None or self.transcoding.names.get(codec_key(codec)) is None:
            payload_type = next(
                (pt for pt, rtpmap in leg.payloads.items() if codec_key(rtpmap) in self.transcoding.names),
                None,
            )
            if payload_type is None:
                raise CommandError(ERROR_NO_COMMON_CODEC)
            leg.send_payload_type = payload_type
        call.controller = source
        leg.start_playback(playback)
        self._playing.add(leg)
        call.update_fast_paths()

    def _stop_playback(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        call = self._call(body)
        leg = call.legs[_leg_name(body)]
        call.controller = source
        leg.stop_playback()
        self._playing.discard(leg)
        call.update_fast_paths()
        return {}

    def _statistics(self, body: dict[str, Any], source: Address, now: float) -> dict[str, Any]:
        return self.statistics()

    def statistics(self) -> dict[str, Any]:
        """The worker's counters and gauges, as the `statistics` command answers them."""
        relayed = self._freed_relayed + sum(call.a.relayed + call.b.relayed for call in self.calls.values())
        return {
            "worker": self.worker,
            "boot_id": self.boot_id,
            "calls": len(self.calls),
            "ports_free": self.ports.free,
            "packets_relayed": relayed,
            "packets_transcoded": self.relay.transcoded,
            "packets_dropped": dict(self.relay.dropped),
            "sessions_timed_out": self.sessions_timed_out,
            "control_errors": self.control_errors,
        }


def _leg_report(leg: Leg) -> dict[str, Any]:
    codec = leg.send_codec
    remote = leg.destination
    return {
        "local_port": leg.port,
        "remote": list(remote[:2]) if remote is not None else None,
        "codec": codec.encoding if codec is not None else None,
        "packets_in": leg.packets_in,
        "packets_out": leg.packets_out,
        "bytes_in": leg.bytes_in,
        "dropped": leg.dropped,
        "rtcp": leg.rtcp_report,
        "dtmf": "".join(leg.dtmf),
    }


def _required(body: dict[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise CommandError(f"missing field: {name}")
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CommandError(f"bad field: {name}")
    return value


def _optional(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    if body.get(name) is None:
        return default
    return _required(body, name, kind)


def _call_id(body: dict[str, Any]) -> str:
    call_id: str = _required(body, "call_id", str)
    if not call_id or len(call_id) > MAX_CALL_ID_LENGTH:
        raise CommandError("bad field: call_id")
    return call_id


def _leg_name(body: dict[str, Any]) -> str:
    leg: str = _required(body, "leg", str)
    if leg not in LEGS:
        raise CommandError("bad field: leg")
    return leg


def _sdp(body: dict[str, Any]) -> SessionDescription:
    text: str = _required(body, "sdp", str)
    try:
        return SessionDescription.parse(text)
    except RemoteProtocolError as exc:
        raise CommandError(f"bad sdp: {exc.reason}") from None


def _phone_stream(sdp: SessionDescription) -> StreamInfo:
    try:
        return stream_info(sdp, audio_stream_index(sdp))
    except NegotiationError as exc:
        raise CommandError(exc.reason) from None


def _sdp_reply(sdp: SessionDescription | None) -> dict[str, Any]:
    return {"sdp": sdp.serialize().decode("utf-8", "surrogateescape")} if sdp is not None else {}

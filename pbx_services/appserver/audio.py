"""One call's audio at an application server: prompts sent as RTP, DTMF and audio received.

Sans-IO. The worker's transport gives every received datagram to `receive` and takes what
to send from `take_datagrams`; a worker-wide 20 ms tick (`tick`) sends the frames of what
plays. Digits come from RFC 4733 telephone-events and, for phones that send DTMF as tones,
from in-band detection on the decoded audio (`GoertzelDetector`, which skips quiet frames
cheaply). A recording, when one runs, gets the caller's decoded audio.

The answer offers the first codec of ours the offer has, cheapest first, and
telephone-event when offered. G.711 prompts are encoded once per prompt and shared by
every call playing it (`EncodedPrompts`); other codecs encode per call.
"""

from __future__ import annotations

import logging
import secrets
import struct
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..rtp.codecs import Codec, Resampler, available_codecs, get_codec
from ..rtp.dtmf import DtmfReceiver, GoertzelDetector
from ..rtp.errors import RtpParseError
from ..rtp.g711 import alaw_encode, ulaw_encode
from ..rtp.packet import RtpPacket
from ..rtp.wav import WavWriter
from ..sip.errors import RemoteProtocolError
from ..sip.sdp import STATIC_PAYLOAD_TYPES, Connection, MediaDescription, Origin, SessionDescription

log = logging.getLogger(__name__)

Address = tuple[Any, ...]
FRAME_SECONDS = 0.02
SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
MAX_LATE_FRAMES = 5
"""Frames sent at once to catch up after a late tick; after a longer stall the prompt goes on from now."""
PREFERENCE = ("PCMU", "PCMA", "G722")
"""Codecs we answer with, cheapest first (the media server in between transcodes for the phone)."""
TELEPHONE_EVENT = "telephone-event"
NO_FAST_PATH = -1
PAYLOADS_KEPT = 4
"""Received frames a mixing application may fall behind by (a small jitter buffer); older ones go."""
_HEADER = struct.Struct("!BBHII")


_ANSWER_DIRECTION = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
                     "inactive": "inactive"}


class NegotiationFailed(RemoteProtocolError):
    """The offer has no audio stream we can take: 488 Not Acceptable Here."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, status_code=488)


@dataclass(frozen=True, slots=True)
class Negotiated:
    codec: str
    payload_type: int
    clock_rate: int
    event_payload_type: int | None
    remote: Address
    sending: bool
    """The other side wants our audio (not on hold: sendrecv or recvonly)."""
    answer_direction: str = "sendrecv"
    """Ours in the answer (RFC 3264 6.1): sendonly is answered recvonly, recvonly sendonly,
    inactive inactive."""


def negotiate(offer: bytes) -> tuple[Negotiated, MediaDescription]:
    """What we take of an SDP offer, and its audio section; NegotiationFailed if nothing."""
    sdp = SessionDescription.parse(offer)
    ours = [name for name in PREFERENCE if name in available_codecs()]
    for index, media in enumerate(sdp.media):
        if media.media != "audio" or media.port == 0 or not media.proto.startswith("RTP/AVP"):
            continue
        rtpmap = media.rtpmap()
        by_name = {m.encoding.upper(): pt for pt, m in reversed(rtpmap.items())}
        codec = next((name for name in ours if name in by_name), None)
        if codec is None:
            continue
        payload_type = by_name[codec]
        event = next((pt for pt, m in rtpmap.items()
                      if m.encoding.lower() == TELEPHONE_EVENT and m.clock_rate == 8000), None)
        connection = sdp.media_connection(index)
        direction = sdp.media_direction(index).value
        return Negotiated(codec=codec, payload_type=payload_type, clock_rate=rtpmap[payload_type].clock_rate,
                          event_payload_type=event, remote=(connection.address, media.port),
                          sending=direction in ("sendrecv", "recvonly"),
                          answer_direction=_ANSWER_DIRECTION[direction]), media
    raise NegotiationFailed("no audio stream with a codec we take (" + ", ".join(ours) + ")")


def answer_sdp(negotiated: Negotiated, offered: MediaDescription, *, address: str, port: int,
               origin: Origin) -> bytes:
    formats = [str(negotiated.payload_type)]
    attributes: list[tuple[str, str | None]] = []
    rtpmap = offered.rtpmap()
    chosen = rtpmap[negotiated.payload_type]
    attributes.append(("rtpmap", f"{chosen.payload_type} {chosen.encoding}/{chosen.clock_rate}"
                       + (f"/{chosen.channels}" if chosen.channels else "")))
    fmtp = offered.fmtp()
    if negotiated.payload_type in fmtp:
        attributes.append(("fmtp", f"{negotiated.payload_type} {fmtp[negotiated.payload_type]}"))
    if negotiated.event_payload_type is not None:
        formats.append(str(negotiated.event_payload_type))
        attributes.append(("rtpmap", f"{negotiated.event_payload_type} telephone-event/8000"))
        attributes.append(("fmtp", f"{negotiated.event_payload_type} 0-16"))
    attributes.append(("ptime", "20"))
    attributes.append((negotiated.answer_direction, None))
    answer = SessionDescription(
        origin=origin, session_name="pbx", connection=Connection.for_address(address),
        media=[MediaDescription(media="audio", port=port, proto=offered.proto, formats=formats,
                                attributes=attributes)])
    return answer.serialize()


OFFER_EVENT_PAYLOAD_TYPE = 101


def offer_sdp(*, address: str, port: int, origin: Origin) -> bytes:
    """Our offer for a call we make: our codecs cheapest first (static payload types) and
    telephone-event."""
    codecs = [pt for pt, rtpmap in STATIC_PAYLOAD_TYPES.items()
              if rtpmap.encoding in PREFERENCE and rtpmap.encoding in available_codecs()]
    codecs.sort(key=lambda pt: PREFERENCE.index(STATIC_PAYLOAD_TYPES[pt].encoding))
    attributes: list[tuple[str, str | None]] = [
        ("rtpmap", f"{pt} {STATIC_PAYLOAD_TYPES[pt].encoding}/{STATIC_PAYLOAD_TYPES[pt].clock_rate}")
        for pt in codecs]
    attributes += [("rtpmap", f"{OFFER_EVENT_PAYLOAD_TYPE} telephone-event/8000"),
                   ("fmtp", f"{OFFER_EVENT_PAYLOAD_TYPE} 0-16"), ("ptime", "20"), ("sendrecv", None)]
    offer = SessionDescription(
        origin=origin, session_name="pbx", connection=Connection.for_address(address),
        media=[MediaDescription(media="audio", port=port, proto="RTP/AVP",
                                formats=[*map(str, codecs), str(OFFER_EVENT_PAYLOAD_TYPE)],
                                attributes=attributes)])
    return offer.serialize()


class EncodedPrompts:
    """G.711 encodings of the prompts, shared by the calls that play them, for as long as the
    prompt's array lives (the catalogue's cache or a call playing it holds it)."""

    def __init__(self) -> None:
        self._encoded: dict[tuple[int, str], tuple[weakref.ref[npt.NDArray[np.int16]], bytes]] = {}

    def get(self, samples: npt.NDArray[np.int16], codec: str) -> bytes | None:
        if codec not in ("PCMU", "PCMA"):
            return None
        key = (id(samples), codec)
        found = self._encoded.get(key)
        if found is not None and found[0]() is samples:
            return found[1]
        encoded = ulaw_encode(samples) if codec == "PCMU" else alaw_encode(samples)
        self._encoded[key] = (weakref.ref(samples, lambda dead: self._forget(key, dead)), encoded)
        return encoded

    def _forget(self, key: tuple[int, str], dead: weakref.ref[npt.NDArray[np.int16]]) -> None:
        # The id of a dead array may be another's already: only its own entry goes.
        found = self._encoded.get(key)
        if found is not None and found[0] is dead:
            del self._encoded[key]

    def __len__(self) -> int:
        return len(self._encoded)


@dataclass(eq=False)
class _Playing:
    samples: npt.NDArray[np.int16]
    encoded: bytes | None
    position: int = 0


class CallAudio:
    """The RTP endpoint of one call: what the transport reads (as `RtpPorts` wants a leg) and the
    audio logic."""

    def __init__(self, *, port: int, prompts: EncodedPrompts, now: float) -> None:
        # What RtpPorts reads and writes (transport/rtp.py `RelayedLeg`): no fast path here.
        self.port = port
        self.source: Address | None = None
        self.fast_pt = NO_FAST_PATH
        self.fast_to: Address = ("", 0)
        self.fast_rewrite: Callable[[bytes], bytes] | None = None
        self.packets_in = 0
        self.bytes_in = 0
        self.relayed = 0
        self.sendto: Callable[[bytes, Address], None] | None = None
        self.fast_sendto: Callable[[bytes, Address], None] = _send_nowhere

        self.negotiated: Negotiated | None = None
        self._prompts = prompts
        self._encoder: Codec | None = None
        self._decoder: Codec | None = None
        self._upsampler: Resampler | None = None
        self._downsampler: Resampler | None = None
        self._timestamp_step = FRAME_SAMPLES
        self._queue: list[_Playing] = []
        self._frames_sent = 0
        self._started_at = now
        self._ssrc = secrets.randbits(32)
        self._sequence = secrets.randbits(16)
        self._timestamp = secrets.randbits(32)
        self._marker = True
        self._events = DtmfReceiver()
        self._inband = GoertzelDetector()
        self._digits: list[str] = []
        self._datagrams: list[tuple[int, bytes, Address]] = []
        self._recorder: WavWriter | None = None
        self.last_received = now
        self.finished_playing = False
        """Set when the last queued prompt played to its end; the core clears it after telling the app."""
        self.payloads: deque[bytes] | None = None
        """With `keep_payloads()`: the received audio frames, still encoded, for a mixer to take each
        tick (no decoding, in-band DTMF detection or recording of them here)."""

    # -- negotiation --------------------------------------------------------------------

    def use(self, negotiated: Negotiated) -> None:
        """Take the (re)negotiated stream: where to send, in which codec."""
        if self.negotiated is None or self.negotiated.codec != negotiated.codec:
            encoder = self._encoder = get_codec(negotiated.codec)
            self._decoder = get_codec(negotiated.codec)
            rate = encoder.sample_rate
            self._upsampler = Resampler(SAMPLE_RATE, rate) if rate != SAMPLE_RATE else None
            self._downsampler = Resampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
            self._timestamp_step = encoder.timestamp_per_frame
            self._queue = [_Playing(p.samples, self._prompts.get(p.samples, negotiated.codec), p.position)
                           for p in self._queue]  # what plays goes on in the new codec
        self.negotiated = negotiated

    # -- playing --------------------------------------------------------------------------

    @property
    def playing(self) -> bool:
        return bool(self._queue)

    def play(self, prompts: list[npt.NDArray[np.int16]], now: float) -> None:
        """Play these in order, instead of what plays now."""
        codec = self.negotiated.codec if self.negotiated is not None else ""
        self._queue = [_Playing(samples, self._prompts.get(samples, codec)) for samples in prompts
                       if len(samples)]
        self._started_at = now
        self._frames_sent = 0
        self._marker = True
        self.finished_playing = not self._queue

    def stop(self) -> None:
        self._queue = []
        self.finished_playing = False

    def send_payload(self, payload: bytes) -> None:
        """Send one 20 ms frame, already encoded in the negotiated codec (a conference's mix), now;
        nothing while a prompt plays, whose frames go instead."""
        negotiated = self.negotiated
        if negotiated is None or self._queue:
            return
        if negotiated.sending:
            self._send_rtp(negotiated, payload)
        self._timestamp = (self._timestamp + self._timestamp_step) & 0xFFFFFFFF

    def keep_payloads(self) -> None:
        """Keep received audio frames encoded in `payloads`, for a mixer."""
        if self.payloads is None:
            self.payloads = deque(maxlen=PAYLOADS_KEPT)

    def tick(self, now: float) -> None:
        """Send the frames due by `now` of what plays."""
        if not self._queue:
            return
        # + 1e-4 frame: a frame due at this very instant is not put off by the float rounding of `now`.
        due = int((now - self._started_at) / FRAME_SECONDS + 1e-4) + 1 - self._frames_sent
        if due > MAX_LATE_FRAMES:  # a long stall: go on from now rather than burst
            self._started_at = now
            self._frames_sent = 0
            due = 1
        for _ in range(due):
            if not self._send_frame():
                break

    def _send_frame(self) -> bool:
        """One 20 ms frame of the prompt at the head of the queue; False when nothing is left."""
        playing = self._queue[0]
        start = playing.position
        end = start + FRAME_SAMPLES
        negotiated = self.negotiated
        if negotiated is not None and negotiated.sending:
            if playing.encoded is not None:
                payload = playing.encoded[start:end]
                if len(payload) < FRAME_SAMPLES:
                    payload += payload[-1:] * (FRAME_SAMPLES - len(payload)) if payload else b""
            else:
                frame = playing.samples[start:end]
                if len(frame) < FRAME_SAMPLES:
                    frame = np.pad(frame, (0, FRAME_SAMPLES - len(frame)))
                assert self._encoder is not None
                if self._upsampler is not None:
                    frame = self._upsampler.process(frame)
                payload = self._encoder.encode(frame)
            self._send_rtp(negotiated, payload)
        self._frames_sent += 1
        self._timestamp = (self._timestamp + self._timestamp_step) & 0xFFFFFFFF
        playing.position = end
        if end >= len(playing.samples):
            self._queue.pop(0)
            if not self._queue:
                self.finished_playing = True
                return False
        return True

    def _send_rtp(self, negotiated: Negotiated, payload: bytes) -> None:
        header = _HEADER.pack(0x80, negotiated.payload_type | (0x80 if self._marker else 0), self._sequence,
                              self._timestamp, self._ssrc)
        self._marker = False
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._datagrams.append((self.port, header + payload, self.source or negotiated.remote))

    def take_datagrams(self) -> list[tuple[int, bytes, Address]]:
        datagrams, self._datagrams = self._datagrams, []
        return datagrams

    # -- receiving --------------------------------------------------------------------------

    def receive(self, data: bytes, source: Address, now: float) -> None:
        """One datagram on our RTP port: the digits it carries are kept for `take_digits`."""
        negotiated = self.negotiated
        if negotiated is None:
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            return
        self.packets_in += 1
        self.bytes_in += len(data)
        self.last_received = now
        self.source = source  # symmetric RTP: answer where the packets come from
        if packet.payload_type == negotiated.event_payload_type:
            try:
                digit = self._events.feed(packet.timestamp, packet.payload, packet.marker)
            except RtpParseError:
                return
            if digit is not None:
                self._digits.append(digit)
            return
        if packet.payload_type != negotiated.payload_type or self._decoder is None:
            return
        if self.payloads is not None:
            self.payloads.append(packet.payload)
            return
        samples = self._decoder.decode(packet.payload)
        if self._downsampler is not None:
            samples = self._downsampler.process(samples)
        self._digits.extend(self._inband.feed(samples))
        if self._recorder is not None:
            self._recorder.write(samples)

    def take_digits(self) -> list[str]:
        digits, self._digits = self._digits, []
        return digits

    # -- recording --------------------------------------------------------------------------

    def record(self, path: Path) -> None:
        """Write what the caller says to a mono 8 kHz WAV at `path` until `stop_recording`."""
        self.stop_recording()
        self._recorder = WavWriter(path, SAMPLE_RATE)

    def stop_recording(self) -> None:
        if self._recorder is not None:
            self._recorder.close()
            self._recorder = None

    def close(self) -> None:
        self.stop_recording()
        self._queue = []


def _send_nowhere(data: bytes, destination: Address) -> None:
    """The fast path's sender: never called, as no packet takes the fast path here."""

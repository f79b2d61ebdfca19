"""Calls and their legs: the state the relay reads for every packet.

A `Leg` is one phone's side of a call: its RTP port on the media server, where its phone
receives (from its SDP, then latched), what it negotiated, and its counters. The transport
reads a few attributes of the leg for every packet (`source`, `fast_pt`, `fast_sendto`,
`fast_to`) and bumps the plain-int counters itself; everything else runs in the relay.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pbx_services.rtp.dtmf import DtmfReceiver

from .negotiation import CodecKey, StreamInfo, codec_key, is_audio_codec, is_telephone_event

if TYPE_CHECKING:
    from pbx_services.sip.sdp import RtpMap, SessionDescription

    from .playback import Playback
    from .recording import CallRecorder

Address = tuple[Any, ...]
"""A UDP address as the socket gives it: (host, port) or, for IPv6, (host, port, flow, scope)."""
SendTo = Callable[[bytes, Address], None]
FRAME_TIMESTAMP_STEP = 160
_SEQUENCE_TIMESTAMP_SSRC = struct.Struct("!HII")
LEG_NAMES = ("a", "b")
NO_FAST_PATH = -1
STALE_SOURCE_SECONDS = 2.0
"""How long the source a leg had before its SDP moved may not latch it again."""
"""`Leg.fast_pt` when every packet of the leg goes through the relay."""
NO_ADDRESS: Address = ("", 0)


def _send_nowhere(data: bytes, destination: Address) -> None:
    """`Leg.fast_sendto` while the fast path is off (it is never called then)."""


class OutgoingStream:
    """The one RTP stream a phone gets on a leg once we sent it packets of our own (a tone).

    What we relay to it afterwards keeps the tone's SSRC and goes on from its sequence
    numbers and timestamps: a phone whose jitter buffer ignores an SSRC change (libre's, in
    baresip 1.0) would take the relayed packets for late ones of the tone and drop them all
    whenever their random sequence numbers happen to lie behind the tone's.
    """

    __slots__ = ("ssrc", "next_sequence", "next_timestamp", "source_ssrc", "sequence_delta",
                 "timestamp_delta")

    def __init__(self, ssrc: int, next_sequence: int, next_timestamp: int) -> None:
        self.ssrc = ssrc
        self.next_sequence = next_sequence
        self.next_timestamp = next_timestamp
        self.source_ssrc: int | None = None
        self.sequence_delta = 0
        self.timestamp_delta = 0

    def rewrite(self, data: bytes) -> bytes:
        """`data` (an RTP packet, header checked) as the next packet of this stream."""
        sequence, timestamp, ssrc = _SEQUENCE_TIMESTAMP_SSRC.unpack_from(data, 2)
        if ssrc != self.source_ssrc:  # a new stream to relay: it goes on where we are
            self.source_ssrc = ssrc
            self.sequence_delta = (self.next_sequence - sequence) & 0xFFFF
            self.timestamp_delta = (self.next_timestamp - timestamp) & 0xFFFFFFFF
        out_sequence = (sequence + self.sequence_delta) & 0xFFFF
        out_timestamp = (timestamp + self.timestamp_delta) & 0xFFFFFFFF
        if ((out_sequence - self.next_sequence) & 0xFFFF) < 0x8000:  # not a reordered older one
            self.next_sequence = (out_sequence + 1) & 0xFFFF
            # Where a next stream would start: one 20 ms frame on (at 8 kHz; only a base).
            self.next_timestamp = (out_timestamp + FRAME_TIMESTAMP_STEP) & 0xFFFFFFFF
        out = bytearray(data)
        _SEQUENCE_TIMESTAMP_SSRC.pack_into(out, 2, out_sequence, out_timestamp, self.ssrc)
        return bytes(out)


class Leg:
    """One phone's side of a call."""

    __slots__ = (
        "name",
        "call",
        "peer",
        "port",
        # read and written by the transport for every packet
        "source",
        "fast_pt",
        "fast_sendto",
        "fast_to",
        "fast_rewrite",
        "packets_in",
        "bytes_in",
        "relayed",
        # set by the transport: sends from this leg's RTP socket; None until it is open
        "sendto",
        "stream",
        "send_payload_type",
        "payloads",
        "rtcp_source",
        "stale_source",
        "stale_rtcp_source",
        "stale_until",
        "generated",
        "dropped",
        "rtcp_report",
        "dtmf",
        "dtmf_receiver",
        "playback",
        "outgoing",
        "last_packet",
        "packets_seen",
        "decoders",
        "encoders",
    )

    def __init__(self, name: str, call: Call, port: int) -> None:
        self.name = name
        self.call = call
        self.peer: Leg = self
        self.port = port
        """RTP port on the media server; RTCP is port + 1."""
        self.source: Address | None = None
        """The latched RTP source: the address the first good packet came from."""
        self.fast_pt = NO_FAST_PATH
        """Packets of this payload type from `source` go unchanged to `fast_to` through `fast_sendto`."""
        self.fast_sendto: SendTo = _send_nowhere
        self.fast_to: Address = NO_ADDRESS
        self.fast_rewrite: Callable[[bytes], bytes] | None = None
        """Applied to fast-path packets on their way to the other phone (its `outgoing` stream)."""
        self.packets_in = 0
        self.bytes_in = 0
        self.relayed = 0
        """Packets from this phone sent on to the other one."""
        self.sendto: SendTo | None = None
        self.stream: StreamInfo | None = None
        """The phone's relayed stream, from its last SDP."""
        self.send_payload_type: int | None = None
        """The audio payload type (in the phone's numbering) that we send to the phone."""
        self.payloads: dict[int, RtpMap] = {}
        """Payload types the phone may send us and receive from us."""
        self.rtcp_source: Address | None = None
        self.stale_source: Address | None = None
        """The source latched before the leg's SDP moved it elsewhere: it latches the leg
        again only after `stale_until` (see `unlatch`)."""
        self.stale_rtcp_source: Address | None = None
        self.stale_until = 0.0
        self.generated = 0
        """Packets of tones and files sent to this phone."""
        self.dropped = 0
        self.rtcp_report: dict[str, float] | None = None
        self.dtmf: list[str] = []
        """Digits the phone sent as RFC 4733 events."""
        self.dtmf_receiver = DtmfReceiver()
        self.playback: Playback | None = None
        self.outgoing: OutgoingStream | None = None
        """Set once we played the phone something: relayed packets continue that stream."""
        self.last_packet = 0.0
        self.packets_seen = 0
        """`packets_in` when the clock last looked: the transport does not read the time."""
        self.decoders: dict[CodecKey, Any] = {}
        """Codec state for what the phone sends us (see transcoding.py)."""
        self.encoders: dict[CodecKey, Any] = {}

    @property
    def rtcp_port(self) -> int:
        return self.port + 1

    @property
    def destination(self) -> Address | None:
        """Where RTP for the phone goes: the latched source, else its SDP's address."""
        if self.source is not None:
            return self.source
        return self.stream.rtp_address if self.stream is not None else None

    @property
    def rtcp_destination(self) -> Address | None:
        if self.rtcp_source is not None:
            return self.rtcp_source
        return self.stream.rtcp_address if self.stream is not None else None

    @property
    def send_codec(self) -> RtpMap | None:
        if self.send_payload_type is None:
            return None
        return self.payloads.get(self.send_payload_type)

    @property
    def packets_out(self) -> int:
        return self.peer.relayed + self.generated

    def payload_type_for(self, key: CodecKey) -> int | None:
        """The phone's payload type for a codec, None when it did not negotiate it."""
        for payload_type, rtpmap in self.payloads.items():
            if codec_key(rtpmap) == key:
                return payload_type
        return None

    def event_payload_type(self, clock_rate: int) -> int | None:
        for payload_type, rtpmap in self.payloads.items():
            if is_telephone_event(rtpmap) and rtpmap.clock_rate == clock_rate:
                return payload_type
        return None

    def start_playback(self, playback: Playback) -> None:
        if self.outgoing is not None:
            playback.continue_stream(self.outgoing.ssrc, self.outgoing.next_sequence,
                                     self.outgoing.next_timestamp)
        self.playback = playback

    def stop_playback(self) -> None:
        playback = self.playback
        if playback is None:
            return
        self.playback = None
        if playback.sent:
            self.outgoing = OutgoingStream(playback.ssrc, playback.sequence_number, playback.timestamp)

    def unlatch(self, stream: StreamInfo | None, now: float) -> None:
        """Forget the latched sources: a new SDP (`stream`) may mean the phone moved.

        When the SDP's address changed, another phone may have taken this leg's place (a
        transfer's target): the old phone's packets, still in flight until it gets its BYE,
        would latch the leg and the new phone's be dropped for the rest of the call. So the
        old source latches it again only after STALE_SOURCE_SECONDS (a phone that only
        changed its SDP behind the same NAT binding, which is rare, is silent that long)."""
        old = self.stream.rtp_address if self.stream is not None else None
        new = stream.rtp_address if stream is not None else None
        if self.source is not None and old is not None and new is not None and old != new != self.source:
            self.stale_source, self.stale_rtcp_source = self.source, self.rtcp_source
            self.stale_until = now + STALE_SOURCE_SECONDS
        self.source = None
        self.rtcp_source = None

    def latch(self, source: Address) -> None:
        self.source = source
        self.stale_source = self.stale_rtcp_source = None

    def update_media(
        self, stream: StreamInfo | None, payloads: dict[int, RtpMap], send_payload_type: int | None
    ) -> None:
        self.stream = stream
        self.payloads = payloads
        if send_payload_type is None:
            send_payload_type = next((pt for pt, rtpmap in payloads.items() if is_audio_codec(rtpmap)), None)
        self.send_payload_type = send_payload_type


class Call:
    """Two legs, "a" (the caller's phone) and "b" (the callee's), and what the controller asked."""

    def __init__(self, call_id: str, *, ports: tuple[int, int], created: float, controller: Address) -> None:
        self.call_id = call_id
        self.created = created
        self.controller = controller
        """Where the last control request for the call came from: timeouts are reported there."""
        self.legs = {name: Leg(name, self, port) for name, port in zip(LEG_NAMES, ports, strict=True)}
        self.a, self.b = self.legs["a"], self.legs["b"]
        self.a.peer, self.b.peer = self.b, self.a
        self.offer_leg: str | None = None
        """The leg whose offer is the latest one; the other leg answers it."""
        self.offer_sdp: SessionDescription | None = None
        self.sdp_for: dict[str, SessionDescription] = {}
        """The last SDP made for each leg's phone."""
        self.answered_ourselves = False
        """The offerer got our own answer (ringback before the other phone answered): its codec stays."""
        self.pending_recording: Path | None = None
        """Where the recording an `offer` asked for goes; it starts with the first packet."""
        self.recorder: CallRecorder | None = None
        self.last_recording: str | None = None
        """The path of the call's recording: being written, finished, or pending."""
        self.last_activity = created

    @property
    def on_hold(self) -> bool:
        return any(leg.stream is not None and leg.stream.on_hold for leg in self.legs.values())

    def update_fast_paths(self) -> None:
        """Let the transport relay a leg's packets itself when nothing needs to look at them.

        That is when both phones use the same codec under the same payload type, the source is
        latched, no recording runs, no tone or file plays to the other phone, and the other
        phone's socket and address are known.
        """
        for leg in (self.a, self.b):
            peer = leg.peer
            payload_type = leg.send_payload_type
            codec = leg.payloads.get(payload_type) if payload_type is not None else None
            same = (
                codec is not None
                and payload_type is not None
                and peer.payloads.get(payload_type) is not None
                and codec_key(peer.payloads[payload_type]) == codec_key(codec)
            )
            destination = peer.destination
            if (
                same
                and leg.source is not None
                and self.recorder is None
                and peer.playback is None
                and peer.sendto is not None
                and destination is not None
            ):
                assert payload_type is not None
                leg.fast_pt, leg.fast_sendto, leg.fast_to = payload_type, peer.sendto, destination
            else:
                leg.fast_pt, leg.fast_sendto, leg.fast_to = NO_FAST_PATH, _send_nowhere, NO_ADDRESS
            leg.fast_rewrite = peer.outgoing.rewrite if peer.outgoing is not None else None

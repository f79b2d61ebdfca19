"""What happens to an RTP or RTCP packet that the transport's fast path did not relay itself.

That is the first packet of a leg (which latches its source), packets from another source
(dropped), malformed ones (dropped), telephone-events (decoded for `query`, then relayed
with the other leg's payload type), packets whose payload type differs between the legs
(renumbered), packets to transcode, packets while recording, and the first packet relayed
to a leg that hears a tone (which stops the tone). Sans-IO: packets in, datagrams out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from pbx_services.rtp.errors import RtpParseError
from pbx_services.rtp.packet import RtpPacket
from pbx_services.rtp.rtcp import RtcpReceiverReport, RtcpSenderReport, parse_compound

from .negotiation import COMFORT_NOISE, codec_key, is_telephone_event
from .session import Address, Call, Leg
from .transcoding import Transcoding

Datagram = tuple[int, bytes, Address]
"""(local port to send from, data, destination)."""

DROP_MALFORMED_RTP = "malformed_rtp"
DROP_MALFORMED_RTCP = "malformed_rtcp"
DROP_WRONG_SOURCE = "wrong_source"
DROP_UNKNOWN_PAYLOAD_TYPE = "unknown_payload_type"
DROP_NOT_NEGOTIATED = "not_negotiated"
"""A telephone-event or comfort noise packet that the other leg did not negotiate."""
DROP_NO_CODEC = "no_codec"
"""Audio the other leg cannot take and the server cannot transcode."""
DROP_NO_DESTINATION = "no_destination"
"""The other phone's address is not known yet (no SDP, no packet) or it is on hold."""
DROP_REASONS = (
    DROP_MALFORMED_RTP,
    DROP_MALFORMED_RTCP,
    DROP_WRONG_SOURCE,
    DROP_UNKNOWN_PAYLOAD_TYPE,
    DROP_NOT_NEGOTIATED,
    DROP_NO_CODEC,
    DROP_NO_DESTINATION,
)
RTP_HEADER_SIZE = 12
RTP_VERSION_BITS = 0x80


class RtpRelay:
    """Relays the packets of every call of a worker; `outgoing` collects what to send."""

    def __init__(self, *, transcoding: Transcoding, on_media_started: Callable[[Call, float], None]) -> None:
        self.transcoding = transcoding
        self._on_media_started = on_media_started
        self.outgoing: list[Datagram] = []
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        self.transcoded = 0

    def _drop(self, leg: Leg, reason: str) -> None:
        self.dropped[reason] += 1
        leg.dropped += 1

    def receive_rtp(self, leg: Leg, data: bytes, source: Address, now: float) -> None:
        if len(data) < RTP_HEADER_SIZE or data[0] & 0xC0 != RTP_VERSION_BITS:
            self._drop(leg, DROP_MALFORMED_RTP)
            return
        if leg.source is not None and source != leg.source or (
                source == leg.stale_source and now < leg.stale_until):
            self._drop(leg, DROP_WRONG_SOURCE)
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpParseError:
            self._drop(leg, DROP_MALFORMED_RTP)
            return
        call = leg.call
        paths_changed = False
        if leg.source is None:
            leg.latch(source)
            paths_changed = True
        leg.packets_in += 1
        leg.bytes_in += len(data)
        if call.pending_recording is not None:
            self._on_media_started(call, now)
            paths_changed = True
        peer = leg.peer
        if peer.playback is not None and leg.source == source:
            # The other phone's media replaces the tone (the answer), in the tone's stream.
            peer.stop_playback()
            paths_changed = True
        self._relay(leg, packet, data, now)
        if paths_changed:
            call.update_fast_paths()

    def _relay(self, leg: Leg, packet: RtpPacket, data: bytes, now: float) -> bool:
        """Send `packet` on to the other phone, as it needs it; whether it was sent."""
        peer = leg.peer
        transcoded = False
        rtpmap = leg.payloads.get(packet.payload_type)
        if rtpmap is None and leg.stream is not None:  # offered, though not in the answer: take it
            rtpmap = leg.stream.payloads.get(packet.payload_type)
        if rtpmap is None:
            self._drop(leg, DROP_UNKNOWN_PAYLOAD_TYPE)
            return False
        if is_telephone_event(rtpmap):
            self._note_dtmf(leg, packet)
            payload_type = peer.event_payload_type(rtpmap.clock_rate)
        elif rtpmap.encoding.upper() == COMFORT_NOISE:
            payload_type = peer.payload_type_for(codec_key(rtpmap))
        else:
            recorder = leg.call.recorder
            samples = None
            if recorder is not None:
                samples = self.transcoding.decode(leg, rtpmap, packet.payload)
                if samples is not None:
                    recorder.add(
                        0 if leg.name == "a" else 1,
                        samples,
                        ssrc=packet.ssrc,
                        timestamp=packet.timestamp,
                        clock_rate=rtpmap.clock_rate,
                        now=now,
                    )
            payload_type = peer.payload_type_for(codec_key(rtpmap))
            if payload_type is None:
                target = peer.send_codec
                if target is None:
                    self._drop(leg, DROP_NO_CODEC)
                    return False
                payload = self.transcoding.convert(leg, rtpmap, peer, target, packet.payload, samples)
                if payload is None:
                    self._drop(leg, DROP_NO_CODEC)
                    return False
                packet.timestamp = self.transcoding.rescale_timestamp(leg, rtpmap, target, packet.timestamp)
                packet.payload = payload
                packet.padding_size = 0
                payload_type = target.payload_type
                transcoded = True
                self.transcoded += 1
        if payload_type is None:
            self._drop(leg, DROP_NOT_NEGOTIATED)
            return False
        destination = peer.destination
        if destination is None:
            self._drop(leg, DROP_NO_DESTINATION)
            return False
        if transcoded or payload_type != packet.payload_type:
            packet.payload_type = payload_type
            data = packet.serialize()
        if peer.outgoing is not None:
            data = peer.outgoing.rewrite(data)
        leg.relayed += 1
        self.outgoing.append((peer.port, data, destination))
        return True

    def _note_dtmf(self, leg: Leg, packet: RtpPacket) -> None:
        try:
            digit = leg.dtmf_receiver.feed(packet.timestamp, packet.payload, packet.marker)
        except RtpParseError:
            return
        if digit is not None:
            leg.dtmf.append(digit)

    def receive_rtcp(self, leg: Leg, data: bytes, source: Address) -> None:
        if leg.rtcp_source is not None and source != leg.rtcp_source or source == leg.stale_rtcp_source:
            self._drop(leg, DROP_WRONG_SOURCE)
            return
        try:
            packets = parse_compound(data)
        except RtpParseError:
            self._drop(leg, DROP_MALFORMED_RTCP)
            return
        leg.rtcp_source = source
        for packet in packets:
            if isinstance(packet, RtcpSenderReport | RtcpReceiverReport) and packet.reports:
                block = packet.reports[0]
                leg.rtcp_report = {
                    "lost": block.packets_lost,
                    "fraction_lost": block.fraction_lost / 256,
                    "jitter": block.jitter,
                }
                break
        destination = leg.peer.rtcp_destination
        if destination is None:
            self._drop(leg, DROP_NO_DESTINATION)
            return
        self.outgoing.append((leg.peer.rtcp_port, data, destination))

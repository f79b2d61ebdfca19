"""SDP rewriting for a media relay: a phone's offer or answer becomes the SDP for the other leg.

Offer from leg X, for leg Y: X's description with c= set to the media server's address and
the audio port set to Y's port on the media server; candidates, ICE, crypto and a=rtcp are
dropped (they would point past the relay, or at keys we cannot use); direction attributes
and o= stay. Y is offered only codecs the server can bridge: when X offers a codec the
server transcodes, X's transcodable codecs (in X's order: Y, answering the first it has, then
uses X's codec unchanged) and the transcodable codecs of the request that X lacks; the codecs
X offers that the server cannot decode are left out, since the server may have to answer X
itself (ringback) before Y chooses, and could then neither pass them through nor transcode
them. When X offers no codec the server transcodes, its codecs stay as they are: relayed
unchanged, they work when Y shares one.

Answer from Y, for X: of the codecs Y answered, the first that X offered, renumbered with X's
payload type (passthrough); otherwise the first Y answered that the server transcodes,
and X gets the first of its own that the server transcodes. Telephone-events are kept when
both sides have them at the same clock rate.

Only the first audio stream is relayed: every other media section gets port 0 (rejected).
Sans-IO: descriptions in, descriptions out.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from pbx_services.sip.sdp import (
    ATTR_FMTP,
    ATTR_RTPMAP,
    HOLD_ADDRESS_IP4,
    STATIC_PAYLOAD_TYPES,
    Connection,
    Direction,
    MediaDescription,
    RtpMap,
    SessionDescription,
)

AUDIO = "audio"
TELEPHONE_EVENT = "telephone-event"
COMFORT_NOISE = "CN"
RTP_PROTOCOLS = frozenset({"RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF"})
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
ATTR_RTCP_FB = "rtcp-fb"

# Attributes that describe transport addresses or keys of the phone itself: passed on, they
# would lead the other phone past the relay (ICE, a=rtcp, a=rtcp-mux) or to keys it cannot use.
DROPPED_ATTRIBUTES = frozenset(
    {
        "candidate",
        "remote-candidates",
        "end-of-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "rtcp",
        "rtcp-mux",
        "crypto",
        "fingerprint",
        "setup",
    }
)
HOLD_DIRECTIONS = frozenset({Direction.SENDONLY, Direction.RECVONLY, Direction.INACTIVE})

CodecKey = tuple[str, int, int]
"""What identifies a codec across payload type numbers: (encoding in upper case, clock rate, channels)."""


class NegotiationError(Exception):
    """The SDP cannot be relayed; `reason` is the control protocol's error reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def codec_key(rtpmap: RtpMap) -> CodecKey:
    return (rtpmap.encoding.upper(), rtpmap.clock_rate, rtpmap.channels or 1)


def is_audio_codec(rtpmap: RtpMap) -> bool:
    """A codec carrying sound, as opposed to telephone-events or comfort noise."""
    return rtpmap.encoding.upper() not in (TELEPHONE_EVENT.upper(), COMFORT_NOISE)


def is_telephone_event(rtpmap: RtpMap) -> bool:
    return rtpmap.encoding.lower() == TELEPHONE_EVENT


@dataclass(frozen=True)
class StreamInfo:
    """What the relay needs from one phone's SDP: its relayed audio stream."""

    index: int
    """Position of the relayed audio section among the m= lines."""
    payloads: dict[int, RtpMap]
    """Payload type -> codec, as the phone numbered them, in its order of preference."""
    rtp_address: tuple[str, int] | None
    """Where the phone receives RTP; None when it gave port 0 or the hold address 0.0.0.0."""
    rtcp_address: tuple[str, int] | None
    """Where it receives RTCP: its a=rtcp, else the RTP port + 1."""
    on_hold: bool
    """Its direction is sendonly, recvonly or inactive, or its address is 0.0.0.0."""

    @property
    def audio_payloads(self) -> dict[int, RtpMap]:
        return {pt: rtpmap for pt, rtpmap in self.payloads.items() if is_audio_codec(rtpmap)}

    def payload_type_of(self, key: CodecKey) -> int | None:
        for payload_type, rtpmap in self.payloads.items():
            if codec_key(rtpmap) == key:
                return payload_type
        return None


def audio_stream_index(sdp: SessionDescription) -> int:
    """The m= section relayed: the first audio stream over RTP with a port."""
    for index, media in enumerate(sdp.media):
        if media.media == AUDIO and media.proto in RTP_PROTOCOLS and media.port != 0:
            return index
    raise NegotiationError("bad sdp: no audio stream")


def stream_info(sdp: SessionDescription, index: int) -> StreamInfo:
    media = sdp.media[index]
    connection = sdp.media_connection(index)
    direction = sdp.media_direction(index)
    held_address = connection.address == HOLD_ADDRESS_IP4
    rtp_address = None if held_address or media.port == 0 else (connection.address, media.port)
    rtcp_address = None
    if rtp_address is not None:
        rtcp_address = (rtp_address[0], rtp_address[1] + 1)
        for name, value in media.attributes:
            if name == "rtcp" and value:
                fields = value.split()
                if fields[0].isdigit() and 0 < int(fields[0]) <= 65535:
                    host = fields[3] if len(fields) == 4 and fields[3] != HOLD_ADDRESS_IP4 else rtp_address[0]
                    rtcp_address = (host, int(fields[0]))
                break
    return StreamInfo(
        index=index,
        payloads=media.rtpmap(),
        rtp_address=rtp_address,
        rtcp_address=rtcp_address,
        on_hold=held_address or direction in HOLD_DIRECTIONS,
    )


def rewrite_offer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    transcode: Sequence[str],
    transcodable: Collection[CodecKey],
) -> SessionDescription:
    """The SDP to send the other leg for `offer`, relayed through `address`:`port`.

    `transcode` names the codecs that may be appended (["PCMU", "PCMA"]); `transcodable`
    holds the codecs the server can decode and encode.
    """
    index = audio_stream_index(offer)
    result = _relayed(offer, index, address, port)
    media = result.media[index]
    offered = media.rtpmap()
    audio = {pt for pt, rtpmap in offered.items() if is_audio_codec(rtpmap)}
    untranscodable = {pt for pt in audio if codec_key(offered[pt]) not in transcodable}
    if audio <= untranscodable:
        return result  # only passthrough can carry it: offered as it is
    kept = offered.keys() - untranscodable
    _keep_formats(media, kept)
    offered_keys = {codec_key(offered[pt]) for pt in kept}
    for name in transcode:
        key = _static_codec_key(name, transcodable)
        if key is None or key in offered_keys:
            continue
        payload_type = _free_payload_type(media, key)
        rtpmap = RtpMap(payload_type, name, key[1], None if key[2] == 1 else key[2])
        media.formats.append(str(payload_type))
        _insert_rtpmap_lines(media, [(rtpmap, None)], keep_existing=True)
        offered_keys.add(key)
    return result


def pick_codec(
    payloads: dict[int, RtpMap], *, shared: Collection[CodecKey], transcodable: Collection[CodecKey]
) -> int | None:
    """The payload type to use of the audio codecs a phone answered (in its order): the first
    that the other phone uses too (`shared`: relayed unchanged), else the first the server
    transcodes; None when there is neither."""
    audio = {pt: codec_key(rtpmap) for pt, rtpmap in payloads.items() if is_audio_codec(rtpmap)}
    return next((pt for pt, key in audio.items() if key in shared),
                next((pt for pt, key in audio.items() if key in transcodable), None))


@dataclass(frozen=True)
class AnswerOutcome:
    """The SDP to send the offerer, and the codecs each side will send."""

    sdp: SessionDescription
    offerer_payload_type: int
    """The audio payload type the offerer sends and receives (its own number)."""
    answerer_payload_type: int
    """The audio payload type the answerer chose (its own number)."""
    transcoding: bool


def rewrite_answer(
    answer: SessionDescription,
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    transcodable: Collection[CodecKey],
) -> AnswerOutcome:
    """The SDP to send the offerer (whose SDP is `offer`) for `answer`, relayed through `address`:`port`."""
    offer_index = audio_stream_index(offer)
    answer_index = _answer_stream_index(answer, offer_index)
    answer_info = stream_info(answer, answer_index)
    offer_info = stream_info(offer, offer_index)
    offered_keys = {codec_key(rtpmap) for rtpmap in offer_info.audio_payloads.values()}
    answerer_pt = pick_codec(answer_info.payloads, shared=offered_keys, transcodable=transcodable)
    if answerer_pt is None:
        raise NegotiationError("no common codec")
    answerer_codec = answer_info.payloads[answerer_pt]
    answer_fmtp = answer.media[answer_index].fmtp()
    offer_fmtp = offer.media[offer_index].fmtp()
    offerer_pt = offer_info.payload_type_of(codec_key(answerer_codec))
    transcoding = offerer_pt is None
    if offerer_pt is None:
        offerer_pt = pick_codec(offer_info.payloads, shared=(), transcodable=transcodable)
        if offerer_pt is None:
            raise NegotiationError("no common codec")
        formats = [(offer_info.payloads[offerer_pt], offer_fmtp.get(offerer_pt))]
    else:
        formats = [(_renumbered(answerer_codec, offerer_pt), answer_fmtp.get(answerer_pt))]
    for pt, rtpmap in answer_info.payloads.items():
        if is_telephone_event(rtpmap):
            offer_event_pt = offer_info.payload_type_of(codec_key(rtpmap))
            if offer_event_pt is not None:
                formats.append((_renumbered(rtpmap, offer_event_pt), answer_fmtp.get(pt)))
                break
    result = _relayed(answer, answer_index, address, port)
    media = result.media[answer_index]
    media.formats = [str(rtpmap.payload_type) for rtpmap, _ in formats]
    _insert_rtpmap_lines(media, formats, keep_existing=False)
    return AnswerOutcome(
        sdp=result,
        offerer_payload_type=offerer_pt,
        answerer_payload_type=answerer_pt,
        transcoding=transcoding,
    )


def answer_ourselves(
    offer: SessionDescription, *, address: str, port: int, transcodable: Collection[CodecKey]
) -> AnswerOutcome:
    """Our own answer to `offer` before the other phone has answered (to play it ringback):
    the first offered codec we can encode, and telephone-events if offered. The other phone's
    answer, when it comes, is transcoded to this codec if it differs."""
    index = audio_stream_index(offer)
    info = stream_info(offer, index)
    fmtp = offer.media[index].fmtp()
    chosen = pick_codec(info.payloads, shared=(), transcodable=transcodable)
    if chosen is None:
        raise NegotiationError("no common codec")
    formats = [(info.payloads[chosen], fmtp.get(chosen))]
    formats += [(rtpmap, fmtp.get(pt)) for pt, rtpmap in info.payloads.items()
                if is_telephone_event(rtpmap) and rtpmap.clock_rate == info.payloads[chosen].clock_rate][:1]
    result = _relayed(offer, index, address, port)
    media = result.media[index]
    media.formats = [str(rtpmap.payload_type) for rtpmap, _ in formats]
    _insert_rtpmap_lines(media, formats, keep_existing=False)
    return AnswerOutcome(
        sdp=result, offerer_payload_type=chosen, answerer_payload_type=chosen, transcoding=False
    )


def _answer_stream_index(answer: SessionDescription, offer_index: int) -> int:
    # An answer has the offer's m= lines in the same order (RFC 3264 section 6).
    if offer_index >= len(answer.media) or answer.media[offer_index].media != AUDIO:
        raise NegotiationError("bad sdp: the answer lacks the offered audio stream")
    if answer.media[offer_index].port == 0:
        raise NegotiationError("no common codec")
    return offer_index


def _relayed(sdp: SessionDescription, index: int, address: str, port: int) -> SessionDescription:
    """A copy whose stream `index` goes through the relay and whose other streams are rejected."""
    result = copy.deepcopy(sdp)
    relay = Connection.for_address(address)
    held_session = result.connection is not None and result.connection.address == HOLD_ADDRESS_IP4
    held_stream = sdp.media_connection(index).address == HOLD_ADDRESS_IP4
    if result.connection is not None and not held_session:
        result.connection = relay
    result.attributes = [
        attribute for attribute in result.attributes if attribute[0] not in DROPPED_ATTRIBUTES
    ]
    for position, media in enumerate(result.media):
        media.attributes = [
            attribute for attribute in media.attributes if attribute[0] not in DROPPED_ATTRIBUTES
        ]
        if position != index:
            media.port = 0
            media.port_count = None
            continue
        media.port = port
        media.port_count = None
        # An RFC 2543 hold (c=0.0.0.0) stays one: the other phone must not send to us.
        if held_stream:
            media.connection = Connection.for_address(HOLD_ADDRESS_IP4)
        elif media.connection is not None or result.connection is None or held_session:
            media.connection = relay
    return result


def _static_codec_key(name: str, transcodable: Collection[CodecKey]) -> CodecKey | None:
    """The codec named `name` that the server transcodes (at 8000 Hz for G.711 and G.722)."""
    candidates = [key for key in transcodable if key[0] == name.upper()]
    return min(candidates, default=None)


def _free_payload_type(media: MediaDescription, key: CodecKey) -> int:
    used = {int(fmt) for fmt in media.formats if fmt.isdigit()}
    for payload_type, rtpmap in STATIC_PAYLOAD_TYPES.items():
        if codec_key(rtpmap) == key and payload_type not in used:
            return payload_type
    for payload_type in DYNAMIC_PAYLOAD_TYPES:
        if payload_type not in used:
            return payload_type
    raise NegotiationError("bad sdp: no free payload type to add a codec")


def _keep_formats(media: MediaDescription, kept: Collection[int]) -> None:
    """Take every RTP payload type but `kept` out of `media`: its format and its a=rtpmap,
    a=fmtp and a=rtcp-fb lines."""

    def dropped(payload_type: str) -> bool:
        return payload_type.isdigit() and int(payload_type) not in kept

    media.formats = [fmt for fmt in media.formats if not dropped(fmt)]
    media.attributes = [
        (name, value) for name, value in media.attributes
        if not (name in (ATTR_RTPMAP, ATTR_FMTP, ATTR_RTCP_FB) and dropped((value or "").split(" ", 1)[0]))
    ]


def _renumbered(rtpmap: RtpMap, payload_type: int) -> RtpMap:
    return RtpMap(payload_type, rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels)


def _rtpmap_value(rtpmap: RtpMap) -> str:
    channels = f"/{rtpmap.channels}" if rtpmap.channels is not None else ""
    return f"{rtpmap.payload_type} {rtpmap.encoding}/{rtpmap.clock_rate}{channels}"


def _insert_rtpmap_lines(
    media: MediaDescription, formats: Sequence[tuple[RtpMap, str | None]], *, keep_existing: bool
) -> None:
    """Write a=rtpmap (and a=fmtp) lines for `formats`.

    With `keep_existing`, they go after the last existing a=rtpmap/a=fmtp line; without, they
    replace every a=rtpmap, a=fmtp and payload-specific a=rtcp-fb line, where the first one was.
    """
    lines: list[tuple[str, str | None]] = []
    for rtpmap, fmtp in formats:
        lines.append((ATTR_RTPMAP, _rtpmap_value(rtpmap)))
        if fmtp is not None:
            lines.append((ATTR_FMTP, f"{rtpmap.payload_type} {fmtp}"))
    codec_lines = [
        position
        for position, (name, value) in enumerate(media.attributes)
        if name in (ATTR_RTPMAP, ATTR_FMTP)
        or (name == ATTR_RTCP_FB and not keep_existing and not (value or "").startswith("*"))
    ]
    if keep_existing:
        at = codec_lines[-1] + 1 if codec_lines else len(media.attributes)
        media.attributes[at:at] = lines
        return
    at = codec_lines[0] if codec_lines else len(media.attributes)
    kept = [attribute for position, attribute in enumerate(media.attributes) if position not in codec_lines]
    at -= sum(1 for position in codec_lines if position < at)
    kept[at:at] = lines
    media.attributes = kept

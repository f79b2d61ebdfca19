"""A trunk's codecs: what is offered to its provider, and accepted in the provider's offers.

A trunk with a codec list (`pbx trunk add ... --codecs PCMA,PCMU`) sees only those codecs, in
that order, in the first audio stream of every offer: the call's offer toward it (after the
media server's rewrite, which has appended the codecs it transcodes, so that a phone without
PCMA still reaches a PCMA-only provider) and the offer of a call coming from it, before the
media server answers it. Telephone-events and comfort noise stay: they are no voice codec and
DTMF needs them. An offer that keeps no voice codec is left for the caller to refuse (None).

Sans-IO: bodies in, bodies out.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..sip.sdp import ATTR_FMTP, ATTR_RTPMAP, SessionDescription

AUDIO = "audio"
NOT_VOICE = frozenset({"TELEPHONE-EVENT", "CN"})
"""Encodings that are no voice codec: always kept."""
_PAYLOAD_ATTRIBUTES = frozenset({ATTR_RTPMAP, ATTR_FMTP, "rtcp-fb"})


def restrict_offer(body: bytes, codecs: Sequence[str]) -> bytes | None:
    """`body` with only `codecs` (encoding names, any case) in its first audio stream, in their
    order; None when none of them is offered. Unchanged without `codecs` or an audio stream."""
    if not codecs or not body:
        return body
    description = SessionDescription.parse(body)
    media = next((m for m in description.media if m.media == AUDIO and m.port != 0), None)
    if media is None:
        return body
    wanted = [name.upper() for name in codecs]
    offered = media.rtpmap()
    voice = sorted((pt for pt, rtpmap in offered.items() if rtpmap.encoding.upper() in wanted),
                   key=lambda pt: wanted.index(offered[pt].encoding.upper()))
    if not voice:
        return None
    others = [pt for pt, rtpmap in offered.items() if rtpmap.encoding.upper() in NOT_VOICE]
    kept = {str(pt) for pt in voice + others} | {"*"}
    media.formats = [str(pt) for pt in voice + others]
    media.attributes = [(name, value) for name, value in media.attributes
                        if name not in _PAYLOAD_ATTRIBUTES or (value or "").split(" ", 1)[0] in kept]
    return description.serialize()

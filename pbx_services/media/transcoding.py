"""Decoding and encoding for the relay, with per-leg codec state.

The server transcodes between G.711 µ-law and A-law and, when the RTP library has them,
G.722 and Opus. A stateful codec (G.722's ADPCM, a resampler's filter) needs its own object per
phone and direction, so they are kept on the leg. Audio is exchanged at 8 kHz, the rate
of recordings and playback; PCMU <-> PCMA goes through a table, without decoding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pbx_services.rtp import codecs as rtp_codecs
from pbx_services.rtp.g711 import alaw_to_ulaw, ulaw_to_alaw
from pbx_services.sip.sdp import RtpMap

from .negotiation import CodecKey, codec_key
from .session import Leg

SAMPLE_RATE = 8000
TRANSCODED_CODECS = ("PCMU", "PCMA", "G722", "OPUS")
PCMU = ("PCMU", 8000, 1)
PCMA = ("PCMA", 8000, 1)
_TABLE_CONVERSIONS = {(PCMU, PCMA): ulaw_to_alaw, (PCMA, PCMU): alaw_to_ulaw}


class _CodecStream:
    """A codec object for one phone and direction, with the resampler between it and 8 kHz."""

    __slots__ = ("codec", "resampler", "first_timestamp")

    def __init__(self, codec: rtp_codecs.Codec, *, decoding: bool) -> None:
        self.codec = codec
        self.first_timestamp: int | None = None
        """The RTP timestamp of the phone's first packet, from which timestamps are rescaled."""
        rates = (codec.sample_rate, SAMPLE_RATE) if decoding else (SAMPLE_RATE, codec.sample_rate)
        self.resampler = rtp_codecs.Resampler(*rates) if codec.sample_rate != SAMPLE_RATE else None


class Transcoding:
    """The codecs the server can decode and encode, by (encoding, clock rate, channels)."""

    def __init__(self) -> None:
        available = {name.upper() for name in rtp_codecs.available_codecs()}
        self.names: dict[CodecKey, str] = {}
        for name in TRANSCODED_CODECS:
            if name in available:
                codec = rtp_codecs.CODECS[name]
                self.names[(codec.name.upper(), codec.clock_rate, codec.channels)] = codec.name

    @property
    def codecs(self) -> frozenset[CodecKey]:
        return frozenset(self.names)

    def decode(self, leg: Leg, rtpmap: RtpMap, payload: bytes) -> npt.NDArray[np.int16] | None:
        """8 kHz samples of a payload `leg`'s phone sent; None for a codec we cannot decode."""
        stream = self._stream(leg.decoders, codec_key(rtpmap), decoding=True)
        if stream is None:
            return None
        try:
            samples = stream.codec.decode(payload)
        except Exception:  # a codec library's error on a peer's bad payload: whatever it raises
            return None
        if stream.resampler is not None:
            samples = stream.resampler.process(samples)
        return samples

    def encode(self, leg: Leg, rtpmap: RtpMap, samples: npt.NDArray[np.int16]) -> bytes | None:
        """8 kHz `samples` as a payload for `leg`'s phone; None for a codec we cannot encode."""
        stream = self._stream(leg.encoders, codec_key(rtpmap), decoding=False)
        if stream is None:
            return None
        if stream.resampler is not None:
            samples = stream.resampler.process(samples)
        return stream.codec.encode(samples)

    def convert(
        self,
        leg: Leg,
        source: RtpMap,
        peer: Leg,
        target: RtpMap,
        payload: bytes,
        decoded: npt.NDArray[np.int16] | None = None,
    ) -> bytes | None:
        """A payload from `leg`'s phone in the `source` codec, for `peer`'s phone in `target`.

        `decoded` is the payload already decoded (for the recording): a stateful decoder must
        see each payload once.
        """
        table = _TABLE_CONVERSIONS.get((codec_key(source), codec_key(target)))
        if table is not None:
            return table(payload)
        samples = decoded if decoded is not None else self.decode(leg, source, payload)
        if samples is None:
            return None
        return self.encode(peer, target, samples)

    def rescale_timestamp(self, leg: Leg, source: RtpMap, target: RtpMap, timestamp: int) -> int:
        """A timestamp of `leg`'s phone in `source`'s clock, in `target`'s (Opus at 48 kHz to G.711
        at 8 kHz); the elapsed time is scaled, so a wrap of the source's clock does no harm."""
        if source.clock_rate == target.clock_rate:
            return timestamp
        stream = self._stream(leg.decoders, codec_key(source), decoding=True)
        if stream is None:
            return timestamp
        if stream.first_timestamp is None:
            stream.first_timestamp = timestamp
        elapsed = (timestamp - stream.first_timestamp) & 0xFFFFFFFF
        return (stream.first_timestamp + elapsed * target.clock_rate // source.clock_rate) & 0xFFFFFFFF

    def _stream(
        self, streams: dict[CodecKey, _CodecStream], key: CodecKey, *, decoding: bool
    ) -> _CodecStream | None:
        stream = streams.get(key)
        if stream is None:
            name = self.names.get(key)
            if name is None:
                return None
            stream = streams[key] = _CodecStream(rtp_codecs.get_codec(name), decoding=decoding)
        return stream

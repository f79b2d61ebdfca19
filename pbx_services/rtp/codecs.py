"""Audio codecs by SDP name, and resampling between their rates.

`get_codec("PCMU")` returns a new codec object: use one per stream and direction, as
G.722 and Opus keep state from one frame to the next. `CODECS` maps the upper-case name
of every codec available here to its class, whose class attributes describe it without
an instance (clock rate, static payload type, ...).

PCMU and PCMA are always there. G.722 needs the `G722` package (sippy's libg722
bindings) and Opus the `opuslib_next` package over the system's libopus; a codec whose
library cannot be loaded is not registered, silently, and `available_codecs()` says
what is.

RTP clock and audio rate differ for G.722: its RTP clock is 8000 Hz for historical
reasons but its audio is 16 kHz (RFC 3551 section 4.5.2), so a 20 ms frame is 320
samples and advances the RTP timestamp by 160.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from .g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

FRAME_MS = 20

try:
    import G722 as _g722
except ImportError:
    _g722 = None

try:
    import opuslib_next as _opus
except Exception:  # not only ImportError: it raises a bare Exception when libopus is not installed
    _opus = None


def _as_int16(samples: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    if samples.dtype != np.int16:
        samples = np.clip(samples, -32768, 32767).astype(np.int16)
    return np.ascontiguousarray(samples)


class Codec(ABC):
    """One direction of one stream's codec: `decode` RTP payloads, `encode` frames of samples."""

    name: ClassVar[str]
    """The encoding name of the SDP rtpmap ("PCMU", "G722", "opus")."""
    clock_rate: ClassVar[int]
    """RTP timestamp rate, as in the rtpmap."""
    sample_rate: ClassVar[int]
    """Rate of the audio that `decode` returns and `encode` takes."""
    static_payload_type: ClassVar[int | None]
    """RFC 3551's payload type, or None for a codec that needs a dynamic one."""
    channels: ClassVar[int] = 1
    """Channels as in the rtpmap (2 for Opus, RFC 7587); the audio itself is always mono."""
    samples_per_frame: ClassVar[int]
    """Audio samples in a 20 ms frame."""
    timestamp_per_frame: ClassVar[int]
    """RTP timestamp increment of a 20 ms frame."""

    @abstractmethod
    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        """An RTP payload to mono int16 samples at `sample_rate`."""

    @abstractmethod
    def encode(self, samples: npt.NDArray[Any]) -> bytes:
        """Mono samples at `sample_rate` (saturated to int16) to an RTP payload."""


class Pcmu(Codec):
    name = "PCMU"
    clock_rate = sample_rate = 8000
    static_payload_type = 0
    samples_per_frame = timestamp_per_frame = 160

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        return ulaw_decode(payload)

    def encode(self, samples: npt.NDArray[Any]) -> bytes:
        return ulaw_encode(samples)


class Pcma(Codec):
    name = "PCMA"
    clock_rate = sample_rate = 8000
    static_payload_type = 8
    samples_per_frame = timestamp_per_frame = 160

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        return alaw_decode(payload)

    def encode(self, samples: npt.NDArray[Any]) -> bytes:
        return alaw_encode(samples)


class G722(Codec):
    """G.722 at 64 kbit/s (the only rate RTP uses), through libg722."""

    name = "G722"
    clock_rate = 8000
    sample_rate = 16000
    static_payload_type = 9
    samples_per_frame = 320
    timestamp_per_frame = 160
    BITRATE = 64000

    def __init__(self) -> None:
        # Separate contexts: the library object carries ADPCM state for whatever it does.
        self._encoder = _g722.G722(self.sample_rate, self.BITRATE)
        self._decoder = _g722.G722(self.sample_rate, self.BITRATE)

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        return np.frombuffer(self._decoder.decode(payload), dtype=np.int16)

    def encode(self, samples: npt.NDArray[Any]) -> bytes:
        encoded: bytes = self._encoder.encode(_as_int16(samples))
        return encoded


class Opus(Codec):
    """Opus (RFC 7587), mono, VoIP mode, through the system's libopus.

    `encode` takes a frame libopus knows (2.5, 5, 10, 20, 40 or 60 ms: 960 samples for
    20 ms); `decode` gives whatever duration the packet holds.
    """

    name = "opus"
    clock_rate = sample_rate = 48000
    static_payload_type = None
    channels = 2
    samples_per_frame = timestamp_per_frame = 960
    MAX_FRAME = 5760  # 120 ms at 48 kHz: the longest packet Opus has

    def __init__(self) -> None:
        self._encoder = _opus.Encoder(self.sample_rate, 1, _opus.APPLICATION_VOIP)
        self._decoder = _opus.Decoder(self.sample_rate, 1)

    def decode(self, payload: bytes) -> npt.NDArray[np.int16]:
        return np.frombuffer(self._decoder.decode(payload, self.MAX_FRAME), dtype=np.int16)

    def encode(self, samples: npt.NDArray[Any]) -> bytes:
        samples = _as_int16(samples)
        encoded: bytes = self._encoder.encode(samples.tobytes(), len(samples))
        return encoded


CODECS: dict[str, type[Codec]] = {"PCMU": Pcmu, "PCMA": Pcma}
if _g722 is not None:
    CODECS["G722"] = G722
if _opus is not None:
    CODECS["OPUS"] = Opus


def get_codec(name: str) -> Codec:
    """A new codec object for one stream direction; the name is case-insensitive."""
    codec = CODECS.get(name.upper())
    if codec is None:
        raise KeyError(f"unknown codec {name!r}; available: {', '.join(available_codecs())}")
    return codec()


def available_codecs() -> list[str]:
    """The names of the codecs that work here, as SDP writes them."""
    return [codec.name for codec in CODECS.values()]


class Resampler:
    """Rate conversion of a stream, frame by frame, keeping the filter's history between frames.

    Polyphase: conceptually up-sample by L (zeros between samples), low-pass below the
    lower Nyquist frequency with a Kaiser-windowed sinc, keep every M-th sample, with
    L/M = to_rate/from_rate in lowest terms; only the products that matter are computed.
    The output lags the input by `delay` samples (the filter's group delay).
    """

    ZERO_CROSSINGS = 16  # of the sinc on each side: the filter's length, so its steepness
    KAISER_BETA = 8.0  # about 80 dB stop-band attenuation
    ROLLOFF = 0.92  # cutoff, as a fraction of the lower Nyquist frequency

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"cannot resample from {from_rate} Hz to {to_rate} Hz")
        divisor = math.gcd(from_rate, to_rate)
        self.up, self.down = to_rate // divisor, from_rate // divisor
        widest = max(self.up, self.down)
        # Half the filter, in up-sampled samples; a multiple of `down` so the delay is whole.
        half = self.down * math.ceil(self.ZERO_CROSSINGS * widest / self.down)
        self.delay = half // self.down
        cutoff = self.ROLLOFF / (2 * widest)  # cycles per up-sampled sample
        taps = np.arange(-half, half + 1)
        window = np.kaiser(2 * half + 1, self.KAISER_BETA)
        impulse = 2 * cutoff * np.sinc(2 * cutoff * taps) * window * self.up
        per_phase = math.ceil(len(impulse) / self.up)
        impulse = np.concatenate([impulse, np.zeros(per_phase * self.up - len(impulse))])
        # phases[p][t] = impulse[p + t * up], reversed so it lines up with a window of past inputs.
        self._phases = impulse.reshape(per_phase, self.up).T[:, ::-1].copy()
        self._history = np.zeros(per_phase - 1)
        self._consumed = 0
        self._next_output = 0

    def process(self, samples: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
        """The output samples that these input samples complete (about len * to / from of them)."""
        buffer = np.concatenate([self._history, samples.astype(np.float64)])
        start = self._consumed - len(self._history)  # input index of buffer[0]
        self._consumed += len(samples)
        last = (self._consumed * self.up - 1) // self.down
        outputs = np.arange(self._next_output, last + 1)
        self._next_output = last + 1
        if len(self._history):
            self._history = buffer[len(buffer) - len(self._history):]
        if not len(outputs):
            return np.zeros(0, dtype=np.int16)
        positions = outputs * self.down
        newest = positions // self.up - start  # buffer index of the newest input each output uses
        windows = np.lib.stride_tricks.sliding_window_view(buffer, self._phases.shape[1])
        values = np.einsum("ot,ot->o", windows[newest - self._phases.shape[1] + 1],
                           self._phases[positions % self.up])
        return np.clip(np.round(values), -32768, 32767).astype(np.int16)


def resample(samples: npt.NDArray[Any], from_rate: int, to_rate: int) -> npt.NDArray[np.int16]:
    """A whole signal at another rate, aligned with the input (the filter's delay removed).

    ceil(len * to_rate / from_rate) samples. For a stream cut in frames use a Resampler,
    which carries the filter across frame borders instead of restarting it at each.
    """
    if from_rate == to_rate:
        return _as_int16(samples).copy()
    resampler = Resampler(from_rate, to_rate)
    length = -(-len(samples) * resampler.up // resampler.down)
    needed = (resampler.delay + length) * resampler.down // resampler.up + 1
    padded = np.concatenate([samples.astype(np.float64), np.zeros(max(0, needed - len(samples)))])
    return resampler.process(padded)[resampler.delay:resampler.delay + length]

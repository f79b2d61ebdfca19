"""Audio files to the prompt format: 16-bit little-endian PCM, mono, 8000 Hz.

`import_wav` reads RIFF WAV (Microsoft's "Multimedia Programming Interface and Data
Specifications 1.0", and WAVE_FORMAT_EXTENSIBLE) holding integer PCM of 8 (unsigned),
16, 24 or 32 bits, IEEE float of 32 or 64 bits, µ-law or A-law, at 8000 to 192000 Hz,
with any number of channels, which are averaged. The chunks are parsed here because the
standard library's `wave` reads integer PCM only.

Every problem with a file is an `InvalidValue` whose one-line message starts with the
file's name and says what is wrong with it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pbx_services.cluster.validation import InvalidValue
from pbx_services.rtp.codecs import Resampler
from pbx_services.rtp.g711 import alaw_decode, ulaw_decode

PROMPT_SAMPLE_RATE = 8000
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
MAX_DURATION_SECONDS = 600

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {WAVE_FORMAT_PCM: "PCM", WAVE_FORMAT_IEEE_FLOAT: "float", WAVE_FORMAT_ALAW: "A-law",
                 WAVE_FORMAT_MULAW: "µ-law", 0x0002: "MS ADPCM", 0x0011: "IMA ADPCM", 0x0031: "GSM 6.10",
                 0x0055: "MP3"}
_SUBFORMAT_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
"""KSDATAFORMAT_SUBTYPE_*: the format tag in the GUID's first two bytes, then these 14."""

_RIFF_HEADER_SIZE = 12
"""b"RIFF", the size of what follows, b"WAVE"."""
_CHUNK_HEADER = struct.Struct("<4sI")
_FMT = struct.Struct("<HHIIHH")
"""wFormatTag, nChannels, nSamplesPerSec, nAvgBytesPerSec, nBlockAlign, wBitsPerSample."""
_FMT_EXTENSIBLE = struct.Struct("<HHI16s")
"""cbSize, wValidBitsPerSample, dwChannelMask, SubFormat: after the 16 bytes of _FMT."""
_INT16_SCALE = 32768.0
_RESAMPLE_CHUNK_SECONDS = 1


def _decode_unsigned_8(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    return (raw[:, 0].astype(np.float64) - 128.0) * 256.0


def _decode_signed(width: int) -> Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float64]]:
    """Little-endian two's complement of `width` bytes, on the int16 scale."""

    def decode(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        # Left-aligned in an int32 (lowest bytes zero), so the sign bit is the int32's.
        padded = np.zeros((len(raw), 4), dtype=np.uint8)
        padded[:, 4 - width:] = raw
        return padded.view("<i4")[:, 0].astype(np.float64) / 65536.0

    return decode


def _decode_float(width: int) -> Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float64]]:
    def decode(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        values = np.ascontiguousarray(raw).view(f"<f{width}")[:, 0].astype(np.float64)
        # Beyond full scale (and a corrupt file's NaN and infinities) saturates, as a converter does.
        return np.clip(np.nan_to_num(values), -1.0, 1.0) * _INT16_SCALE

    return decode


def _decode_law(law_decode: Callable[[bytes], npt.NDArray[np.int16]]
                ) -> Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float64]]:
    def decode(raw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
        return law_decode(raw.tobytes()).astype(np.float64)

    return decode


_DECODERS: dict[tuple[int, int], Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float64]]] = {
    (WAVE_FORMAT_PCM, 1): _decode_unsigned_8,
    (WAVE_FORMAT_PCM, 2): _decode_signed(2),
    (WAVE_FORMAT_PCM, 3): _decode_signed(3),
    (WAVE_FORMAT_PCM, 4): _decode_signed(4),
    (WAVE_FORMAT_IEEE_FLOAT, 4): _decode_float(4),
    (WAVE_FORMAT_IEEE_FLOAT, 8): _decode_float(8),
    (WAVE_FORMAT_MULAW, 1): _decode_law(ulaw_decode),
    (WAVE_FORMAT_ALAW, 1): _decode_law(alaw_decode),
}
"""(format tag, bytes per sample) -> decoder of a (frames, bytes per sample) array of one channel."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What a WAV file's fmt chunk says of its samples."""

    format_tag: int
    """WAVE_FORMAT_*: for an extensible file, the tag of its SubFormat."""
    channels: int
    sample_rate: int
    bits_per_sample: int
    """Of the container: 24 for 20-bit samples stored in 3 bytes."""
    block_align: int
    """Bytes of one frame: one sample of every channel."""

    @classmethod
    def parse(cls, body: bytes, name: str) -> WavFormat:
        if len(body) < _FMT.size:
            raise InvalidValue(f"{name}: WAV fmt chunk is {len(body)} bytes, shorter than {_FMT.size}")
        format_tag, channels, sample_rate, _, block_align, bits = _FMT.unpack_from(body)
        if format_tag == WAVE_FORMAT_EXTENSIBLE:
            if len(body) < _FMT.size + _FMT_EXTENSIBLE.size:
                raise InvalidValue(f"{name}: WAV fmt chunk of WAVE_FORMAT_EXTENSIBLE is {len(body)} bytes, "
                                   f"shorter than {_FMT.size + _FMT_EXTENSIBLE.size}")
            subformat = _FMT_EXTENSIBLE.unpack_from(body, _FMT.size)[3]
            if subformat[2:] != _SUBFORMAT_GUID_TAIL:
                raise InvalidValue(f"{name}: WAV sub-format {subformat.hex()} is not supported "
                                   "(supported: PCM, float, µ-law, A-law)")
            format_tag = int.from_bytes(subformat[:2], "little")
        return cls(format_tag=format_tag, channels=channels, sample_rate=sample_rate,
                   bits_per_sample=bits, block_align=block_align)

    @property
    def description(self) -> str:
        kind = _FORMAT_NAMES.get(self.format_tag, f"format 0x{self.format_tag:04x}")
        return f"{self.bits_per_sample}-bit {kind}"

    def check(self, name: str) -> None:
        if (self.format_tag, math.ceil(self.bits_per_sample / 8)) not in _DECODERS:
            raise InvalidValue(f"{name}: {self.description} WAV is not supported (supported: 8/16/24/32-bit "
                               "PCM, 32/64-bit float, 8-bit µ-law and A-law)")
        if self.channels < 1:
            raise InvalidValue(f"{name}: WAV file has {self.channels} channels")
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise InvalidValue(f"{name}: sample rate {self.sample_rate} Hz is not supported "
                               f"(supported: {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz)")
        expected = self.channels * math.ceil(self.bits_per_sample / 8)
        if self.block_align != expected:
            raise InvalidValue(f"{name}: WAV block align is {self.block_align} bytes, expected {expected} "
                               f"for {self.channels} channels of {self.description}")


def import_wav(data: bytes, name: str) -> npt.NDArray[np.int16]:
    """The WAV file `data` (named `name` in messages) as prompt audio: mono int16 at 8000 Hz."""
    wav_format, payload = _read_chunks(data, name)
    wav_format.check(name)
    frames = len(payload) // wav_format.block_align
    if frames == 0:
        raise InvalidValue(f"{name}: WAV file has no audio samples")
    duration = frames / wav_format.sample_rate
    if duration > MAX_DURATION_SECONDS:
        raise InvalidValue(f"{name}: audio lasts {_minutes(duration)}, longer than the "
                           f"{_minutes(MAX_DURATION_SECONDS)} a prompt may last")
    raw = np.frombuffer(payload, dtype=np.uint8, count=frames * wav_format.block_align)
    raw = raw.reshape(frames, wav_format.block_align)
    width = wav_format.block_align // wav_format.channels
    decode = _DECODERS[wav_format.format_tag, width]
    mono = np.zeros(frames)
    for channel in range(wav_format.channels):
        mono += decode(raw[:, channel * width:(channel + 1) * width])
    mono /= wav_format.channels
    return _to_prompt_rate(mono, wav_format.sample_rate)


def _read_chunks(data: bytes, name: str) -> tuple[WavFormat, memoryview]:
    """The fmt chunk and the data chunk's bytes; chunks after both are not looked at."""
    if len(data) < _RIFF_HEADER_SIZE or not data.startswith(b"RIFF") or data[8:12] != b"WAVE":
        raise InvalidValue(f"{name}: not a WAV file ({_what_it_looks_like(data)})")
    view = memoryview(data)
    wav_format: WavFormat | None = None
    payload: memoryview | None = None
    offset = _RIFF_HEADER_SIZE
    while wav_format is None or payload is None:
        if offset + _CHUNK_HEADER.size > len(data):
            missing = " and ".join(chunk for chunk, found in (("fmt", wav_format), ("data", payload))
                                   if found is None)
            raise InvalidValue(f"{name}: truncated WAV file: it ends at byte {len(data)} without a "
                               f"{missing} chunk")
        chunk_id, size = _CHUNK_HEADER.unpack_from(data, offset)
        start = offset + _CHUNK_HEADER.size
        if start + size > len(data):
            chunk_name = chunk_id.decode("latin-1").strip()
            raise InvalidValue(f"{name}: truncated WAV file: its {chunk_name!r} chunk says {size} bytes, "
                               f"the file holds {len(data) - start}")
        if chunk_id == b"fmt " and wav_format is None:
            wav_format = WavFormat.parse(data[start:start + size], name)
        elif chunk_id == b"data" and payload is None:
            payload = view[start:start + size]
        offset = start + size + size % 2  # chunks are padded to an even size
    return wav_format, payload


def _to_prompt_rate(samples: npt.NDArray[np.float64], sample_rate: int) -> npt.NDArray[np.int16]:
    """The samples at 8000 Hz, as `codecs.resample` gives them (low-passed below 4 kHz first).

    Fed to a Resampler a second at a time: `resample` takes the whole signal in one call,
    whose work arrays hold every output sample times the filter's length (gigabytes for
    ten minutes of 192 kHz audio).
    """
    if sample_rate == PROMPT_SAMPLE_RATE:
        return np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    resampler = Resampler(sample_rate, PROMPT_SAMPLE_RATE)
    length = -(-len(samples) * resampler.up // resampler.down)
    # Zeros after the end flush the filter's delay out, so the last samples come out too.
    flush = np.zeros((resampler.delay + 1) * resampler.down // resampler.up + 1)
    padded = np.concatenate([samples, flush])
    step = sample_rate * _RESAMPLE_CHUNK_SECONDS
    output = np.concatenate([resampler.process(padded[start:start + step])
                             for start in range(0, len(padded), step)])
    return output[resampler.delay:resampler.delay + length]


def _minutes(seconds: float) -> str:
    whole = math.ceil(seconds)
    return f"{whole // 60}:{whole % 60:02d} min"


def _what_it_looks_like(data: bytes) -> str:
    if not data:
        return "the file is empty"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "it is an MP3 file: convert it to WAV first"
    if data.startswith(b"OggS"):
        return "it is an Ogg file: convert it to WAV first"
    if data.startswith(b"fLaC"):
        return "it is a FLAC file: convert it to WAV first"
    if data.startswith(b"RIFF") and len(data) < _RIFF_HEADER_SIZE:
        return f"{len(data)} bytes, too short for a RIFF header"
    if data.startswith(b"RIFF"):
        return f"a RIFF file of type {data[8:12]!r}, not WAVE"
    return "it does not start with a RIFF WAVE header"

"""16-bit PCM WAV files: prompts to play, recordings to write, on the stdlib `wave` module.

`read_wav` loads a whole file (prompts are short); `WavWriter` appends frames as they
come, so a recorder streams a call to disk without holding it in memory. Only 16-bit
PCM is accepted: anything else raises WavFormatError saying what the file is, so an
operator knows how to convert it (`sox in.wav -b 16 -e signed-integer out.wav`).
"""

from __future__ import annotations

import os
import re
import struct
import wave
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

SAMPLE_WIDTH = 2  # bytes: 16-bit PCM
# What the wave module cannot read, by format tag ("unknown format: 3").
_FORMAT_NAMES = {3: "IEEE float", 6: "A-law", 7: "µ-law", 0xFFFE: "WAVE_FORMAT_EXTENSIBLE"}

WavSource = str | os.PathLike[str] | BinaryIO


class WavFormatError(ValueError):
    """A WAV file that is not 16-bit PCM, or not a WAV file at all."""


@dataclass(frozen=True, slots=True, eq=False)  # no ==: comparing arrays element-wise has no truth value
class WavAudio:
    sample_rate: int
    channels: int
    samples: npt.NDArray[np.int16]
    """Shape (n,) for mono, (n, channels) otherwise."""

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / self.sample_rate


def _name(source: WavSource) -> str:
    return os.fspath(source) if isinstance(source, str | os.PathLike) else getattr(source, "name", "<stream>")


def _openable(source: WavSource) -> str | BinaryIO:
    # wave.open takes a str or a file object; a Path only from Python 3.12 on.
    return os.fspath(source) if isinstance(source, str | os.PathLike) else source


def read_wav(path: WavSource) -> WavAudio:
    """The whole of a 16-bit PCM WAV file; WavFormatError if it is anything else."""
    name = _name(path)
    try:
        with wave.open(_openable(path), "rb") as reader:
            width = reader.getsampwidth()
            if width != SAMPLE_WIDTH:
                raise WavFormatError(f"WAV file {name} is {8 * width}-bit; 16-bit PCM is required")
            channels = reader.getnchannels()
            sample_rate = reader.getframerate()
            data = reader.readframes(reader.getnframes())
    except wave.Error as error:
        unknown = re.fullmatch(r"unknown format: (\d+)", str(error))
        if unknown:
            tag = int(unknown[1])
            kind = _FORMAT_NAMES.get(tag, f"format {tag}")
            raise WavFormatError(f"WAV file {name} is {kind}; 16-bit PCM is required") from None
        raise WavFormatError(f"WAV file {name} is not a valid WAV file: {error}") from None
    except (EOFError, struct.error):
        raise WavFormatError(f"WAV file {name} is truncated") from None
    except RuntimeError:
        # What the wave module raises when a chunk's size points outside the file's own chunk.
        raise WavFormatError(f"WAV file {name} is not a valid WAV file: bad chunk size") from None
    if channels < 1 or sample_rate < 1:
        raise WavFormatError(f"WAV file {name} has {channels} channels at {sample_rate} Hz")
    usable = len(data) - len(data) % (SAMPLE_WIDTH * channels)
    samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
    return WavAudio(sample_rate, channels, samples.reshape(-1, channels) if channels > 1 else samples)


def write_wav(path: WavSource, sample_rate: int, samples: npt.NDArray[np.int16]) -> None:
    """Write samples, shape (n,) or (n, channels), as one 16-bit PCM WAV file."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with WavWriter(path, sample_rate, channels) as writer:
        writer.write(samples)


class WavWriter:
    """A 16-bit PCM WAV file written frame by frame: `write` as audio comes, `close` at the end.

    The header's lengths are written on `close` (the wave module patches them in place),
    so a file whose writer was never closed has a header that says it is empty.
    """

    def __init__(self, path: WavSource, sample_rate: int, channels: int = 1) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames_written = 0
        # The file opened here: a wave writer whose own open fails is left half-built, and its
        # __del__ raises later (AttributeError '_file') wherever the collector runs it.
        self._owned: BinaryIO | None = open(path, "wb") if isinstance(path, str | os.PathLike) else None  # noqa: SIM115
        self._writer = wave.open(self._owned or _openable(path), "wb")
        self._writer.setnchannels(channels)
        self._writer.setsampwidth(SAMPLE_WIDTH)
        self._writer.setframerate(sample_rate)

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples: shape (n,) for mono, (n, channels) otherwise."""
        channels = 1 if samples.ndim == 1 else samples.shape[1]
        if channels != self.channels:
            raise ValueError(f"samples have {channels} channels, the file {self.channels}")
        if samples.dtype != np.int16:
            raise ValueError(f"samples are {samples.dtype}, int16 is required")
        self._writer.writeframes(samples.astype("<i2", copy=False).tobytes())
        self.frames_written += len(samples)

    def close(self) -> None:
        self._writer.close()
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

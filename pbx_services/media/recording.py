"""Call recording: both directions of a call in one stereo WAV (left: leg a, right: leg b).

Each packet's audio is placed on its channel by arrival time, so the two channels stay
aligned and a direction with nothing to say is silence. Within a stream the RTP timestamp
places the packets exactly (network jitter does not tear the audio apart); arrival time
takes over again when the stream changes (a new SSRC) or its timestamps drift more than
`MAX_DRIFT` from the wall clock (a phone that stopped its clock during hold).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pbx_services.rtp.wav import WavWriter
from pbx_services.runtime.file_modes import make_private_dir

SAMPLE_RATE = 8000
CHANNELS = 2
MAX_DRIFT = SAMPLE_RATE // 5
"""Samples (200 ms) a stream may run off the arrival clock before it is placed by arrival again."""
WRITE_DELAY = SAMPLE_RATE
"""Samples (1 s) kept in memory behind the newest one, for late packets of the other channel."""
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._@-]+")
_MAX_NAME_LENGTH = 80


def recording_path(directory: Path, call_id: str, wall_time: float) -> Path:
    """`<call id>-<UTC start time>.wav` in `directory`, the call id made safe as a file name."""
    name = _UNSAFE_NAME_CHARACTERS.sub("_", call_id)[:_MAX_NAME_LENGTH].lstrip(".") or "call"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(wall_time))
    path = directory / f"{name}-{stamp}.wav"
    suffix = 2
    while path.exists():
        path = directory / f"{name}-{stamp}-{suffix}.wav"
        suffix += 1
    return path


class _StreamAnchor:
    __slots__ = ("ssrc", "timestamp", "position")

    def __init__(self, ssrc: int, timestamp: int, position: int) -> None:
        self.ssrc = ssrc
        self.timestamp = timestamp
        self.position = position


class CallRecorder:
    """Writes one call's recording as it goes; `close` finishes the file."""

    def __init__(self, path: Path, *, started: float) -> None:
        make_private_dir(path.parent)
        self.path = path
        self.started = started
        self._file = WavWriter(path, SAMPLE_RATE, CHANNELS)
        self._buffer: npt.NDArray[np.int16] = np.zeros((SAMPLE_RATE * 4, CHANNELS), dtype=np.int16)
        self._base = 0
        """Sample position of `_buffer[0]`: everything before it is in the file."""
        self._end = 0
        """One past the last sample position received on either channel."""
        self._anchors: list[_StreamAnchor | None] = [None, None]

    def add(
        self,
        channel: int,
        samples: npt.NDArray[np.int16],
        *,
        ssrc: int,
        timestamp: int,
        clock_rate: int,
        now: float,
    ) -> None:
        """Place 8 kHz `samples` from leg a (channel 0) or b (1), received at `now`."""
        arrival = round((now - self.started) * SAMPLE_RATE)
        anchor = self._anchors[channel]
        position = arrival
        if anchor is not None and anchor.ssrc == ssrc:
            elapsed = (timestamp - anchor.timestamp) & 0xFFFFFFFF
            if elapsed >= 1 << 31:
                elapsed -= 1 << 32
            position = anchor.position + elapsed * SAMPLE_RATE // clock_rate
        if anchor is None or anchor.ssrc != ssrc or abs(position - arrival) > MAX_DRIFT:
            position = arrival
            self._anchors[channel] = _StreamAnchor(ssrc, timestamp, arrival)
        self._place(channel, samples, position)

    def _place(self, channel: int, samples: npt.NDArray[np.int16], position: int) -> None:
        if position < self._base:  # later than the write delay: the file has moved on
            samples = samples[self._base - position :]
            position = self._base
        if not len(samples):
            return
        end = position + len(samples)
        needed = end - self._base
        if needed > len(self._buffer):
            grown = np.zeros((max(needed, 2 * len(self._buffer)), CHANNELS), dtype=np.int16)
            grown[: len(self._buffer)] = self._buffer
            self._buffer = grown
        self._buffer[position - self._base : end - self._base, channel] = samples
        self._end = max(self._end, end)

    def flush(self) -> None:
        """Write what is older than the write delay."""
        self._write_until(self._end - WRITE_DELAY)

    def close(self) -> None:
        self._write_until(self._end)
        self._file.close()

    def _write_until(self, position: int) -> None:
        count = position - self._base
        if count <= 0:
            return
        self._file.write(self._buffer[:count])
        remaining = self._buffer[count:]
        self._buffer = np.zeros_like(self._buffer)
        self._buffer[: len(remaining)] = remaining
        self._base = position

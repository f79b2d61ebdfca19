"""Tones and files played to one leg: a 20 ms frame of 8 kHz audio at a time, as RTP.

The packets carry the playback's own SSRC, sequence numbers and timestamps (a stream of
its own, not the other phone's), in the codec the leg negotiated.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from pbx_services.rtp.packet import RtpPacket
from pbx_services.rtp.tones import ToneGenerator
from pbx_services.rtp.wav import read_wav

FRAME_SECONDS = 0.02
SAMPLE_RATE = 8000
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_SECONDS)
MAX_LATE_FRAMES = 5
"""Frames sent at once to catch up after a late timer; after a longer stall the stream starts afresh."""


class PlaybackError(Exception):
    """A tone or file that cannot be played; `reason` is the control protocol's error reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def tone_frames(tone: str, plan: str) -> Iterator[npt.NDArray[np.int16]]:
    generator = ToneGenerator(tone, plan=plan, sample_rate=SAMPLE_RATE)
    while True:
        yield generator.next_frame(FRAME_SAMPLES)


def file_frames(path: Path, *, loop: bool) -> Iterator[npt.NDArray[np.int16]]:
    """20 ms frames of an 8 kHz mono 16-bit WAV, the last one padded with silence.

    The file is read at once, so that a bad one is reported before anything plays.
    """
    try:
        audio = read_wav(path)
    except (OSError, ValueError) as exc:
        raise PlaybackError(f"bad field: file ({exc})") from None
    if audio.sample_rate != SAMPLE_RATE or audio.channels != 1:
        raise PlaybackError(
            f"bad field: file (it is {audio.sample_rate} Hz, {audio.channels} channels, not 8000 Hz mono)"
        )
    samples = np.asarray(audio.samples, dtype=np.int16).reshape(-1)
    if not len(samples):
        raise PlaybackError("bad field: file (it holds no audio)")
    padded = np.zeros(-(-len(samples) // FRAME_SAMPLES) * FRAME_SAMPLES, dtype=np.int16)
    padded[: len(samples)] = samples
    return _repeat(padded.reshape(-1, FRAME_SAMPLES), loop=loop)


def _repeat(frames: npt.NDArray[np.int16], *, loop: bool) -> Iterator[npt.NDArray[np.int16]]:
    while True:
        yield from frames
        if not loop:
            return


class Playback:
    """One tone or file being played to a leg, with the RTP stream that carries it."""

    def __init__(self, frames: Iterator[npt.NDArray[np.int16]], *, description: str, now: float) -> None:
        self.frames = frames
        self.description = description
        self.next_at = now
        self.ssrc = secrets.randbits(32)
        self.sequence_number = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.first = True
        self.finished = False

    @property
    def sent(self) -> bool:
        """Whether a packet of it went out."""
        return not self.first

    def continue_stream(self, ssrc: int, sequence_number: int, timestamp: int) -> None:
        """Carry on the phone's stream instead of starting one (see session.OutgoingStream)."""
        self.ssrc, self.sequence_number, self.timestamp = ssrc, sequence_number, timestamp

    def due_frames(self, now: float) -> list[npt.NDArray[np.int16]]:
        """The frames whose time has come; `finished` is set when a file ends."""
        frames: list[npt.NDArray[np.int16]] = []
        while self.next_at <= now and not self.finished:
            if len(frames) == MAX_LATE_FRAMES:
                self.next_at = now + FRAME_SECONDS
                break
            frame = next(self.frames, None)
            if frame is None:
                self.finished = True
                break
            frames.append(frame)
            self.next_at += FRAME_SECONDS
        return frames

    def packet(self, payload_type: int, payload: bytes, clock_rate: int) -> bytes:
        """The next RTP packet of the stream, carrying one frame's `payload`."""
        packet = RtpPacket(
            marker=self.first,
            payload_type=payload_type,
            sequence_number=self.sequence_number,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.first = False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        self.timestamp = (self.timestamp + int(clock_rate * FRAME_SECONDS)) & 0xFFFFFFFF
        return packet.serialize()

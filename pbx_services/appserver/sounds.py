"""What every application server says and plays besides its prompts: sentences spoken by
espeak-ng (`Announcements`), tones, and the music callers wait with.

Announcements are spoken once per text and kept for the worker's life; without espeak-ng a
short tone stands in for each, so the service still works and says in the log why it is not
speaking. Tones and music are synthesised here: nothing is downloaded, nothing needs a file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ..cluster.prompts import SynthesizerMissing, synthesize
from ..cluster.validation import InvalidValue
from .audio import SAMPLE_RATE

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]


def _sine(frequencies: list[float], seconds: float, level: float = 6000.0) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in frequencies) / len(frequencies)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps: no clicks
    return np.asarray(wave * fade * level)


def tone_sequence(frequencies: list[float], each: float = 0.12) -> Samples:
    samples = np.concatenate([_sine([f], each) for f in frequencies]).astype(np.int16)
    samples.flags.writeable = False
    return samples


def _hold_music() -> Samples:
    """Eight bars of soft arpeggiated chords (C, A minor, F, G), about 16 s, looped by the caller."""
    chords = [(261.63, 329.63, 392.0), (220.0, 261.63, 329.63), (174.61, 220.0, 261.63),
              (196.0, 246.94, 293.66)]
    notes = []
    for chord in chords * 2:
        for frequency in (*chord, chord[1]):
            notes.append(_sine([frequency, frequency * 2], 0.5, level=3000.0))
    music = np.concatenate(notes).astype(np.int16)
    music.flags.writeable = False
    return music


HOLD_MUSIC = _hold_music()


class Announcements:
    """Sentences spoken once each and kept; `speak` may be replaced (tests, another voice)."""

    def __init__(self, speak: Callable[[str], Samples] | None = None, voice: str = "en") -> None:
        self._speak = speak or (lambda text: synthesize(text, voice))
        self._silent_reason: str | None = None
        self.say = lru_cache(maxsize=256)(self._say)

    def _say(self, text: str) -> Samples:
        if self._silent_reason is None:
            try:
                samples = self._speak(text)
                samples.flags.writeable = False
                return samples
            except (SynthesizerMissing, InvalidValue) as exc:
                self._silent_reason = str(exc)
                log.error("announcements are tones, not speech: %s", exc)
        return tone_sequence([440.0, 440.0])

"""What a meeting server says and plays: its spoken announcements, the entry and exit tones,
and the music a participant waiting for the moderator hears.

Announcements are spoken by espeak-ng once per text and kept for the worker's life (a
handful of sentences and one per participant count); without espeak-ng a short tone stands
in for each, so the meeting still works and says in the log why it is not speaking. Tones
and music are synthesised here: nothing is downloaded, nothing needs a file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ..appserver.audio import SAMPLE_RATE
from ..cluster.prompts import SynthesizerMissing, synthesize
from ..cluster.validation import InvalidValue

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]

ENTER_PIN = "Please enter the conference PIN, then press the pound key."
WRONG_PIN = "That PIN is not valid."
GOODBYE = "Goodbye."
UNKNOWN_ROOM = "There is no conference at this number. Goodbye."
ROOM_FULL = "This conference is full. Goodbye."
ROOM_LOCKED = "This conference is locked. Goodbye."
WAIT_FOR_MODERATOR = "Please wait. The conference will begin when the moderator joins."
MUTED = "You are muted."
UNMUTED = "You are unmuted."
LOCKED = "The conference is locked."
UNLOCKED = "The conference is unlocked."
ALL_MUTED = "Everyone else is muted."
ALL_UNMUTED = "Everyone else is unmuted."
ENDED = "The conference has ended. Goodbye."
RECORDED = "This conference is being recorded."
ONLY_YOU = "You are the only participant."
REMOVED = "You have been removed from the conference. Goodbye."
RECORDING_STARTED = "Recording has started."
RECORDING_STOPPED = "Recording has stopped."


def participants(count: int) -> str:
    return ONLY_YOU if count <= 1 else f"There are {count} participants."


def _sine(frequencies: list[float], seconds: float, level: float = 6000.0) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(np.sin(2 * np.pi * f * t) for f in frequencies) / len(frequencies)
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.01)  # 10 ms ramps: no clicks
    return np.asarray(wave * fade * level)


def _tone_sequence(frequencies: list[float], each: float = 0.12) -> Samples:
    samples = np.concatenate([_sine([f], each) for f in frequencies])
    samples.flags.writeable = False
    return samples.astype(np.int16)


ENTRY_TONE = _tone_sequence([660.0, 880.0])
EXIT_TONE = _tone_sequence([880.0, 660.0])


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
                log.error("meeting announcements are tones, not speech: %s", exc)
        return _tone_sequence([440.0, 440.0])

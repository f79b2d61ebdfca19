"""Call-progress tones by country (ITU-T E.180 and its Supplement 2), generated frame by frame.

Each plan has the four tones a PBX plays to a caller: dial, ringback (E.180's "ringing
tone"), busy and congestion. A tone is one or two frequencies played together
(E.180's "f1+f2"), or one frequency amplitude-modulated by a low one ("f1×f2"), gated
by a cadence of on/off durations that repeats. Frequencies and cadences are those of
E.180 Supplement 2 for each country; levels are per frequency, from the North American
precise tone plan (E.300 Supplement 3) for "us" and E.180's nominal -10 dBm0 elsewhere.

`ToneGenerator` is sans-IO: each `next_frame` is the next stretch of samples, with the
phase of every oscillator carried from one frame to the next so frame borders are
inaudible, and the cadence followed across frames. E.180 frequencies are whole hertz,
so a tone is periodic: it is computed once, one period long, and frames are slices of it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

TONE_NAMES = ("dial", "ringback", "busy", "congestion")

# A sine at +3.17 dBm0 fills the µ-law range (G.711): the peak of a 0 dBm0 sine on the int16 scale.
DBM0_PEAK = 32768 * 10 ** (-3.17 / 20)
MODULATION_DEPTH = 0.9
"""Depth of the "f1×f2" amplitude modulation; E.180 does not fix it, 90 % is the usual choice."""
NOMINAL_LEVEL_DBM0 = -10.0
MAX_PERIOD = 1 << 22  # samples (8 MiB): far more than any plan's tone needs


@dataclass(frozen=True, slots=True)
class Tone:
    frequencies: tuple[int, ...]
    """One or two frequencies in Hz, played together."""
    level_dbm0: float = NOMINAL_LEVEL_DBM0
    """Level of each frequency (of the modulated tone's envelope peak)."""
    cadence_ms: tuple[int, ...] = ()
    """On, off, on, off... durations in ms, repeated; empty for a continuous tone."""
    modulation_hz: int | None = None
    """E.180's "f1×f2": the (single) frequency is amplitude-modulated at this rate."""

    def __post_init__(self) -> None:
        if not 1 <= len(self.frequencies) <= 2:
            raise ValueError(f"a tone has one or two frequencies, not {len(self.frequencies)}")
        if len(self.cadence_ms) % 2 or any(duration <= 0 for duration in self.cadence_ms):
            raise ValueError(f"a cadence is on/off pairs of positive durations: {self.cadence_ms}")


@dataclass(frozen=True, slots=True)
class TonePlan:
    country: str
    dial: Tone
    ringback: Tone
    busy: Tone
    congestion: Tone

    def tone(self, name: str) -> Tone:
        if name not in TONE_NAMES:
            raise ValueError(f"unknown tone {name!r}; known tones: {', '.join(TONE_NAMES)}")
        tone: Tone = getattr(self, name)
        return tone


def _european(country: str, frequency: int, *, dial: tuple[int, ...] = (), ringback: tuple[int, ...],
              busy: tuple[int, ...], congestion: tuple[int, ...]) -> TonePlan:
    """The plans built on one frequency (425 Hz in most of Europe, E.180's recommendation)."""
    return TonePlan(country, Tone((frequency,), cadence_ms=dial), Tone((frequency,), cadence_ms=ringback),
                    Tone((frequency,), cadence_ms=busy), Tone((frequency,), cadence_ms=congestion))


TONE_PLANS: dict[str, TonePlan] = {
    "us": TonePlan(
        "United States",
        dial=Tone((350, 440), -13),
        ringback=Tone((440, 480), -19, (2000, 4000)),
        busy=Tone((480, 620), -24, (500, 500)),
        congestion=Tone((480, 620), -24, (250, 250)),  # "reorder"
    ),
    "gb": TonePlan(
        "United Kingdom",
        dial=Tone((350, 440)),
        ringback=Tone((400, 450), cadence_ms=(400, 200, 400, 2000)),
        busy=Tone((400,), cadence_ms=(375, 375)),
        congestion=Tone((400,), cadence_ms=(400, 350, 225, 525)),
    ),
    "de": _european("Germany", 425, ringback=(1000, 4000), busy=(480, 480), congestion=(240, 240)),
    "fr": _european("France", 440, ringback=(1500, 3500), busy=(500, 500), congestion=(250, 250)),
    "it": _european("Italy", 425, dial=(200, 200, 600, 1000), ringback=(1000, 4000), busy=(500, 500),
                    congestion=(200, 200)),
    "es": _european("Spain", 425, ringback=(1500, 3000), busy=(200, 200),
                    congestion=(200, 200, 200, 200, 200, 600)),
    "nl": _european("Netherlands", 425, ringback=(1000, 4000), busy=(500, 500), congestion=(250, 250)),
    "br": _european("Brazil", 425, ringback=(1000, 4000), busy=(250, 250), congestion=(250, 250, 750, 250)),
    "au": TonePlan(
        "Australia",
        dial=Tone((425,), modulation_hz=25),
        ringback=Tone((400,), cadence_ms=(400, 200, 400, 2000), modulation_hz=17),
        busy=Tone((425,), cadence_ms=(375, 375)),
        congestion=Tone((425,), cadence_ms=(375, 375)),
    ),
    "jp": TonePlan(
        "Japan",
        dial=Tone((400,)),
        ringback=Tone((400,), cadence_ms=(1000, 2000), modulation_hz=16),
        busy=Tone((400,), cadence_ms=(500, 500)),
        congestion=Tone((400,), cadence_ms=(500, 500)),
    ),
    "in": TonePlan(
        "India",
        dial=Tone((400,), modulation_hz=25),
        ringback=Tone((400,), cadence_ms=(400, 200, 400, 2000), modulation_hz=25),
        busy=Tone((400,), cadence_ms=(750, 750)),
        congestion=Tone((400,), cadence_ms=(250, 250)),
    ),
}


def get_tone(tone: str, plan: str = "us") -> Tone:
    """A tone of a plan; ValueError naming the plan or tone that does not exist."""
    tone_plan = TONE_PLANS.get(plan)
    if tone_plan is None:
        raise ValueError(f"unknown tone plan {plan!r}; known plans: {', '.join(sorted(TONE_PLANS))}")
    return tone_plan.tone(tone)


def tone_period(tone: Tone, sample_rate: int) -> int:
    """Samples after which the tone, cadence included, repeats exactly.

    A frequency of f Hz repeats every sample_rate / gcd(f, sample_rate) samples, and the
    cadence every cycle; the tone repeats at the least common multiple of them all.
    """
    frequencies = [*tone.frequencies, *([tone.modulation_hz] if tone.modulation_hz else [])]
    periods = [sample_rate // math.gcd(frequency, sample_rate) for frequency in frequencies]
    cycle = sum(round(ms * sample_rate / 1000) for ms in tone.cadence_ms)
    return math.lcm(*periods, *([cycle] if cycle else []))


@functools.lru_cache(maxsize=64)
def _one_period(tone: Tone, sample_rate: int) -> npt.NDArray[np.int16]:
    """The samples of one whole period of a tone, computed once per tone and rate."""
    length = tone_period(tone, sample_rate)
    if length > MAX_PERIOD:
        raise ValueError(f"tone {tone} repeats only every {length} samples at {sample_rate} Hz")
    times = np.arange(length) / sample_rate
    signal = sum(np.sin(2 * math.pi * frequency * times) for frequency in tone.frequencies)
    amplitude = DBM0_PEAK * 10 ** (tone.level_dbm0 / 20)
    if tone.modulation_hz:
        signal = signal * (1 + MODULATION_DEPTH * np.sin(2 * math.pi * tone.modulation_hz * times))
        amplitude /= 1 + MODULATION_DEPTH  # the envelope's peak is the level
    if tone.cadence_ms:
        segment_ends = np.cumsum([round(ms * sample_rate / 1000) for ms in tone.cadence_ms])
        positions = np.arange(length) % segment_ends[-1]
        # Even segments of the cadence are "on", odd ones "off".
        signal = signal * (np.searchsorted(segment_ends, positions, side="right") % 2 == 0)
    period = np.round(signal * amplitude).astype(np.int16)
    period.flags.writeable = False  # shared by every generator of this tone
    return period


class ToneGenerator:
    """One tone of one plan, as consecutive frames of int16 samples, looping forever.

    A tone of whole frequencies is periodic: one period of it is computed once (and
    shared), and frames are slices of it, so each oscillator's phase and the cadence
    carry on from one frame to the next at the cost of a copy.
    """

    def __init__(self, tone: str, plan: str = "us", sample_rate: int = 8000) -> None:
        self.tone = get_tone(tone, plan)
        self.sample_rate = sample_rate
        self._period = _one_period(self.tone, sample_rate)
        self._position = 0  # where the next frame starts in the period

    def next_frame(self, samples: int = 160) -> npt.NDArray[np.int16]:
        start = self._position
        end = start + samples
        self._position = end % len(self._period)
        if end <= len(self._period):
            return self._period[start:end].copy()
        return np.take(self._period, np.arange(start, end), mode="wrap")

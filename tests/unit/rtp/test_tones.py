"""Call-progress tones: frequencies by FFT, cadences by the sample, phase continuity at frame borders."""

import numpy as np
import numpy.typing as npt
import pytest

from pbx_services.rtp.tones import (
    DBM0_PEAK,
    TONE_NAMES,
    TONE_PLANS,
    Tone,
    ToneGenerator,
    get_tone,
    tone_period,
)

RATE = 8000


def generate(tone: str, plan: str, seconds: float, frame: int = 160,
             rate: int = RATE) -> npt.NDArray[np.int16]:
    """`seconds` of a tone, generated `frame` samples at a time."""
    generator = ToneGenerator(tone, plan, sample_rate=rate)
    total = round(seconds * rate)
    frames = [generator.next_frame(frame) for _ in range(-(-total // frame))]
    return np.concatenate(frames)[:total]


def spectral_peaks(samples: npt.NDArray[np.int16], rate: int = RATE, count: int = 2) -> list[int]:
    """The `count` strongest frequencies, in Hz, of a whole number of seconds of samples (1 Hz bins)."""
    spectrum = np.abs(np.fft.rfft(samples[:rate]))
    return sorted(int(bin_) for bin_ in np.argsort(spectrum)[-count:])


def assert_cadence(samples: npt.NDArray[np.int16], cadence_ms: list[int], rate: int = RATE) -> None:
    """Exactly silent in each pause; sounding all through each tone, up to its first and last 5 samples."""
    start = 0
    for index, duration in enumerate(cadence_ms):
        end = start + duration * rate // 1000
        stretch = samples[start:end]
        if index % 2:
            assert not stretch.any(), f"pause {index} at {start} is not silent"
        else:
            # The tone crosses zero now and then, but it never stays silent for 10 ms.
            assert stretch[:5].any() and stretch[-5:].any(), f"tone {index} at {start} is cut short"
            blocks = stretch[:len(stretch) // 80 * 80].reshape(-1, 80)
            assert np.all(np.abs(blocks).max(axis=1) > 0), f"tone {index} at {start} has a gap"
        start = end
    assert start == len(samples)


def test_every_plan_has_the_four_tones() -> None:
    assert {"us", "gb", "de", "fr", "it", "es", "nl", "au", "jp", "in", "br"} <= set(TONE_PLANS)
    assert TONE_NAMES == ("dial", "ringback", "busy", "congestion")
    for plan in TONE_PLANS.values():
        for name in TONE_NAMES:
            assert isinstance(plan.tone(name), Tone)


@pytest.mark.parametrize(("plan", "tone", "frequencies", "cadence"), [
    ("us", "dial", (350, 440), ()),
    ("us", "ringback", (440, 480), (2000, 4000)),
    ("us", "busy", (480, 620), (500, 500)),
    ("us", "congestion", (480, 620), (250, 250)),
    ("gb", "ringback", (400, 450), (400, 200, 400, 2000)),
    ("gb", "busy", (400,), (375, 375)),
    ("gb", "congestion", (400,), (400, 350, 225, 525)),
    ("de", "dial", (425,), ()),
    ("de", "busy", (425,), (480, 480)),
    ("fr", "ringback", (440,), (1500, 3500)),
    ("it", "dial", (425,), (200, 200, 600, 1000)),
    ("es", "congestion", (425,), (200, 200, 200, 200, 200, 600)),
    ("jp", "ringback", (400,), (1000, 2000)),
    ("in", "busy", (400,), (750, 750)),
])
def test_e180_values(plan: str, tone: str, frequencies: tuple[int, ...], cadence: tuple[int, ...]) -> None:
    spec = get_tone(tone, plan)
    assert (spec.frequencies, spec.cadence_ms) == (frequencies, cadence)


def test_us_ringback_is_440_and_480_hz_two_seconds_on_four_off() -> None:
    samples = generate("ringback", "us", 12)
    assert spectral_peaks(samples) == [440, 480]
    assert_cadence(samples, [2000, 4000, 2000, 4000])


def test_gb_ringback_is_400_and_450_hz_with_the_double_ring() -> None:
    samples = generate("ringback", "gb", 6)
    assert spectral_peaks(samples) == [400, 450]
    assert_cadence(samples, [400, 200, 400, 2000] * 2)


def test_continuous_tones_never_pause() -> None:
    samples = generate("dial", "de", 2)
    assert spectral_peaks(samples, count=1) == [425]
    assert_cadence(samples, [2000])


def test_modulated_tone_has_the_carrier_and_its_sidebands() -> None:
    # India's dial tone, E.180's "400×25": 400 Hz amplitude-modulated at 25 Hz.
    samples = generate("dial", "in", 1)
    assert spectral_peaks(samples, count=3) == [375, 400, 425]


def test_levels_follow_the_plan() -> None:
    # US dial tone: 350 Hz and 440 Hz at -13 dBm0 each; the peaks add up when the two are in phase.
    peak = DBM0_PEAK * 10 ** (-13 / 20)
    samples = generate("dial", "us", 1)
    assert 1.99 * peak < np.abs(samples).max() <= 2 * peak + 1
    rms = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
    assert rms == pytest.approx(peak, rel=0.01)  # two sines of amplitude A: rms = A


def test_frames_join_without_a_discontinuity() -> None:
    whole = generate("ringback", "us", 1, frame=8000)
    for frame in (160, 37, 320):
        assert np.abs(generate("ringback", "us", 1, frame=frame).astype(int) - whole).max() <= 1, frame
    framed = generate("dial", "gb", 1, frame=160).astype(int)
    steps = np.abs(np.diff(framed))
    borders = steps[159::160]
    assert borders.max() <= steps.max()
    # No border step is larger than the tone's own steepest step within a frame.
    assert borders.max() <= np.delete(steps, np.arange(159, len(steps), 160)).max()


def test_cadence_loops_across_frames_of_any_size() -> None:
    reference = generate("busy", "us", 3, frame=8000)
    assert np.array_equal(generate("busy", "us", 3, frame=100) != 0, reference != 0)


@pytest.mark.parametrize(("tone", "plan", "rate", "period"), [
    ("dial", "us", 8000, 800),  # 350 Hz repeats every 160 samples, 440 Hz every 200
    ("ringback", "us", 8000, 48000),  # the 6 s cadence
    ("busy", "de", 8000, 7680),  # 0.96 s, a whole number of 425 Hz periods (320 samples)
    ("ringback", "au", 8000, 24000),  # 400 Hz modulated at 17 Hz: the 3 s cadence again
    ("ringback", "us", 48000, 288000),
])
def test_tones_repeat_exactly(tone: str, plan: str, rate: int, period: int) -> None:
    assert tone_period(get_tone(tone, plan), rate) == period
    generator = ToneGenerator(tone, plan, sample_rate=rate)
    first = generator.next_frame(period + 160)
    assert np.array_equal(first[:160], first[period:])


def test_generators_of_one_tone_share_its_samples_but_not_their_frames() -> None:
    one, other = ToneGenerator("busy", "gb"), ToneGenerator("busy", "gb")
    frame = one.next_frame()
    frame[:] = 0
    assert other.next_frame().any()


def test_other_sample_rates() -> None:
    samples = generate("ringback", "us", 1, frame=320, rate=16000)
    assert spectral_peaks(samples, rate=16000) == [440, 480]
    assert_cadence(generate("busy", "us", 2, frame=320, rate=16000), [500] * 4, rate=16000)


def test_unknown_plan_or_tone_is_named() -> None:
    with pytest.raises(ValueError) as caught:
        ToneGenerator("dial", "xx")
    known = "au, br, de, es, fr, gb, in, it, jp, nl, us"
    assert str(caught.value) == f"unknown tone plan 'xx'; known plans: {known}"
    with pytest.raises(ValueError) as caught:
        ToneGenerator("howler", "us")
    assert str(caught.value) == "unknown tone 'howler'; known tones: dial, ringback, busy, congestion"


def test_a_tone_is_validated() -> None:
    with pytest.raises(ValueError, match=r"^a tone has one or two frequencies, not 3$"):
        Tone((1, 2, 3))
    with pytest.raises(ValueError, match=r"^a cadence is on/off pairs of positive durations: \(100,\)$"):
        Tone((400,), cadence_ms=(100,))

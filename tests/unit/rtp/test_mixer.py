"""The conference mixer: N-1 mixes, saturation, and agreement with the obvious per-participant sum."""

import numpy as np
import pytest

from pbx_services.rtp.mixer import mix, mix_all


def frame(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int16)


def test_each_participant_hears_the_others() -> None:
    mixes = mix([frame(1, 10), frame(2, 20), frame(4, 40)])
    assert [m.tolist() for m in mixes] == [[6, 60], [5, 50], [3, 30]]
    assert all(m.dtype == np.int16 for m in mixes)


def test_sums_saturate_instead_of_wrapping() -> None:
    mixes = mix([frame(30000, -30000), frame(30000, -30000), frame(30000, -30000)])
    assert [m.tolist() for m in mixes] == [[32767, -32768]] * 3
    assert mix_all([frame(30000, -30000), frame(30000, -30000)]).tolist() == [32767, -32768]


def test_saturation_happens_after_the_sum() -> None:
    # 30000 + 30000 - 30000: an int16 running sum would have wrapped on the way.
    assert mix([frame(0), frame(30000), frame(30000), frame(-30000)])[0].tolist() == [30000]


def test_alone_one_hears_silence() -> None:
    assert [m.tolist() for m in mix([frame(5, 6)])] == [[0, 0]]
    assert mix([]) == []


def test_mix_all() -> None:
    assert mix_all([frame(1, 2), frame(3, 4)]).tolist() == [4, 6]
    with pytest.raises(ValueError, match=r"^no frames to mix$"):
        mix_all([])


def test_frames_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^frames to mix differ in length: \[1, 2\]$"):
        mix([frame(1, 2), frame(1)])


def test_agrees_with_the_per_participant_sum() -> None:
    rng = np.random.default_rng(5)
    frames = [rng.integers(-20000, 20000, 160).astype(np.int16) for _ in range(10)]
    for own, mixed in enumerate(mix(frames)):
        others = sum(f.astype(np.int64) for index, f in enumerate(frames) if index != own)
        assert mixed.tolist() == np.clip(others, -32768, 32767).tolist()

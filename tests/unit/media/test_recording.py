"""Tests for pbx_services/media/recording.py: channels placed by arrival, aligned, silence between."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pbx_services.media.recording import CallRecorder, recording_path
from pbx_services.rtp.wav import read_wav

FRAME = 160


def frame(value: int) -> np.ndarray:
    return np.full(FRAME, value, dtype=np.int16)


def recorded(recorder: CallRecorder) -> np.ndarray:
    recorder.close()
    audio = read_wav(recorder.path)
    assert (audio.sample_rate, audio.channels) == (8000, 2)
    return audio.samples


def test_each_leg_has_its_channel_and_they_stay_aligned(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", started=100.0)
    for index in range(10):
        now = 100.0 + 0.02 * index
        recorder.add(0, frame(1000), ssrc=1, timestamp=5000 + FRAME * index, clock_rate=8000, now=now)
        # b's packets arrive 5 ms after a's: the same 20 ms of talk on both channels
        recorder.add(1, frame(-2000), ssrc=2, timestamp=9 + FRAME * index, clock_rate=8000, now=now + 0.005)
    samples = recorded(recorder)
    assert np.flatnonzero(samples[:, 0])[0] == 0 and np.count_nonzero(samples[:, 0] == 1000) == 1600
    assert np.flatnonzero(samples[:, 1])[0] == 40 and np.count_nonzero(samples[:, 1] == -2000) == 1600


def test_a_leg_that_starts_later_starts_later_in_the_file(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", started=0.0)
    recorder.add(0, frame(1000), ssrc=1, timestamp=0, clock_rate=8000, now=0.0)
    recorder.add(1, frame(1000), ssrc=2, timestamp=0, clock_rate=8000, now=2.0)
    samples = recorded(recorder)
    assert len(samples) == 2 * 8000 + FRAME
    assert not samples[FRAME:16000].any()  # silence on both channels while nothing arrived
    assert (samples[16000:, 1] == 1000).all() and not samples[16000:, 0].any()


def test_jitter_does_not_tear_a_stream_apart(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", started=0.0)
    arrivals = [0.0, 0.031, 0.035, 0.061, 0.08]  # late, then bunched: timestamps place them
    for index, now in enumerate(arrivals):
        recorder.add(0, frame(index + 1), ssrc=7, timestamp=FRAME * index, clock_rate=8000, now=now)
    samples = recorded(recorder)[:, 0]
    assert list(samples[::FRAME]) == [1, 2, 3, 4, 5]


def test_a_new_stream_or_a_clock_far_off_is_placed_by_arrival(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", started=0.0)
    recorder.add(0, frame(1), ssrc=7, timestamp=0, clock_rate=8000, now=0.0)
    recorder.add(0, frame(2), ssrc=7, timestamp=FRAME, clock_rate=8000, now=1.0)  # 1 s late: a held clock
    recorder.add(0, frame(3), ssrc=8, timestamp=123456, clock_rate=8000, now=1.5)  # another SSRC
    samples = recorded(recorder)[:, 0]
    assert samples[0] == 1 and samples[8000] == 2 and samples[12000] == 3
    assert not samples[FRAME:8000].any()


def test_flush_writes_all_but_the_last_second(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "call.wav", started=0.0)
    for index in range(150):  # 3 s
        recorder.add(0, frame(5), ssrc=1, timestamp=FRAME * index, clock_rate=8000, now=0.02 * index)
    recorder.flush()
    # a late packet of b, within the last second, still lands in its place
    recorder.add(1, frame(9), ssrc=2, timestamp=0, clock_rate=8000, now=2.5)
    samples = recorded(recorder)
    assert len(samples) == 24000
    assert (samples[20000 : 20000 + FRAME, 1] == 9).all()


def test_recording_names_are_safe_and_unique(tmp_path: Path) -> None:
    first = recording_path(tmp_path, "../a b@host;x", 1_700_000_000.0)
    assert first.parent == tmp_path and first.name == "_a_b@host_x-20231114T221320Z.wav"
    first.touch()
    assert (
        recording_path(tmp_path, "../a b@host;x", 1_700_000_000.0).name
        == "_a_b@host_x-20231114T221320Z-2.wav"
    )


def test_the_recordings_directory_is_made_private(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "recordings" / "2026" / "call.wav", started=0.0)
    recorder.close()

    for directory in (tmp_path / "recordings", tmp_path / "recordings" / "2026"):
        assert directory.stat().st_mode & 0o777 == 0o700, directory

"""The IVR end to end: pjsua2 phones call a menu of `pbx allinone`, hear its prompts, press keys
(RFC 4733 and in-band) and are sent on by REFER through the Call Manager.

What the phones heard is checked in their recordings: each prompt is a signal of its own
(a chirp for the greeting, a steady tone for the invalid and timeout prompts) found by
correlation and by energy at its frequency; the callee sends a 1 kHz tone, which the caller
hears once connected. The IVR leaving the call is checked in /health (no IVR call left,
no session on the IVR endpoint).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pbx_services.cluster.config import sqlite_url_for
from pbx_services.cluster.database import create_engine_for
from pbx_services.cluster.models import IvrMenu, IvrOption, Prompt, Tenant
from pbx_services.rtp.codecs import resample
from pbx_services.rtp.wav import read_wav, write_wav
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

pytestmark = pytest.mark.integration

RATE = 8000
GREETING_SECONDS = 2.0
CALLEE_TONE = 1000.0
INVALID_TONE = 500.0
TIMEOUT_TONE = 1500.0


def chirp(seconds: float, start: float, end: float) -> npt.NDArray[np.int16]:
    times = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * (start * times + (end - start) * times ** 2 / (2 * seconds))
    return (np.sin(phase) * 9000).astype(np.int16)


def tone(frequency: float, seconds: float, level: float = 9000) -> npt.NDArray[np.int16]:
    times = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * frequency * times) * level).astype(np.int16)


GREETING = chirp(GREETING_SECONDS, 300, 3000)
PROMPTS = {"greeting": GREETING, "invalid": tone(INVALID_TONE, 0.6), "timeout": tone(TIMEOUT_TONE, 0.6)}


def add_menu(data_dir: Path, *, number: str = "800", options: dict[str, str], timeout: int = 2,
             retries: int = 1, final: str = "hangup") -> None:
    """The prompts and the menu, straight into the database (the CLI's own tests cover `pbx ivr`)."""
    engine = create_engine_for(sqlite_url_for(data_dir))
    with Session(engine) as session, session.begin():
        tenant = session.scalars(select(Tenant).where(Tenant.domain == "pbx.local")).one()
        prompts = {name: Prompt(tenant_id=tenant.id, name=name, audio=samples.astype("<i2").tobytes(),
                                source="test") for name, samples in PROMPTS.items()}
        session.add_all(prompts.values())
        session.flush()
        menu = IvrMenu(tenant_id=tenant.id, number=number, greeting_id=prompts["greeting"].id,
                       invalid_prompt_id=prompts["invalid"].id, timeout_prompt_id=prompts["timeout"].id,
                       timeout=timeout, inter_digit_timeout=2, retries=retries, final_destination=final)
        menu.options = [IvrOption(digits=digits, destination=destination)
                        for digits, destination in options.items()]
        session.add(menu)
    engine.dispose()


@pytest.fixture
def ivr_pbx(tmp_path: Path) -> Iterator[PbxServer]:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    add_menu(data_dir, options={"2": "1002", "3": "1003"}, final="1003")
    with running_pbx(data_dir) as server:
        for extension in ("1001", "1002", "1003"):
            server.add_user(extension)
        yield server


def phone(server: PbxServer, user: str, **options: object) -> Pjsua2Phone:
    device = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address,
                         port=free_port(), domain=server.domain, **options)  # type: ignore[arg-type]
    assert device.register()["code"] == 200
    return device


def received(path: Path) -> npt.NDArray[np.float64]:
    """A phone's recording as 8 kHz floats."""
    audio = read_wav(path)
    samples = audio.samples if audio.channels == 1 else audio.samples[:, 0]
    if audio.sample_rate != RATE:
        samples = resample(samples, audio.sample_rate, RATE)
    return samples.astype(np.float64)


def level_at(samples: npt.NDArray[np.float64], frequency: float) -> float:
    """Amplitude of `frequency` in `samples` (a windowed DFT bin), 0 for silence."""
    if len(samples) < 160:
        return 0.0
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window)) / (window.sum() / 2)
    bin_ = int(round(frequency * len(samples) / RATE))
    return float(spectrum[max(0, bin_ - 2):bin_ + 3].max())


def greeting_start(samples: npt.NDArray[np.float64]) -> int:
    """Where the greeting starts in `samples`: the first 20 ms that are not silent."""
    frames = samples[: len(samples) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt(np.mean(frames ** 2, axis=1)) > 1000)
    assert len(loud), "nothing was heard"
    return int(loud[0]) * 160


def greeting_track(samples: npt.NDArray[np.float64], start: int, seconds: float = GREETING_SECONDS) -> float:
    """The share of 100 ms windows from `start` whose strongest frequency is where the
    greeting's sweep is at that time (a jitter buffer stretching the audio a little, or a
    codec changing its phase, does not hide it; anything else does)."""
    step = RATE // 10
    matches = windows = 0
    for index in range(int(seconds * 10) - 1):
        segment = samples[start + index * step: start + (index + 1) * step]
        if len(segment) < step:
            break
        windows += 1
        spectrum = np.abs(np.fft.rfft(segment * np.hanning(step)))
        peak = float(np.argmax(spectrum)) * RATE / step
        expected = 300 + (3000 - 300) * (index + 0.5) / (10 * GREETING_SECONDS)
        matches += abs(peak - expected) <= 100
    return matches / max(windows, 1)


def call_menu(caller: Pjsua2Phone, number: str = "800") -> float:
    caller.send("call", uri=f"sip:{number}@pbx.local")
    caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=10)
    return time.monotonic()


def ivr_calls(server: PbxServer) -> int:
    health = server.health()
    return sum(int(endpoint["calls"]) for endpoint in health["application_endpoints"])


def tone_file(tmp_path: Path, frequency: float) -> Path:
    path = tmp_path / f"tone-{int(frequency)}.wav"
    write_wav(path, RATE, tone(frequency, 5.0, level=6000))
    return path


@pytest.mark.parametrize("method", ["rfc4733", "inband"])
def test_greeting_heard_then_2_connects_the_caller_to_the_extension(ivr_pbx: PbxServer, tmp_path: Path,
                                                                    method: str) -> None:
    # A softphone out of the box (its whole codec list) calls the menu.
    caller = phone(ivr_pbx, "1001", codecs=None, record=tmp_path / "caller.wav")
    callee = phone(ivr_pbx, "1002", auto_answer=True, play=tone_file(tmp_path, CALLEE_TONE))
    try:
        call_menu(caller)
        time.sleep(GREETING_SECONDS + 0.5)
        assert ivr_calls(ivr_pbx) == 1
        if method == "rfc4733":
            caller.dtmf("2")
        else:
            caller.inband_dtmf("2")
        callee.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=10)
        time.sleep(2.5)
        assert ivr_calls(ivr_pbx) == 0, "the IVR is still in the call"
        assert ivr_pbx.health()["calls"] == 0
        before = callee.stats()["rx_packets"]
        time.sleep(1)
        assert callee.stats()["rx_packets"] - before > 30, "no RTP from the caller reaches the callee"
    finally:
        caller.send("hangup")
        time.sleep(0.5)
        caller.close()
        callee.close()
    audio = received(tmp_path / "caller.wav")
    heard = greeting_track(audio, greeting_start(audio))
    assert heard >= 0.9, f"the greeting was not heard ({heard:.0%} of it matches)"
    tail = audio[-int(2 * RATE):]
    assert level_at(tail, CALLEE_TONE) > 1000, "the caller does not hear the callee after the transfer"
    [cdr] = ivr_pbx.wait_for_cdrs(1)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("1001", "800", "ANSWERED")


def test_a_digit_during_the_greeting_cuts_it_short(ivr_pbx: PbxServer, tmp_path: Path) -> None:
    caller = phone(ivr_pbx, "1001", record=tmp_path / "caller.wav")
    callee = phone(ivr_pbx, "1003", auto_answer=True, play=tone_file(tmp_path, CALLEE_TONE))
    try:
        call_menu(caller)
        time.sleep(0.6)
        caller.dtmf("3")
        callee.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=10)
        time.sleep(1.5)
    finally:
        caller.send("hangup")
        time.sleep(0.5)
        caller.close()
        callee.close()
    audio = received(tmp_path / "caller.wav")
    start = greeting_start(audio)
    assert greeting_track(audio, start, seconds=0.5) >= 0.75, "the greeting did not start"
    # The greeting's last second (its 1650-3000 Hz sweep) never played: the key stopped it.
    late_part = audio[start + int(1.2 * RATE): start + int(GREETING_SECONDS * RATE)]
    assert level_at(late_part, 2500) < 300, "the greeting went on after the digit"


def test_no_input_plays_the_timeout_prompt_then_goes_to_the_final_destination(
        ivr_pbx: PbxServer, tmp_path: Path) -> None:
    caller = phone(ivr_pbx, "1001", record=tmp_path / "caller.wav")
    final = phone(ivr_pbx, "1003", auto_answer=True)
    try:
        started = call_menu(caller)
        # greeting 2 s, 2 s of silence, timeout prompt and greeting again, 2 s more: the final destination.
        final.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=20)
        assert time.monotonic() - started > 2 * (GREETING_SECONDS + 2)
    finally:
        caller.send("hangup")
        time.sleep(0.5)
        caller.close()
        final.close()
    audio = received(tmp_path / "caller.wav")
    assert level_at(audio[: int(8 * RATE)], TIMEOUT_TONE) > 1000, "the timeout prompt was not played"
    assert level_at(audio[: int(8 * RATE)], INVALID_TONE) < 300


def test_invalid_digits_play_the_invalid_prompt_then_go_to_the_final_destination(
        ivr_pbx: PbxServer, tmp_path: Path) -> None:
    caller = phone(ivr_pbx, "1001", record=tmp_path / "caller.wav")
    final = phone(ivr_pbx, "1003", auto_answer=True)
    try:
        call_menu(caller)
        time.sleep(GREETING_SECONDS + 0.3)
        caller.dtmf("7")  # no such option: invalid prompt, greeting again
        time.sleep(0.6 + 0.5)
        caller.dtmf("7")  # retries used up: the final destination
        final.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=10)
    finally:
        caller.send("hangup")
        time.sleep(0.5)
        caller.close()
        final.close()
    audio = received(tmp_path / "caller.wav")
    assert level_at(audio[: int(6 * RATE)], INVALID_TONE) > 1000, "the invalid prompt was not played"

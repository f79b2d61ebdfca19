"""Calls through the all-in-one PBX with its embedded media server, checked by what the pjsua2 phones hear.

Every call's audio flows through the media server: each phone's SDP points at it, the
tones each phone plays arrive at the other end (transcoded between PCMU and PCMA when
the phones share no codec), DTMF passes through, the caller hears ringback while the
callee rings, a recording holds both directions, and a call that finds no free media
port is refused with 503.

The tones are generated into tmp_path; frequencies are read from the phones' recordings
(or the media server's) by FFT, skipping the first half second (jitter buffer start-up).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tests.integration.conftest import PbxServer, free_port, media_ports, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

pytestmark = pytest.mark.integration

TONE_SAMPLE_RATE = 8000
CALLER_HZ = 1000.0
CALLEE_HZ = 600.0
RINGBACK_HZ = (440.0, 480.0)  # the US ringback (ITU-T E.180), the default tone plan
FREQUENCY_TOLERANCE = 15.0
SETTLE_SECONDS = 0.5
"""Audio skipped at the start of a recording: jitter buffer and stream start-up."""
TALK_SECONDS = 3.0

_extensions = itertools.count(2001)


# -- helpers (test_media_failover.py uses some) ------------------------------------------

def in_range(address: str, port_range: tuple[int, int]) -> bool:
    """Whether "ip:port" is on 127.0.0.1 with the port inside `port_range` (inclusive)."""
    host, _, port = address.rpartition(":")
    return host == "127.0.0.1" and port_range[0] <= int(port) <= port_range[1]


def media_ports_for_one_call() -> tuple[int, int]:
    """Two RTP/RTCP pairs (one per leg), all four ports free: room for exactly one call."""
    for _ in range(50):
        first = media_ports()[0]
        try:
            for port in range(first, first + 4):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + 3
    raise RuntimeError("no four free media ports")


def state(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["state"] == name


def connect(caller: Pjsua2Phone, callee: Pjsua2Phone, pbx: PbxServer | MediaPbx, *,
            ring_seconds: float | None = None) -> None:
    """Call from `caller` to `callee` until both are CONFIRMED.

    A callee started with `auto_answer` answers at once; otherwise it rings (180 without
    SDP) for `ring_seconds` before the test answers it.
    """
    caller.send("call", uri=f"sip:{callee.user}@{pbx.address}")
    callee.wait_for("incoming")
    if ring_seconds is not None:
        assert caller.wait_for("call_state", state("EARLY"))["code"] == 180
        time.sleep(ring_seconds)
        callee.send("answer", code=200)
    assert caller.wait_for("call_state", state("CONFIRMED"))["code"] == 200
    callee.wait_for("call_state", state("CONFIRMED"))


def next_event(phone: Pjsua2Phone, name: str, seconds: float) -> dict[str, Any] | None:
    """The phone's next `name` event within `seconds`, or None."""
    try:
        return phone.wait_for(name, timeout=seconds)
    except TimeoutError:
        return None


def hang_up(phone: Pjsua2Phone, other: Pjsua2Phone) -> None:
    phone.send("hangup")
    phone.wait_for("call_state", state("DISCONNECTED"))
    other.wait_for("call_state", state("DISCONNECTED"))


def write_tone(path: Path, hz: float, seconds: float = 2.0) -> Path:
    """An 8 kHz mono 16-bit WAV of a sine at `hz` (a whole number of cycles, so it loops cleanly)."""
    samples = np.arange(int(TONE_SAMPLE_RATE * seconds)) / TONE_SAMPLE_RATE
    pcm = (np.sin(2 * np.pi * hz * samples) * 8000).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(TONE_SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())
    return path


Signal = npt.NDArray[np.float64]


def read_wav(path: Path) -> tuple[int, Signal]:
    """(sample rate, samples as float of shape (frames, channels)) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2, f"{path}: {wav.getsampwidth() * 8}-bit samples"
        rate, channels = wav.getframerate(), wav.getnchannels()
        frames = wav.readframes(wav.getnframes())
    return rate, np.frombuffer(frames, "<i2").astype(np.float64).reshape(-1, channels)


def spectrum(samples: Signal, rate: int) -> tuple[Signal, Signal]:
    """(frequencies, magnitudes) of a Hann-windowed mono signal, from 100 Hz up."""
    assert len(samples) > rate // 10, f"only {len(samples)} samples to analyse"
    magnitudes = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    audible = frequencies >= 100
    return frequencies[audible], magnitudes[audible]


def dominant_frequency(samples: Signal, rate: int) -> float:
    frequencies, magnitudes = spectrum(samples, rate)
    return float(frequencies[magnitudes.argmax()])


def heard(path: Path, *, start: float = SETTLE_SECONDS, end: float | None = None) -> list[float]:
    """The dominant frequency of each channel of a recording between `start` and `end` seconds."""
    rate, samples = read_wav(path)
    span = samples[int(start * rate):None if end is None else int(end * rate)]
    return [dominant_frequency(span[:, channel], rate) for channel in range(span.shape[1])]


def assert_tone(frequency: float, expected: float, who: str) -> None:
    assert abs(frequency - expected) <= FREQUENCY_TOLERANCE, (
        f"{who} heard {frequency:.0f} Hz, expected {expected:.0f} Hz")


# -- fixtures ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MediaPbx:
    server: PbxServer
    media_ports: tuple[int, int]
    """The RTP port range of its embedded media server."""

    @property
    def address(self) -> str:
        return self.server.address


@contextlib.contextmanager
def media_pbx(data_dir: Path, port_range: tuple[int, int], **env: str) -> Iterator[MediaPbx]:
    ports = {"PBX_MEDIA__PORT_MIN": str(port_range[0]), "PBX_MEDIA__PORT_MAX": str(port_range[1])}
    with running_pbx(data_dir, {**ports, **env}) as server:
        yield MediaPbx(server, port_range)


@pytest.fixture(scope="module")
def shared_media_pbx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaPbx]:
    """One all-in-one PBX for the tests whose calls do not disturb each other."""
    with media_pbx(tmp_path_factory.mktemp("pbx") / "data", media_ports()) as server:
        yield server


@pytest.fixture
def own_media_pbx(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MediaPbx]:
    """A PBX for one test: `@pytest.mark.pbx_env(...)` adds configuration; an indirect
    parameter "one call" gives it media ports for one call only."""
    marker = request.node.get_closest_marker("pbx_env")
    one_call = getattr(request, "param", None) == "one call"
    port_range = media_ports_for_one_call() if one_call else media_ports()
    with media_pbx(tmp_path / "data", port_range, **(marker.kwargs if marker else {})) as server:
        yield server


NewPhone = Callable[..., Pjsua2Phone]


@pytest.fixture
def new_phone() -> Iterator[NewPhone]:
    """`new_phone(pbx, codecs=..., play=..., record=..., auto_answer=...)`: a phone registered
    with a new extension; every phone is closed at the end of the test."""
    started: list[Pjsua2Phone] = []

    def make(pbx: MediaPbx, **options: Any) -> Pjsua2Phone:
        extension = str(next(_extensions))
        phone = Pjsua2Phone(user=extension, password=pbx.server.add_user(extension), server=pbx.address,
                            port=free_port(), **options)
        started.append(phone)
        assert phone.register()["code"] == 200
        return phone

    try:
        yield make
    finally:
        for phone in started:
            phone.close()


def cdr_of(pbx: MediaPbx, caller: Pjsua2Phone, timeout: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        rows = [row for row in pbx.server.cdrs() if row["caller"] == caller.user]
        if rows or time.monotonic() > deadline:
            assert rows, f"no CDR for a call from {caller.user}"
            return rows[-1]
        time.sleep(0.2)


# -- tests -------------------------------------------------------------------------------------

def test_each_phone_sends_its_rtp_to_the_media_server(shared_media_pbx: MediaPbx,
                                                      new_phone: NewPhone) -> None:
    pbx = shared_media_pbx
    caller, callee = new_phone(pbx), new_phone(pbx, auto_answer=True)
    connect(caller, callee, pbx)
    time.sleep(1)
    caller_info, callee_info = caller.media_info(), callee.media_info()
    for info, other in ((caller_info, callee_info), (callee_info, caller_info)):
        assert info["active"], info
        assert in_range(info["remote_rtp"], pbx.media_ports), (
            f"{info} is not the media server's (ports {pbx.media_ports})")
        assert info["remote_rtp"] != other["local_rtp"], "RTP goes phone to phone"
    # Each leg has its own port pair on the media server.
    assert caller_info["remote_rtp"] != callee_info["remote_rtp"]
    assert caller.stats()["rx_packets"] >= 25 and callee.stats()["rx_packets"] >= 25
    hang_up(caller, callee)


def test_each_phone_hears_the_others_tone(shared_media_pbx: MediaPbx, new_phone: NewPhone,
                                          tmp_path: Path) -> None:
    pbx = shared_media_pbx
    caller = new_phone(pbx, play=write_tone(tmp_path / "caller.wav", CALLER_HZ),
                       record=tmp_path / "caller-heard.wav")
    callee = new_phone(pbx, play=write_tone(tmp_path / "callee.wav", CALLEE_HZ),
                       record=tmp_path / "callee-heard.wav", auto_answer=True)
    connect(caller, callee, pbx)
    time.sleep(TALK_SECONDS)
    hang_up(caller, callee)
    caller.close()
    callee.close()  # the recordings are complete once the phones have quit
    [caller_heard] = heard(tmp_path / "caller-heard.wav")
    [callee_heard] = heard(tmp_path / "callee-heard.wav")
    assert_tone(callee_heard, CALLER_HZ, "the callee")
    assert_tone(caller_heard, CALLEE_HZ, "the caller")


def test_pcmu_phone_calls_pcma_phone_through_transcoding(shared_media_pbx: MediaPbx, new_phone: NewPhone,
                                                         tmp_path: Path) -> None:
    pbx = shared_media_pbx
    caller = new_phone(pbx, codecs="PCMU", play=write_tone(tmp_path / "caller.wav", CALLER_HZ),
                       record=tmp_path / "caller-heard.wav")
    callee = new_phone(pbx, codecs="PCMA", play=write_tone(tmp_path / "callee.wav", CALLEE_HZ),
                       record=tmp_path / "callee-heard.wav", auto_answer=True)
    assert (caller.codecs, callee.codecs) == (["PCMU/8000/1"], ["PCMA/8000/1"])
    connect(caller, callee, pbx)
    time.sleep(1)
    assert caller.media_info()["codec"] == "PCMU"
    assert callee.media_info()["codec"] == "PCMA"
    time.sleep(TALK_SECONDS - 1)
    hang_up(callee, caller)
    caller.close()
    callee.close()
    [caller_heard] = heard(tmp_path / "caller-heard.wav")
    [callee_heard] = heard(tmp_path / "callee-heard.wav")
    assert_tone(callee_heard, CALLER_HZ, "the PCMA callee")
    assert_tone(caller_heard, CALLEE_HZ, "the PCMU caller")


def test_rfc4733_digits_pass_through(shared_media_pbx: MediaPbx, new_phone: NewPhone) -> None:
    pbx = shared_media_pbx
    caller, callee = new_phone(pbx), new_phone(pbx, auto_answer=True)
    connect(caller, callee, pbx)
    time.sleep(0.5)
    caller.dtmf("159#")
    assert callee.received_digits(4) == "159#"
    assert next_event(callee, "dtmf", 1.5) is None, "a digit more than were sent"
    hang_up(caller, callee)


def test_caller_hears_ringback_while_the_callee_rings(shared_media_pbx: MediaPbx, new_phone: NewPhone,
                                                      tmp_path: Path) -> None:
    pbx = shared_media_pbx
    caller = new_phone(pbx, record=tmp_path / "caller-heard.wav")
    callee = new_phone(pbx, play=write_tone(tmp_path / "callee.wav", CALLEE_HZ))
    ring_seconds = 2.0
    connect(caller, callee, pbx, ring_seconds=ring_seconds)
    time.sleep(1.5)
    hang_up(caller, callee)
    caller.close()
    callee.close()
    # The caller hears the media server only once its 180 carries SDP (early media).
    events = [(e["event"], e.get("state"), e.get("active")) for e in caller.history]
    media_started = events.index(("media", None, True))
    answered = next(i for i, (event, name, _) in enumerate(events)
                    if event == "call_state" and name in ("CONNECTING", "CONFIRMED"))
    assert media_started < answered, f"the 180 had no SDP: the caller's media began with the 200: {events}"
    # Its recording starts with that early media: ringback until the answer.
    rate, samples = read_wav(tmp_path / "caller-heard.wav")
    ringing = samples[int(0.3 * rate):int((ring_seconds - 0.2) * rate), 0]
    assert np.sqrt(np.mean(ringing ** 2)) > 300, "the caller heard (nearly) nothing while it rang"
    frequencies, magnitudes = spectrum(ringing, rate)
    strongest = float(magnitudes.max())
    for tone in RINGBACK_HZ:
        peak = float(magnitudes[np.abs(frequencies - tone) <= 5].max())
        assert peak >= 0.5 * strongest, (
            f"no {tone:.0f} Hz in what the caller heard while it rang ({peak / strongest:.1e} of the "
            f"strongest, at {frequencies[magnitudes.argmax()]:.0f} Hz)")
    # And after the answer, the callee's tone.
    [answered] = heard(tmp_path / "caller-heard.wav", start=ring_seconds + 0.5)
    assert_tone(answered, CALLEE_HZ, "the caller, after the answer,")


@pytest.mark.pbx_env(PBX_CALLMANAGER__RECORD_CALLS="true")
def test_recording_is_a_stereo_wav_caller_left_callee_right(own_media_pbx: MediaPbx, new_phone: NewPhone,
                                                            tmp_path: Path) -> None:
    pbx = own_media_pbx
    caller = new_phone(pbx, play=write_tone(tmp_path / "caller.wav", CALLER_HZ))
    callee = new_phone(pbx, play=write_tone(tmp_path / "callee.wav", CALLEE_HZ), auto_answer=True)
    connect(caller, callee, pbx)
    time.sleep(TALK_SECONDS)
    hang_up(caller, callee)
    cdr = cdr_of(pbx, caller)
    assert cdr["disposition"] == "ANSWERED"
    recordings = sorted(str(path) for path in (pbx.server.data_dir / "recordings").glob("*"))
    assert cdr["recording"], f"the CDR has no recording: {cdr}; the recordings directory holds {recordings}"
    recording = Path(str(cdr["recording"]))
    assert recording.is_file(), f"{recording} does not exist"
    with wave.open(str(recording), "rb") as wav:
        assert wav.getnchannels() == 2
        duration = wav.getnframes() / wav.getframerate()
    assert duration >= TALK_SECONDS - 1, f"the recording lasts {duration:.1f} s"
    left, right = heard(recording)
    assert_tone(left, CALLER_HZ, "the recording's left channel (the caller)")
    assert_tone(right, CALLEE_HZ, "the recording's right channel (the callee)")


@pytest.mark.parametrize("own_media_pbx", ["one call"], indirect=True)
def test_call_is_refused_with_503_when_the_media_server_has_no_free_ports(own_media_pbx: MediaPbx,
                                                                          new_phone: NewPhone) -> None:
    pbx = own_media_pbx
    caller, callee = new_phone(pbx), new_phone(pbx, auto_answer=True)
    connect(caller, callee, pbx)
    other_caller, other_callee = new_phone(pbx), new_phone(pbx, auto_answer=True)
    other_caller.send("call", uri=f"sip:{other_callee.user}@{pbx.address}")
    refused = other_caller.wait_for("call_state", state("DISCONNECTED"))
    assert refused["code"] == 503, refused
    assert next_event(other_callee, "incoming", 0.5) is None, "the callee rang"
    # The first call goes on.
    before = caller.stats()["rx_packets"], callee.stats()["rx_packets"]
    time.sleep(1)
    after = caller.stats()["rx_packets"], callee.stats()["rx_packets"]
    assert after[0] >= before[0] + 25 and after[1] >= before[1] + 25, (before, after)
    assert in_range(caller.media_info()["remote_rtp"], pbx.media_ports)
    hang_up(caller, callee)
    assert cdr_of(pbx, other_caller)["sip_code"] == 503

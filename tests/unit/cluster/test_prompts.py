import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.ivr import IvrService
from pbx_services.cluster.models import Prompt, Tenant
from pbx_services.cluster.prompts import PromptDao, PromptService, SynthesizerMissing
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN, OTHER_DOMAIN

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (scripts/install-test-deps.sh)")

TONE = (8000 * np.sin(2 * np.pi * 440 * np.arange(4000) / 8000)).astype(np.int16)


@pytest.fixture
def service(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> PromptService:
    return PromptService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def wav_file(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    data = samples.astype("<i2").tobytes()
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_add_list_and_audio(service: PromptService, tenants: dict[str, Tenant]) -> None:
    info = service.add("hello", TONE, "file: hello.wav")

    assert (info.name, info.duration, info.source) == ("hello", 0.5, "file: hello.wav")
    assert service.list() == [info]
    assert service.list(OTHER_DOMAIN) == []
    audio = service.audio(tenants[DEFAULT_DOMAIN].id, "hello")
    assert audio.dtype == np.int16
    assert np.array_equal(audio, TONE)


def test_audio_is_stored_as_16_bit_little_endian(service: PromptService, session: Session) -> None:
    service.add("hello", np.array([1, -2], dtype=">i2").astype(np.int16), "test")

    assert PromptDao(session=session).get_by(name="hello").audio == b"\x01\x00\xfe\xff"


def test_same_name_in_two_tenants(service: PromptService, tenants: dict[str, Tenant]) -> None:
    service.add("hello", TONE, "one")
    service.add("hello", TONE[:800], "two", tenant_domain=OTHER_DOMAIN)

    assert len(service.audio(tenants[OTHER_DOMAIN].id, "hello")) == 800
    assert len(service.audio(tenants[DEFAULT_DOMAIN].id, "hello")) == 4000


def test_duplicate_is_refused_unless_replaced_in_place(service: PromptService, session: Session) -> None:
    service.add("hello", TONE, "one")
    first_id = PromptDao(session=session).get_by(name="hello").id
    session.rollback()

    with pytest.raises(AlreadyExists, match=r"^prompt hello of pbx.example already exists \(replace it with"):
        service.add("hello", TONE, "two")
    service.add("hello", TONE[:80], "two", replace=True)

    stored = PromptDao(session=session).get_by(name="hello")
    assert (stored.id, stored.source, len(stored.audio)) == (first_id, "two", 160)


@pytest.mark.parametrize("name", ["", "a" * 65, "hello world", "hé", "a/b"])
def test_bad_names(service: PromptService, name: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        service.add(name, TONE, "test")

    assert str(raised.value) == f"prompt name {name!r} must be 1 to 64 letters, digits, '_', '-' or '.'"


def test_good_names(service: PromptService) -> None:
    for name in ("a", "A" * 64, "main-menu_v2.en"):
        service.add(name, TONE, "test")

    assert len(service.list()) == 3


def test_bad_audio(service: PromptService) -> None:
    with pytest.raises(InvalidValue, match="^prompt hello: no audio$"):
        service.add("hello", np.zeros(0, dtype=np.int16), "test")
    with pytest.raises(InvalidValue, match="^prompt hello: audio must be mono int16 samples, not float64"):
        service.add("hello", np.zeros(10), "test")
    with pytest.raises(InvalidValue, match="^prompt hello: longer than 600 seconds$"):
        service.add("hello", np.zeros(8000 * 600 + 1, dtype=np.int16), "test")


def test_unknown_tenant(service: PromptService) -> None:
    with pytest.raises(NotFound, match="Tenant not found: domain='nowhere.example'"):
        service.add("hello", TONE, "test", tenant_domain="nowhere.example")


def test_add_file_resamples_and_names_the_file(service: PromptService, tmp_path: Path,
                                              tenants: dict[str, Tenant]) -> None:
    path = wav_file(tmp_path / "welcome.wav", np.zeros(16000, dtype=np.int16), rate=16000)

    info = service.add_file("welcome", path)

    assert (info.duration, info.source) == (1.0, "file: welcome.wav")
    assert len(service.audio(tenants[DEFAULT_DOMAIN].id, "welcome")) == 8000


def test_add_file_refuses_a_corrupt_file(service: PromptService, tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    path.write_bytes(b"ID3\x04" + b"\0" * 100)

    with pytest.raises(InvalidValue) as raised:
        service.add_file("song", path)

    assert str(raised.value) == f"{path}: not a WAV file (it is an MP3 file: convert it to WAV first)"
    assert service.list() == []


def test_add_file_that_does_not_exist(service: PromptService, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        service.add_file("nothing", tmp_path / "nothing.wav")


@needs_espeak
def test_say_speaks_with_espeak_ng(service: PromptService, tenants: dict[str, Tenant]) -> None:
    info = service.say("Welcome to the demo company.", "welcome")

    assert info.source == "say: Welcome to the demo company."
    assert 1.0 < info.duration < 5.0
    audio = service.audio(tenants[DEFAULT_DOMAIN].id, "welcome")
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) > 300  # speech, not silence


@needs_espeak
def test_say_text_that_looks_like_an_option(service: PromptService) -> None:
    assert service.say("-w nothing", "dash", voice="fr").duration > 0.3


@needs_espeak
def test_say_with_an_unknown_voice(service: PromptService) -> None:
    with pytest.raises(InvalidValue, match="^espeak-ng -v xx-nowhere failed: Error: The specified espeak-ng "
                                           "voice does not exist.$"):
        service.say("hello", "hello", voice="xx-nowhere")


def test_say_checks_before_speaking(service: PromptService) -> None:
    with pytest.raises(InvalidValue, match="^prompt hello: the text to say is empty$"):
        service.say("  ", "hello")
    with pytest.raises(InvalidValue, match="^voice '-w /etc/passwd' is not an espeak-ng voice name"):
        service.say("hello", "hello", voice="-w /etc/passwd")
    with pytest.raises(InvalidValue, match="^prompt name 'a b'"):
        service.say("hello", "a b")


def test_say_without_espeak_ng_says_how_to_install_it(sessions: sessionmaker[Session],
                                                      tenants: dict[str, Tenant], tmp_path: Path) -> None:
    service = PromptService(sessions=sessions, default_domain=DEFAULT_DOMAIN,
                            espeak=str(tmp_path / "espeak-ng"))

    with pytest.raises(SynthesizerMissing) as raised:
        service.say("hello", "hello")

    assert str(raised.value) == (f"{tmp_path / 'espeak-ng'} is not installed: 'apt-get install espeak-ng' "
                                 "(as root) installs it")


def test_delete(service: PromptService, session: Session) -> None:
    service.add("hello", TONE, "test")

    service.delete("hello")

    assert session.query(Prompt).count() == 0
    with pytest.raises(NotFound, match="Prompt not found: name='hello', tenant='pbx.example'"):
        service.delete("hello")


def test_delete_is_refused_while_a_menu_plays_it(service: PromptService, sessions: sessionmaker[Session],
                                                 session: Session) -> None:
    service.add("hello", TONE, "test")
    service.add("sorry", TONE, "test")
    menus = IvrService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    menus.add_menu("800", greeting="hello", options={"9": "repeat"}, invalid_prompt="sorry")
    menus.add_menu("801", greeting="sorry", options={"9": "repeat"})

    with pytest.raises(InvalidValue) as raised:
        service.delete("sorry")

    assert str(raised.value) == ("prompt sorry of pbx.example is played by IVR menus 800, 801: "
                                 "change or delete them first")
    assert session.query(Prompt).count() == 2


def test_audio_of_a_missing_prompt(service: PromptService, tenants: dict[str, Tenant]) -> None:
    with pytest.raises(NotFound, match="Prompt not found: name='nothing'"):
        service.audio(tenants[DEFAULT_DOMAIN].id, "nothing")

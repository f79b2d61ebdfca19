"""`pbx prompt`, `pbx ivr`, `pbx schedule` and `pbx did` end to end, on a data dir made by `pbx init`."""

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from .conftest import run

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (scripts/install-test-deps.sh)")


def pbx(capsys: pytest.CaptureFixture[str], data_dir: Path | str, *argv: str) -> tuple[int, str, str]:
    """`run` on the data directory."""
    return run(capsys, *argv, "--data-dir", str(data_dir))


def write_wav(path: Path, seconds: float = 0.5, rate: int = 44100, channels: int = 2) -> Path:
    frames = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)).astype("<i2")
    data = np.repeat(frames, channels).tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2 * channels, 2 * channels, 16)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.fixture
def directory(initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """An initialized data dir with users 201 and 202 and prompts `greeting` and `sorry`."""
    for extension in ("201", "202"):
        assert pbx(capsys, initialized, "user", "add", extension, "--password", "s3cret!")[0] == 0
    for name in ("greeting", "sorry"):
        path = write_wav(tmp_path / f"{name}.wav")
        assert pbx(capsys, initialized, "prompt", "add", name, str(path))[0] == 0
    return str(initialized)


def test_prompt_add_list_del(initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    path = write_wav(tmp_path / "welcome.wav", seconds=1.5)

    assert pbx(capsys, directory, "prompt", "add", "welcome", str(path)) == (
        0, "added prompt welcome (1.5 s)\n", "")
    assert pbx(capsys, directory, "prompt", "list") == (
        0, "NAME     SECONDS  SOURCE\nwelcome  1.5      file: welcome.wav\n", "")
    status, _, err = pbx(capsys, directory, "prompt", "add", "welcome", str(path))
    assert (status, err) == (
        1, "pbx: prompt welcome of pbx.local already exists (replace it with --replace)\n")
    assert pbx(capsys, directory, "prompt", "add", "welcome", str(path), "--replace")[0] == 0
    assert pbx(capsys, directory, "prompt", "del", "welcome") == (0, "deleted prompt welcome\n", "")
    assert pbx(capsys, directory, "prompt", "list") == (0, "no prompts\n", "")


def test_corrupt_prompt_is_refused_in_one_line(initialized: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.wav"
    cut.write_bytes(write_wav(tmp_path / "whole.wav").read_bytes()[:1000])
    text = tmp_path / "notes.txt"
    text.write_text("not audio\n")

    assert pbx(capsys, initialized, "prompt", "add", "cut", str(cut)) == (
        1, "", f"pbx: {cut}: truncated WAV file: its 'data' chunk says 88200 bytes, the file holds 956\n")
    assert pbx(capsys, initialized, "prompt", "add", "text", str(text)) == (
        1, "", f"pbx: {text}: not a WAV file (it does not start with a RIFF WAVE header)\n")
    assert pbx(capsys, initialized, "prompt", "add", "none", str(tmp_path / "none.wav")) == (
        1, "", f"pbx: {tmp_path / 'none.wav'}: No such file or directory\n")
    assert pbx(capsys, initialized, "prompt", "list") == (0, "no prompts\n", "")


@needs_espeak
def test_prompt_say(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = pbx(capsys, initialized, "prompt", "say", "Thank you for calling.", "thanks",
                           "--voice", "en-us")

    assert (status, err) == (0, "")
    assert out.startswith("added prompt thanks (")
    status, out, _ = pbx(capsys, initialized, "prompt", "list")
    assert out.splitlines()[1].split(maxsplit=2)[::2] == ["thanks", "say: Thank you for calling."]


@needs_espeak
def test_prompt_say_with_an_unknown_voice(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, initialized, "prompt", "say", "Hello", "hello", "--voice", "xx") == (
        1, "", "pbx: espeak-ng -v xx failed: Error: The specified espeak-ng voice does not exist.\n")


def test_prompt_say_without_espeak_ng(initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert pbx(capsys, initialized, "prompt", "say", "Hello", "hello") == (
        1, "", "pbx: espeak-ng is not installed: 'apt-get install espeak-ng' (as root) installs it\n")


def test_ivr_add_list_del(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "greeting", "--option", "1=201",
               "--option", "2=202", "--option", "9=dial", "--invalid-prompt", "sorry", "--name", "Main") == (
        0, "added IVR menu 800 of pbx.local: 1=201 2=202 9=dial\n", "")
    assert pbx(capsys, directory, "ivr", "add", "801", "--greeting", "greeting", "--option", "0=ivr:800",
               "--dial-by-extension", "--final", "201", "--timeout", "10", "--retries", "1") == (
        0, "added IVR menu 801 of pbx.local: 0=ivr:800 and extensions\n", "")

    status, out, err = pbx(capsys, directory, "ivr", "list")

    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "NUMBER  NAME  GREETING  OPTIONS             BY EXTENSION  FINAL   SCHEDULE  CLOSED",
        "800     Main  greeting  1=201 2=202 9=dial  no            hangup",
        "801           greeting  0=ivr:800           yes           201",
    ]
    assert pbx(capsys, directory, "ivr", "del", "800") == (
        1, "", "pbx: IVR menu 800 of pbx.local is the destination of IVR menu 801 option 0: change or delete "
               "them first\n")
    assert pbx(capsys, directory, "ivr", "del", "801") == (0, "deleted IVR menu 801\n", "")
    assert pbx(capsys, directory, "ivr", "del", "800") == (0, "deleted IVR menu 800\n", "")
    assert pbx(capsys, directory, "ivr", "list") == (0, "no IVR menus\n", "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--option", "1=999"], "option 1: extension 999 does not exist in pbx.local"),
        (["--option", "1=queue:700"], "option 1: queue 700 does not exist in pbx.local"),
        (["--option", "1=ivr:801"], "option 1: IVR menu 801 does not exist in pbx.local"),
        (["--option", "#=201"], "option '#': 1 to 8 keys of 0-9 and * (# ends the input)"),
        (["--option", "1=201", "--final", "998"],
         "final destination: extension 998 does not exist in pbx.local"),
        (["--option", "1=201", "--invalid-prompt", "nothing"],
         "invalid prompt: prompt 'nothing' does not exist in pbx.local"),
        (["--option", "1=201", "--schedule", "office", "--closed", "hangup"],
         "schedule 'office' does not exist in pbx.local"),
        (["--option", "1=201", "--timeout", "0"], "timeout 0 is out of range: 1 to 60 seconds"),
        (["--option", "201"], "--option '201': expected DIGITS=DESTINATION, like 1=201 or 9=repeat"),
        (["--option", "1=201", "--option", "1=202"], "--option 1 is given twice"),
        (["--option", "1=201", "--tenant", "nowhere.example"], "Tenant not found: domain='nowhere.example'"),
    ],
)
def test_ivr_add_refused(directory: str, capsys: pytest.CaptureFixture[str], arguments: list[str],
                         message: str) -> None:
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "greeting", *arguments) == (
        1, "", f"pbx: {message}\n")
    assert pbx(capsys, directory, "ivr", "list") == (0, "no IVR menus\n", "")


def test_ivr_number_and_extensions_do_not_clash(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "ivr", "add", "201", "--greeting", "greeting", "--option", "1=202") == (
        1, "", "pbx: 201 is already extension 201 of pbx.local\n")
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "greeting", "--option", "1=202")[0] == 0
    assert pbx(capsys, directory, "user", "add", "800", "--password", "s3cret!") == (
        1, "", "pbx: 800 is already IVR menu 800 of pbx.local\n")
    assert pbx(capsys, directory, "user", "del", "202") == (
        1, "", "pbx: user 202@pbx.local is the destination of IVR menu 800 option 1: change or delete them "
               "first\n")


def test_ivr_replace(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    add = ("ivr", "add", "800", "--greeting", "greeting", "--data-dir", directory)
    assert run(capsys, *add, "--option", "1=201")[0] == 0

    assert run(capsys, *add, "--option", "1=202") == (
        1, "", "pbx: IVR menu 800 of pbx.local already exists (replace it with --replace)\n")
    assert run(capsys, *add, "--option", "1=202", "--replace")[0] == 0
    assert "1=202" in pbx(capsys, directory, "ivr", "list")[1]


def test_prompt_in_use_is_not_deleted(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "greeting", "--timeout-prompt", "sorry",
               "--option", "1=201")[0] == 0

    assert pbx(capsys, directory, "prompt", "del", "sorry") == (
        1, "", "pbx: prompt sorry of pbx.local is played by IVR menu 800: change or delete them first\n")


def test_schedule_add_list_del(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "schedule", "add", "office", "--hours",
               "mon-fri 09:00-17:00; sat 10:00-12:00", "--timezone", "Europe/Paris",
               "--holiday", "2026-12-25", "2026-01-01", "--holiday", "2026-05-01") == (
        0, "added schedule office\n", "")
    assert pbx(capsys, directory, "schedule", "list")[1].splitlines() == [
        "NAME    HOURS                                 TIMEZONE      HOLIDAYS",
        "office  mon-fri 09:00-17:00; sat 10:00-12:00  Europe/Paris  2026-01-01 2026-05-01 2026-12-25",
    ]
    status, out, _ = pbx(capsys, directory, "schedule", "list", "--json")
    assert (status, json.loads(out)[0]["holidays"]) == (0, ["2026-01-01", "2026-05-01", "2026-12-25"])
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "greeting", "--option", "1=201",
               "--schedule", "office", "--closed", "202")[0] == 0
    [menu] = json.loads(pbx(capsys, directory, "ivr", "list", "--json")[1])
    assert (menu["number"], menu["options"], menu["schedule"]) == ("800", {"1": "201"}, "office")
    assert pbx(capsys, directory, "schedule", "del", "office") == (
        1, "", "pbx: schedule office of pbx.local is followed by IVR menu 800: change or delete them first\n")
    assert pbx(capsys, directory, "ivr", "del", "800")[0] == 0
    assert pbx(capsys, directory, "schedule", "del", "office") == (
        0, "deleted schedule office\n", "")
    assert pbx(capsys, directory, "schedule", "list") == (0, "no schedules\n", "")


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["--hours", "mon-fri 9-17"], 1,
         "pbx: hours 'mon-fri 9-17': '9' in '9-17' is not a time like 09:30\n"),
        (["--hours", "daily 00:00-24:00", "--timezone", "Paris"], 1,
         "pbx: time zone 'Paris' is unknown; an IANA name like 'Europe/Paris'\n"),
        (["--hours", "daily 00:00-24:00", "--holiday", "25/12/2026"], 2,
         "pbx schedule add: argument --holiday: '25/12/2026' is not a date like 2026-12-25 "
         "(see 'pbx schedule add --help')\n"),
    ],
)
def test_schedule_add_refused(initialized: Path, capsys: pytest.CaptureFixture[str], arguments: list[str],
                              status: int, message: str) -> None:
    assert pbx(capsys, initialized, "schedule", "add", "office", *arguments) == (
        status, "", message)


@needs_espeak
def test_init_demo_creates_ivr_menu_800(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert (status, err) == (0, "")
    assert ("demo IVR menu 800 of pbx.local: created (1 calls 1001, 2 calls 1002, 9 repeats, or dial an "
            "extension)") in out.splitlines()
    assert pbx(capsys, data_dir, "ivr", "list")[1].splitlines()[1].split() == [
        "800", "Demo", "menu", "demo-greeting", "1=1001", "2=1002", "9=repeat", "yes", "hangup"]
    prompts = pbx(capsys, data_dir, "prompt", "list")[1]
    assert [line.split()[0] for line in prompts.splitlines()[1:]] == [
        "demo-greeting", "demo-invalid", "demo-timeout"]

    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert status == 0
    assert "demo IVR menu 800 of pbx.local: exists" in out.splitlines()
    assert out.count("demo prompt demo-") == out.count(": exists") - 4 == 3  # tenant, menu, room, queue


def test_init_demo_without_espeak_ng_skips_the_menu(data_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    status, out, err = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert (status, err) == (0, "")
    assert ("demo IVR menu 800 skipped: espeak-ng is not installed: 'apt-get install espeak-ng' (as root) "
            "installs it") in out.splitlines()
    assert len(pbx(capsys, data_dir, "user", "list")[1].splitlines()) == 5
    assert pbx(capsys, data_dir, "ivr", "list")[1] == "no IVR menus\n"


def test_a_did_with_holidays_is_listed_as_a_table_and_as_json(directory: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "did", "add", "0140000000", "--destination", "201", "--hours",
               "mon-fri 09:00-17:00", "--closed-destination", "202", "--holiday", "2026-12-25")[0] == 0
    assert pbx(capsys, directory, "did", "list")[1].splitlines()[1].split() == [
        "0140000000", "201", "mon-fri", "09:00-17:00", "UTC", "2026-12-25", "202"]
    status, out, err = pbx(capsys, directory, "did", "list", "--json")
    assert (status, err) == (0, "")  # the holidays' dates once made --json fail
    assert json.loads(out)[0]["holidays"] == ["2026-12-25"]
    assert pbx(capsys, directory, "did", "del", "0140000000") == (0, "deleted DID 0140000000\n", "")
    assert pbx(capsys, directory, "did", "list") == (0, "no DIDs\n", "")

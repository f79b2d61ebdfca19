"""`pbx meeting` end to end, on a data directory made by `pbx init`."""

import json
from pathlib import Path

import pytest

from .conftest import run
from .test_cdrs import tenant_ids
from .test_ivr_cli import write_wav


def pbx(capsys: pytest.CaptureFixture[str], data_dir: Path | str, *argv: str) -> tuple[int, str, str]:
    """`run` on the data directory."""
    return run(capsys, *argv, "--data-dir", str(data_dir))


@pytest.fixture
def directory(initialized: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """An initialized data dir with user 201 and a second tenant, other.example."""
    assert pbx(capsys, initialized, "user", "add", "201", "--password", "s3cret!")[0] == 0
    tenant_ids(initialized)
    return str(initialized)


def test_add_list_del(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "meeting", "add", "850", "--pin", "1234", "--moderator-pin", "4321",
               "--name", "Team") == (
        0, "added meeting room 850 of pbx.local: PIN 1234, moderator PIN 4321, up to 50\n", "")
    assert pbx(capsys, directory, "meeting", "add", "851", "--max", "10", "--pin-tries", "5",
               "--moderator-pin", "9", "--wait-for-moderator", "--end-with-moderator", "--mute-on-entry",
               "--no-entry-tones", "--record") == (
        0, "added meeting room 851 of pbx.local: moderator PIN 9, up to 10, waits for a moderator, ends with "
           "the last moderator, mutes on entry, no entry tones, recorded\n", "")
    assert pbx(capsys, directory, "meeting", "add", "852") == (
        0, "added meeting room 852 of pbx.local: no PIN, up to 50\n", "")

    status, out, err = pbx(capsys, directory, "meeting", "list")

    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "NUMBER  NAME  PIN   MODERATOR PIN  MAX  TRIES  WAIT  END  MUTED  TONES  RECORD",
        "850     Team  1234  4321           50   3      no    no   no     yes    no",
        "851                 9              10   5      yes   yes  yes    no     yes",
        "852                                50   3      no    no   no     yes    no",
    ]
    assert pbx(capsys, directory, "meeting", "del", "851") == (0, "deleted meeting room 851\n", "")
    assert pbx(capsys, directory, "meeting", "del", "851") == (
        1, "", "pbx: MeetingRoom not found: number='851', tenant='pbx.local'\n")
    assert [line.split()[0] for line in pbx(capsys, directory, "meeting", "list")[1].splitlines()] == [
        "NUMBER", "850", "852"]


def test_list_as_json(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "meeting", "list", "--json") == (0, "[]\n", "")
    assert pbx(capsys, directory, "meeting", "add", "850", "--pin", "0042")[0] == 0

    status, out, err = pbx(capsys, directory, "meeting", "list", "--json")

    assert (status, err) == (0, "")
    assert json.loads(out) == [{
        "tenant_domain": "pbx.local", "number": "850", "name": None, "pin": "0042", "moderator_pin": None,
        "max_participants": 50, "pin_tries": 3, "wait_for_moderator": False, "end_with_moderator": False,
        "mute_on_entry": False, "entry_tones": True, "record": False,
    }]


def test_tenants(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "meeting", "add", "201", "--tenant", "other.example") == (
        0, "added meeting room 201 of other.example: no PIN, up to 50\n", "")

    assert pbx(capsys, directory, "meeting", "list") == (0, "no meeting rooms\n", "")
    listed = pbx(capsys, directory, "meeting", "list", "--tenant", "other.example")[1]
    assert listed.splitlines()[1].split() == ["201", "50", "3", "no", "no", "no", "yes", "no"]
    assert pbx(capsys, directory, "meeting", "del", "201") == (
        1, "", "pbx: MeetingRoom not found: number='201', tenant='pbx.local'\n")
    assert pbx(capsys, directory, "meeting", "del", "201", "--tenant", "other.example")[0] == 0
    assert pbx(capsys, directory, "meeting", "list", "--tenant", "nowhere.example") == (
        1, "", "pbx: Tenant not found: domain='nowhere.example'\n")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["8 50"],
         "meeting room number: extension '8 50' may only contain letters, digits, '.', '_' and '-'"),
        (["850", "--pin", "12ab"], "PIN: 1 to 16 digits (0-9), nothing else"),
        (["850", "--moderator-pin", "1" * 17], "moderator PIN: 1 to 16 digits (0-9), nothing else"),
        (["850", "--pin", "11", "--moderator-pin", "11"],
         "moderator PIN: the same as the PIN, so every caller would be a moderator"),
        (["850", "--max", "1"], "max participants 1 is out of range: 2 to 500"),
        (["850", "--pin-tries", "0"], "PIN tries 0 is out of range: 1 to 10"),
        (["850", "--pin", "1", "--wait-for-moderator"],
         "wait for moderator: needs a moderator PIN (without one, nobody is a moderator)"),
        (["850", "--end-with-moderator"],
         "end with moderator: needs a moderator PIN (without one, nobody is a moderator)"),
        (["201"], "201 is already extension 201 of pbx.local"),
    ],
)
def test_add_refused(directory: str, capsys: pytest.CaptureFixture[str], arguments: list[str],
                     message: str) -> None:
    assert pbx(capsys, directory, "meeting", "add", *arguments) == (1, "", f"pbx: {message}\n")
    assert pbx(capsys, directory, "meeting", "list") == (0, "no meeting rooms\n", "")


def test_add_a_number_that_is_no_integer(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "meeting", "add", "850", "--max", "ten") == (
        2, "", "pbx meeting add: argument --max: invalid int value: 'ten' (see 'pbx meeting add --help')\n")


def test_replace(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "meeting", "add", "850", "--pin", "1")[0] == 0

    assert pbx(capsys, directory, "meeting", "add", "850", "--pin", "2") == (
        1, "", "pbx: meeting room 850 of pbx.local already exists (replace it with --replace)\n")
    assert pbx(capsys, directory, "meeting", "add", "850", "--pin", "2", "--replace") == (
        0, "added meeting room 850 of pbx.local: PIN 2, up to 50\n", "")


def test_rooms_menus_and_users_share_the_numbers(directory: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    greeting = write_wav(tmp_path / "greeting.wav")
    assert pbx(capsys, directory, "prompt", "add", "greeting", str(greeting))[0] == 0
    menu = ("ivr", "add", "800", "--greeting", "greeting", "--option", "1=meeting:850")
    assert pbx(capsys, directory, *menu) == (
        1, "", "pbx: option 1: meeting room 850 does not exist in pbx.local\n")
    assert pbx(capsys, directory, "meeting", "add", "850")[0] == 0
    assert pbx(capsys, directory, *menu)[0] == 0

    assert pbx(capsys, directory, "meeting", "add", "800") == (
        1, "", "pbx: 800 is already IVR menu 800 of pbx.local\n")
    assert pbx(capsys, directory, "user", "add", "850", "--password", "s3cret!") == (
        1, "", "pbx: 850 is already meeting room 850 of pbx.local\n")
    assert pbx(capsys, directory, "meeting", "del", "850") == (
        1, "", "pbx: meeting room 850 of pbx.local is the destination of IVR menu 800 option 1: change or "
               "delete them first\n")


def test_init_demo_adds_room_850(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng: the demo menu is skipped, not the room

    status, out, err = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert (status, err) == (0, "")
    assert ("demo meeting room 850 of pbx.local: created (PIN 1234, moderator PIN 4321, up to 50)"
            in out.splitlines())
    assert pbx(capsys, data_dir, "meeting", "list")[1].splitlines()[1].split() == [
        "850", "Demo", "room", "1234", "4321", "50", "3", "no", "no", "no", "yes", "no"]

    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert status == 0
    assert "demo meeting room 850 of pbx.local: exists" in out.splitlines()

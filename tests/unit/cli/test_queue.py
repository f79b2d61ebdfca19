"""`pbx queue` and `pbx agent` end to end, on a data directory made by `pbx init`."""

import json
from pathlib import Path

import pytest

from .conftest import run
from .test_cdrs import tenant_ids


def pbx(capsys: pytest.CaptureFixture[str], data_dir: Path | str, *argv: str) -> tuple[int, str, str]:
    return run(capsys, *argv, "--data-dir", str(data_dir))


@pytest.fixture
def directory(initialized: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """An initialized data dir with users 201-204 and a second tenant, other.example."""
    for extension in ("201", "202", "203", "204"):
        assert pbx(capsys, initialized, "user", "add", extension, "--password", "s3cret!")[0] == 0
    tenant_ids(initialized)
    return str(initialized)


def test_add_list_del(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "queue", "add", "700", "--strategy", "rrmemory", "--member", "201",
               "--member", "202:2", "--dynamic-member", "203:1", "--skills", "FR:3,billing",
               "--max-wait", "120", "--overflow", "204", "--callback", "--name", "Sales") == (
        0, "added queue 700 of pbx.local: round-robin, 3 members, overflow to 204\n", "")
    assert pbx(capsys, directory, "queue", "add", "701", "--overflow", "queue:700") == (
        0, "added queue 701 of pbx.local: ring-all, 0 members, overflow to queue:700\n", "")

    status, out, err = pbx(capsys, directory, "queue", "list")
    assert (status, err) == (0, "")
    assert out.splitlines()[1].split() == ["700", "Sales", "round-robin", "201", "202:2", "203:1*",
                                           "billing:1,fr:3", "120", "204", "10", "yes"]
    [first, _] = json.loads(pbx(capsys, directory, "queue", "list", "--json")[1])
    assert first["members"][2] == {"extension": "203", "penalty": 1, "dynamic": True, "logged_in": False,
                                   "paused": False, "pause_reason": None, "skills": {}}

    # What sends calls to a queue keeps it; then it goes.
    assert pbx(capsys, directory, "queue", "del", "700") == (
        1, "", "pbx: queue 700 of pbx.local is the destination of queue 701 overflow: change or delete them "
               "first\n")
    assert pbx(capsys, directory, "queue", "del", "701") == (0, "deleted queue 701\n", "")
    assert pbx(capsys, directory, "queue", "del", "700") == (0, "deleted queue 700\n", "")
    assert pbx(capsys, directory, "queue", "list") == (0, "no queues\n", "")


def test_agents_log_in_pause_and_keep_it_when_the_queue_is_replaced(
        directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    pbx(capsys, directory, "queue", "add", "700", "--member", "201", "--dynamic-member", "202")
    pbx(capsys, directory, "queue", "add", "710", "--dynamic-member", "202:3")
    assert pbx(capsys, directory, "agent", "login", "202") == (0, "202 logged in to queues 700, 710\n", "")
    assert pbx(capsys, directory, "agent", "pause", "202", "--queue", "710", "--reason", "lunch") == (
        0, "202 paused in queue 710\n", "")
    pbx(capsys, directory, "queue", "add", "710", "--dynamic-member", "202:1", "--replace")
    [_, replaced] = json.loads(pbx(capsys, directory, "queue", "list", "--json")[1])
    assert replaced["members"] == [{"extension": "202", "penalty": 1, "dynamic": True, "logged_in": True,
                                    "paused": True, "pause_reason": "lunch", "skills": {}}]
    assert pbx(capsys, directory, "agent", "unpause", "202") == (0, "202 unpaused in queues 700, 710\n", "")
    assert pbx(capsys, directory, "agent", "logout", "202", "--queue", "700") == (
        0, "202 logged out of queue 700\n", "")
    assert pbx(capsys, directory, "agent", "login", "201") == (
        1, "", "pbx: 201 is a static member of any queue: always logged in (add it with --dynamic-member to "
               "let it log in and out)\n")
    assert pbx(capsys, directory, "agent", "skills", "201", "fr:5,billing:2") == (
        0, "201 has skills billing:2,fr:5\n", "")
    [with_skills, _] = json.loads(pbx(capsys, directory, "queue", "list", "--json")[1])
    assert with_skills["members"][0]["skills"] == {"billing": 2, "fr": 5}
    assert pbx(capsys, directory, "agent", "skills", "201", "") == (0, "201 has no skills\n", "")


@pytest.mark.parametrize(("argv", "error"), [
    (["--strategy", "fastest"], "pbx: unknown queue strategy 'fastest': valid are ring-all, "),
    (["--member", "209"], "pbx: member 209: no such extension in pbx.local\n"),
    (["--member", "201", "--dynamic-member", "201"], "pbx: member 201 is given twice\n"),
    (["--member", "201:100"], "pbx: member 201 penalty 100 is out of range: 0 to 99\n"),
    (["--overflow", "queue:799"], "pbx: overflow: queue 799 does not exist in pbx.local\n"),
    (["--overflow", "700"], "pbx: overflow: queue 700 cannot overflow to itself\n"),
    (["--overflow", "hangup"], "pbx: overflow: hangup is not a number to send callers to\n"),
    (["--skills", "fr:11"], "pbx: skill fr level 11 is out of range: 1 to 10\n"),
    (["--skills", "f r"], "pbx: skill 'f r': 1 to 32 of a-z, 0-9, '_' and '-'\n"),
    (["--ring-timeout", "1"], "pbx: ring timeout 1 is out of range: 5 to 300 seconds\n"),
    (["--music", "nothing"], "pbx: music: prompt 'nothing' does not exist in pbx.local\n"),
])
def test_a_bad_queue_is_refused_naming_what_is_wrong(directory: str, capsys: pytest.CaptureFixture[str],
                                                    argv: list[str], error: str) -> None:
    status, out, err = pbx(capsys, directory, "queue", "add", "700", *argv)
    assert (status, out) == (1, "")
    assert err.startswith(error), err
    assert pbx(capsys, directory, "queue", "list") == (0, "no queues\n", "")


def test_a_queue_number_is_one_of_the_dial_plan(directory: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pbx(capsys, directory, "queue", "add", "201") == (
        1, "", "pbx: 201 is already extension 201 of pbx.local\n")
    pbx(capsys, directory, "queue", "add", "700")
    assert pbx(capsys, directory, "meeting", "add", "700")[2] == (
        "pbx: 700 is already queue 700 of pbx.local\n")
    # An IVR option may send callers to the queue: the menu is refused for its missing prompt only.
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "x", "--option", "1=queue:700")[2] == (
        "pbx: greeting: prompt 'x' does not exist in pbx.local\n")
    assert pbx(capsys, directory, "ivr", "add", "800", "--greeting", "x", "--option", "1=queue:709")[2] == (
        "pbx: option 1: queue 709 does not exist in pbx.local\n")

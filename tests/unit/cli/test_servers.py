from pathlib import Path

import pytest

from .conftest import run


def test_server_add_list_disable_del(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))

    assert run(capsys, "server", "add", "media1", "--role", "media", "--host", "192.0.2.10", "--port", "2223",
               "--workers", "2", "--http-port", "9062", *directory) == (
        0, "added media server media1 at 192.0.2.10:2223\n", "")
    assert run(capsys, "server", "disable", "media1", *directory) == (0, "disabled server media1\n", "")
    assert run(capsys, "server", "list", *directory)[1].splitlines() == [
        "NAME    ROLE   ADDRESS          WORKERS  WEIGHT  ENABLED  HTTP",
        "media1  media  192.0.2.10:2223  2        1       no       9062",
    ]
    assert run(capsys, "server", "del", "media1", *directory) == (0, "deleted server media1\n", "")
    assert run(capsys, "server", "list", *directory) == (0, "no servers\n", "")


def test_server_mistakes_are_one_line(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "server", "enable", "nowhere", "--data-dir", str(initialized)) == (
        1, "", "pbx: Server not found: name='nowhere'\n")
    assert run(capsys, "server", "add", "m2", "--role", "meeting", "--host", "192.0.2.11", "--port", "5100",
               "--http-port", "70000", "--data-dir", str(initialized)) == (
        1, "", "pbx: HTTP port 70000 is not between 1 and 65535\n")


def test_a_call_manager_is_listed_but_cannot_be_disabled(initialized: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))
    assert run(capsys, "server", "add", "cm1", "--role", "callmanager", "--host", "192.0.2.11",
               "--port", "5060", "--http-port", "9060", *directory) == (
        0, "added callmanager server cm1 at 192.0.2.11:5060\n", "")

    assert run(capsys, "server", "disable", "cm1", *directory) == (
        1, "", "pbx: cm1 is a Call Manager, which takes calls while it holds the VIP, not when chosen: stop "
        "its service (or keepalived) to take it out\n")
    assert run(capsys, "server", "list", *directory)[1].splitlines()[1].split() == [
        "cm1", "callmanager", "192.0.2.11:5060", "1", "1", "yes", "9060"]

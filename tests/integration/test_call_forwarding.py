"""User call features with pjsua2 phones in `pbx allinone` (issue 13): a user's two devices
ring together and the first answer wins (forking); a call refused busy goes to the busy
forward; a call nobody answers goes to the no-answer forward after its seconds; do-not-disturb
answers busy; a sequential ring group passes over its member on do-not-disturb, rings the next
for its seconds, then the one after, who answers. Forwarding is set with `pbx user forward`
and `pbx user dnd`, the group with `pbx ring-group add`, as an administrator would, before the
PBX starts (the Call Manager reads a change within 10 s)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

pytestmark = pytest.mark.integration

NO_ANSWER_SECONDS = 6
GROUP_SECONDS = 5
USERS = ("1001", "1002", "1003", "1004", "1005")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxServer]:
    data_dir = tmp_path / "data"
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    passwords = {extension: secrets.token_urlsafe(12) for extension in USERS}
    for extension, password in passwords.items():
        pbx("user", "add", extension, f"--password={password}", *directory)
    shown = pbx("user", "forward", "1002", "--busy", "1003", "--no-answer", "1004", "--after",
                str(NO_ANSWER_SECONDS), *directory).stdout
    assert shown.strip() == f"1002@pbx.local: busy -> 1003, no answer -> 1004 after {NO_ANSWER_SECONDS} s"
    pbx("user", "dnd", "1005", "on", *directory)
    pbx("ring-group", "add", "600", "--member", "1005", "--member", "1003", "--member", "1004",
        "--strategy", "sequential", "--ring-seconds", str(GROUP_SECONDS), *directory)
    with running_pbx(data_dir) as started:
        started.passwords.update(passwords)
        yield started


def phone(server: PbxServer, user: str) -> Pjsua2Phone:
    made = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address, port=free_port(),
                       domain=server.domain)
    assert made.register()["code"] == 200
    return made


def final(caller: Pjsua2Phone, index: int, timeout: float = 20.0) -> dict[str, object]:
    return caller.wait_for("call_state", lambda e: e["index"] == index
                           and e["state"] in ("CONFIRMED", "DISCONNECTED"), timeout=timeout)


def test_forking_busy_and_no_answer_forwards_and_do_not_disturb(server: PbxServer) -> None:
    phones: list[Pjsua2Phone] = []
    try:
        for user in ("1001", "1002", "1002", "1003", "1004", "1005"):  # 1002 twice: two devices
            phones.append(phone(server, user))
        caller, desk, second_device, colleague, assistant, away = phones

        # Forking: both of 1002's devices ring; the second answers, the first stops ringing.
        caller.send("call", uri=f"sip:1002@{server.address}")
        rings = [device.wait_for("incoming", timeout=10) for device in (desk, second_device)]
        second_device.send("answer")
        assert final(caller, 0)["state"] == "CONFIRMED"
        stopped = desk.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
        print(f"both devices rang ({[r['remote_uri'] for r in rings]}); the other stopped: {stopped['code']}")
        caller.send("hangup")
        second_device.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)

        # Busy: both devices refuse with 486: 1003 (the busy forward) rings and answers.
        caller.send("call", uri=f"sip:1002@{server.address}")
        for device in (desk, second_device):
            device.wait_for("incoming", lambda e: e["index"] == 1, timeout=10)
            device.send("answer", code=486)
        colleague.wait_for("incoming", timeout=10)
        colleague.send("answer")
        assert final(caller, 1)["state"] == "CONFIRMED"
        caller.send("hangup")
        colleague.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)

        # No answer: 1002's devices ring for the forward's seconds, then 1004 rings.
        caller.send("call", uri=f"sip:1002@{server.address}")
        desk.wait_for("incoming", lambda e: e["index"] == 2, timeout=10)
        rang_at = time.monotonic()
        assistant.wait_for("incoming", timeout=NO_ANSWER_SECONDS + 10)
        forwarded_after = time.monotonic() - rang_at
        desk.wait_for("call_state", lambda e: e["index"] == 2 and e["state"] == "DISCONNECTED", timeout=5)
        assistant.send("answer")
        assert final(caller, 2)["state"] == "CONFIRMED"
        print(f"forwarded on no answer after {forwarded_after:.1f} s")
        assert NO_ANSWER_SECONDS - 0.5 < forwarded_after < NO_ANSWER_SECONDS + 2
        caller.send("hangup")

        # Do not disturb: 1005 never rings, the caller hears busy.
        caller.send("call", uri=f"sip:1005@{server.address}")
        refused = final(caller, 3)
        assert (refused["state"], refused["code"]) == ("DISCONNECTED", 486), refused
        assert not [e for e in away.seen() if e.get("event") == "incoming"]
    finally:
        for made in phones:
            made.close()


def test_a_sequential_ring_group_rings_its_members_in_turn(server: PbxServer) -> None:
    phones: list[Pjsua2Phone] = []
    try:
        for user in ("1001", "1003", "1004", "1005"):
            phones.append(phone(server, user))
        caller, first, second, away = phones

        caller.send("call", uri=f"sip:600@{server.address}")
        first.wait_for("incoming", timeout=10)  # 1005 is on do-not-disturb: passed over
        rang_at = time.monotonic()
        second.wait_for("incoming", timeout=GROUP_SECONDS + 10)
        next_after = time.monotonic() - rang_at
        first.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=5)
        second.send("answer")
        assert final(caller, 0)["state"] == "CONFIRMED"
        print(f"the group's next member rang {next_after:.1f} s after the first")
        assert GROUP_SECONDS - 0.5 < next_after < GROUP_SECONDS + 2
        assert not [e for e in away.seen() if e.get("event") == "incoming"]
        caller.send("hangup")
        second.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    finally:
        for made in phones:
            made.close()

"""Callers of a queue in the all-in-one, with pjsua2 phones: an unattended queue announces and
hangs up (the issue's bad input: no agent, no overflow); a caller past the maximum wait goes
to the overflow extension, with which it then talks; an agent logs in with *45 (issue 11).
The agents' side (rings, the join) is tests/integration/test_queue_calls.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import PbxServer, pbx, running_pbx
from tests.integration.test_ivr_calls import RATE, received
from tests.integration.test_meetings import HEARD, SILENT, disconnected, heard_lately, join, phones

pytestmark = pytest.mark.integration


PASSWORDS = {extension: f"pw-{extension}-Secret" for extension in ("1001", "1002", "1003")}


@pytest.fixture
def queue_pbx(tmp_path: Path) -> Iterator[PbxServer]:
    """Queues made before the PBX starts: a number added later reaches the Call Manager within
    10 s (its directory's cache)."""
    data_dir = tmp_path / "data"
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    for extension, password in PASSWORDS.items():
        pbx("user", "add", extension, f"--password={password}", *directory)
    # 1003 is a dynamic member, logged out: nobody answers either queue.
    pbx("queue", "add", "700", "--dynamic-member", "1003", *directory)
    pbx("queue", "add", "701", "--dynamic-member", "1003", "--join-empty", "--max-wait", "4",
        "--overflow", "1002", *directory)
    with running_pbx(data_dir) as server:
        server.passwords.update(PASSWORDS)
        yield server


def test_an_unattended_queue_without_overflow_announces_and_hangs_up(queue_pbx: PbxServer,
                                                                     tmp_path: Path) -> None:
    with phones(queue_pbx, tmp_path, ["1001"]) as [caller]:
        join(caller, queue_pbx.address, "700")
        hung_up_after = disconnected(caller)
    heard = received(tmp_path / "heard-1001.wav")
    print(f"hung up {hung_up_after:.1f} s after the answer; heard mean level {np.abs(heard).mean():.0f}")
    assert np.abs(heard).mean() > 200  # "nobody can take your call", not silence
    assert 1.0 < hung_up_after < 15
    status = pbx("queue", "status", "700", "--data-dir", str(queue_pbx.data_dir)).stdout
    assert "refused" not in status and status.startswith("queue 700 of pbx.local")


def test_a_caller_past_the_maximum_wait_talks_to_the_overflow_extension(queue_pbx: PbxServer,
                                                                         tmp_path: Path) -> None:
    with phones(queue_pbx, tmp_path, ["1001", "1002"],
                **{"1002": {"auto_answer": True}}) as [caller, overflow]:
        join(caller, queue_pbx.address, "701")
        time.sleep(2)
        status = pbx("queue", "status", "701", "--data-dir", str(queue_pbx.data_dir)).stdout
        print(status)
        assert "1001" in status.splitlines()[-1] and "waiting" in status
        overflow.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(3)
        for device in (caller, overflow):
            device.send("hangup")
    assert heard_lately(tmp_path, "1001")["1002"] > HEARD
    assert heard_lately(tmp_path, "1002")["1001"] > HEARD
    assert heard_lately(tmp_path, "1001")["1001"] < SILENT
    music = received(tmp_path / "heard-1001.wav")[RATE:3 * RATE]  # while waiting
    assert np.abs(music).mean() > 200


def test_an_agent_logs_in_from_the_phone_with_a_feature_code(queue_pbx: PbxServer, tmp_path: Path) -> None:
    with phones(queue_pbx, tmp_path, ["1003"]) as [agent]:
        join(agent, queue_pbx.address, "*45")
        hung_up_after = disconnected(agent)
    assert np.abs(received(tmp_path / "heard-1003.wav")).mean() > 200  # "you are logged in"
    assert hung_up_after < 10
    listing = json.loads(pbx("queue", "list", "--json", "--data-dir", str(queue_pbx.data_dir)).stdout)
    assert [member["logged_in"] for queue in listing for member in queue["members"]] == [True, True]

"""Call pickup end to end: three pjsua2 phones and `pbx allinone` (issue 13).

1001 calls 1002, whose phone rings; 1003 dials the group pickup code `*8` (all three are in
their tenant's default pickup group) or, in the other case, the directed pickup `**1002`. The
Call Manager answers 1003's INVITE with the ringing call: 1002 stops ringing (its CANCEL says
the call was completed elsewhere), 1001 and 1003 are answered and hear each other's tone (each
phone sends a tone of its own; the frequencies in a recording say whom it heard), and the CDR
names 1003 as the callee. With nothing ringing, `*8` is refused 480.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.integration import test_attended_transfer as transfers
from tests.integration.conftest import PbxServer, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_attended_transfer import HEARD, SILENT, TONES, heard
from tests.integration.test_callmanager_workers import port_on_worker, workers_env
from tests.integration.test_queue_calls import tone_phones
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

# The same three users (1001, 1002, 1003), each sending its tone, as the transfers' tests.
server, phones = transfers.server, transfers.phones


def final_state(phone: Pjsua2Phone, index: int, timeout: float = 10.0) -> dict[str, object]:
    return phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] in (
        "CONFIRMED", "DISCONNECTED"), timeout=timeout)


def picked_up(server: PbxServer, tmp_path: Path, phones: dict[str, Pjsua2Phone], code: str) -> None:
    """1001 calls 1002, which rings; 1003 dials `code`: 1001 and 1003 talk, 1002 stopped ringing."""
    alice, bob, carol = phones["1001"], phones["1002"], phones["1003"]
    alice.send("call", uri=f"sip:1002@{server.address}")
    bob.wait_for("incoming", timeout=10)
    time.sleep(1.0)  # 1002 rings for a while, nobody answers

    carol.send("call", uri=f"sip:{code}@{server.address}")

    assert final_state(carol, 0)["state"] == "CONFIRMED"
    assert final_state(alice, 0)["state"] == "CONFIRMED"
    stopped = bob.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    print(f"1002 stopped ringing: {stopped.get('code')} {stopped.get('reason', '')}")
    time.sleep(3.0)
    alice.send("hangup")
    carol.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
    for phone in phones.values():
        phone.close()

    alice_heard, carol_heard = heard(tmp_path, "1001", 2.5, 0.5), heard(tmp_path, "1003", 2.5, 0.5)
    print(f"after the pickup: 1001 heard {alice_heard}, 1003 heard {carol_heard}")
    assert alice_heard["1003"] > HEARD and alice_heard["1002"] < SILENT, alice_heard
    assert carol_heard["1001"] > HEARD and carol_heard["1002"] < SILENT, carol_heard
    [cdr] = server.wait_for_cdrs(1)
    assert (cdr["caller"], cdr["callee"], cdr["dialed"], cdr["disposition"]) == \
        ("1001", "1003", "1002", "ANSWERED")
    assert any("picked up by 1003" in line for line in server.log_lines)


@pytest.mark.parametrize("code", ["*8", "**1002"])
def test_a_colleague_picks_up_the_ringing_call(server: PbxServer, tmp_path: Path,
                                               phones: dict[str, Pjsua2Phone], code: str) -> None:
    picked_up(server, tmp_path, phones, code)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_call_ringing_on_another_worker_is_picked_up(tmp_path: Path, redis_server: RedisServer) -> None:
    """Two Call Manager workers on Redis: 1001's call rings on worker 0, 1003's *8 reaches worker 1,
    which hands it to worker 0."""
    with running_pbx(tmp_path / "data", workers_env(redis_server)) as started:
        for extension in TONES:
            started.add_user(extension)
        ports = {"1001": port_on_worker(started, 0), "1003": port_on_worker(started, 1)}
        with tone_phones(started, tmp_path, TONES, ports) as made:
            picked_up(started, tmp_path, made, "*8")
    assert any("handed to worker 0" in line for line in started.log_lines)


def test_nothing_to_pick_up_is_refused(server: PbxServer, phones: dict[str, Pjsua2Phone]) -> None:
    carol = phones["1003"]

    carol.send("call", uri=f"sip:*8@{server.address}")

    refused = final_state(carol, 0)
    assert (refused["state"], refused["code"]) == ("DISCONNECTED", 480), refused

"""BLF end to end (issue 13): sipp as a phone's BLF key subscribes to 1002's dialog events
(RFC 4235) at `pbx allinone`; pjsua2 phones 1001 and 1002 then call, and sipp checks each
NOTIFY it gets: the line idle, ringing, talking, idle again (tests/data/sipp/blf_watcher.xml).
The same with two Call Manager workers on Redis, the watcher on the worker that does not hold the call."""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers import sipp
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_callmanager_workers import port_on_worker, workers_env
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

STATE_SECONDS = 3.0
"""How long the line stays in each state: a worker publishes its lines and a watcher's worker
reads them once a second each."""


def watch_a_colleague(tmp_path: Path, env: dict[str, str],
                      port_for: Callable[[PbxServer, str], int] = lambda server, user: free_port()) -> None:
    """1003's BLF key (sipp) watches 1002 while 1001 calls it; `port_for(server, user)` is the
    port each one sends from (which worker gets its messages)."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    passwords = {extension: secrets.token_urlsafe(12) for extension in ("1001", "1002", "1003")}
    for extension, password in passwords.items():
        pbx("user", "add", extension, f"--password={password}", "--data-dir", str(data_dir))
    users = tmp_path / "watcher.csv"
    users.write_text(f"SEQUENTIAL\n1003;[authentication username=1003 password={passwords['1003']}];1002\n")
    # sipp 3.6 knows only MD5 and reads only the first challenge: MD5 first.
    with running_pbx(data_dir, {"PBX_AUTH__ALGORITHMS": "MD5,SHA-256", **env}) as server:
        watcher, stat = sipp.start("blf_watcher", tmp_path, "-inf", str(users), "-m", "1",
                                   remote=server.address, port=port_for(server, "1003"))
        phones: list[Pjsua2Phone] = []
        try:
            for user in ("1001", "1002"):
                phones.append(Pjsua2Phone(user=user, password=passwords[user], server=server.address,
                                          port=port_for(server, user), domain=server.domain))
                assert phones[-1].register()["code"] == 200
            caller, callee = phones
            time.sleep(STATE_SECONDS)  # subscribed, and told the line is idle
            caller.send("call", uri=f"sip:1002@{server.address}")
            callee.wait_for("incoming", timeout=10)
            time.sleep(STATE_SECONDS)  # ringing: NOTIFYed
            callee.send("answer")
            caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=10)
            time.sleep(STATE_SECONDS)
            caller.send("hangup")
            callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED", timeout=10)
            result = sipp.finish(watcher, stat, timeout=30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
            for phone in phones:
                phone.close()
    print(result.output[-1500:])
    assert (result.returncode, result.successful, result.failed) == (0, 1, 0), result.output


def test_a_blf_key_sees_a_colleague_ring_talk_and_hang_up(tmp_path: Path) -> None:
    watch_a_colleague(tmp_path, {})


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_blf_key_on_one_worker_sees_the_calls_another_worker_holds(tmp_path: Path,
                                                                     redis_server: RedisServer) -> None:
    # The watcher's messages reach worker 1; 1001's and 1002's reach worker 0, which holds their call.
    workers = {"1001": 0, "1002": 0, "1003": 1}
    watch_a_colleague(tmp_path, workers_env(redis_server),
                      lambda server, user: port_on_worker(server, workers[user]))

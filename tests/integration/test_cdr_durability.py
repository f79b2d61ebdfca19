"""A call that has ended keeps its CDR when the PBX is killed right after it (issue 14).

The all-in-one is killed with SIGKILL 0.1 s after the last call's BYE was answered, ten
times in a row on one data directory, and started again each time: every run's calls have
their CDR once it is back (the CDR journal is written before the phones are told the call
ended, and the next start puts what it holds in the database).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import (
    PbxServer,
    allinone_ports_env,
    distinct_ports,
    free_port,
    pbx,
    stable_port,
    start_allinone,
)
from tests.integration.peers import sipp
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_sipp import _import_users

pytestmark = pytest.mark.integration

RUNS = 10
CALLS = 20
KILL_AFTER = 0.1
# sipp 3.6 only knows MD5.
ENV = {"PBX_AUTH__ALGORITHMS": "MD5,SHA-256"}


def _kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL to the all-in-one and any process it started, as a crash would."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                              text=True).stdout.split()
    for pid in [process.pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


class CrashingPbx:
    """One data directory and one set of ports; started again after every kill."""

    def __init__(self, data_dir: Path) -> None:
        pbx("init", "--data-dir", str(data_dir))
        # Below the ephemeral ports: sipp's or a phone's socket could take one while it is down.
        self.data_dir = data_dir
        self.port, self.http_port = distinct_ports(2, stable_port)
        self.env = {**ENV, **allinone_ports_env(self.http_port, stable_port, sip_port=self.port)}

    @contextlib.contextmanager
    def running(self) -> Iterator[PbxServer]:
        """Started; killed with SIGKILL when the block ends."""
        process = start_allinone(self.data_dir, self.port, env=self.env)
        assert process.stdout is not None
        threading.Thread(target=lambda: list(iter(process.stdout.readline, "")), daemon=True).start()
        try:
            yield PbxServer(data_dir=self.data_dir, port=self.port, http_port=self.http_port, process=process)
        finally:
            _kill(process)

    def cdr_count_after_restart(self) -> int:
        """The CDRs once the PBX is up again (the journal is replayed within a second)."""
        with self.running() as server:
            time.sleep(1.5)
            return len(server.cdrs())


@pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed")
def test_twenty_calls_ending_together_keep_their_cdrs_through_a_kill(tmp_path: Path) -> None:
    crashing = CrashingPbx(tmp_path / "data")
    with crashing.running() as server:
        callee, callee_password = "2000", server.add_user("2000")
        callers = _import_users(server, tmp_path, CALLS)
    users = sipp.write_users(tmp_path / "callers.csv", callers)
    for run in range(RUNS):
        with crashing.running() as server:
            callee_port = free_port()
            registered = sipp.run("register_callee", tmp_path, "-s", callee, "-ap", callee_password,
                                  "-m", "1", remote=server.address, port=callee_port)
            assert registered.successful == 1, registered.output
            uas, uas_stat = sipp.start("uas_answer", tmp_path, "-m", str(CALLS), port=callee_port)
            # All twenty up within a fraction of a second, each hung up after 2 s: they end together.
            uac = sipp.run("uac_auth", tmp_path, "-inf", str(users), "-s", callee, "-d", "2000",
                           "-m", str(CALLS), "-r", "200", "-l", str(CALLS), remote=server.address)
            time.sleep(KILL_AFTER)  # sipp has had the last BYE's 200
        sipp.finish(uas, uas_stat)
        assert (uac.successful, uac.failed) == (CALLS, 0), uac.output
        assert crashing.cdr_count_after_restart() == CALLS * (run + 1), f"run {run + 1}"


def test_twenty_sequential_pjsua2_calls_keep_their_cdrs_through_a_kill(tmp_path: Path) -> None:
    crashing = CrashingPbx(tmp_path / "data")
    with crashing.running() as server:
        passwords = {"1001": server.add_user("1001"), "1002": server.add_user("1002")}
    for run in range(RUNS):
        with contextlib.ExitStack() as phones:  # closed after the kill
            with crashing.running() as server:
                caller, callee = (phones.enter_context(contextlib.closing(Pjsua2Phone(
                    user=user, password=passwords[user], server=server.address, port=free_port(),
                    auto_answer=user == "1002"))) for user in ("1001", "1002"))
                for phone in (caller, callee):
                    assert phone.register()["code"] == 200
                for _ in range(CALLS):
                    caller.send("call", uri=f"sip:1002@{server.address}")
                    state = caller.wait_for("call_state",
                                            lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
                    assert state["state"] == "CONFIRMED", state
                    caller.send("hangup")
                    caller.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")
                    callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")
                time.sleep(KILL_AFTER)
        assert crashing.cdr_count_after_restart() == CALLS * (run + 1), f"run {run + 1}"

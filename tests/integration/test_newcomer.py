"""A newcomer's run: a fresh clone, the README's first command, two softphones calling each other,
then `pbx` commands in another terminal on the same data.

`scripts/setup.sh` builds its own virtualenv from the package index, so this takes a
minute or so; it is what a newcomer does, and it is the check that the README is true.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pbx_services.rtp.wav import write_wav
from tests.integration.conftest import distinct_ports, free_port
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, level_at, received, tone
from tests.integration.test_meetings import HEARD, join

pytestmark = pytest.mark.integration

REPOSITORY = Path(__file__).parents[2]
SYSTEM_DATA_DIR = Path("/var/lib/pbx")


def _committed(path: str) -> bool:
    result = subprocess.run(["git", "-C", str(REPOSITORY), "ls-files", "--error-unmatch", path],
                            capture_output=True)
    return result.returncode == 0


@pytest.mark.skipif(not (REPOSITORY / ".git").exists() or not _committed("scripts/setup.sh"),
                    reason="needs the repository's git history to clone")
def test_fresh_clone_setup_then_two_phones_call(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPOSITORY), str(clone)], check=True, timeout=120)
    sip_port, http_port = distinct_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PBX_", "VIRTUAL_ENV"))}
    env |= {"PBX_SIP_PORT": str(sip_port), "PBX_HTTP__PORT": str(http_port)}
    data_dir = clone / "data"  # setup.sh's default, as a newcomer gets it
    setup = subprocess.Popen(["bash", "scripts/setup.sh"], cwd=clone, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert setup.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = setup.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Call Manager listening on" in line:
            break
    # Keep reading so the daemon never blocks on a full pipe.
    threading.Thread(target=lambda: output.extend(iter(setup.stdout.readline, "")), daemon=True).start()
    try:
        assert any("Call Manager listening on" in line for line in output), "".join(output)
        passwords = dict(re.findall(r"^(100[1-4])\s+(\S+)\s*$", "".join(output), re.M))
        assert sorted(passwords) == ["1001", "1002", "1003", "1004"], "".join(output)
        assert f"export PBX_DATA_DIR={data_dir}\n" in "".join(output)
        assert f"source {clone}/.venv/bin/activate" in "".join(output)
        _call(sip_port, passwords)
        _call_the_demo_menu(sip_port, passwords)
        _meet_in_the_demo_room(sip_port, passwords, tmp_path)
        _another_terminal(clone, env, data_dir)
    finally:
        os.killpg(setup.pid, signal.SIGTERM)
        setup.wait(timeout=30)
    assert setup.returncode == 0
    with sqlite3.connect(data_dir / "pbx.sqlite3") as db:
        rows = db.execute("SELECT caller, callee, disposition, hangup_by FROM cdrs").fetchall()
    assert rows == [("1001", "1002", "ANSWERED", "callee"), ("1003", "800", "ANSWERED", "caller"),
                    ("1001", "850", "ANSWERED", "caller"), ("1004", "850", "ANSWERED", "caller")]


def _another_terminal(clone: Path, env: dict[str, str], data_dir: Path) -> None:
    """What setup.sh said to type works on its data, and so does `pbx` typed without it."""
    pbx = str(clone / ".venv" / "bin" / "pbx")

    def run(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([pbx, *args], env=env | extra_env, capture_output=True, text=True,
                              timeout=60, check=True)

    users = run("user", "list", PBX_DATA_DIR=str(data_dir)).stdout
    assert re.findall(r"^(100[1-4]) ", users, re.M) == ["1001", "1002", "1003", "1004"], users
    calls = json.loads(run("cdr", "list", "--format", "json", PBX_DATA_DIR=str(data_dir)).stdout)
    assert [(call["caller"], call["callee"], call["disposition"]) for call in calls] == [
        ("1004", "850", "ANSWERED"), ("1001", "850", "ANSWERED"), ("1003", "800", "ANSWERED"),
        ("1001", "1002", "ANSWERED")]
    if not (SYSTEM_DATA_DIR / "pbx.yml").exists():  # which would come first
        guessed = run("user", "list")
        assert guessed.stdout == users
        assert guessed.stderr.startswith(f"pbx: using {data_dir}, this checkout's data dir")


def _call_the_demo_menu(sip_port: int, passwords: dict[str, str]) -> None:
    """The demo IVR on 800 (setup.sh runs `pbx init --demo`): 2 during the greeting goes to 1002."""
    server = f"127.0.0.1:{sip_port}"
    caller = Pjsua2Phone(user="1003", password=passwords["1003"], server=server, port=free_port(),
                         codecs=None)
    callee = Pjsua2Phone(user="1002", password=passwords["1002"], server=server, port=free_port(),
                         auto_answer=True)
    try:
        assert caller.register()["code"] == 200
        assert callee.register()["code"] == 200
        caller.send("call", uri=f"sip:800@{server}")
        caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(1.5)
        assert caller.stats()["rx_packets"] >= 50  # the greeting
        caller.dtmf("2")
        callee.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(2)
        assert callee.stats()["rx_packets"] >= 50
        caller.send("hangup")
        callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")
        time.sleep(1.5)
    finally:
        caller.close()
        callee.close()


def _meet_in_the_demo_room(sip_port: int, passwords: dict[str, str], work_dir: Path) -> None:
    """The demo meeting room 850 (PIN 1234): two phones, out of the box, each sending a tone,
    hear each other's."""
    server = f"127.0.0.1:{sip_port}"
    tones = {"1001": 600.0, "1004": 1400.0}
    phones = []
    try:
        for user, frequency in tones.items():
            wav = work_dir / f"tone-{user}.wav"
            write_wav(wav, RATE, tone(frequency, 5.0, level=6000))
            phones.append(Pjsua2Phone(user=user, password=passwords[user], server=server, port=free_port(),
                                      codecs=None, play=wav, record=work_dir / f"heard-{user}.wav"))
            assert phones[-1].register()["code"] == 200
        for phone in phones:
            join(phone, server, "850", pin="1234")
        time.sleep(4)
        for phone in phones:
            phone.send("hangup")
            phone.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")
    finally:
        for phone in phones:
            phone.close()
    for user, other in (("1001", "1004"), ("1004", "1001")):
        heard = received(work_dir / f"heard-{user}.wav")[-3 * RATE:-RATE // 2]
        assert level_at(heard, tones[other]) > HEARD, (user, level_at(heard, tones[other]))


def _call(sip_port: int, passwords: dict[str, str]) -> None:
    server = f"127.0.0.1:{sip_port}"
    caller = Pjsua2Phone(user="1001", password=passwords["1001"], server=server, port=free_port())
    callee = Pjsua2Phone(user="1002", password=passwords["1002"], server=server, port=free_port(),
                         auto_answer=True)
    try:
        assert caller.register()["code"] == 200
        assert callee.register()["code"] == 200
        caller.send("call", uri=f"sip:1002@{server}")
        caller.wait_for("call_state", lambda e: e["state"] == "CONFIRMED", timeout=15)
        time.sleep(2)
        assert caller.stats()["rx_packets"] >= 50
        assert callee.stats()["rx_packets"] >= 50
        callee.send("hangup")
        caller.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")
        time.sleep(1.5)  # the CDR is written within a second
    finally:
        caller.close()
        callee.close()

"""Two IVR servers behind one Call Manager: calls spread over both; one killed, the other takes
every call at once, and the cluster's event bus says when the dead one went down and came back
(after the state of every server, which the Call Manager tells once its probes have settled,
as it does on taking the VIP).

The Call Manager (`pbx allinone` without its embedded IVR) keeps its state in a real Redis,
which carries the events (the `pbx:events` stream). Each IVR server is `pbx ivr --config` in a
process group of its own (its supervisor and its worker), killed as a whole with SIGKILL.
sipp places the calls (digest auth, an SDP offer), so each call's IVR is known from the IVR
servers' own counters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import PBX, PbxServer, free_port, media_ports, pbx, running_pbx, wait_for
from tests.integration.peers import sipp
from tests.integration.test_ivr_calls import add_menu
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

CALLS = 20


class AppServerDaemon:
    """`pbx ROLE --config` (an IVR or meeting server) with one worker, on the PBX's database."""

    def __init__(self, name: str, data_dir: Path, config: Path, role: str = "ivr",
                 extra: dict[str, object] | None = None) -> None:
        """`extra`: more config sections (the state store, the cluster's auth secret)."""
        self.name = name
        self.role = role
        self.sip_port = free_port()
        self.http_port = free_port()
        port_min, port_max = media_ports()
        config.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{data_dir / 'pbx.sqlite3'}"},
            role: {"sip_host": "127.0.0.1", "sip_port": self.sip_port, "workers": 1, "port_min": port_min,
                   "port_max": port_max, "recording_dir": str(config.parent / f"{name}-recordings")},
            "http": {"host": "127.0.0.1", "port": self.http_port},
            "log": {"level": "INFO"},
            **(extra or {}),
        }))
        self.config = config
        self.log = config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([*PBX, self.role, "--config", str(self.config)],
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if "listening on" in self.log.read_text():
                health = self.health()
                if health.get("status") == "ok":
                    return
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"pbx {self.role} did not start:\n" + self.log.read_text()[-3000:])

    def health(self) -> dict[str, object]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=2) as reply:
                return dict(json.loads(reply.read()))
        except OSError:
            return {}

    def answered(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as reply:
            text = reply.read().decode()
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
                   if line.startswith(f"pbx_{self.role}_calls_answered_total"))

    def kill(self) -> None:
        """SIGKILL to the whole daemon (supervisor and worker), as a machine or an OOM kill would."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def endpoint_up(server: PbxServer, name: str) -> bool | None:
    for endpoint in server.health()["application_endpoints"]:
        if endpoint["server"] == name:
            return bool(endpoint["up"])
    return None


SNAPSHOT_REASON = "as the Call Manager taking the VIP sees it"


def server_events(redis: RedisServer, *, changes: bool = True) -> list[dict[str, object]]:
    """The ServerStateChanged events: the changes, or the states told on taking the VIP."""
    client = redis.client()
    events = []
    for _, fields in client.xrange("pbx:events"):
        if fields[b"type"] == b"ServerStateChanged":
            event = json.loads(fields[b"data"])
            if (SNAPSHOT_REASON not in event["reason"]) == changes:
                events.append(event)
    client.close()
    return events


def place_calls(server: PbxServer, work_dir: Path, password: str) -> sipp.SippResult:
    callers = work_dir / "callers.csv"
    callers.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 password={password}];800\n")
    return sipp.run("uac_auth_sdp", work_dir, "-inf", str(callers), "-m", str(CALLS), "-r", "10", "-l", "20",
                    "-d", "2000", remote=server.address, timeout=120)


def test_calls_spread_over_two_ivr_servers_and_avoid_a_dead_one(tmp_path: Path,
                                                                redis_server: RedisServer) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    add_menu(data_dir, options={"2": "1002"})
    ivrs = [AppServerDaemon(name, data_dir, tmp_path / f"{name}.yml") for name in ("ivr1", "ivr2")]
    for ivr in ivrs:
        pbx("server", "add", ivr.name, "--role", "ivr", "--host", "127.0.0.1", "--port", str(ivr.sip_port),
            "--data-dir", str(data_dir))
    # sipp answers MD5 challenges only.
    env = {"PBX_IVR__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url, "PBX_AUTH__ALGORITHMS": "MD5"}
    with ExitStack() as stack:
        for ivr in ivrs:  # up before the Call Manager probes them: no down event at start-up
            stack.callback(ivr.stop)
            ivr.start()
        server = stack.enter_context(running_pbx(data_dir, env))
        password = server.add_user("1001")
        first, second = ivrs

        result = place_calls(server, tmp_path, password)
        assert (result.successful, result.failed) == (CALLS, 0), result.output
        wait_for("the calls in the workers' reports", lambda: sum(ivr.answered() for ivr in ivrs) >= CALLS, 5)
        spread = [ivr.answered() for ivr in ivrs]
        assert sum(spread) == CALLS and min(spread) >= CALLS // 4, f"calls not spread: {spread}"
        deadline = time.monotonic() + 10
        while len(told := server_events(redis_server, changes=False)) < 4:
            assert time.monotonic() < deadline, f"the servers' states not told: {told}"
            time.sleep(0.2)
        assert {(e["server"], e["role"], e["state"]) for e in told} >= {
            (first.name, "ivr", "up"), (second.name, "ivr", "up"),
            ("allinone-callmanager", "callmanager", "up"), ("allinone-media", "media", "up")}
        assert len(told) == len({e["server"] for e in told})  # once each

        first.kill()
        killed_at = time.monotonic()
        while endpoint_up(server, first.name):
            assert time.monotonic() - killed_at < 3.0, "the dead IVR server is still in rotation after 3 s"
            time.sleep(0.05)
        out_after = time.monotonic() - killed_at

        before = second.answered()
        result = place_calls(server, tmp_path, password)
        assert (result.successful, result.failed) == (CALLS, 0), result.output
        wait_for("the calls in the workers' reports", lambda: second.answered() - before >= CALLS, 5)
        assert second.answered() - before == CALLS

        down = [e for e in server_events(redis_server) if e["server"] == first.name]
        assert [e["state"] for e in down] == ["down"], down
        assert "OPTIONS" in str(down[0]["reason"]) and down[0]["role"] == "ivr"

        first.start()
        deadline = time.monotonic() + 10
        while not endpoint_up(server, first.name):
            assert time.monotonic() < deadline, "the restarted IVR server is not back in rotation"
            time.sleep(0.1)
        states = [e["state"] for e in server_events(redis_server) if e["server"] == first.name]
        assert states == ["down", "up"], states
        assert all(e["server"] != second.name for e in server_events(redis_server))
    print(f"\nIVR server out of rotation {out_after:.2f} s after SIGKILL; calls spread {spread}")


def test_a_server_going_down_while_redis_is_away_reaches_the_bus_when_it_is_back(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """The Call Manager keeps the event the bus could not take, and publishes it once Redis answers
    again: the alert e-mail is late, not lost."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    ivr = AppServerDaemon("ivr1", data_dir, tmp_path / "ivr1.yml")
    pbx("server", "add", ivr.name, "--role", "ivr", "--host", "127.0.0.1", "--port", str(ivr.sip_port),
        "--data-dir", str(data_dir))
    env = {"PBX_IVR__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url}
    with ExitStack() as stack:
        stack.callback(ivr.stop)
        ivr.start()
        server = stack.enter_context(running_pbx(data_dir, env))
        deadline = time.monotonic() + 15
        while not endpoint_up(server, ivr.name):
            assert time.monotonic() < deadline, "the Call Manager never saw the IVR server up"
            time.sleep(0.2)

        redis_server.stop()
        ivr.kill()
        deadline = time.monotonic() + 10
        while endpoint_up(server, ivr.name):
            assert time.monotonic() < deadline, "the dead IVR server is still up for the Call Manager"
            time.sleep(0.1)
        time.sleep(2)  # a few housekeeping rounds with the bus away
        redis_server.start()  # empty: no persistence
        deadline = time.monotonic() + 15
        while not (down := server_events(redis_server)):
            assert time.monotonic() < deadline, "the down event never reached the bus"
            time.sleep(0.2)

        assert [(e["server"], e["role"], e["state"]) for e in down] == [(ivr.name, "ivr", "down")]
        assert "OPTIONS" in str(down[0]["reason"])
        assert any("not put on the bus yet" in line for line in server.log_lines)

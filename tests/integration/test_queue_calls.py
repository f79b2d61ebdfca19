"""A call queue end to end in `pbx allinone`: pjsua2 phones, the embedded queue server and the
Call Manager, which routes the queue server's calls to its agents and joins the caller to the
agent who answers.

Queue 700 rings its members 1002 and 1003 at once (ring-all), with 5 s of wrap-up. 1001 calls
700: the queue answers and plays its music; both agents ring, 1002 answers, 1003 stops ringing;
1001 and 1002 hear each other's tones (each phone sends a tone of its own). After 1001 hangs up,
1002 is in wrap-up: a second caller, 1004, is offered to 1003 alone, and to 1002 only once its
wrap-up is over.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbx_services.rtp.wav import write_wav
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_callmanager_workers import port_on_worker, worker_metric, workers_env
from tests.integration.test_ivr_calls import RATE, level_at, received, tone
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

TONES = {"1001": 1100.0, "1002": 1400.0, "1003": 1900.0, "1004": 2300.0}
"""Each phone's own tone: above the hold music's notes (up to 784 Hz) and apart from one another."""
HEARD = 1000.0
SILENT = 200.0
WRAP_UP = 5.0
RING_TIMEOUT = 5


@contextlib.contextmanager
def queue_pbx(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[PbxServer]:
    """An all-in-one with the users of `TONES` and queue 700."""
    pbx("init", "--data-dir", str(data_dir))
    passwords = {extension: secrets.token_urlsafe(12) for extension in TONES}
    for extension, password in passwords.items():
        pbx("user", "add", extension, f"--password={password}", "--data-dir", str(data_dir))
    pbx("queue", "add", "700", "--strategy", "ring-all", "--member", "1002", "--member", "1003",
        "--wrap-up", str(int(WRAP_UP)), "--ring-timeout", str(RING_TIMEOUT), "--data-dir", str(data_dir))
    with running_pbx(data_dir, env) as server:
        server.passwords.update(passwords)
        yield server


@contextlib.contextmanager
def tone_phones(server: PbxServer, tmp_path: Path, tones: dict[str, float],
                ports: dict[str, int] | None = None) -> Iterator[dict[str, Pjsua2Phone]]:
    """Registered phones of the users of `tones`, each sending its tone and recording what it hears
    (complete once closed); `ports`: the SIP ports of some of them."""
    made: dict[str, Pjsua2Phone] = {}
    try:
        for user, frequency in tones.items():
            sent = tmp_path / f"tone-{user}.wav"
            write_wav(sent, RATE, tone(frequency, 5.0, level=6000))
            made[user] = Pjsua2Phone(user=user, password=server.passwords[user], server=server.address,
                                     port=(ports or {}).get(user) or free_port(), domain=server.domain,
                                     play=sent, record=tmp_path / f"heard-{user}.wav")
            assert made[user].register()["code"] == 200
        yield made
    finally:
        for phone in made.values():
            phone.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxServer]:
    with queue_pbx(tmp_path / "data") as server:
        yield server


@pytest.fixture
def phones(server: PbxServer, tmp_path: Path) -> Iterator[dict[str, Pjsua2Phone]]:
    with tone_phones(server, tmp_path, TONES) as made:
        yield made


def loudest(tmp_path: Path, user: str) -> dict[str, float]:
    """The highest level of each phone's tone over the seconds of what `user` heard."""
    audio = received(tmp_path / f"heard-{user}.wav")
    seconds = [audio[start:start + RATE] for start in range(0, len(audio) - RATE + 1, RATE // 2)]
    return {other: round(max((level_at(second, frequency) for second in seconds), default=0.0))
            for other, frequency in TONES.items()}


def state(phone: Pjsua2Phone, index: int, *states: str, timeout: float = 15.0) -> dict[str, object]:
    return phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] in states,
                          timeout=timeout)


def test_a_caller_is_joined_to_the_agent_who_answers_who_then_has_its_wrap_up(
        server: PbxServer, tmp_path: Path, phones: dict[str, Pjsua2Phone]) -> None:
    caller, agent2, agent3, second_caller = (phones[user] for user in ("1001", "1002", "1003", "1004"))

    caller.send("call", uri=f"sip:700@{server.address}")
    assert state(caller, 0, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"  # the queue answers
    rung = [agent.wait_for("incoming", timeout=10)["remote_uri"] for agent in (agent2, agent3)]
    assert all("700@" in uri for uri in rung), rung
    time.sleep(2.0)
    waiting = caller.stats()["rx_packets"]
    assert waiting > 50, waiting  # the music, while the agents ring
    agent2.send("answer")

    assert state(agent2, 0, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
    cancelled = state(agent3, 0, "DISCONNECTED")
    assert cancelled["code"] == 487, cancelled
    time.sleep(3.0)
    caller.send("hangup")
    state(agent2, 0, "DISCONNECTED")
    ended_at = time.monotonic()

    # During 1002's wrap-up the next caller rings 1003 alone; 1002 once the wrap-up is over.
    time.sleep(1.0)
    second_caller.send("call", uri=f"sip:700@{server.address}")
    assert state(second_caller, 0, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
    assert "700@" in agent3.wait_for("incoming", timeout=10)["remote_uri"]
    agent2.wait_for("incoming", timeout=RING_TIMEOUT + WRAP_UP + 5)
    offered_after = time.monotonic() - ended_at
    print(f"1002 offered the next call {offered_after:.1f} s after its call ended")
    assert offered_after >= WRAP_UP - 0.5, offered_after
    second_caller.send("hangup")
    state(agent2, 1, "DISCONNECTED")
    for phone in phones.values():
        phone.close()

    caller_heard, agent_heard, other_heard = (loudest(tmp_path, user) for user in ("1001", "1002", "1003"))
    print(f"1001 heard {caller_heard}, 1002 heard {agent_heard}, 1003 heard {other_heard}")
    assert caller_heard["1002"] > HEARD and caller_heard["1003"] < SILENT, caller_heard
    assert agent_heard["1001"] > HEARD, agent_heard
    assert other_heard["1001"] < SILENT, other_heard


def joined(caller: Pjsua2Phone, agent: Pjsua2Phone, server: PbxServer, index: int) -> None:
    """`caller` dials the queue and `agent` answers the ring: they talk for 2 s, then the caller
    hangs up."""
    caller.send("call", uri=f"sip:700@{server.address}")
    assert state(caller, 0, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
    agent.wait_for("incoming", lambda e: e["index"] == index, timeout=10)
    agent.send("answer")
    assert state(agent, index, "CONFIRMED", "DISCONNECTED")["state"] == "CONFIRMED"
    time.sleep(2.0)
    caller.send("hangup")
    state(agent, index, "DISCONNECTED")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_queue_calls_are_joined_whichever_call_manager_worker_the_caller_reached(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """Two Call Manager workers on Redis: the queue server's calls to the agents name the caller's
    call (Pbx-Join-Tag) and go to the worker holding it, whichever worker the kernel gives the
    queue server's datagrams to; the agents' wrap-up is in Redis."""
    with queue_pbx(tmp_path / "data", workers_env(redis_server)) as server:
        ports = {"1001": port_on_worker(server, 0), "1004": port_on_worker(server, 1)}
        with tone_phones(server, tmp_path, TONES, ports) as phones:
            joined(phones["1001"], phones["1002"], server, 0)
            # 1002 is in wrap-up: 1003 takes the caller reaching the other worker.
            joined(phones["1004"], phones["1003"], server, 1)
            for phone in phones.values():
                phone.close()
        metrics = server.metrics()
    heard = {user: loudest(tmp_path, user) for user in TONES}
    print(f"heard: {heard}")
    for caller, agent in (("1001", "1002"), ("1004", "1003")):
        assert heard[caller][agent] > HEARD and heard[agent][caller] > HEARD, (caller, agent, heard)
    assert sum(worker_metric(metrics, "pbx_callmanager_forwarded_total", worker, direction="in")
               for worker in (0, 1)) > 0

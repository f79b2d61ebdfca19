"""Ten queues over two queue servers; one killed with SIGKILL: its waiting callers are moved to
the other and wait there, new callers are answered by the survivor, the down event is on the
bus, and no agent ever rings for two queue calls at once (issue 11).

The Call Manager (`pbx allinone` without its embedded queue server) and both `pbx queue
--config` servers share a real Redis: the queues' homes, the agents' claims, the leases, the
bus. Both agents (pjsua2 phones that ring and never answer) are members of every queue, with
a 4 s ring timeout, so they are rung over and over, from either server, for ten callers at
once: each phone's own record of its incoming calls is checked for overlaps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import PbxServer, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_failover import AppServerDaemon, endpoint_up, server_events
from tests.integration.test_meeting_failover import registered_phone
from tests.integration.test_meetings import join
from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration

QUEUES = [str(700 + n) for n in range(10)]
AGENTS = ["2001", "2002"]
CALLERS = [str(3001 + n) for n in range(len(QUEUES) + 1)]
PASSWORDS = {user: f"pw-{user}-Secret" for user in [*AGENTS, *CALLERS]}
MOVED_WITHIN = 10.0

Cluster = tuple[PbxServer, list[AppServerDaemon]]


def waiting(daemon: AppServerDaemon) -> int:
    health = daemon.health()
    return sum(int(worker.get("callers_waiting", 0)) for worker in health.get("workers", []))  # type: ignore[union-attr]


def most_rings_at_once(phone: Pjsua2Phone) -> int:
    """The most calls the phone had ringing at the same time, from its own events."""
    ringing: set[str] = set()
    most = 0
    for event in phone.seen():
        if event["event"] == "incoming":
            ringing.add(event["call_id"])
            most = max(most, len(ringing))
        elif event["event"] == "call_state" and event["state"] == "DISCONNECTED":
            ringing.discard(event["call_id"])
    return most


def rings(phone: Pjsua2Phone) -> int:
    return sum(1 for event in phone.seen() if event["event"] == "incoming")


@pytest.fixture
def queue_cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    data_dir = tmp_path / "data"
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    for user, password in PASSWORDS.items():
        pbx("user", "add", user, f"--password={password}", *directory)
    members = [word for agent in AGENTS for word in ("--member", agent)]
    for queue in QUEUES:
        pbx("queue", "add", queue, *members, "--ring-timeout", "5", "--max-misses", "0", *directory)
    secret = yaml.safe_load((data_dir / "pbx.yml").read_text())["auth"]["secret"]
    extra: dict[str, Any] = {"auth": {"secret": secret}, "state": {"url": redis_server.url}}
    daemons = [AppServerDaemon(name, data_dir, tmp_path / f"{name}.yml", role="queue", extra=extra)
               for name in ("queue1", "queue2")]
    for daemon in daemons:
        pbx("server", "add", daemon.name, "--role", "queue", "--host", "127.0.0.1", "--port",
            str(daemon.sip_port), "--http-port", str(daemon.http_port), *directory)
    env = {"PBX_QUEUE__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url}
    with ExitStack() as stack:
        for daemon in daemons:
            daemon.start()
            stack.callback(daemon.stop)
        server = stack.enter_context(running_pbx(data_dir, env))
        server.passwords.update(PASSWORDS)
        deadline = time.monotonic() + 15
        while not all(endpoint_up(server, d.name) for d in daemons):
            assert time.monotonic() < deadline, server.health()
            time.sleep(0.3)
        yield server, daemons


def test_a_killed_queue_servers_callers_wait_on_the_other_and_no_agent_rings_twice(
        queue_cluster: Cluster, tmp_path: Path, redis_server: RedisServer) -> None:
    server, daemons = queue_cluster
    with ExitStack() as stack:
        agents = [registered_phone(stack, server, agent, 1000.0 + 300 * n, tmp_path, add=False)
                  for n, agent in enumerate(AGENTS)]
        callers = [registered_phone(stack, server, caller, 500.0, tmp_path, add=False) for caller in CALLERS]
        for caller, queue in zip(callers, QUEUES, strict=False):
            join(caller, server.address, queue)
        time.sleep(2)
        spread = [waiting(daemon) for daemon in daemons]
        print(f"callers waiting per queue server: {spread}")
        assert sum(spread) == len(QUEUES) and min(spread) >= 1, spread
        victim, survivor = sorted(daemons, key=waiting, reverse=True)
        time.sleep(6)  # the agents rung over and over from both servers
        killed_at = time.monotonic()
        victim.kill()
        while waiting(survivor) < len(QUEUES):
            assert time.monotonic() - killed_at < MOVED_WITHIN, (waiting(survivor), server.health())
            time.sleep(0.2)
        moved_after = time.monotonic() - killed_at
        join(callers[-1], server.address, QUEUES[0])  # a new caller lands on the survivor
        time.sleep(12)  # two ring timeouts and more on the survivor alone
        assert waiting(survivor) == len(QUEUES) + 1
        dropped = [c.user for c in callers if any(e["event"] == "call_state" and e["state"] == "DISCONNECTED"
                                                   for e in c.seen())]
        for caller in callers:
            caller.send("hangup")
    print(f"all {len(QUEUES)} callers waiting on {survivor.name} {moved_after:.1f} s after the kill; "
          f"rings per agent {[rings(a) for a in agents]}, "
          f"most at once {[most_rings_at_once(a) for a in agents]}")
    assert dropped == [], f"callers dropped: {dropped}"
    assert all(rings(agent) >= 4 for agent in agents)  # rung again and again, by both servers
    assert [most_rings_at_once(agent) for agent in agents] == [1, 1]
    downs = [e for e in server_events(redis_server) if e["server"] == victim.name and e["state"] == "down"]
    assert len(downs) == 1

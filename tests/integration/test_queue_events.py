"""A queue call's events on the cluster's bus (issue 11): `pbx allinone` on a real Redis, whose
embedded queue server publishes them through its outbox, read back from the Redis stream.

1001 calls queue 700 (ring-all 1002 and 1003, 5 s of wrap-up); 1002 answers, they talk 2 s
and 1001 hangs up. On the bus: the caller joining and leaving answered by 1002, both agents
ringing, 1002 on the call, 1003 let go, then 1002's wrap-up from the end of the call the Call
Manager recorded, and 1002 available once it is over. The queue's status has 1002's call and
talk time.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from pbx_services.cluster.events import AgentStateChanged, QueueCallerJoined, QueueCallerLeft
from pbx_services.cluster.redis_bus import read_events
from tests.integration.conftest import pbx
from tests.integration.test_queue_calls import TONES, WRAP_UP, joined, queue_pbx, tone_phones
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.skipif(shutil.which("redis-server") is None,
                                                         reason="redis-server is not installed")]

TALK = 2.0
"""Seconds `joined` lets the caller and the agent talk."""


QueueEvent = QueueCallerJoined | QueueCallerLeft | AgentStateChanged


def queue_events(client: redis.Redis) -> list[QueueEvent]:
    """The queue's callers' and agents' events on the stream so far."""
    return [event for _, event in read_events(client, last_id="0")
            if isinstance(event, QueueEvent)]


def test_a_queue_calls_caller_and_agent_events_are_read_back_from_the_stream(
        tmp_path: Path, redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    with queue_pbx(tmp_path / "data", {"PBX_STATE__URL": redis_server.url}) as server:
        tones = {user: TONES[user] for user in ("1001", "1002", "1003")}
        with tone_phones(server, tmp_path, tones) as phones:
            joined(phones["1001"], phones["1002"], server, 0)
            ended_at = datetime.now(UTC)
        deadline = time.monotonic() + WRAP_UP + 10
        while time.monotonic() < deadline:  # the outbox sends every 0.2 s; the wrap-up's end is told
            events = queue_events(client)
            if any(isinstance(e, AgentStateChanged) and e.reason == "wrap-up over" for e in events):
                break
            time.sleep(0.5)
        status = json.loads(pbx("queue", "status", "700", "--json", "--data-dir",
                                str(server.data_dir)).stdout)
    client.close()
    for event in events:
        print(event)

    callers = [(type(e).__name__, e.caller) for e in events if not isinstance(e, AgentStateChanged)]
    assert callers == [("QueueCallerJoined", "1001"), ("QueueCallerLeft", "1001")]
    left = next(e for e in events if isinstance(e, QueueCallerLeft))
    assert (left.queue, left.outcome, left.agent) == ("700", "answered", "1002")
    assert 0 < left.waited < 10, left

    agents = [(e.extension, e.state.value) for e in events if isinstance(e, AgentStateChanged)]
    assert sorted(agents[:2]) == [("1002", "ringing"), ("1003", "ringing")], agents
    answered, let_go = ("1002", "on_call"), ("1003", "available")
    assert sorted(agents[2:4]) == [answered, let_go], agents  # 1003's 487 may come before 1002's 200
    assert agents[4:] == [("1002", "wrap_up"), ("1002", "available")], agents
    wrap_up, available = [e for e in events if isinstance(e, AgentStateChanged)][-2:]
    assert abs((wrap_up.time - ended_at).total_seconds()) < 1.5, (wrap_up.time, ended_at)  # the call's end
    assert (available.time - wrap_up.time).total_seconds() == pytest.approx(WRAP_UP, abs=0.01)
    assert {e.server for e in events} == {left.server}

    agent = next(m for m in status["members"] if m["extension"] == "1002")
    assert agent["calls"] == 1 and agent["talk_seconds"] == pytest.approx(TALK, abs=1.0), agent
    assert 0 < agent["occupancy"] <= 1, agent

"""The event bus on a Redis stream, against a real redis-server."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from pbx_services.cluster.events import (
    AgentState,
    AgentStateChanged,
    CallEnded,
    Disposition,
    HangupBy,
    QueueCallerJoined,
    QueueCallerLeft,
    QueueOutcome,
    ServerState,
    ServerStateChanged,
)
from pbx_services.cluster.redis_bus import (
    EVENT_TYPES,
    RedisStreamBus,
    decode_event,
    encode_event,
    read_events,
)
from tests.redis_server import RedisServer

NOW = datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
MASTER = ServerStateChanged(server="cm1", role="callmanager", state=ServerState.MASTER,
                            reason="pbx_vip: BACKUP -> MASTER", time=NOW)
ENDED = CallEnded(call_id="c1", tenant_id=None, caller="1001", callee="1002", caller_ip="192.0.2.1",
                  start_time=NOW, answer_time=None, end_time=NOW, disposition=Disposition.BUSY,
                  sip_code=486, hangup_by=None)
ANSWERED_ENDED = CallEnded(call_id="c2", tenant_id=3, caller="1001", callee="1002", caller_ip="192.0.2.1",
                           start_time=NOW, answer_time=NOW, end_time=NOW, disposition=Disposition.ANSWERED,
                           sip_code=200, hangup_by=HangupBy.CALLEE, recording="/var/lib/pbx/r.wav")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


def test_an_event_is_an_entry_with_its_type_and_json_data(client: redis.Redis) -> None:
    entry_id = RedisStreamBus(client).publish(MASTER)

    [(read_id, fields)] = client.xrange("pbx:events")
    assert read_id.decode() == entry_id
    assert fields == {b"type": b"ServerStateChanged",
                      b"data": b'{"server":"cm1","role":"callmanager","state":"master",'
                               b'"reason":"pbx_vip: BACKUP -> MASTER","time":"2026-01-01T12:30:00+00:00"}'}


def test_events_come_back_as_the_same_dataclasses(client: redis.Redis) -> None:
    bus = RedisStreamBus(client)
    for event in (MASTER, ENDED, ANSWERED_ENDED):
        bus.publish(event)

    events = [event for _, event in read_events(client, last_id="0")]

    assert events == [MASTER, ENDED, ANSWERED_ENDED]
    assert isinstance(events[0].state, ServerState)  # type: ignore[attr-defined]


def test_read_from_an_id_gives_the_later_events_only(client: redis.Redis) -> None:
    bus = RedisStreamBus(client)
    first = bus.publish(ENDED)
    bus.publish(MASTER)

    assert [event for _, event in read_events(client, last_id=first)] == [MASTER]
    assert list(read_events(client)) == []  # "$": only what comes from now on


def test_a_blocking_read_gets_what_is_published_meanwhile(
        redis_server: RedisServer, client: redis.Redis) -> None:
    reader = read_events(client, block_ms=100)
    RedisStreamBus(redis_server.client()).publish(MASTER)

    entry_id, event = next(reader)

    assert event == MASTER
    assert entry_id == client.xrange("pbx:events")[0][0].decode()


def test_unknown_and_broken_entries_are_skipped_with_a_log_line(
        client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    client.xadd("pbx:events", {"type": "PhoneExploded", "data": "{}"})
    client.xadd("pbx:events", {"type": "ServerStateChanged", "data": '{"server": "cm1"}'})
    client.xadd("pbx:events", {"type": "ServerStateChanged", "data": "not json"})
    RedisStreamBus(client).publish(MASTER)

    with caplog.at_level(logging.WARNING):
        events = [event for _, event in read_events(client, last_id="0")]

    assert events == [MASTER]
    assert "unknown type 'PhoneExploded'" in caplog.text
    assert caplog.text.count("does not parse") == 2


def test_a_field_a_newer_version_added_is_left_out_and_the_event_read(client: redis.Redis) -> None:
    RedisStreamBus(client).publish(MASTER)
    [(_, fields)] = client.xrange("pbx:events")
    data = json.loads(fields[b"data"]) | {"added_by_a_newer_version": 1}
    client.xadd("pbx:events", {"type": "ServerStateChanged", "data": json.dumps(data)})

    assert [event for _, event in read_events(client, last_id="0")] == [MASTER, MASTER]


def test_the_stream_is_capped(client: redis.Redis) -> None:
    bus = RedisStreamBus(client, stream="pbx:test", maxlen=10)
    for _ in range(500):
        bus.publish(MASTER)

    assert client.xlen("pbx:test") < 500  # approximately maxlen: Redis trims whole nodes


def test_every_event_of_events_py_can_be_read() -> None:
    assert {"CallStarted", "CallAnswered", "CallEnded", "RegistrationChanged",
            "ServerStateChanged"} <= set(EVENT_TYPES)
    assert decode_event(encode_event(MASTER)) == MASTER


def test_only_dataclass_instances_are_events(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not an event"):
        encode_event(tmp_path)


@pytest.mark.parametrize("event", [
    QueueCallerJoined(domain="pbx.local", queue="700", caller="1001", position=2, server="q1/0", time=NOW),
    QueueCallerLeft(domain="pbx.local", queue="700", caller="1001", outcome=QueueOutcome.ANSWERED,
                    waited=12.5, agent="1003", callback=None, server="q1/0", time=NOW),
    QueueCallerLeft(domain="pbx.local", queue="700", caller="1001", outcome=QueueOutcome.ABANDONED,
                    waited=0.0, agent=None, callback="5551234", server="q1/0", time=NOW),
    AgentStateChanged(domain="pbx.local", extension="1003", state=AgentState.WRAP_UP, queue="700",
                      reason="the call ended", server="q1/0", time=NOW),
    AgentStateChanged(domain="pbx.local", extension="1003", state=AgentState.LOGGED_OUT, queue=None,
                      reason="", server="q1/0", time=NOW),
], ids=lambda event: type(event).__name__)
def test_queue_and_agent_events_come_back_as_they_went(event: object) -> None:
    fields = encode_event(event)

    assert decode_event(fields) == event
    assert fields["type"] == type(event).__name__


def test_a_queue_callers_outcome_and_an_agents_state_are_their_values_on_the_stream() -> None:
    left = QueueCallerLeft(domain="pbx.local", queue="700", caller="1001", outcome=QueueOutcome.OVERFLOWED,
                           waited=30.0, agent=None, callback=None, server="q1/0", time=NOW)

    assert encode_event(left)["data"] == (
        '{"domain":"pbx.local","queue":"700","caller":"1001","outcome":"overflowed","waited":30.0,'
        '"agent":null,"callback":null,"server":"q1/0","time":"2026-01-01T12:30:00+00:00"}')
    decoded = decode_event(encode_event(left))
    assert isinstance(decoded, QueueCallerLeft) and decoded.outcome is QueueOutcome.OVERFLOWED

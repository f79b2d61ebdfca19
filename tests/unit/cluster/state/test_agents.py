"""What queue agents are doing, and leases: one claim wins, the transitions of a queue call, the bounds on a
ring or a call whose server died (both stores), and claims racing from many threads (Redis)."""

from __future__ import annotations

import threading
import time

from pbx_services.cluster.state import StateStore, open_state_store
from pbx_services.cluster.state.agents import (
    AgentActivity,
    AgentRecord,
    agent_key,
    answered,
    claim,
    ended,
    missed,
    released,
)
from tests.redis_server import RedisServer

AGENT = agent_key("pbx.local", "1001")
T0 = 1_800_000_000.0


def test_an_agent_never_seen_is_available(store: StateStore) -> None:
    assert store.agents.records([AGENT]) == {AGENT: AgentRecord()}
    assert store.agents.records([]) == {}


def test_an_agent_rings_for_one_call_only(store: StateStore) -> None:
    assert store.agents.change(AGENT, claim("call-a", T0, 15)) == AgentRecord(
        activity=AgentActivity.RINGING, call="call-a", until=T0 + 15)
    assert store.agents.change(AGENT, claim("call-b", T0 + 1, 15)) is None  # from another queue
    assert store.agents.records([AGENT])[AGENT].call == "call-a"


def test_a_queue_call_from_ring_to_wrap_up_and_free_again(store: StateStore) -> None:
    store.agents.change(AGENT, claim("call-a", T0, 15))
    assert store.agents.change(AGENT, answered("call-b", T0 + 3, 3600)) is None  # not the call it rings for
    on_call = store.agents.change(AGENT, answered("call-a", T0 + 3, 3600))
    assert on_call is not None and on_call.activity is AgentActivity.ON_CALL
    assert store.agents.change(AGENT, claim("call-c", T0 + 60, 15)) is None
    wrap_up = store.agents.change(AGENT, ended("call-a", T0 + 63, 60.0, 10))
    assert wrap_up == AgentRecord(activity=AgentActivity.WRAP_UP, until=T0 + 73, calls_taken=1,
                                  talk_seconds=60.0, idle_since=T0 + 73)
    assert store.agents.change(AGENT, claim("call-c", T0 + 70, 15)) is None  # still wrapping up
    assert store.agents.change(AGENT, claim("call-c", T0 + 73, 15)) is not None


def test_misses_count_in_a_row_and_an_answer_clears_them(store: StateStore) -> None:
    for n in range(1, 3):
        store.agents.change(AGENT, claim(f"call-{n}", T0 + n * 20, 15))
        assert store.agents.change(AGENT, missed(f"call-{n}")) == AgentRecord(misses=n)
    store.agents.change(AGENT, claim("call-3", T0 + 60, 15))
    assert store.agents.change(AGENT, released("call-3")) == AgentRecord(misses=2)  # not the agent's fault
    store.agents.change(AGENT, claim("call-4", T0 + 80, 15))
    answered_record = store.agents.change(AGENT, answered("call-4", T0 + 82, 3600))
    assert answered_record is not None and answered_record.misses == 0


def test_a_ring_or_a_call_whose_queue_server_died_ends_by_itself(store: StateStore) -> None:
    store.agents.change(AGENT, claim("call-a", T0, 15))
    assert store.agents.change(AGENT, claim("call-b", T0 + 14.9, 15)) is None
    assert store.agents.change(AGENT, claim("call-b", T0 + 15, 15)) is not None
    store.agents.change(AGENT, answered("call-b", T0 + 16, 3600))
    assert store.agents.change(AGENT, claim("call-c", T0 + 3615, 15)) is None
    assert store.agents.change(AGENT, claim("call-c", T0 + 3616, 15)) is not None


def test_a_record_that_does_not_parse_counts_as_never_seen(redis_server: RedisServer) -> None:
    redis_server.client().set("pbx:agent:" + AGENT, "{not json")
    state = open_state_store(redis_server.url, nonce_ttl=300)
    try:
        assert state.agents.records([AGENT]) == {AGENT: AgentRecord()}
        assert state.agents.change(AGENT, claim("call-a", T0, 15)) is not None
    finally:
        state.close()


def test_of_many_servers_claiming_one_agent_at_once_exactly_one_wins(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    stores = [open_state_store(redis_server.url, nonce_ttl=300, timeout=5) for _ in range(8)]
    winners: list[str] = []
    start = threading.Barrier(len(stores))

    def contend(index: int, state: StateStore) -> None:
        start.wait()
        for round_ in range(20):
            call = f"call-{round_}-{index}"
            if state.agents.change(agent_key("pbx.local", str(round_)), claim(call, T0, 15)) is not None:
                winners.append(call)

    threads = [threading.Thread(target=contend, args=(i, s)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for state in stores:
        state.close()
    assert sorted(int(call.split("-")[1]) for call in winners) == list(range(20))  # one winner per agent


def test_a_lease_is_held_by_one_owner_renewed_by_it_and_taken_once_it_lapses(store: StateStore) -> None:
    assert store.leases.hold("queue:pbx.local/700", "q1", 0.3, T0)
    assert not store.leases.hold("queue:pbx.local/700", "q2", 0.3, T0 + 0.1)
    assert store.leases.hold("queue:pbx.local/700", "q1", 0.3, T0 + 0.2)  # renewed
    assert store.leases.hold("queue:pbx.local/701", "q2", 0.3, T0 + 0.2)  # another key
    time.sleep(0.35)  # Redis's clock: the in-process store goes by `now`
    assert store.leases.hold("queue:pbx.local/700", "q2", 0.3, T0 + 0.6)
    assert not store.leases.hold("queue:pbx.local/700", "q1", 0.3, T0 + 0.6)

"""Which agent a queue rings, with pjsua2 phones as agents in known states and histories (issue 11).

Agents 1002, 1003 and 1004 ring and answer by hand; 1001 (and 1004 when it is not an agent)
calls. An agent's history is made by real calls through one-member queues: 1004 takes three
short calls first, then 1003 one long call, then 1002 two short ones, so that 1004 has been
idle longest, 1003 has taken the fewest calls and 1002 has talked least. Then each strategy's
queue is called: the agents that ring within a moment of the first are what the strategy
chose; the caller hangs up (an abandoned call, counted as such) and the next call follows.
The other tests here: pause and unpause, an agent paused after missing a ring, the position
announcements over a queue's own music (a silent prompt, so the announcements stand out), and
a caller who asks to be called back keeping their place and talking to the agent.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pbx_services.rtp.wav import write_wav
from tests.integration.conftest import PbxServer, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_ivr_calls import RATE, received
from tests.integration.test_queue_calls import HEARD, TONES, loudest, tone_phones

# About 4 minutes of real calls: in the slow suite (`scripts/test.sh -m slow`), so that CI's
# default run leaves room for the lab; the strategies' choices are unit-tested (test_strategies).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENTS = ("1002", "1003", "1004")
SETTLE = 1.5
"""Seconds after the first ring in which any other ring counts as the same choice."""

HISTORY_QUEUES = {agent: f"74{agent[-1]}" for agent in AGENTS}
"""A one-member queue per agent, without wrap-up: how the tests give an agent calls taken."""

STRATEGY_QUEUES: dict[str, list[str]] = {
    "710": ["--strategy", "linear", "--member", "1003", "--member", "1004", "--member", "1002"],
    "711": ["--strategy", "round-robin", "--member", "1004", "--member", "1002", "--member", "1003"],
    "712": ["--strategy", "round-robin-ordered", "--member", "1004", "--member", "1002", "--member", "1003"],
    "713": ["--strategy", "longest-idle", "--member", "1002", "--member", "1003", "--member", "1004"],
    "714": ["--strategy", "fewest-calls", "--member", "1002", "--member", "1004", "--member", "1003"],
    "715": ["--strategy", "least-talk-time", "--member", "1004", "--member", "1003", "--member", "1002"],
    "716": ["--strategy", "random", "--member", "1002", "--member", "1003", "--member", "1004:1"],
    "717": ["--strategy", "weighted-random", "--member", "1002", "--member", "1003:9"],
    "718": ["--strategy", "linear", "--skills", "fr:5", "--member", "1002", "--member", "1003",
            "--member", "1004"],
    "720": ["--strategy", "ring-all", "--member", "1002", "--member", "1003", "--member", "1004:1"],
}


@contextlib.contextmanager
def queues_pbx(data_dir: Path, queues: dict[str, list[str]],
               prepare: Callable[[tuple[str, str]], None] = lambda directory: None) -> Iterator[PbxServer]:
    """An all-in-one with users 1001-1004 and `queues` (number: `pbx queue add` options), made
    before it starts; `prepare` runs more `pbx` commands first."""
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    passwords = {extension: secrets.token_urlsafe(12) for extension in TONES}
    for extension, password in passwords.items():
        pbx("user", "add", extension, f"--password={password}", *directory)
    prepare(directory)
    for number, options in queues.items():
        pbx("queue", "add", number, "--wrap-up", "0", *options, *directory)
    with running_pbx(data_dir) as server:
        server.passwords.update(passwords)
        yield server


def events(phone: Pjsua2Phone, name: str, **fields: Any) -> list[dict[str, Any]]:
    """The phone's events so far of that name whose `fields` have those values."""
    return [e for e in phone.seen() if e.get("event") == name
            and all(e.get(key) == value for key, value in fields.items())]


def until(phone: Pjsua2Phone, name: str, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
    """The first event so far or within `timeout` of that name with those fields."""
    deadline = time.monotonic() + timeout
    while not (found := events(phone, name, **fields)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"phone {phone.user}: no {name} {fields} in {timeout} s; saw {phone.seen()}")
        time.sleep(0.05)
    return found[0]


class Caller:
    """One phone calling queues, one call at a time."""

    def __init__(self, phone: Pjsua2Phone, server: PbxServer) -> None:
        self.phone = phone
        self.server = server
        self.calls = 0

    def dial(self, number: str) -> int:
        """Call `number` until the queue answers; the call's index."""
        index, self.calls = self.calls, self.calls + 1
        self.phone.send("call", uri=f"sip:{number}@{self.server.address}")
        state = self.phone.wait_for("call_state", lambda e: e["index"] == index
                                    and e["state"] in ("CONFIRMED", "DISCONNECTED"), timeout=15)
        assert state["state"] == "CONFIRMED", state
        return index

    def hang_up(self, index: int) -> None:
        self.phone.send("hangup")
        self.phone.wait_for("call_state", lambda e: e["index"] == index and e["state"] == "DISCONNECTED",
                            timeout=15)


def rung_for(caller: Caller, number: str, agents: dict[str, Pjsua2Phone]) -> list[str]:
    """The agents that ring when `caller` calls queue `number`: the first, and any other within
    `SETTLE` s. Then the caller hangs up and their rings stop."""
    before = {extension: len(events(phone, "incoming")) for extension, phone in agents.items()}
    index = caller.dial(number)
    deadline = time.monotonic() + 10
    while all(len(events(phone, "incoming")) == before[e] for e, phone in agents.items()):
        assert time.monotonic() < deadline, f"queue {number}: no agent rang in 10 s"
        time.sleep(0.05)
    time.sleep(SETTLE)
    rung = {extension: events(phone, "incoming")[before[extension]:] for extension, phone in agents.items()}
    caller.hang_up(index)
    for extension, rings in rung.items():
        for ring in rings:
            until(agents[extension], "call_state", index=ring["index"], state="DISCONNECTED")
    return sorted(extension for extension, rings in rung.items() if rings)


def take_call(caller: Caller, number: str, agent: Pjsua2Phone, talk: float) -> None:
    """`caller` calls queue `number`, `agent` answers, they talk `talk` seconds, the caller hangs up."""
    next_call = len(events(agent, "incoming"))  # an agent's calls are all incoming ones
    index = caller.dial(number)
    ring = until(agent, "incoming", index=next_call)
    agent.send("answer")
    until(agent, "call_state", index=ring["index"], state="CONFIRMED")
    time.sleep(talk)
    caller.hang_up(index)
    until(agent, "call_state", index=ring["index"], state="DISCONNECTED")


def status(server: PbxServer, number: str) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(pbx("queue", "status", number, "--json", "--data-dir",
                                           str(server.data_dir)).stdout)
    return reply


def member(server: PbxServer, number: str, extension: str) -> dict[str, Any]:
    listing = json.loads(pbx("queue", "list", "--json", "--data-dir", str(server.data_dir)).stdout)
    found: dict[str, Any] = next(m for q in listing if q["number"] == number for m in q["members"]
                                 if m["extension"] == extension)
    return found


def test_each_strategy_rings_the_agent_it_names(tmp_path: Path) -> None:
    def skills(directory: tuple[str, str]) -> None:
        pbx("agent", "skills", "1003", "fr:3", *directory)
        pbx("agent", "skills", "1004", "fr:7,de:2", *directory)

    history = {number: ["--member", agent] for agent, number in HISTORY_QUEUES.items()}
    with queues_pbx(tmp_path / "data", {**history, **STRATEGY_QUEUES}, skills) as server, \
            tone_phones(server, tmp_path, {user: TONES[user] for user in ("1001", *AGENTS)}) as phones:
        caller = Caller(phones["1001"], server)
        agents = {extension: phones[extension] for extension in AGENTS}

        # Histories: idle longest 1004 (3 calls, ~4.5 s), fewest calls 1003 (1, ~6 s), least talk
        # 1002 (2, ~2 s).
        for agent, calls, talk in (("1004", 3, 1.5), ("1003", 1, 6.0), ("1002", 2, 1.0)):
            for _ in range(calls):
                take_call(caller, HISTORY_QUEUES[agent], agents[agent], talk)

        chosen = {number: rung_for(caller, number, agents) for number in ("713", "714", "715")}
        print(f"longest idle, fewest calls, least talk time: {chosen}")
        assert chosen == {"713": ["1004"], "714": ["1003"], "715": ["1002"]}

        linear = [rung_for(caller, "710", agents) for _ in range(2)]
        round_robin = [rung_for(caller, "711", agents) for _ in range(4)]
        ordered = [rung_for(caller, "712", agents) for _ in range(4)]
        print(f"linear {linear}, round robin {round_robin}, ordered {ordered}")
        assert linear == [["1003"], ["1003"]]  # the first of its members, every time
        assert round_robin == [["1002"], ["1003"], ["1004"], ["1002"]]  # in extension order
        assert ordered == [["1004"], ["1002"], ["1003"], ["1004"]]  # in the members' order

        at_random = [rung_for(caller, "716", agents) for _ in range(4)]
        weighted = [rung_for(caller, "717", agents) for _ in range(5)]
        print(f"random {at_random}, weighted random {weighted}")
        assert all(rung in (["1002"], ["1003"]) for rung in at_random), at_random  # never penalty 1
        assert all(rung in (["1002"], ["1003"]) for rung in weighted), weighted
        assert weighted.count(["1002"]) >= 3, weighted  # 1003 (penalty 9) wins 1 call in 20

        assert rung_for(caller, "718", agents) == ["1004"]  # fr:5 needed: 1003 has fr:3, 1002 none
        assert rung_for(caller, "720", agents) == ["1002", "1003"]  # ring-all, the best tier

        pbx("agent", "pause", "1003", "--queue", "710", "--reason", "training", "--data-dir",
            str(server.data_dir))
        assert member(server, "710", "1003")["pause_reason"] == "training"
        time.sleep(2.5)  # the queue server reads a queue again after 2 s
        paused = rung_for(caller, "710", agents)
        pbx("agent", "unpause", "1003", "--queue", "710", "--data-dir", str(server.data_dir))
        time.sleep(2.5)
        unpaused = rung_for(caller, "710", agents)
        print(f"1003 paused: {paused} rang; unpaused: {unpaused}")
        assert (paused, unpaused) == (["1004"], ["1003"])

        counted = status(server, "711")
        print(f"queue 711: {counted}")
        assert (counted["offered"], counted["answered"], counted["abandoned"]) == (4, 0, 4)
        assert status(server, HISTORY_QUEUES["1004"])["answered"] == 3


def test_an_agent_who_lets_a_call_ring_out_is_paused_and_the_next_is_rung(tmp_path: Path) -> None:
    queues = {"732": ["--strategy", "linear", "--member", "1002", "--member", "1003", "--max-misses", "1",
                      "--ring-timeout", "5"]}
    with queues_pbx(tmp_path / "data", queues) as server, \
            tone_phones(server, tmp_path, {user: TONES[user] for user in ("1001", "1002", "1003")}) as phones:
        caller = Caller(phones["1001"], server)
        index = caller.dial("732")
        first = until(phones["1002"], "incoming")
        rang_out = until(phones["1002"], "call_state", index=first["index"], state="DISCONNECTED")
        until(phones["1003"], "incoming")
        print(f"1002's ring ended with {rang_out['code']}; 1003 rung next")
        caller.hang_up(index)
        paused = member(server, "732", "1002")
        print(f"1002 in queue 732: {paused}")
        assert paused["paused"] and "missed 1" in paused["pause_reason"], paused
        assert not member(server, "732", "1003")["paused"]


def test_position_announcements_stand_out_of_the_queues_own_music(tmp_path: Path) -> None:
    """Queue 730's music is a silent prompt: what the caller hears is the welcome, then silence,
    then an announcement of their position every 8 s."""
    def silent_music(directory: tuple[str, str]) -> None:
        silence = tmp_path / "silence.wav"
        write_wav(silence, RATE, np.zeros(RATE * 10, dtype=np.int16))
        pbx("prompt", "add", "silence", str(silence), *directory)

    queues = {"730": ["--dynamic-member", "1003", "--join-empty", "--position-interval", "8",
                      "--music", "silence"]}
    with queues_pbx(tmp_path / "data", queues, silent_music) as server, \
            tone_phones(server, tmp_path, {"1001": TONES["1001"]}) as phones:
        caller = Caller(phones["1001"], server)
        index = caller.dial("730")
        time.sleep(18.5)
        caller.hang_up(index)
        phones["1001"].close()
    heard = np.abs(received(tmp_path / "heard-1001.wav").astype(np.float64))

    def level(start: float, end: float) -> float:
        return float(heard[int(start * RATE):int(end * RATE)].mean())

    levels = {window: round(level(*window)) for window in
              ((0.5, 3.5), (6.0, 7.6), (8.2, 9.8), (11.5, 15.6), (16.2, 17.8))}
    print(f"levels heard (start s, end s): {levels}")
    welcome, before, first, between, second = levels.values()
    assert welcome > 200 and first > 200 and second > 200, levels
    assert before < 20 and between < 20, levels  # the music: silence, not the built-in tune


def test_a_caller_called_back_keeps_their_place_and_talks_to_the_agent(tmp_path: Path) -> None:
    """1001 waits in queue 731 (its one agent, 1002, logged out), presses 1 and # (call me back
    at my own number) and hangs up; 1004 calls after. 1002 logs in: the queue rings 1002 for
    1001 first, calls 1001 back when 1002 answers and joins them; 1004 still waits."""
    queues = {"731": ["--dynamic-member", "1002", "--join-empty", "--callback"]}
    users = ("1001", "1002", "1004")
    with queues_pbx(tmp_path / "data", queues) as server, \
            tone_phones(server, tmp_path, {user: TONES[user] for user in users}) as phones:
        first, later = Caller(phones["1001"], server), Caller(phones["1004"], server)
        agent = phones["1002"]
        index = first.dial("731")
        time.sleep(1.0)
        phones["1001"].dtmf("1")
        time.sleep(1.5)
        phones["1001"].dtmf("#")
        phones["1001"].wait_for("call_state", lambda e: e["index"] == index and e["state"] == "DISCONNECTED",
                                timeout=20)  # "we will call you back", then the queue hangs up
        waiting = later.dial("731")
        time.sleep(1.0)
        line = status(server, "731")["waiting"]
        print(f"before the login: {line}")
        assert [(w["caller"], w["state"]) for w in line] == [("1001", "callback"), ("1004", "waiting")]

        pbx("agent", "login", "1002", "--queue", "731", "--data-dir", str(server.data_dir))
        ring = agent.wait_for("incoming", timeout=15)
        agent.send("answer")
        callback = phones["1001"].wait_for("incoming", timeout=15)
        assert "731@" in callback["remote_uri"], callback
        phones["1001"].send("answer")
        phones["1001"].wait_for("call_state", lambda e: e["index"] == callback["index"]
                                and e["state"] == "CONFIRMED", timeout=15)
        time.sleep(3.0)
        line = status(server, "731")
        print(f"after the callback: {line}")
        assert [w["caller"] for w in line["waiting"]] == ["1004"]
        phones["1001"].send("hangup")
        agent.wait_for("call_state", lambda e: e["index"] == ring["index"] and e["state"] == "DISCONNECTED",
                       timeout=15)
        later.hang_up(waiting)
        for phone in phones.values():
            phone.close()
    called_back, agent_heard = loudest(tmp_path, "1001"), loudest(tmp_path, "1002")
    print(f"1001 heard {called_back}, 1002 heard {agent_heard}")
    assert called_back["1002"] > HEARD and agent_heard["1001"] > HEARD

"""The queue application on the frame, driven with the Call Manager's messages as bytes: whom it
rings, what it cancels, the REFER that joins the caller to the agent who answered, misses and
auto-pause, overflow and the announcements of an unattended queue, callers who hang up."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from pbx_services.appserver.sounds import Announcements
from pbx_services.cluster.events import AgentStateChanged, QueueCallerJoined, QueueCallerLeft
from pbx_services.cluster.queues import MemberInfo, QueueInfo
from pbx_services.cluster.state.agents import AgentActivity, InMemoryAgents, agent_key, claim, ended
from pbx_services.cluster.state.leases import InMemoryLeases
from pbx_services.cluster.validation import InvalidValue
from pbx_services.queue.application import QueueApplication
from pbx_services.runtime.control import ControlRequest
from pbx_services.sip.message import SipRequest, SipResponse
from tests.unit.appserver.test_core import (
    AGENT_ANSWER,
    START,
    CmDialog,
    Harness,
    answer_to,
    invite,
)

WALL = 1_800_000_000.0 - START


def queue(number: str = "700", *, members: tuple[str, ...] = ("201", "202"), **settings: Any) -> QueueInfo:
    info = QueueInfo(tenant_domain="pbx.local", number=number, name=None, strategy="ring-all", skills={},
                     max_wait=0, max_length=0, overflow=None, join_empty=False, leave_empty=True, wrap_up=10,
                     ring_timeout=15, service_level=20, position_interval=0, max_misses=3, callback=False,
                     music_prompt=None,
                     members=tuple(MemberInfo(extension=m, penalty=0, dynamic=False, logged_in=True,
                                              paused=False, pause_reason=None) for m in members))
    return replace(info, **settings)


class Catalog:
    def __init__(self, *queues: QueueInfo) -> None:
        self.queues = {(q.tenant_domain, q.number): q for q in queues}

    def queue(self, domain: str, number: str, now: float) -> QueueInfo | None:
        return self.queues.get((domain, number))


class QueueHarness(Harness):
    def __init__(self, *queues: QueueInfo) -> None:
        self.agents = InMemoryAgents()
        self.leases = InMemoryLeases()
        self.paused: list[tuple[str, str, str | None, str | None]] = []
        self.logins: list[tuple[str, str, bool]] = []
        self.said: list[str] = []
        self.events: list[object] = []

        def speak(text: str) -> np.ndarray:
            self.said.append(text)
            return np.zeros(160, np.int16)

        self.queue_app = QueueApplication(
            catalog=Catalog(*queues), agents=self.agents, leases=self.leases,  # type: ignore[arg-type]
            announcements=Announcements(speak=speak),
            wall_offset=WALL, server_name="q1", admin=self,
            rng=random.Random(1), publish=self.events.append)
        super().__init__(ports=tuple(range(40000, 40020, 2)), application=self.queue_app)

    # -- the system of record's agents (application.AgentAdmin) --

    def log_in(self, domain: str, extension: str, logged_in: bool) -> list[str]:
        if extension != "100":
            raise InvalidValue(f"{extension} is not a member of any queue of {domain}")
        self.logins.append((domain, extension, logged_in))
        return ["700"]

    def pause(self, domain: str, extension: str, queue: str | None, paused: bool,
              reason: str | None) -> list[str]:
        self.paused.append((domain, extension, queue, reason))
        return [queue or "700"]

    def caller(self, call_id: str = "cm-call-1", number: str = "700") -> CmDialog:
        """A caller of the queue, answered and ACKed."""
        self.send(invite(call_id, branch=f"z9hG4bK{call_id}", number=number))
        ok = [m for m in self.sent() if isinstance(m, SipResponse) and m.status_code == 200][0]
        dialog = CmDialog(call_id, ok.to.tag or "")
        self.send(dialog.ack())
        return dialog

    def wait(self, seconds: float) -> None:
        """Let `seconds` pass while every call's RTP keeps coming (no RTP timeout)."""
        for _ in range(round(seconds / 0.5)):
            self.advance(0.5)
            for call in list(self.core.calls.values()):
                self.rtp_from_media(call.audio, round((self.now - START) / 0.02) & 0xFFFF)

    def invites(self) -> dict[str, SipRequest]:
        """The INVITEs to agents sent since the last look (retransmissions once), by the agent's number."""
        return {m.uri.user: m for m in self.sent() if isinstance(m, SipRequest) and m.method == "INVITE"}  # type: ignore[union-attr]

    def cancelled(self) -> set[str]:
        """The Call-IDs of the CANCELs sent since the last look, each answered 200 (as the Call Manager)."""
        cancels = [m for m in self.sent() if isinstance(m, SipRequest) and m.method == "CANCEL"]
        for cancel in cancels:
            self.send(answer_to(cancel, 200, "OK", tag=None))
        return {cancel.call_id for cancel in cancels}

    def activity(self, extension: str) -> AgentActivity:
        key = agent_key("pbx.local", extension)
        return self.agents.records([key])[key].activity


def test_ring_all_rings_every_free_agent_and_joins_the_caller_to_the_first_who_answers() -> None:
    h = QueueHarness(queue())
    h.caller()
    rung = h.invites()
    assert sorted(rung) == ["201", "202"]
    assert all(r.from_.uri.user == "700" for r in rung.values())  # type: ignore[union-attr]
    assert {r.headers.get("Expires") for r in rung.values()} == {"15"}  # the ring timeout
    assert h.activity("201") is AgentActivity.RINGING
    for request in rung.values():
        h.send(answer_to(request, 180, "Ringing", tag=f"cm-{request.uri.user}"))  # type: ignore[union-attr]

    h.send(answer_to(rung["202"], 200, "OK", tag="cm-202", body=AGENT_ANSWER))

    sent = [m for m in h.sent() if isinstance(m, SipRequest)]
    assert [m.method for m in sent] == ["ACK", "CANCEL", "REFER"]
    cancel, refer = sent[1], sent[2]
    assert cancel.call_id == rung["201"].call_id
    assert refer.call_id == "cm-call-1"
    assert refer.headers.get("Refer-To") == (
        f"<sip:202@pbx.local?Replaces={rung['202'].call_id.replace('@', '%40')}%3Bto-tag%3Dcm-202"
        f"%3Bfrom-tag%3D{rung['202'].from_.tag}>")
    claim_id = refer.headers.get("Pbx-Queue-Agent")
    assert claim_id is not None and claim_id.startswith("pbx.local/202;claim=q1/")
    assert claim_id.endswith(";wrap-up=10")
    assert h.activity("202") is AgentActivity.ON_CALL
    h.send(answer_to(rung["201"], 487, "Request Terminated", tag="cm-201"))
    assert h.activity("201") is AgentActivity.AVAILABLE  # released, no miss counted
    assert h.agents.records([agent_key("pbx.local", "201")])[agent_key("pbx.local", "201")].misses == 0


def test_an_agent_who_lets_it_ring_is_cancelled_counted_and_paused_after_its_misses() -> None:
    h = QueueHarness(queue(members=("201",), max_misses=2))
    h.caller()
    for _ in range(2):
        [request] = h.invites().values()
        h.send(answer_to(request, 180, "Ringing", tag="cm-201"))
        h.wait(15)
        assert h.cancelled() == {request.call_id}
        h.send(answer_to(request, 487, "Request Terminated", tag="cm-201"))
        h.wait(6)  # the retry delay (every agent was tried), then the next look
    assert h.paused == [("pbx.local", "201", "700", "missed 2 queue calls")]


def test_an_agent_taken_by_another_server_is_not_rung() -> None:
    h = QueueHarness(queue())
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 60))
    h.caller()
    assert sorted(h.invites()) == ["202"]


def test_a_caller_who_hangs_up_stops_the_rings_and_is_counted_as_abandoned() -> None:
    h = QueueHarness(queue())
    dialog = h.caller()
    rung = h.invites()
    for request in rung.values():
        h.send(answer_to(request, 180, "Ringing", tag=f"cm-{request.uri.user}"))  # type: ignore[union-attr]
    h.advance(3)
    h.send(dialog.request("BYE"))
    assert h.cancelled() == {r.call_id for r in rung.values()}
    for request in rung.values():
        h.send(answer_to(request, 487, "Request Terminated", tag=f"cm-{request.uri.user}"))  # type: ignore[union-attr]
    stats = h.queue_app.queues[("pbx.local", "700")].stats
    assert (stats.offered, stats.abandoned, stats.answered) == (1, 1, 0)
    assert h.activity("201") is AgentActivity.AVAILABLE and h.activity("202") is AgentActivity.AVAILABLE


def test_an_unattended_queue_without_overflow_announces_and_hangs_up() -> None:
    h = QueueHarness(queue(members=()))
    h.caller()
    assert h.said == ["Sorry, nobody can take your call now. Please call again later. Goodbye."]
    assert h.invites() == {}
    h.frames(0.1)
    assert [m.method for m in h.sent() if isinstance(m, SipRequest)] == ["BYE"]


def test_a_caller_past_the_maximum_wait_goes_to_the_overflow() -> None:
    h = QueueHarness(queue(members=("201",), max_wait=30, overflow="queue:701", join_empty=True))
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 3600))  # busy all along
    h.caller()
    h.wait(29.5)
    assert [m for m in h.sent() if isinstance(m, SipRequest)] == []
    h.wait(0.5)
    refer = h.only_request("REFER")
    assert refer.headers.get("Refer-To") == "<sip:701@pbx.local>"
    assert h.queue_app.queues[("pbx.local", "700")].stats.overflowed == 1


@pytest.mark.parametrize("strategy", ["linear", "round-robin-ordered"])
def test_one_at_a_time_strategies_ring_one_agent(strategy: str) -> None:
    h = QueueHarness(queue(strategy=strategy))
    h.caller()
    assert sorted(h.invites()) == ["201"]


def test_the_line_and_the_numbers_are_in_the_api_and_the_metrics() -> None:
    h = QueueHarness(queue())
    h.caller()
    h.wait(2)
    reply = h.queue_app.control(ControlRequest("GET", ("queues", "pbx.local", "700")), h.now)
    assert reply.status == 200
    live = reply.body["queue"]
    assert live["waiting"] == [{"caller": "100", "waited": 2.0, "state": "waiting", "ringing": ["201", "202"],
                                "callback": None}]
    assert (live["offered"], live["answered"], live["service_level"]) == (1, 0, None)
    assert h.queue_app.control(ControlRequest("GET", ("queues", "pbx.local", "799")), h.now).status == 404
    [(label, gauges, counters), _] = h.queue_app.labelled(h.now)
    assert (label, gauges["waiting"], gauges["longest_wait_seconds"]) == (
        "queue", {"pbx.local/700": 1}, {"pbx.local/700": 2.0})
    assert counters["offered"] == {"pbx.local/700": 1} and counters["abandoned"] == {"pbx.local/700": 0}


def test_a_queue_whose_lease_another_server_holds_is_not_distributed_here_until_it_lapses() -> None:
    h = QueueHarness(queue())
    assert h.leases.hold("queue:pbx.local/700", "q2", 3.0, h.now)  # the other server, just before
    h.caller()
    assert h.invites() == {}
    h.wait(3)  # it stops renewing (it died): the lease lapses, the next look takes it
    assert sorted(h.invites()) == ["201", "202"]


def answered_agent(h: QueueHarness) -> tuple[CmDialog, SipRequest, SipRequest]:
    """A caller of a one-agent queue whose agent 201 answered: the caller's dialog, the agent's
    INVITE and the REFER joining them."""
    dialog = h.caller()
    [request] = h.invites().values()
    h.send(answer_to(request, 200, "OK", tag="cm-201", body=AGENT_ANSWER))
    refer = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "REFER"][0]
    return dialog, request, refer


def test_a_caller_gone_before_the_join_lets_the_agent_go() -> None:
    h = QueueHarness(queue(members=("201",)))
    dialog, request, _ = answered_agent(h)
    assert h.activity("201") is AgentActivity.ON_CALL
    h.send(dialog.request("BYE"))
    bye = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "BYE"]
    assert [m.call_id for m in bye] == [request.call_id]  # our leg to the agent
    assert h.activity("201") is AgentActivity.AVAILABLE


def test_a_join_the_call_manager_refuses_puts_the_caller_back_in_line_and_frees_the_agent() -> None:
    h = QueueHarness(queue(members=("201",)))
    _, request, refer = answered_agent(h)
    h.send(answer_to(refer, 501, "Not Implemented", tag=None))
    sent = [m for m in h.sent() if isinstance(m, SipRequest)]
    assert [m.method for m in sent] == ["BYE", "INVITE"]  # the agent let go, then offered the caller again
    assert sent[0].call_id == request.call_id and sent[1].call_id != request.call_id
    record = h.agents.records([agent_key("pbx.local", "201")])[agent_key("pbx.local", "201")]
    assert record.activity is AgentActivity.RINGING and record.calls_taken == 0


def test_a_join_refused_481_ends_the_callers_call_it_is_not_offered_again() -> None:
    """481: the Call Manager has no such call (it hung the caller up): offering the caller to
    agent after agent would ring each for nobody."""
    h = QueueHarness(queue(members=("201", "202"), strategy="linear"))
    dialog, request, refer = answered_agent(h)
    h.send(answer_to(refer, 481, "Call/Transaction Does Not Exist", tag=None))
    sent = [m for m in h.sent() if isinstance(m, SipRequest)]
    assert sorted((m.method, m.call_id) for m in sent) == sorted(
        [("BYE", dialog.call_id), ("BYE", request.call_id)])  # the caller's leg and the agent's
    h.wait(5.0)
    assert h.invites() == {}  # nobody rung again
    assert h.activity("201") is AgentActivity.AVAILABLE
    [live] = h.queue_app.queues.values()
    assert (live.waiters, live.stats.abandoned) == ([], 1)


@pytest.mark.parametrize(("code", "said", "done"), [
    ("*45", "You are logged in.", ("pbx.local", "100", True)),
    ("*46", "You are logged out.", ("pbx.local", "100", False)),
    ("*47", "You are paused.", ("pbx.local", "100", None, "paused from the phone")),
    ("*48", "You are unpaused.", ("pbx.local", "100", None, None)),
])
def test_an_agent_logs_in_out_and_pauses_by_feature_code_and_hears_it(code: str, said: str,
                                                                       done: tuple[object, ...]) -> None:
    h = QueueHarness(queue())
    h.caller(number=code)
    assert h.said == [said]
    assert [*h.logins, *h.paused] == [done]
    h.frames(0.1)
    assert [m.method for m in h.sent() if isinstance(m, SipRequest)] == ["BYE"]


def test_a_feature_code_from_someone_who_is_no_agent_is_said_so() -> None:
    h = QueueHarness(queue())
    h.send(invite("cm-call-9", branch="z9hG4bKcm-call-9", number="*45").replace(
        b"sip:100@pbx.local", b"sip:555@pbx.local"))
    dialog = CmDialog("cm-call-9", [m for m in h.sent() if isinstance(m, SipResponse)][-1].to.tag or "")
    h.send(dialog.ack())
    assert h.said == ["You are not an agent of any queue."] and h.logins == []


def key(h: QueueHarness, dialog: CmDialog, digits: str) -> None:
    """The caller presses `digits` (SIP INFO, as some phones send them)."""
    for digit in digits:
        h.send(dialog.request("INFO", body=f"Signal={digit}\r\nDuration=160\r\n".encode(),
                              content_type="application/dtmf-relay"))


def test_a_caller_called_back_keeps_the_place_and_is_joined_to_the_agent_who_answered() -> None:
    h = QueueHarness(queue(members=("201",), callback=True))
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 20))  # busy for now
    dialog = h.caller()
    key(h, dialog, "1")
    key(h, dialog, "5551234#")
    assert h.said[-1] == "Thank you. We will call you back when an agent is free. Goodbye."
    h.frames(0.1)
    assert [m.method for m in h.sent() if isinstance(m, SipRequest)] == ["BYE"]  # the caller hangs up...
    assert len(h.queue_app.queues[("pbx.local", "700")].waiters) == 1  # ...keeping the place
    h.wait(20)  # the agent is free again
    [agent_invite] = h.invites().values()
    h.send(answer_to(agent_invite, 200, "OK", tag="cm-201", body=AGENT_ANSWER))
    back = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "INVITE"]
    assert [m.uri.user for m in back] == ["5551234"]  # type: ignore[union-attr]
    assert back[0].headers.get("Pbx-Join-Tag") == "cm-201"
    h.send(answer_to(back[0], 200, "OK", tag="cm-back", body=AGENT_ANSWER))
    refer = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "REFER"][0]
    assert refer.call_id == back[0].call_id  # on the call to the customer, replacing the agent's
    assert f"Replaces={agent_invite.call_id.replace('@', '%40')}" in (refer.headers.get("Refer-To") or "")


def test_a_caller_who_keys_no_callback_number_is_back_in_line() -> None:
    h = QueueHarness(queue(members=("201",), callback=True))
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 60))
    dialog = h.caller()
    key(h, dialog, "1")
    h.frames(0.1)  # the prompt (a frame long here) ends
    h.wait(15)
    waiter = h.queue_app.queues[("pbx.local", "700")].waiters[0]
    assert waiter.phase.value == "waiting" and waiter.call is not None


def test_the_queue_servers_metrics_have_one_name_per_family() -> None:
    """The worker's own gauges and counters and the per-queue ones, as /metrics exports them."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pbx_services.appserver.supervisor import _AppServerCollector

    h = QueueHarness(queue())
    h.caller()
    h.wait(1)  # the agents' first sample
    app = h.queue_app

    class Worker:
        index, restarts = 0, 0
        report = {"calls": 1, "gauges": app.gauges, "role_counters": app.counters,
                  "labelled": app.labelled(h.now)}

    class Workers:
        workers = [Worker()]

        def up(self, worker: object) -> bool:
            return True

    registry = CollectorRegistry()
    registry.register(_AppServerCollector("queue", Workers()))  # type: ignore[arg-type]
    names = [family.name for family in text_string_to_metric_families(generate_latest(registry).decode())]
    assert len(names) == len(set(names)), sorted(names)
    per_agent = {"pbx_queue_agent_occupancy", "pbx_queue_agent_calls", "pbx_queue_agent_talk_seconds"}
    assert {"pbx_queue_waiting", "pbx_queue_callers_waiting", "pbx_queue_answered", *per_agent} <= set(names)


# -- events on the bus and the agents' numbers ------------------------------------------------------


def told(h: QueueHarness) -> list[tuple[object, ...]]:
    """The events published since the last look, each as its kind and what matters of it."""
    seen = []
    for event in h.events:
        if isinstance(event, QueueCallerJoined):
            seen.append(("joined", event.queue, event.caller, event.position))
        elif isinstance(event, QueueCallerLeft):
            seen.append(("left", event.queue, event.caller, event.outcome.value, event.waited, event.agent))
        elif isinstance(event, AgentStateChanged):
            seen.append((event.extension, event.state.value, event.queue, event.reason))
        assert event.server == "q1" and event.time.tzinfo is not None  # type: ignore[attr-defined]
    h.events.clear()
    return seen


def at(h: QueueHarness) -> datetime:
    """The harness's time now, as the events' wall-clock time."""
    return datetime.fromtimestamp(h.now + WALL, UTC)


def joined_by_call_manager(h: QueueHarness, dialog: CmDialog, refer: SipRequest) -> str:
    """The Call Manager takes the REFER, joins the caller to the agent and hangs up the caller's leg
    to the queue; the agent's claim (as the Call Manager reads it from Pbx-Queue-Agent)."""
    h.send(answer_to(refer, 202, "Accepted", tag=None))
    h.send(dialog.notify("200 OK", "terminated;reason=noresource"))
    h.send(dialog.request("BYE"))
    header = refer.headers.get("Pbx-Queue-Agent") or ""
    return header.split(";claim=")[1].split(";")[0]


def test_a_caller_answered_and_its_agents_states_are_published() -> None:
    h = QueueHarness(queue())
    dialog = h.caller()
    rung = h.invites()
    assert told(h) == [("joined", "700", "100", 1), ("201", "ringing", "700", "caller 100"),
                       ("202", "ringing", "700", "caller 100")]
    h.wait(4)
    h.send(answer_to(rung["202"], 200, "OK", tag="cm-202", body=AGENT_ANSWER))
    refer = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "REFER"][0]
    h.send(answer_to(rung["201"], 487, "Request Terminated", tag="cm-201"))
    assert told(h) == [("202", "on_call", "700", "caller 100"),
                       ("201", "available", "700", "the ring stopped")]

    claim_id = joined_by_call_manager(h, dialog, refer)
    assert told(h) == [("left", "700", "100", "answered", 4.0, "202")]

    h.wait(30)  # talking: the Call Manager ends the call and starts the wrap-up in the record
    ended_at = h.now + WALL
    h.agents.change(agent_key("pbx.local", "202"), ended(claim_id, ended_at, 30.0, 10))
    h.wait(1)  # the next look at the records
    [wrap_up] = h.events
    assert told(h) == [("202", "wrap_up", "700", "the call ended")]
    assert wrap_up.time == datetime.fromtimestamp(ended_at, UTC)  # type: ignore[attr-defined]
    h.wait(9)
    [available] = h.events
    assert told(h) == [("202", "available", "700", "wrap-up over")]
    assert available.time == datetime.fromtimestamp(ended_at + 10, UTC)  # type: ignore[attr-defined]


def test_a_caller_who_hangs_up_is_published_as_abandoned_after_the_wait() -> None:
    h = QueueHarness(queue(members=("201",)))
    dialog = h.caller()
    [request] = h.invites().values()
    h.wait(3)
    h.send(dialog.request("BYE"))
    h.cancelled()
    h.send(answer_to(request, 487, "Request Terminated", tag="cm-201"))
    assert told(h) == [("joined", "700", "100", 1), ("201", "ringing", "700", "caller 100"),
                       ("left", "700", "100", "abandoned", 3.0, None),
                       ("201", "available", "700", "the ring stopped")]


def test_a_caller_gone_once_the_agent_answered_lets_the_agent_go_on_the_bus() -> None:
    h = QueueHarness(queue(members=("201",)))
    dialog, _, _ = answered_agent(h)
    h.send(dialog.request("BYE"))
    assert told(h)[-3:] == [("201", "on_call", "700", "caller 100"),
                            ("left", "700", "100", "abandoned", 0.0, None),
                            ("201", "available", "700", "the caller hung up")]


def test_overflowed_and_refused_callers_are_published_once_each() -> None:
    h = QueueHarness(queue(members=("201",), max_wait=30, overflow="queue:701", join_empty=True),
                     queue("702", members=()))
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 3600))
    h.caller()
    h.wait(30)
    assert told(h) == [("joined", "700", "100", 1), ("left", "700", "100", "overflowed", 30.0, None)]
    h.caller("cm-call-2", number="702")  # nobody logged in, no overflow: refused on arrival
    assert told(h) == [("left", "702", "100", "refused", 0.0, None)]


def test_missed_rings_and_the_auto_pause_are_published() -> None:
    h = QueueHarness(queue(members=("201",), max_misses=2))
    h.caller()
    for _ in range(2):
        [request] = h.invites().values()
        h.wait(15)
        h.cancelled()
        h.send(answer_to(request, 487, "Request Terminated", tag="cm-201"))
        h.wait(6)
    missed = [("201", "ringing", "700", "caller 100"), ("201", "available", "700", "no answer in 15 s")]
    assert told(h)[1:6] == [*missed, *missed, ("201", "paused", "700", "missed 2 queue calls")]


@pytest.mark.parametrize(("code", "state", "reason"), [
    ("*45", "available", "login (*45)"), ("*46", "logged_out", "logout (*46)"),
    ("*47", "paused", "pause (*47)"), ("*48", "available", "unpause (*48)")])
def test_feature_codes_publish_the_agents_state_in_each_of_its_queues(code: str, state: str,
                                                                      reason: str) -> None:
    h = QueueHarness(queue())
    h.caller(number=code)
    assert told(h) == [("100", state, "700", reason)]


def test_an_agents_calls_talk_time_and_occupancy_are_in_the_api_and_the_metrics() -> None:
    h = QueueHarness(queue(members=("201", "202")))
    dialog = h.caller()
    rung = h.invites()
    h.wait(4)
    h.send(answer_to(rung["201"], 200, "OK", tag="cm-201", body=AGENT_ANSWER))
    refer = [m for m in h.sent() if isinstance(m, SipRequest) and m.method == "REFER"][0]
    h.send(answer_to(rung["202"], 487, "Request Terminated", tag="cm-202"))
    claim_id = joined_by_call_manager(h, dialog, refer)
    h.wait(30)
    h.agents.change(agent_key("pbx.local", "201"), ended(claim_id, h.now + WALL, 30.0, 10))
    h.wait(26)  # 10 s of wrap-up, then 16 idle
    reply = h.queue_app.control(ControlRequest("GET", ("queues", "pbx.local", "700")), h.now)
    first, second = reply.body["queue"]["members"]
    # Sampled every second: 30 s talking and 10 s of wrap-up over the minute both were staffed.
    assert (first["extension"], first["calls"], first["talk_seconds"]) == ("201", 1, 30.0)
    assert first["staffed_seconds"] == pytest.approx(60, abs=1)
    assert first["occupancy"] == pytest.approx(40 / 60, abs=0.03)
    assert (second["extension"], second["calls"], second["occupancy"]) == ("202", 0, 0.0)
    [_, (label, gauges, counters)] = h.queue_app.labelled(h.now)
    assert label == "agent"
    assert gauges["agent_occupancy"]["pbx.local/201"] == first["occupancy"]
    assert (counters["agent_calls"], counters["agent_talk_seconds"]) == (
        {"pbx.local/201": 1, "pbx.local/202": 0}, {"pbx.local/201": 30.0, "pbx.local/202": 0.0})


def test_an_agents_paused_time_counts_neither_as_staffed_nor_as_handling() -> None:
    h = QueueHarness(queue(members=("201",), join_empty=True))
    h.agents.change(agent_key("pbx.local", "201"), claim("elsewhere", START + WALL, 3600))  # rung elsewhere
    h.caller()
    h.wait(10)
    info = queue(members=("201",), join_empty=True)
    paused = replace(info, members=(replace(info.members[0], paused=True),))
    h.queue_app._catalog.queues[("pbx.local", "700")] = paused  # type: ignore[attr-defined]
    h.wait(10)
    stats = h.queue_app.agent_stats[agent_key("pbx.local", "201")]
    assert stats.staffed_seconds == pytest.approx(10, abs=1)
    assert stats.handling_seconds == 0 and stats.occupancy == 0.0

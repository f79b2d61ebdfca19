"""OPTIONS probing of trunks (`callmanager.trunk_probes`): the machine on a fake clock, then the
probes through a real SIP stack, answered (or not) as bytes by the test's provider."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from pbx_services.callmanager.b2bua import timeout_response
from pbx_services.callmanager.trunk_probes import DOWN, UP, TrunkProbe, TrunkProbes
from pbx_services.callmanager.trunks import TrunkEntry, TrunkStateChange
from pbx_services.runtime.timers import TimerQueue
from pbx_services.sip.events import Event, ResponseReceived, TransactionTimedOut
from pbx_services.sip.message import SipRequest, parse_message
from pbx_services.sip.stack import SipStack
from pbx_services.sip.transaction import TransactionLayer


def _run(probe: TrunkProbe, until: float, answer: str | None) -> list[tuple[float, TrunkStateChange]]:
    """Drive `probe` until `until`; each probe sent gets `answer` ("503 Busy") at once, or none."""
    changes = []
    while (now := probe.next_timer()) <= until:
        send, change = probe.handle_timer(now)
        if change is not None:
            changes.append((now, change))
        if send and answer is not None:
            code, _, reason = answer.partition(" ")
            change = probe.handle_response(int(code), reason, now + 0.01)
            if change is not None:
                changes.append((now + 0.01, change))
    return changes


def test_a_trunk_is_down_after_two_unanswered_probes_and_up_after_two_answers() -> None:
    probe = TrunkProbe(interval=30.0, now=0.0)
    assert probe.answer_timeout == 5.0 and probe.status.phase is UP
    assert _run(probe, 60.0, "200 OK") == []
    changes = _run(probe, 130.0, None)  # probes at 90 and 120 go unanswered
    assert changes == [(125.0, TrunkStateChange(up=False, reason="OPTIONS: no answer (2 probes in a row)",
                                                 probed=True))]
    assert probe.status.phase is DOWN and probe.status.since == 125.0
    changes = _run(probe, 190.0, "200 OK")  # answered at 150 and 180
    assert changes == [(180.01, TrunkStateChange(up=True, reason="OPTIONS answered again: 200 OK",
                                                 probed=True))]


@pytest.mark.parametrize(("answer", "alive"), [
    ("503 Service Unavailable", False), ("500 Server Internal Error", False), ("408 Request Timeout", False),
    ("404 Not Found", True), ("405 Method Not Allowed", True), ("403 Forbidden", True), ("603 Decline", True),
])
def test_5xx_and_408_fail_a_probe_any_other_final_answer_is_alive(answer: str, alive: bool) -> None:
    probe = TrunkProbe(interval=1.0, now=0.0)
    changes = _run(probe, 10.0, answer)
    assert probe.status.phase is (UP if alive else DOWN)
    assert probe.status.reason == answer
    assert changes == ([] if alive else [(1.01, TrunkStateChange(
        up=False, reason=f"OPTIONS: {answer} (2 probes in a row)", probed=True))])


def test_one_failure_between_answers_changes_nothing_and_provisionals_are_no_answer() -> None:
    probe = TrunkProbe(interval=1.0, now=0.0, down_after=2)
    assert probe.answer_timeout == 1.0
    send, _ = probe.handle_timer(0.0)
    assert send and probe.handle_response(100, "Trying", 0.1) is None
    assert probe.handle_response(503, "Busy", 0.2) is None
    assert probe.handle_timer(1.0) == (True, None)
    assert probe.handle_response(200, "OK", 1.1) is None
    assert probe.handle_response(503, "late twice", 1.2) is None  # no probe in progress: ignored
    assert probe.status.phase is UP and probe.status.reason == "200 OK"


def test_a_probe_interval_is_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        TrunkProbe(interval=0, now=0.0)


PROVIDER = ("192.0.2.20", 5080)


def _trunk(name: str = "provider", probe_interval: float = 2.0, **thresholds: int) -> TrunkEntry:
    return TrunkEntry(tenant_id=1, tenant_domain="pbx.example", name=name, host="provider.example",
                      port=PROVIDER[1], transport="UDP", address=PROVIDER[0], probe_interval=probe_interval,
                      **thresholds)


class Provider:
    """The Call Manager's stack and timers on one clock, and a provider that answers or not."""

    def __init__(self) -> None:
        self.now = 0.0
        self.stack = SipStack(host="192.0.2.10", port=5060, max_message_size=65535, layer=TransactionLayer())
        self.timers = TimerQueue()
        self.changes: list[tuple[str, TrunkStateChange, float]] = []
        tags = (f"cm-{n}" for n in itertools.count(1))
        self.probes = TrunkProbes(stack=self.stack, timers=self.timers, make_tag=lambda: next(tags),
                                  on_state=lambda trunk, change, t: self.changes.append(
                                      (trunk.key, change, t)))
        self.answer: str | None = "200 OK"
        self.received: list[tuple[float, SipRequest]] = []

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while True:
            deadlines = [d for d in (self.stack.next_timer(), self.timers.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > until:
                break
            self.now = max(self.now, min(deadlines))
            self._dispatch(self.stack.handle_timer(self.now))
            self.timers.run_due(self.now)
            self._serve()
        self.now = until

    def _serve(self) -> None:
        for transmit in self.stack.take_transmits():
            request = parse_message(transmit.data)
            assert isinstance(request, SipRequest) and transmit.destination == PROVIDER
            self.received.append((self.now, request))
            if self.answer is None:
                continue
            response = "\r\n".join([
                f"SIP/2.0 {self.answer}", *[f"Via: {via}" for via in request.headers.get_lines("Via")],
                f"From: {request.headers.get('From')}", f"To: {request.headers.get('To')};tag=prov",
                f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}", "Content-Length: 0",
                "", ""])
            self._dispatch(self.stack.receive(response.encode(), PROVIDER, "UDP", self.now))

    def _dispatch(self, events: Sequence[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived) and event.transaction is not None:
                assert callable(event.transaction.user_data)
                event.transaction.user_data(event.response, self.now)
            elif isinstance(event, TransactionTimedOut):
                assert callable(event.transaction.user_data)
                event.transaction.user_data(timeout_response(event.transaction), self.now)


def test_a_provider_that_stops_answering_is_down_then_up_through_the_stack() -> None:
    provider = Provider()
    trunk = _trunk()
    provider.probes.update([trunk], provider.now)
    provider.advance(5.0)
    first = provider.received[0][1]
    assert str(first.uri) == "sip:provider.example:5080" and first.method == "OPTIONS"
    assert [t for t, r in provider.received] == [0.0, 2.0, 4.0]
    assert provider.probes.down_reason(trunk) is None and provider.changes == []

    provider.answer = None
    provider.advance(4.0)  # probes at 6 and 8, retransmitted, neither answered within 2 s
    assert provider.changes == [] and provider.probes.down_reason(trunk) is None
    provider.advance(1.0)
    assert provider.changes == [("pbx.example/provider", TrunkStateChange(
        up=False, reason="OPTIONS: no answer (2 probes in a row)", probed=True), 10.0)]
    assert provider.probes.down_reason(trunk) == "down since its OPTIONS got no answer"
    assert provider.probes.listing(provider.now)[0] | {"for": 0} == {
        "tenant": "pbx.example", "name": "provider", "state": "down", "reason": "no answer", "for": 0,
        "workers_down": 1, "workers": 1}

    provider.answer = "200 OK"
    provider.advance(4.0)
    assert [change.up for _, change, _ in provider.changes] == [False, True]
    assert provider.probes.down_reason(trunk) is None


def test_a_trunk_no_longer_probed_is_forgotten_and_a_changed_one_starts_again() -> None:
    provider = Provider()
    provider.probes.update([_trunk()], provider.now)
    provider.probes.update([_trunk(probe_interval=0)], provider.now)
    provider.advance(10.0)
    assert provider.probes.listing(provider.now) == []
    provider.probes.update([_trunk(probe_interval=3.0)], provider.now)
    provider.advance(4.0)
    assert [t for t, _ in provider.received] == [10.0, 13.0]


def test_a_trunks_own_thresholds_take_it_down_and_up() -> None:
    provider = Provider()
    trunk = _trunk(down_after=3, up_after=1)
    provider.probes.update([trunk], provider.now)
    provider.advance(1.0)
    provider.answer = None
    provider.advance(6.0)  # probes at 2 and 4 unanswered: 2 of 3
    assert provider.changes == []
    provider.advance(2.0)  # the third, at 6, unanswered at 8
    assert [(change.up, change.reason, t) for _, change, t in provider.changes] == [
        (False, "OPTIONS: no answer (3 probes in a row)", 8.0)]

    provider.answer = "200 OK"
    provider.advance(2.0)  # one answer brings it up
    assert [change.up for _, change, _ in provider.changes] == [False, True]

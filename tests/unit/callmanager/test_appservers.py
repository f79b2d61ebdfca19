"""The application servers' pool: OPTIONS probes through a real SIP stack, down and up, the choice.

The harness reads the OPTIONS the pool sends from the stack's transmits and answers those of
the servers the test says are alive, as bytes; the pool's timers and the stack's run on one
clock, as in the Call Manager.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from pbx_services.callmanager.appservers import AppEndpoint, AppServerPool, ProbeSettings
from pbx_services.callmanager.b2bua import timeout_response
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.cluster.state.homes import InMemoryHomes
from pbx_services.runtime.timers import TimerQueue
from pbx_services.sip.events import Event, ResponseReceived, TransactionTimedOut
from pbx_services.sip.message import SipRequest, parse_message
from pbx_services.sip.stack import SipStack
from pbx_services.sip.transaction import TransactionLayer

from .conftest import redact

CM_HOST = "192.0.2.10"
START = 100.0
IVR1 = ("192.0.2.81", 5070)
IVR2 = ("192.0.2.82", 5070)


def server(name: str, host: str, *, port: int = 5070, role: ServerRole = ServerRole.IVR, workers: int = 1,
           weight: int = 1, enabled: bool = True) -> ServerEntry:
    return ServerEntry(name=name, role=role, host=host, port=port, workers=workers, weight=weight,
                       enabled=enabled)


class Harness:
    def __init__(self, settings: ProbeSettings | None = None, homes: InMemoryHomes | None = None) -> None:
        self.now = START
        self.stack = SipStack(host=CM_HOST, port=5060, max_message_size=65535, layer=TransactionLayer())
        self.timers = TimerQueue()
        self.changes: list[tuple[str, ServerRole, bool, str, float]] = []
        tags = (f"cm-tag-{n}" for n in itertools.count(1))
        self.pool = AppServerPool(stack=self.stack, timers=self.timers,
                                  on_server_state=lambda *change: self.changes.append(change),
                                  settings=settings or ProbeSettings(), make_tag=lambda: next(tags),
                                  homes=homes, on_lost=lambda endpoint, t: self.lost.append(endpoint))
        self.lost: list[AppEndpoint] = []
        self.alive: set[tuple[str, int]] = set()
        """The endpoints that answer the probes."""
        self.probed: list[tuple[float, tuple[str, int], SipRequest]] = []
        """Every OPTIONS sent (retransmissions too): when, where, what."""

    def update(self, *servers: ServerEntry) -> None:
        self.pool.update_servers(servers, self.now)

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass; the live endpoints answer each probe as it goes out."""
        until = self.now + seconds
        while (deadline := self._next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self._run()
        self.now = until
        self._run()

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in (self.stack.next_timer(), self.timers.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    def _run(self) -> None:
        self._dispatch(self.stack.handle_timer(self.now))
        self.timers.run_due(self.now)
        for transmit in self.stack.take_transmits():
            request = parse_message(transmit.data)
            assert isinstance(request, SipRequest) and request.method == "OPTIONS"
            self.probed.append((self.now, transmit.destination, request))
            if transmit.destination in self.alive:
                self.answer(request, transmit.destination)

    def answer(self, request: SipRequest, source: tuple[str, int], status: str = "200 OK") -> None:
        """An application server's answer to a probe (appserver/core.py's, in bytes)."""
        response = "\r\n".join([
            f"SIP/2.0 {status}", *[f"Via: {via}" for via in request.headers.get_lines("Via")],
            f"From: {request.headers.get('From')}", f"To: {request.headers.get('To')};tag=as-1",
            f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}",
            "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY, REFER", "Accept: application/sdp",
            "Server: pbx-services", "Content-Length: 0", "", ""])
        self._dispatch(self.stack.receive(response.encode(), source, "UDP", self.now))

    def _dispatch(self, events: Sequence[Event]) -> None:
        """As the Call Manager's service does: responses and timeouts to the transaction's owner."""
        for event in events:
            if isinstance(event, ResponseReceived) and event.transaction is not None:
                on_response = event.transaction.user_data
                assert callable(on_response)
                on_response(event.response, self.now)
            elif isinstance(event, TransactionTimedOut):
                on_timeout = event.transaction.user_data
                assert callable(on_timeout)
                on_timeout(timeout_response(event.transaction), self.now)

    def endpoint(self, address: tuple[str, int]) -> AppEndpoint:
        return self.pool.endpoints[address]

    def probes_to(self, address: tuple[str, int]) -> list[float]:
        """When each probe (not its retransmissions) went to `address`."""
        seen: dict[str, float] = {}
        for at, destination, request in self.probed:
            if destination == address:
                seen.setdefault(request.top_via.branch or "", at)
        return sorted(seen.values())


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_every_worker_of_an_application_server_is_an_endpoint_taken_as_up(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0], workers=2),
             server("media1", "192.0.2.50", port=2223, role=ServerRole.MEDIA),
             server("queue1", "192.0.2.90", role=ServerRole.QUEUE))

    assert sorted(h.pool.endpoints) == [(IVR1[0], 5070), (IVR1[0], 5071), ("192.0.2.90", 5070)]
    assert all(endpoint.up and endpoint.available for endpoint in h.pool.endpoints.values())
    assert h.pool.server_up("ivr1") and h.pool.server_up("queue1")
    assert h.pool.pick(ServerRole.MEETING) is None
    assert h.pool.pick(ServerRole.QUEUE) is h.endpoint(("192.0.2.90", 5070))


def test_each_endpoint_is_probed_with_options_every_interval(h: Harness) -> None:
    h.alive = {IVR1}
    h.update(server("ivr1", IVR1[0]))

    h.advance(3.5)

    assert h.probes_to(IVR1) == [START, START + 1, START + 2, START + 3]
    _, destination, first = h.probed[0]
    assert destination == IVR1
    assert redact(first.serialize(), call_id=first.call_id) == (
        "OPTIONS sip:192.0.2.81:5070 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:192.0.2.10:5060>;tag=<tag>\r\n"
        "To: <sip:192.0.2.81:5070>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "User-Agent: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n")
    assert first.from_.tag == "cm-tag-1"
    assert len({request.call_id for _, _, request in h.probed}) == 4
    assert h.changes == [] and h.endpoint(IVR1).up
    assert h.endpoint(IVR1).last_probe_rtt == 0.0


def test_an_endpoint_is_down_after_two_missed_probes_and_told_once(h: Harness) -> None:
    h.alive = {IVR1, IVR2}
    h.update(server("ivr1", IVR1[0]), server("ivr2", IVR2[0]))
    h.advance(2)
    h.alive = {IVR2}  # ivr1 dies

    h.advance(3)  # its probe at +3 goes unanswered: missed at +4, and the one at +4 at +5

    assert h.changes == [("ivr1", ServerRole.IVR, False,
                          "no answer to SIP OPTIONS at 192.0.2.81:5070 (2 probes missed)", START + 5)]
    assert not h.endpoint(IVR1).up and not h.pool.server_up("ivr1")
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR2)
    h.advance(30)
    assert len(h.changes) == 1  # still down: nothing more to tell
    # A missed probe is given up at the next one: no retransmission outlives its interval.
    assert all(at - START < 3 + 1 or destination != IVR1
               for at, destination, request in h.probed if request.call_id == h.probed[0][2].call_id)


def test_an_endpoint_answering_503_is_down_as_if_silent(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]))
    for _ in range(2):
        h.advance(1)
        *_, (_, destination, probe) = h.probed
        h.answer(probe, destination, status="503 Service Unavailable")

    assert not h.endpoint(IVR1).up
    assert h.changes[-1][2:4] == (
        False, "SIP OPTIONS answered 503 Service Unavailable at 192.0.2.81:5070 (2 probes missed)")


def test_a_dead_server_is_down_two_probes_after_it_is_added(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]))

    h.advance(1.9)
    assert h.changes == []
    h.advance(0.1)

    assert [(name, up, at) for name, _, up, _, at in h.changes] == [("ivr1", False, START + 2)]


def test_one_missed_probe_between_answers_is_forgiven(h: Harness) -> None:
    h.alive = {IVR1}
    h.update(server("ivr1", IVR1[0]))
    h.advance(1)
    h.alive = set()
    h.advance(2)  # the probe at +2 is missed at +3
    assert h.endpoint(IVR1).misses == 1
    h.alive = {IVR1}  # the one at +3 is answered (its retransmission)

    h.advance(10)

    assert h.changes == [] and h.endpoint(IVR1).up and h.endpoint(IVR1).misses == 0


def test_an_endpoint_is_up_again_after_two_answers(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]))
    h.advance(5)
    assert [up for _, _, up, _, _ in h.changes] == [False]
    h.alive = {IVR1}

    h.advance(0.9)  # the probe of +5 is answered when retransmitted at +5.5: one answer is not enough
    assert h.endpoint(IVR1).answers == 1
    assert not h.endpoint(IVR1).up and len(h.changes) == 1
    h.advance(0.1)  # the probe at +6 is answered

    assert h.changes[1] == ("ivr1", ServerRole.IVR, True, "answers SIP OPTIONS again at 192.0.2.81:5070",
                            START + 6)
    assert h.endpoint(IVR1).up and h.pool.pick(ServerRole.IVR) is h.endpoint(IVR1)


def test_a_late_answer_to_a_given_up_probe_does_not_count(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]))
    h.advance(2)
    assert not h.endpoint(IVR1).up
    stale = [request for at, _, request in h.probed if at < h.now]  # the probes at +0 and +1

    for request in stale:
        h.answer(request, IVR1)

    assert h.endpoint(IVR1).answers == 0 and not h.endpoint(IVR1).up


def test_a_server_with_two_workers_is_down_only_when_both_are(h: Harness) -> None:
    worker0, worker1 = IVR1, (IVR1[0], IVR1[1] + 1)
    h.alive = {worker0, worker1}
    h.update(server("ivr1", IVR1[0], workers=2))
    h.advance(1)

    h.alive = {worker1}
    h.advance(3)
    assert not h.endpoint(worker0).up and h.endpoint(worker1).up
    assert h.changes == [] and h.pool.server_up("ivr1")
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(worker1)

    h.alive = set()
    h.advance(3)
    assert h.changes == [("ivr1", ServerRole.IVR, False,
                          "no answer to SIP OPTIONS at 192.0.2.81:5070, 192.0.2.81:5071 (2 probes missed)",
                          START + 7)]
    assert h.pool.pick(ServerRole.IVR) is None

    h.alive = {worker0}
    h.advance(3)
    assert [(up, why) for _, _, up, why, _ in h.changes[1:]] == [
        (True, "answers SIP OPTIONS again at 192.0.2.81:5070, 192.0.2.81:5071")]
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(worker0)


def test_each_server_is_told_of_on_its_own(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]), server("ivr2", IVR2[0]))

    h.advance(2)

    assert sorted((name, up) for name, _, up, _, _ in h.changes) == [("ivr1", False), ("ivr2", False)]


def test_disabled_and_removed_servers_get_no_new_calls(h: Harness) -> None:
    h.alive = {IVR1, IVR2}
    h.update(server("ivr1", IVR1[0], enabled=False), server("ivr2", IVR2[0]))
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR2)
    h.endpoint(IVR2).calls.add("a call")

    h.update(server("ivr1", IVR1[0], enabled=False))  # ivr2 removed while it holds a call

    assert h.endpoint(IVR2).removed and not h.endpoint(IVR2).available
    assert h.pool.pick(ServerRole.IVR) is None
    h.advance(2)
    assert IVR2 in h.pool.endpoints  # its call goes on
    h.endpoint(IVR2).calls.clear()
    h.advance(1)
    assert IVR2 not in h.pool.endpoints  # gone with its last call

    h.update(server("ivr1", IVR1[0]))  # enabled again
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR1)
    h.update()
    assert h.pool.endpoints == {} and h.pool.pick(ServerRole.IVR) is None


def test_an_endpoint_removed_and_added_back_is_in_rotation_again(h: Harness) -> None:
    h.alive = {IVR1}
    h.update(server("ivr1", IVR1[0]))
    endpoint = h.endpoint(IVR1)
    endpoint.calls.add("a call")
    h.update()
    assert h.pool.pick(ServerRole.IVR) is None

    h.update(server("ivr1", IVR1[0], weight=5))

    assert h.pool.pick(ServerRole.IVR) is endpoint and endpoint.weight == 5 and not endpoint.removed


def test_new_calls_go_to_the_fewest_calls_per_weight() -> None:
    h = Harness()
    h.update(server("small", IVR1[0]), server("big", IVR2[0], weight=3))
    picked = []

    for n in range(8):
        endpoint = h.pool.pick(ServerRole.IVR)
        assert endpoint is not None
        endpoint.calls.add(n)
        picked.append(endpoint.server)

    assert picked.count("big") == 6 and picked.count("small") == 2
    assert (h.endpoint(IVR1).load, h.endpoint(IVR2).load) == (2.0, 2.0)
    h.endpoint(IVR2).calls.clear()  # big's calls end
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR2)
    assert h.pool.pick(ServerRole.IVR, exclude=[h.endpoint(IVR2)]) is h.endpoint(IVR1)
    assert h.pool.pick(ServerRole.IVR, exclude=list(h.pool.endpoints.values())) is None


def test_calls_are_picked_within_their_role(h: Harness) -> None:
    h.update(server("ivr1", IVR1[0]), server("queue1", IVR2[0], role=ServerRole.QUEUE))
    h.endpoint(IVR1).calls.update(range(100))

    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR1)
    assert h.pool.pick(ServerRole.QUEUE) is h.endpoint(IVR2)


def test_a_suspect_counts_as_a_missed_probe(h: Harness) -> None:
    h.alive = {IVR2}
    h.update(server("ivr1", IVR1[0]), server("ivr2", IVR2[0]))
    h.advance(0.5)  # ivr1's first probe is out, unanswered

    h.pool.suspect(h.endpoint(IVR1), h.now, "did not answer a call")
    assert h.endpoint(IVR1).up and h.changes == []
    h.pool.suspect(h.endpoint(IVR1), h.now, "did not answer a call")

    assert h.changes == [("ivr1", ServerRole.IVR, False,
                          "no answer to SIP OPTIONS at 192.0.2.81:5070 (2 probes missed)", START + 0.5)]
    assert h.pool.pick(ServerRole.IVR) is h.endpoint(IVR2)


def test_a_suspect_then_a_missed_probe_is_down_and_an_answer_forgives_it(h: Harness) -> None:
    h.alive = {IVR1}
    h.update(server("ivr1", IVR1[0]))
    h.advance(0.5)
    h.pool.suspect(h.endpoint(IVR1), h.now, "answered 503")
    h.advance(1)  # the probe at +1 is answered
    assert h.endpoint(IVR1).misses == 0 and h.endpoint(IVR1).up

    h.alive = set()
    h.pool.suspect(h.endpoint(IVR1), h.now, "answered 503")
    h.advance(1.5)  # the probe at +2 is missed at +3

    assert [(up, at) for _, _, up, _, at in h.changes] == [(False, START + 3)]


def test_probe_settings_are_the_pools() -> None:
    h = Harness(ProbeSettings(probe_interval=5.0, down_after=3, up_after=1))
    h.update(server("ivr1", IVR1[0]))

    h.advance(14.9)
    assert h.changes == []
    h.advance(0.1)
    assert [(up, at) for _, _, up, _, at in h.changes] == [(False, START + 15)]
    assert h.changes[0][3] == "no answer to SIP OPTIONS at 192.0.2.81:5070 (3 probes missed)"

    h.alive = {IVR1}
    h.advance(5)  # the probe of +15 is answered when retransmitted at +15.5
    assert [(up, at) for _, _, up, _, at in h.changes[1:]] == [(True, START + 15.5)]


def test_with_probes_further_apart_than_a_transaction_lives_a_dead_server_is_still_down() -> None:
    # A probe unanswered for 64*T1 times out before the next one: its timeout is no answer.
    h = Harness(ProbeSettings(probe_interval=60.0))
    h.update(server("ivr1", IVR1[0]))

    h.advance(120)

    assert [(up, at) for _, _, up, _, at in h.changes] == [(False, START + 120)]
    assert h.endpoint(IVR1).answers == 0


MEET1, MEET2, MEET3 = ("192.0.2.91", 5100), ("192.0.2.92", 5100), ("192.0.2.93", 5100)
MEETING_SERVERS = [server(f"meet{i}", address[0], port=5100, role=ServerRole.MEETING)
                   for i, address in enumerate((MEET1, MEET2, MEET3), 1)]


def meeting_harness(homes: InMemoryHomes) -> Harness:
    harness = Harness(homes=homes)
    harness.alive |= {MEET1, MEET2, MEET3}
    harness.update(*MEETING_SERVERS)
    harness.advance(0.5)
    return harness


def test_every_call_manager_sends_a_room_to_the_same_worker_and_rooms_spread() -> None:
    homes = InMemoryHomes()
    first, second = meeting_harness(homes), meeting_harness(homes)
    rooms = [str(800 + n) for n in range(30)]
    placed = {room: first.pool.home_for(ServerRole.MEETING, room, "pbx.local") for room in rooms}
    assert all(second.pool.home_for(ServerRole.MEETING, room, "pbx.local") is second.endpoint(
        placed[room].address) for room in rooms)  # type: ignore[union-attr]
    per_worker = {address: sum(1 for e in placed.values() if e is not None and e.address == address)
                  for address in (MEET1, MEET2, MEET3)}
    assert all(count >= 4 for count in per_worker.values()), per_worker
    # Without the store, ranking alone gives the same answer.
    assert all(meeting_harness(InMemoryHomes()).pool.home_for(ServerRole.MEETING, room, "pbx.local").address
               == placed[room].address for room in rooms[:5])  # type: ignore[union-attr]


def test_a_room_moves_only_when_its_worker_fails_and_stays_when_it_comes_back() -> None:
    homes = InMemoryHomes()
    h = meeting_harness(homes)
    home = h.pool.home_for(ServerRole.MEETING, "850", "pbx.local")
    assert home is not None
    home.calls.add("a call")  # type: ignore[arg-type]
    h.alive.discard(home.address)
    h.advance(2.5)
    assert h.lost == [home]  # told once, with its calls, so that they are moved
    moved = h.pool.home_for(ServerRole.MEETING, "850", "pbx.local")
    assert moved is not None and moved is not home
    assert homes.home("meeting:pbx.local:850") == f"{moved.address[0]}:{moved.address[1]}"
    h.alive.add(home.address)
    h.advance(2.5)
    assert home.up
    assert h.pool.home_for(ServerRole.MEETING, "850", "pbx.local") is moved  # no split room


def test_two_call_managers_choosing_a_new_home_at_once_agree() -> None:
    homes = InMemoryHomes()
    assert homes.move("meeting:pbx.local:850", None, "192.0.2.91:5100") == "192.0.2.91:5100"
    # The second one read no home too, and lost the race: it takes the first one's choice.
    assert homes.move("meeting:pbx.local:850", None, "192.0.2.92:5100") == "192.0.2.91:5100"


CM2 = ("192.0.2.12", 5060)


def test_a_call_manager_row_is_probed_and_told_down_but_never_given_a_call(h: Harness) -> None:
    h.alive = {IVR1, CM2}
    h.update(server("ivr1", IVR1[0]), server("cm2", CM2[0], port=5060, role=ServerRole.CALLMANAGER))
    h.advance(2)
    assert {destination for _, destination, _ in h.probed} == {IVR1, CM2}
    assert h.pool.pick(ServerRole.CALLMANAGER) is None and h.pool.pick(ServerRole.IVR) is h.endpoint(IVR1)

    h.alive = {IVR1}  # cm2's host dies
    h.advance(3)

    assert h.changes == [("cm2", ServerRole.CALLMANAGER, False,
                          "no answer to SIP OPTIONS at 192.0.2.12:5060 (2 probes missed)", START + 5)]
    assert h.lost == []  # no calls of its to move: a Call Manager's calls are taken over by the holder


def test_server_states_tell_every_server_as_the_pool_sees_it(h: Harness) -> None:
    """What a Call Manager taking the VIP publishes: the downs it saw while another held it, and
    the ups (with no change since added, no reason)."""
    h.alive = {IVR1, IVR2}
    h.update(server("ivr1", IVR1[0]), server("ivr2", IVR2[0]))
    h.advance(2)
    h.alive = {IVR2}
    h.advance(3)

    states = [(v.server, v.role, v.up, v.why) for v in h.pool.server_states()]
    assert states == [("ivr1", ServerRole.IVR, False, "no answer to SIP OPTIONS at 192.0.2.81:5070 "
                       "(2 probes missed)"), ("ivr2", ServerRole.IVR, True, "")]
    assert h.pool.settled_after == 3.0  # 1 s probes, 2 to change: known after 3 s

    h.update(server("ivr2", IVR2[0]))  # ivr1's row deleted
    assert [v.server for v in h.pool.server_states()] == ["ivr2"]

"""The media pool: weighted least-calls choice, health by pings, re-homing triggers, control retries."""

from __future__ import annotations

import json

from pbx_services.callmanager.mediapool import MediaEndpoint, MediaPool, PoolSettings
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.runtime.timers import TimerQueue

START = 100.0


def server(name: str, port: int, *, workers: int = 1, weight: int = 1, enabled: bool = True) -> ServerEntry:
    return ServerEntry(name=name, role=ServerRole.MEDIA, host="127.0.0.1", port=port, workers=workers,
                       weight=weight, enabled=enabled)


class Harness:
    def __init__(self, **settings: float) -> None:
        self.timers = TimerQueue()
        self.lost: list[tuple[str, tuple[str, int]]] = []
        self.timed_out: list[str] = []
        self.changes: list[tuple[str, ServerRole, bool, str, float]] = []
        self.pool = MediaPool(timers=self.timers,
                              on_lost=lambda e, t: self.lost.append((e.server, e.address)),
                              on_timeout_notice=lambda call_id, t: self.timed_out.append(call_id),
                              settings=PoolSettings(**settings),  # type: ignore[arg-type]
                              on_server_state=lambda *change: self.changes.append(change))
        self.now = START

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while (deadline := self.timers.next_deadline()) is not None and deadline <= end:
            self.now = deadline
            self.timers.run_due(deadline)
        self.now = end

    def sent(self) -> list[tuple[dict, tuple[str, int], str]]:
        out = []
        for data, address in self.pool.take_transmits():
            cookie, _, body = data.partition(b" ")
            out.append((json.loads(body), address, cookie.decode()))
        return out

    def answer_pings(self, boot_ids: dict[int, str], *, skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        for body, address, cookie in self.sent():
            if body.get("command") == "ping" and address[1] not in skip:
                reply = {"result": "pong", "boot_id": boot_ids.get(address[1], "boot-1")}
                self.pool.receive(f"{cookie} {json.dumps(reply)}".encode(), address, self.now)


def test_workers_of_a_server_are_endpoints_and_least_calls_per_weight_wins() -> None:
    h = Harness()
    h.pool.update_servers([server("m1", 2300, workers=2), server("m2", 2400, weight=3)], START)
    assert sorted(h.pool.endpoints) == [("127.0.0.1", 2300), ("127.0.0.1", 2301), ("127.0.0.1", 2400)]
    picks = []
    for n in range(10):
        endpoint = h.pool.pick()
        assert endpoint is not None
        endpoint.calls.add(n)
        picks.append(endpoint.address[1])
    # weight 3 takes three times the calls of each weight-1 worker
    assert picks.count(2400) == 6 and picks.count(2300) == 2 and picks.count(2301) == 2


def test_disabled_and_removed_servers_get_no_new_calls_but_keep_theirs() -> None:
    h = Harness()
    h.pool.update_servers([server("m1", 2300), server("m2", 2400)], START)
    busy = h.pool.endpoints[("127.0.0.1", 2400)]
    busy.calls.add("call")
    h.pool.update_servers([server("m1", 2300, enabled=False), server("m2", 2400)], START)
    assert h.pool.pick() is busy
    h.pool.update_servers([server("m1", 2300, enabled=False)], START)
    assert busy.removed and ("127.0.0.1", 2400) in h.pool.endpoints  # drains its call
    assert h.pool.pick() is None
    busy.calls.clear()
    h.pool.update_servers([server("m1", 2300)], START)
    assert ("127.0.0.1", 2400) not in h.pool.endpoints
    assert h.pool.pick() is h.pool.endpoints[("127.0.0.1", 2300)]


def test_missed_pings_mark_an_endpoint_down_then_answers_bring_it_back() -> None:
    h = Harness(ping_interval=1.0, down_after=3, up_after=2)
    h.pool.update_servers([server("m1", 2300), server("m2", 2400)], START)
    for _ in range(2):
        h.advance(0.5)
        h.answer_pings({}, skip={2400})
        h.advance(0.5)
    endpoint = h.pool.endpoints[("127.0.0.1", 2400)]
    assert endpoint.up and endpoint.misses == 2 and h.lost == []
    h.advance(0.5)
    h.answer_pings({}, skip={2400})
    h.advance(0.5)
    assert not endpoint.up and h.lost == [("m2", ("127.0.0.1", 2400))]
    assert h.pool.pick() is h.pool.endpoints[("127.0.0.1", 2300)]
    h.advance(0.5)
    h.answer_pings({})
    assert not endpoint.up  # one answer is not enough
    h.advance(1.0)
    h.answer_pings({})
    assert endpoint.up and h.lost == [("m2", ("127.0.0.1", 2400))]


def test_a_new_boot_id_means_the_calls_there_are_lost() -> None:
    h = Harness()
    h.pool.update_servers([server("m1", 2300)], START)
    h.answer_pings({2300: "first"})
    endpoint = h.pool.endpoints[("127.0.0.1", 2300)]
    endpoint.calls.add("call")
    h.advance(1.0)
    h.answer_pings({2300: "first"})
    assert h.lost == []
    h.advance(1.0)
    h.answer_pings({2300: "second"})
    assert h.lost == [("m1", ("127.0.0.1", 2300))] and endpoint.up


def test_requests_are_retransmitted_then_given_up_after_two_seconds() -> None:
    h = Harness(ping_interval=60.0)
    h.pool.update_servers([], START)
    endpoint = MediaEndpoint("m1", ("127.0.0.1", 2300), 1, True)
    replies: list[object] = []
    h.pool.request(endpoint, "offer", h.now, lambda body, t: replies.append((body, t)), call_id="c", leg="a",
                   sdp="v=0")
    assert [body["command"] for body, _, _ in h.sent()] == ["offer"]
    for wait in (0.24, 0.49, 0.99):  # retransmitted 0.25, 0.5 and 1 s after the previous send
        h.advance(wait)
        assert h.sent() == []
        h.advance(0.01)
        assert [body["command"] for body, _, _ in h.sent()] == ["offer"]
    h.advance(0.24)
    assert replies == []
    h.advance(0.01)
    assert replies == [(None, START + 2.0)] and h.sent() == []


def test_a_reply_from_another_address_or_garbage_is_not_taken() -> None:
    h = Harness(ping_interval=60.0)
    endpoint = MediaEndpoint("m1", ("127.0.0.1", 2300), 1, True)
    replies: list[object] = []
    h.pool.request(endpoint, "delete", h.now, lambda body, t: replies.append(body), call_id="c")
    [(_, _, cookie)] = h.sent()
    h.pool.receive(f'{cookie} {{"result": "ok"}}'.encode(), ("127.0.0.1", 9999), h.now)
    h.pool.receive(b"\x00\x01garbage", ("127.0.0.1", 2300), h.now)
    assert replies == []
    assert h.pool.counters["control_unmatched"] == 1 and h.pool.counters["control_garbage"] == 1
    h.pool.receive(f'{cookie} {{"result": "ok"}}'.encode(), ("127.0.0.1", 2300), h.now)
    assert replies == [{"result": "ok"}]


def test_a_timeout_notification_is_acknowledged_and_reported() -> None:
    h = Harness()
    h.pool.receive(b'n1 {"command": "timeout", "call_id": "abc"}', ("127.0.0.1", 2300), h.now)
    assert h.timed_out == ["abc"]
    assert h.sent() == [({"result": "ok"}, ("127.0.0.1", 2300), "n1")]


def test_a_media_server_is_down_when_all_its_workers_are_and_each_change_is_told_once() -> None:
    h = Harness(ping_interval=1.0, down_after=2, up_after=2)
    h.pool.update_servers([server("m1", 2300, workers=2)], START)
    for _ in range(3):  # worker 2301 dies: the server still answers on 2300
        h.advance(0.5)
        h.answer_pings({}, skip={2301})
        h.advance(0.5)
    assert h.changes == [] and not h.pool.endpoints[("127.0.0.1", 2301)].up
    for _ in range(3):  # then 2300 too
        h.advance(0.5)
        h.answer_pings({}, skip={2300, 2301})
        h.advance(0.5)
    assert h.changes == [("m1", ServerRole.MEDIA, False, "no answer to control pings at 127.0.0.1:2300, "
                          "127.0.0.1:2301 (2 pings missed)", START + 4.9)]
    for _ in range(3):
        h.advance(0.5)
        h.answer_pings({})
        h.advance(0.5)
    assert [(server, up) for server, _, up, _, _ in h.changes] == [("m1", False), ("m1", True)]
    assert h.changes[1][3] == "answers control pings again at 127.0.0.1:2300, 127.0.0.1:2301"
    assert [(v.server, v.up) for v in h.pool.server_states()] == [("m1", True)]
    assert h.pool.settled_after == 3.0

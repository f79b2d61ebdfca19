"""BLF through the Call Manager (issue 13): a phone subscribed to a colleague's dialog events
(RFC 4235) is NOTIFYed when the colleague's phone rings, answers and hangs up; a line that
is nobody's is refused 404. The dialog states are read once a second (`housekeeping`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import SimpleNamespace
from typing import cast
from xml.etree import ElementTree

from pbx_services.callmanager.call import CONNECTED, ROUTING, Call
from pbx_services.callmanager.dialog_info import FULL_PUBLICATION_INTERVAL, LINE_TTL, DialogPackage
from pbx_services.cluster.state.lines import InMemoryLines
from tests.unit.sip.wire import crlf

from .conftest import SDP_OFFER, Pbx, Phone, registered
from .test_b2bua import answer, ring, start_call

NS = "{urn:ietf:params:xml:ns:dialog-info}"


def subscribe(watcher: Phone, line: str, *, cseq: int, authorization: str | None = None) -> bytes:
    return crlf("\n".join([
        f"SUBSCRIBE sip:{line}@{watcher.domain} SIP/2.0",
        watcher.via(),
        "Max-Forwards: 70",
        f"From: <sip:{watcher.extension}@{watcher.domain}>;tag=blf-{watcher.extension}",
        f"To: <sip:{line}@{watcher.domain}>",
        f"Call-ID: blf-{line}@{watcher.address[0]}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <{watcher.contact_uri}>",
        "Event: dialog",
        "Accept: application/dialog-info+xml",
        "Expires: 600",
        *([f"Authorization: {authorization}"] if authorization else []),
        "Content-Length: 0", "", ""]))


def subscribed(watcher: Phone, line: str) -> int:
    """The status of `watcher`'s SUBSCRIBE to `line`'s dialogs, digest answered."""
    watcher.send(subscribe(watcher, line, cseq=1))
    challenge = watcher.pop_response(401)
    authorization = watcher.credentials(challenge, "SUBSCRIBE", f"sip:{line}@{watcher.domain}")
    watcher.send(subscribe(watcher, line, cseq=2, authorization=authorization))
    return watcher.pop_response().status_code


def states(watcher: Phone) -> list[str]:
    """The states of the dialogs in the next NOTIFY (answered 200)."""
    notify = watcher.pop_request("NOTIFY")
    watcher.send(watcher.respond(notify, 200))
    assert notify.headers.get("Event") == "dialog"
    assert notify.headers.get("Content-Type") == "application/dialog-info+xml"
    document = ElementTree.fromstring(notify.body)
    return [f"{d.get('direction')}:{d.findtext(NS + 'state')}" for d in document.findall(NS + "dialog")]


def test_a_colleagues_line_rings_talks_and_goes_idle(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    carol = registered(pbx, "300", "10.0.0.3")
    assert subscribed(carol, "200") == 200
    assert states(carol) == []  # idle

    call = start_call(alice, bob, body=SDP_OFFER)
    ring(alice, bob, call)
    pbx.housekeeping()
    assert states(carol) == ["recipient:early"]

    answer(alice, bob, call)
    pbx.housekeeping()
    assert states(carol) == ["recipient:confirmed"]

    assert call.a_dialog is not None
    alice.send(call.a_dialog.request(alice, "BYE"))
    pbx.housekeeping()
    assert states(carol) == []
    pbx.housekeeping()
    carol.assert_silent()  # nothing changed: nothing sent


def test_a_line_that_is_nobodys_is_refused(pbx: Pbx, alice: Phone) -> None:
    assert subscribed(alice, "999") == 404


def _held(call_id: str, caller: str, callee: str, phase: object) -> object:
    return SimpleNamespace(call_id=call_id, realm="pbx.example", caller=caller, callee=callee, phase=phase)


def test_a_watcher_on_one_worker_sees_the_calls_another_worker_holds() -> None:
    # Two workers of a Call Manager (or two Call Managers) on one state store: 1001's call to
    # 1002 is held by worker 0; 1003's BLF key subscribed through worker 1.
    store = InMemoryLines()
    held: list[object] = [_held("c1", "1001", "1002", ROUTING)]
    worker0 = DialogPackage(calls=lambda: cast(list[Call], held), extension_exists=lambda r, n: True,
                            lines=store, owner="cm1/0")
    worker1 = DialogPackage(calls=lambda: [], extension_exists=lambda r, n: True, lines=store, owner="cm1/1")
    line = ("pbx.example", "1002")
    worker0.publish(100.0)
    worker1.publish(100.0)
    assert [(v.direction, v.state, v.remote) for v in worker1.state(*line, 100.5)] == [
        ("recipient", "early", "1001")]
    held[0] = _held("c1", "1001", "1002", CONNECTED)
    worker0.publish(101.0)
    [(_, _, views)] = worker1.poll({line}, 101.5)
    assert [v.state for v in views] == ["confirmed"]
    held.clear()
    worker0.publish(102.0)
    assert worker1.poll({line}, 102.5) == [("pbx.example", "1002", ())]


def test_the_lines_of_a_worker_that_stopped_publishing_go_dark() -> None:
    store = InMemoryLines()
    worker0 = DialogPackage(calls=lambda: [cast(Call, _held("c1", "1001", "1002", CONNECTED))],
                            extension_exists=lambda r, n: True, lines=store, owner="cm1/0")
    worker1 = DialogPackage(calls=lambda: [], extension_exists=lambda r, n: True, lines=store, owner="cm1/1")
    worker0.publish(100.0)
    assert worker1.poll({("pbx.example", "1001")}, 100.0 + LINE_TTL - 0.1)[0][2] != ()
    assert worker1.poll({("pbx.example", "1001")}, 100.0 + LINE_TTL) == [("pbx.example", "1001", ())]


class RecordingLines(InMemoryLines):
    """The in-process store, noting what each publication sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, object]] = []

    def publish(self, owner: str, lines: Mapping[str, str], ttl: float, now: float) -> None:
        self.sent.append(("all", sorted(lines)))
        super().publish(owner, lines, ttl, now)

    def update(self, owner: str, changed: Mapping[str, str], ended: Collection[str], ttl: float,
               now: float) -> bool:
        self.sent.append(("changes", (sorted(changed), sorted(ended))))
        return super().update(owner, changed, ended, ttl, now)


def test_a_worker_sends_only_the_lines_that_changed_and_all_of_them_now_and_then() -> None:
    """At 10,000 calls a worker would rewrite every line each second; it sends the changes, and
    all its lines every FULL_PUBLICATION_INTERVAL or when the store lost them."""
    store = RecordingLines()
    held: list[object] = [_held("c1", "1001", "1002", ROUTING), _held("c2", "1003", "1004", CONNECTED)]
    worker = DialogPackage(calls=lambda: cast(list[Call], held), extension_exists=lambda r, n: True,
                           lines=store, owner="cm1/0")
    watcher = DialogPackage(calls=lambda: [], extension_exists=lambda r, n: True, lines=store, owner="cm1/1")
    worker.publish(100.0)
    worker.publish(101.0)  # nothing changed
    held[0] = _held("c1", "1001", "1002", CONNECTED)
    del held[1]
    worker.publish(102.0)
    worker.publish(100.0 + FULL_PUBLICATION_INTERVAL)
    store._published.clear()  # the store lost them (Redis failed over to a replica that had none)
    worker.publish(101.0 + FULL_PUBLICATION_INTERVAL)

    all_lines = ["pbx.example/1001", "pbx.example/1002", "pbx.example/1003", "pbx.example/1004"]
    assert store.sent == [
        ("all", all_lines),
        ("changes", ([], [])),
        ("changes", (["pbx.example/1001", "pbx.example/1002"], ["pbx.example/1003", "pbx.example/1004"])),
        ("all", all_lines[:2]),
        ("changes", ([], [])), ("all", all_lines[:2]),
    ]
    [(_, _, views)] = watcher.poll({("pbx.example", "1002")}, 101.5 + FULL_PUBLICATION_INTERVAL)
    assert [v.state for v in views] == ["confirmed"]

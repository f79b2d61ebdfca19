"""A trunk's changes on the bus (`CallManagerController._on_trunk_state`): every worker probes
every trunk, so a probe's change is told once, by the first worker of the VIP holder; a
registration's by the worker that holds it."""

from __future__ import annotations

from types import SimpleNamespace

from pbx_services.callmanager.controller import CallManagerController
from pbx_services.callmanager.trunks import TrunkEntry, TrunkStateChange
from pbx_services.callmanager.workers import WorkerPlace
from pbx_services.cluster.bus import InProcessBus
from pbx_services.cluster.config import build_config
from pbx_services.cluster.events import ServerState, ServerStateChanged

TRUNK = TrunkEntry(tenant_id=1, tenant_domain="pbx.example", name="provider", host="provider.example",
                   port=5060, transport="UDP", address="192.0.2.10", probe_interval=30)


def _workers(bus: InProcessBus, *, holder: bool) -> list[CallManagerController]:
    config = build_config({}, env={}, needs_auth=False)
    workers = [CallManagerController(config=config, bus=bus, place=WorkerPlace(node="cm1", index=i, count=2))
               for i in range(2)]
    for worker in workers:
        worker.core = SimpleNamespace(holding=SimpleNamespace(holder=holder))  # type: ignore[assignment]
    return workers


def test_a_probes_change_is_told_once_and_a_registrations_by_its_holder() -> None:
    bus = InProcessBus()
    events: list[ServerStateChanged] = []
    bus.subscribe(ServerStateChanged, events.append)
    down = TrunkStateChange(up=False, reason="OPTIONS: no answer (2 probes in a row)", probed=True)
    for worker in _workers(bus, holder=True) + _workers(InProcessBus(), holder=False):
        worker._on_trunk_state(TRUNK, down, 10.0)
    assert [(e.server, e.role, e.state, e.reason) for e in events] == [
        ("trunk pbx.example/provider", "trunk", ServerState.DOWN, "OPTIONS: no answer (2 probes in a row)")]

    events.clear()
    refused = TrunkStateChange(up=False, reason="registration: 403 Forbidden")
    _workers(bus, holder=False)[1]._on_trunk_state(TRUNK, refused, 11.0)
    _workers(bus, holder=True)[0]._on_trunk_state(TRUNK, TrunkStateChange(up=True, reason="OPTIONS answered "
                                                                          "again: 200 OK", probed=True), 12.0)
    assert [(e.state, e.reason) for e in events] == [(ServerState.DOWN, "registration: 403 Forbidden"),
                                                     (ServerState.UP, "OPTIONS answered again: 200 OK")]

"""Outbound permissions and concurrent-call limits (`callmanager.permissions`) as the router
applies them (no I/O): the class order, a route above the caller's permission refused, the
user's and the tenant's limits, and emergency calls put through past both."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest

from pbx_services.callmanager.call import Call, Leg
from pbx_services.callmanager.permissions import COUNT_TTL, RENEW_INTERVAL, CallCounter, Caller
from pbx_services.callmanager.routing import CallRouter
from pbx_services.callmanager.trunks import RouteEntry, TrunkCatalog, TrunkEntry, TrunkPlan
from pbx_services.cluster.dial_patterns import compile_pattern
from pbx_services.cluster.events import HangupBy
from pbx_services.cluster.models.user import USER_PERMISSIONS, permits
from pbx_services.cluster.state.call_counts import InMemoryCallCounts, tenant_key, user_key
from pbx_services.cluster.state.errors import StateStoreUnavailable
from pbx_services.cluster.state.location import Binding, InMemoryLocation

DOMAIN = "pbx.example"
TRUNK = TrunkEntry(tenant_id=1, tenant_domain=DOMAIN, name="provider", host="provider.example", port=5060,
                   transport="UDP", address="192.0.2.10")
ROUTES = (
    RouteEntry("emergency", compile_pattern("_1[01]2"), 0, "", "emergency", (TRUNK,)),
    RouteEntry("local", compile_pattern("_0[1-5]XXXXXXXX"), 0, "", "local", (TRUNK,)),
    RouteEntry("international", compile_pattern("_00Z."), 0, "", "international", (TRUNK,)),
    RouteEntry("premium", compile_pattern("_08XXXXXXXX"), 0, "", "premium", (TRUNK,)),
    RouteEntry("other", compile_pattern("_9XX"), 0, "", "national", (TRUNK,)),
)
NOT_ALLOWED = (403, "Not Allowed To Call This Number")
LIMIT_REACHED = (403, "Call Limit Reached")


def _router(calls: list[tuple[str, int]] | None = None) -> CallRouter:
    """A router whose cluster has `calls` (caller, tenant id) in progress, each placed by a user."""
    catalog = cast(TrunkCatalog, SimpleNamespace(plan=TrunkPlan(trunks=(TRUNK,), routes={DOMAIN: ROUTES})))
    location = InMemoryLocation()
    aor = f"sip:1002@{DOMAIN}"
    binding = Binding(aor=aor, contact="sip:1002@192.0.2.20", expires_at=3600.0, call_id="r", cseq=1,
                      source=("192.0.2.20", 5060), transport="UDP", refreshed_at=0.0)
    location.update(aor, save=[binding], now=0.0)
    counts = InMemoryCallCounts()
    counts.add([((tenant_key(tenant_id), user_key(tenant_id, caller)), f"call-{index}")
                for index, (caller, tenant_id) in enumerate(calls or [])], ttl=60.0, now=0.0)
    return CallRouter(location=location, extension_exists=lambda realm, number: number == "1002",
                      service_role=None, app_servers=None, wall_offset=0.0, trunks=catalog,
                      call_counts=CallCounter(counts).counts)


def _caller(permission: str = "national", max_calls: int = 0, tenant_max_calls: int = 0) -> Caller:
    return Caller(extension="1001", tenant_id=1, permission=permission, max_calls=max_calls,
                  tenant_max_calls=tenant_max_calls)


def test_classes_are_ordered_and_emergency_is_always_permitted() -> None:
    order = [p.value for p in USER_PERMISSIONS]
    assert order == ["internal", "local", "national", "international", "premium"]
    for rank, permission in enumerate(order):
        assert [permits(permission, route) for route in order] == [i <= rank for i in range(len(order))]
        assert permits(permission, "emergency")


@pytest.mark.parametrize(("permission", "dialed", "allowed"), [
    ("national", "0044207946", False),
    ("international", "0044207946", True),
    ("international", "0812345678", False),
    ("premium", "0812345678", True),
    ("local", "0145678901", True),
    ("internal", "0145678901", False),
    ("internal", "112", True),
])
def test_a_route_above_the_callers_permission_is_refused(permission: str, dialed: str, allowed: bool) -> None:
    routed = _router().route(DOMAIN, dialed, 0.0, caller=_caller(permission))
    if allowed:
        assert isinstance(routed, list) and routed[0].trunk is not None
    else:
        assert routed == NOT_ALLOWED


def test_the_refusal_is_logged_naming_route_class_and_permission(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pbx_services.callmanager.permissions"):
        assert _router().route(DOMAIN, "0044207946", 0.0, caller=_caller()) == NOT_ALLOWED
    assert ("call from 1001 to 0044207946 refused: route international is international, "
            "user's permission is national") in caplog.text


def test_an_emergency_number_on_a_route_of_another_class_is_allowed_to_everyone() -> None:
    # 911 matches the national route "other": the number itself makes it an emergency call.
    routed = _router().route(DOMAIN, "911", 0.0, caller=_caller("internal"))
    assert isinstance(routed, list) and routed[0].trunk is not None


def test_internal_calls_ignore_the_permission() -> None:
    routed = _router().route(DOMAIN, "1002", 0.0, caller=_caller("internal"))
    assert isinstance(routed, list) and routed[0].contact == "sip:1002@192.0.2.20"


def test_a_call_without_a_caller_a_provider_or_transfer_is_not_checked() -> None:
    assert isinstance(_router().route(DOMAIN, "0044207946", 0.0), list)


def test_the_users_limit_refuses_the_next_call_but_not_an_emergency_call(
        caplog: pytest.LogCaptureFixture) -> None:
    router = _router([("1001", 1), ("1002", 1)])
    with caplog.at_level(logging.INFO, logger="pbx_services.callmanager.permissions"):
        assert router.route(DOMAIN, "0145678901", 0.0, caller=_caller(max_calls=1)) == LIMIT_REACHED
        assert router.route(DOMAIN, "1002", 0.0, caller=_caller(max_calls=1)) == LIMIT_REACHED
        emergency = router.route(DOMAIN, "112", 0.0, caller=_caller(max_calls=1))
        emergency_route = router.route(DOMAIN, "102", 0.0, caller=_caller(max_calls=1))
    assert isinstance(emergency, list) and isinstance(emergency_route, list)
    assert ("call from 1001 to 0145678901 refused: user's limit of 1 calls reached (1 in progress)"
            in caplog.text)
    assert "call from 1001 to 112: emergency call put through although the user's limit" in caplog.text
    assert isinstance(router.route(DOMAIN, "0145678901", 0.0, caller=_caller(max_calls=2)), list)


def test_the_tenants_limit_counts_every_call_of_the_tenant_only(caplog: pytest.LogCaptureFixture) -> None:
    router = _router([("1002", 1), ("1003", 1), ("1001", 2), ("1002", 2)])
    with caplog.at_level(logging.INFO, logger="pbx_services.callmanager.permissions"):
        assert router.route(DOMAIN, "0145678901", 0.0, caller=_caller(tenant_max_calls=2)) == LIMIT_REACHED
    assert "refused: tenant's limit of 2 calls reached (2 in progress)" in caplog.text
    assert isinstance(router.route(DOMAIN, "0145678901", 0.0, caller=_caller(tenant_max_calls=3)), list)
    assert router.route(DOMAIN, "922", 0.0, caller=_caller(tenant_max_calls=2)) == LIMIT_REACHED
    assert isinstance(router.route(DOMAIN, "999", 0.0, caller=_caller(tenant_max_calls=2)), list)
    assert isinstance(router.route(DOMAIN, "112", 0.0, caller=_caller(tenant_max_calls=2)), list)


def _call(key: str, tenant_id: int | None, placed_by: str | None) -> Call:
    limits = None if placed_by is None else Caller(extension=placed_by, tenant_id=tenant_id or 0,
                                                  permission="national", max_calls=9)
    return cast(Call, SimpleNamespace(record_key=key, tenant_id=tenant_id, limits=limits, branches=[],
                                      b=None, counted=()))


def test_a_users_calls_count_for_it_and_its_tenant_others_for_the_tenant_only() -> None:
    store = InMemoryCallCounts()
    counter = CallCounter(store)
    caller = Caller(extension="1001", tenant_id=1, permission="national", max_calls=5, tenant_max_calls=5)
    placed = _call("placed/1", 1, "1001")
    counter.changed(placed, 0.0)
    counter.changed(_call("from-trunk/1", 1, None), 0.0)  # a DID call to 1001 counts for the tenant only
    counter.changed(_call("no-tenant/1", None, None), 0.0)
    assert counter.counts(caller, 1.0) == (1, 2)
    counter.ended(placed)
    assert counter.counts(caller, 1.0) == (0, 1)


def test_a_call_counts_for_a_trunk_while_its_branch_there_rings_or_talks() -> None:
    counter = CallCounter(InMemoryCallCounts())
    call = _call("out/1", 1, "1001")
    branch = SimpleNamespace(leg=Leg(HangupBy.CALLEE, TRUNK.destination, "UDP", trunk=TRUNK.key), final=None)
    call.branches.append(cast(Any, branch))
    counter.changed(call, 0.0)
    assert counter.trunk_calls(TRUNK) == 1
    branch.final = 503  # the provider failed it: the call moves on to the next trunk
    counter.changed(call, 1.0)
    assert counter.trunk_calls(TRUNK) == 0
    branch.final = 200
    counter.changed(call, 2.0)
    assert counter.trunk_calls(TRUNK) == 1
    counter.ended(call)
    assert counter.trunk_calls(TRUNK) == 0 and call.counted == ()


def test_a_call_taken_over_counts_for_the_trunk_its_callees_leg_goes_through() -> None:
    counter = CallCounter(InMemoryCallCounts())
    taken = _call("out/1", 1, "1001")  # no branches: rebuilt from its record, answered
    taken.b = Leg(HangupBy.CALLEE, TRUNK.destination, "UDP", trunk=TRUNK.key)
    counter.renew([taken], 0.0)
    assert counter.trunk_calls(TRUNK) == 1
    assert taken.counted == (tenant_key(1), user_key(1, "1001"), f"trunk:{TRUNK.key}")


def test_calls_are_renewed_every_interval_and_lapse_when_no_longer_renewed() -> None:
    counter = CallCounter(InMemoryCallCounts())
    caller = Caller(extension="1001", tenant_id=1, permission="national", max_calls=5)
    held = [_call("held/1", 1, "1001")]
    counter.renew(held, 0.0)  # a call taken over from another worker is counted in here
    counter.renew([], RENEW_INTERVAL / 2)  # too soon: nothing done, the call stays counted
    assert counter.counts(caller, COUNT_TTL - 1) == (1, 0)
    counter.renew(held, COUNT_TTL - 1)
    assert counter.counts(caller, 2 * COUNT_TTL - 2) == (1, 0)
    assert counter.counts(caller, 2 * COUNT_TTL) == (0, 0)


class _UnreachableCounts(InMemoryCallCounts):
    def count(self, key: str, now: float) -> int:
        raise StateStoreUnavailable("Redis at 127.0.0.1:1 is unreachable")

    def add(self, calls: object, ttl: float, now: float) -> None:
        raise StateStoreUnavailable("Redis at 127.0.0.1:1 is unreachable")


def test_without_the_state_store_no_call_is_refused_for_a_limit(caplog: pytest.LogCaptureFixture) -> None:
    counter = CallCounter(_UnreachableCounts())
    caller = Caller(extension="1001", tenant_id=1, permission="national", max_calls=1)
    with caplog.at_level(logging.WARNING, logger="pbx_services.callmanager.permissions"):
        counter.changed(_call("placed/1", 1, "1001"), 0.0)
        assert counter.counts(caller, 0.0) == (0, 0)
    assert "concurrent-call limits not checked" in caplog.text
    assert "calls in progress not counted" in caplog.text

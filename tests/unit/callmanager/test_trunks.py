"""Dial patterns, strip/prepend, route selection (trunks full or down), number formats, DIDs
and their hours, and the merged control API listing of `callmanager.trunks` (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pbx_services.callmanager.trunk_numbers import NumberPlan
from pbx_services.callmanager.trunks import (
    DidRoute,
    RouteEntry,
    TrunkEntry,
    TrunkPlan,
    did_route,
    merge_trunk_statuses,
    next_trunk,
    withholds_identity,
)
from pbx_services.cluster.destinations import parse_destination
from pbx_services.cluster.dial_patterns import compile_pattern, normalise
from pbx_services.cluster.models import NumberFormat
from pbx_services.cluster.validation import InvalidValue
from pbx_services.sip.message import SipRequest, parse_message

DOMAIN = "pbx.example"


@pytest.mark.parametrize(("pattern", "matching", "not_matching"), [
    ("_9NXXNXXXXXX", ["92125551234"], ["91125551234", "9212555123", "921255512345"]),
    ("_0[1-5]XXXXXXXX", ["0145678901", "0512345678"], ["0612345678", "014567890"]),
    ("_00Z.", ["0033612", "0019"], ["00", "0003", "001"]),
    ("_112!", ["112", "1120"], ["11"]),
    ("_x[137]", ["01", "97"], ["02", "1"]),
    ("re:^00[1-9][0-9]+$", ["0044207", "0012"], ["0044a", "001"]),
    ("112", ["112"], ["1120", "11"]),
])
def test_a_pattern_matches_whole_numbers_only(pattern: str, matching: list[str],
                                              not_matching: list[str]) -> None:
    compiled = compile_pattern(pattern)
    assert all(compiled.matches(number) for number in matching)
    assert not any(compiled.matches(number) for number in not_matching)


@pytest.mark.parametrize(("pattern", "error"), [
    ("_9[2-", "dial pattern '_9[2-' does not compile: '[' at 2 is never closed"),
    ("_9[a]", "dial pattern '_9[a]' does not compile: [a] is not a set of digits"),
    ("_9?", "dial pattern '_9?' does not compile: '?' at 2 is none of"),
    ("re:^(0", "dial pattern 're:^(0' does not compile: missing ), unterminated subpattern"),
    ("_", "dial pattern '_': nothing after the _"),
    ("9 1", "dial pattern '9 1': a plain number has digits"),
    ("", "dial pattern is empty"),
])
def test_a_pattern_that_does_not_compile_is_refused_naming_it(pattern: str, error: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        compile_pattern(pattern)
    assert str(refused.value).startswith(error)


@pytest.mark.parametrize(("number", "strip", "prepend", "sent"), [
    ("90612345678", 2, "+33", "+33612345678"),
    ("90612345678", 1, "", "0612345678"),
    ("0612345678", 0, "", "0612345678"),
    ("112", 0, "", "112"),
])
def test_strip_then_prepend(number: str, strip: int, prepend: str, sent: str) -> None:
    assert normalise(number, strip=strip, prepend=prepend) == sent


def _trunk(name: str, port: int, max_calls: int = 0) -> TrunkEntry:
    return TrunkEntry(tenant_id=1, tenant_domain=DOMAIN, name=name, host="provider.example", port=port,
                      transport="UDP", address="192.0.2.10", max_calls=max_calls, caller_id="+3312345678")


FIRST, SECOND = _trunk("first", 5060, max_calls=2), _trunk("second", 5070)


def _plan() -> TrunkPlan:
    routes = (
        RouteEntry("emergency", compile_pattern("112"), 0, "", "emergency", (SECOND,)),
        RouteEntry("national", compile_pattern("_90[1-9]XXXXXXXX"), 2, "+33", "national", (FIRST, SECOND)),
    )
    return TrunkPlan(trunks=(FIRST, SECOND), routes={DOMAIN: routes},
                     dids={(DOMAIN, "0140000000"): DidRoute(parse_destination("1001")),
                           (DOMAIN, "0140000001"): DidRoute(parse_destination("queue:700"))})


def test_the_first_matching_route_gives_its_first_trunk_and_the_rewritten_number() -> None:
    call = _plan().outbound(DOMAIN, "90612345678", lambda trunk: 0)
    assert not isinstance(call, tuple) and call is not None
    assert (call.trunk, call.number, call.route) == (FIRST, "+33612345678", "national")
    assert call.remaining == (SECOND,)
    assert call.request_uri == "sip:+33612345678@provider.example:5060"
    assert str(call.from_address("1001", None, "t1")) == "<sip:+3312345678@provider.example>;tag=t1"
    assert str(call.to_address()) == "<sip:+33612345678@provider.example>"


def test_no_route_of_the_tenant_matching_means_none() -> None:
    plan = _plan()
    assert plan.outbound(DOMAIN, "4444", lambda trunk: 0) is None
    assert plan.outbound("other.example", "90612345678", lambda trunk: 0) is None


def test_a_trunk_at_its_limit_is_skipped_and_all_full_is_503() -> None:
    plan = _plan()
    call = plan.outbound(DOMAIN, "90612345678", lambda trunk: 2 if trunk is FIRST else 0)
    assert not isinstance(call, tuple) and call is not None and call.trunk is SECOND
    assert plan.outbound(DOMAIN, "112", lambda trunk: 1) is not None  # no limit on the second trunk
    full = TrunkPlan(routes={DOMAIN: (RouteEntry("r", compile_pattern("_0."), 0, "", "national", (FIRST,)),)})
    assert full.outbound(DOMAIN, "0123", lambda trunk: 2) == (503, "All Trunks Busy")


def test_a_failed_trunk_hands_the_call_to_the_next_with_room() -> None:
    call = _plan().outbound(DOMAIN, "90612345678", lambda trunk: 0)
    assert not isinstance(call, tuple) and call is not None
    following = next_trunk(call, lambda trunk: 0)
    assert following is not None and following.trunk is SECOND and following.number == "+33612345678"
    assert next_trunk(following, lambda trunk: 0) is None


def test_a_providers_call_is_known_by_host_and_port_and_its_did_by_request_uri_then_to() -> None:
    plan = _plan()
    assert plan.trunk_at(("192.0.2.10", 5070)) is SECOND
    assert plan.trunk_at(("192.0.2.10", 40000)) is None
    found = plan.did_route(FIRST, ["acme", "0140000001"])
    assert found is not None and found[0] == "0140000001" and str(found[1].destination) == "queue:700"
    assert plan.did_route(FIRST, ["0149999999"]) is None


def test_a_trunk_down_is_passed_over_at_once_and_all_down_is_503() -> None:
    plan = _plan()

    def first_down(trunk: TrunkEntry) -> str | None:
        return "down since its OPTIONS got no answer" if trunk is FIRST else None

    call = plan.outbound(DOMAIN, "90612345678", lambda trunk: 0, first_down)
    assert not isinstance(call, tuple) and call is not None
    assert (call.trunk, call.remaining) == (SECOND, ())
    assert plan.outbound(DOMAIN, "90612345678", lambda trunk: 0, lambda trunk: "down") == (
        503, "All Trunks Busy")
    started = plan.outbound(DOMAIN, "90612345678", lambda trunk: 0)
    assert started is not None and not isinstance(started, tuple)
    assert next_trunk(started, lambda trunk: 0, lambda trunk: "down") is None


def test_each_trunk_writes_the_number_and_caller_id_in_its_format() -> None:
    e164 = TrunkEntry(tenant_id=1, tenant_domain=DOMAIN, name="e164", host="provider.example", port=5060,
                      transport="UDP", address="192.0.2.10",
                      numbers=NumberPlan(NumberFormat.E164, country_code="33", national_prefix="0"))
    national = TrunkEntry(tenant_id=1, tenant_domain=DOMAIN, name="national", host="provider.example",
                          port=5080, transport="UDP", address="192.0.2.10", caller_id="+33140000000",
                          numbers=NumberPlan(NumberFormat.NATIONAL, country_code="33", national_prefix="0"))
    route = RouteEntry("national", compile_pattern("_0[1-9]XXXXXXXX"), 0, "", "national", (e164, national))
    call = TrunkPlan(routes={DOMAIN: (route,)}).outbound(DOMAIN, "0612345678", lambda trunk: 0)
    assert call is not None and not isinstance(call, tuple)
    assert call.request_uri == "sip:+33612345678@provider.example:5060"
    assert str(call.from_address("0140000000", None, "t")) == "<sip:+33140000000@provider.example>;tag=t"
    assert str(call.from_address("1001", None, "t")) == "<sip:1001@provider.example>;tag=t"
    following = next_trunk(call, lambda trunk: 0)
    assert following is not None and following.request_uri == "sip:0612345678@provider.example:5080"
    assert str(following.from_address("1001", None, "t")) == "<sip:0140000000@provider.example>;tag=t"
    assert e164.caller_from("0612345678") == "+33612345678"
    assert national.caller_from("+33612345678") == "0612345678"


def _did_row(**columns: object) -> SimpleNamespace:
    row = {"destination": "1001", "hours": None, "timezone": None, "holidays": None,
           "closed_destination": None}
    return SimpleNamespace(**(row | columns))


def test_a_did_outside_its_hours_or_on_a_holiday_goes_to_its_closed_destination() -> None:
    route = did_route(_did_row(hours="mon-fri 09:00-17:00", timezone="Europe/Paris", holidays="2026-12-25",
                               closed_destination="ivr:801"))
    # Thursday 3 December 2026, 10:00 in Paris (09:00 UTC): open.
    assert route.destination_at(datetime(2026, 12, 3, 9, 0, tzinfo=UTC)) == (parse_destination("1001"), True)
    # The same day at 17:30 in Paris, then Saturday, then Christmas (a Friday): closed.
    for closed_at in (datetime(2026, 12, 3, 16, 30, tzinfo=UTC), datetime(2026, 12, 5, 10, 0, tzinfo=UTC),
                      datetime(2026, 12, 25, 10, 0, tzinfo=UTC)):
        assert route.destination_at(closed_at) == (parse_destination("ivr:801"), False)
    always = did_route(_did_row())
    assert always.destination_at(datetime(2026, 12, 5, 3, 0, tzinfo=UTC)) == (parse_destination("1001"), True)


def test_a_did_row_whose_hours_no_longer_parse_is_named() -> None:
    with pytest.raises(InvalidValue, match="hours 'mon-fry 09:00-17:00'"):
        did_route(_did_row(hours="mon-fry 09:00-17:00", closed_destination="1002"))


def test_the_workers_listings_merge_into_one_entry_per_trunk() -> None:
    def probe(state: str) -> dict[str, object]:
        return {"tenant": DOMAIN, "name": "first", "state": state, "reason": "x", "for": 3,
                "workers_down": int(state == "down"), "workers": 1}

    registered = {"tenant": DOMAIN, "name": "first", "state": "registered", "code": 200, "reason": "OK",
                  "expires_in": 1700}
    merged = merge_trunk_statuses([{"trunks": [], "probes": [probe("up")]},
                                   {"trunks": [registered], "probes": [probe("down")]},
                                   {"trunks": [], "probes": [probe("up")]}])
    assert merged["trunks"] == [registered]
    assert len(merged["probes"]) == 1
    assert {key: merged["probes"][0][key] for key in ("state", "workers_down", "workers")} == {
        "state": "down", "workers_down": 1, "workers": 3}


def _invite(*headers: str, from_user: str = "1001") -> SipRequest:
    """A phone's INVITE (pjsua2's headers), with `headers` added."""
    lines = ["INVITE sip:0612345678@pbx.example SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.50:5062;branch=z9hG4bKp1",
             "Max-Forwards: 70", f"From: <sip:{from_user}@pbx.example>;tag=ph1",
             "To: <sip:0612345678@pbx.example>", "Call-ID: c1", "CSeq: 1 INVITE",
             "Contact: <sip:1001@192.0.2.50:5062>", *headers, "Content-Length: 0"]
    request = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(request, SipRequest)
    return request


@pytest.mark.parametrize(("headers", "from_user", "withheld"), [
    ((), "1001", False),
    (("Privacy: none",), "1001", False),
    (("Privacy: id",), "1001", True),
    (("Privacy: header;ID",), "1001", True),
    (("Privacy: user",), "1001", True),
    ((), "Anonymous", True),
])
def test_a_caller_withholds_its_number_by_privacy_or_an_anonymous_from(
        headers: tuple[str, ...], from_user: str, withheld: bool) -> None:
    assert withholds_identity(_invite(*headers, from_user=from_user)) is withheld


def test_a_withheld_caller_is_anonymous_in_from_and_asserted_to_the_provider() -> None:
    call = _plan().outbound(DOMAIN, "90612345678", lambda trunk: 0)
    assert call is not None and not isinstance(call, tuple)
    from_, headers = call.identity("1001", None, "t1", withheld=False)
    assert (str(from_), headers) == ("<sip:+3312345678@provider.example>;tag=t1", [])
    from_, headers = call.identity("1001", None, "t1", withheld=True)
    assert str(from_) == "Anonymous <sip:anonymous@anonymous.invalid>;tag=t1"
    assert headers == [("P-Asserted-Identity", "<sip:+3312345678@provider.example>"), ("Privacy", "id")]

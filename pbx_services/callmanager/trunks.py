"""Trunks as the Call Manager uses them: calls out through outbound routes, calls in to DIDs,
and the registrations of the trunks that want one.

`TrunkPlan` is the tenants' trunks, routes and DIDs at one moment (plain data, decided on
without I/O); `TrunkCatalog` reads it from the system of record every few seconds.

- Out: a dialled number that no extension or service of the caller's tenant has is matched
  against the tenant's routes in order (priority, then name); the first that matches
  rewrites it (strip, prepend, then the trunk's number format: `trunk_numbers`) and sends it
  to its first trunk with room (`max_calls`) that is not down (`trunk_probes`); a trunk that
  fails (5xx, 408 or silence) hands the call to the route's next one. Every decision is
  logged with why.
- In: an INVITE whose source is a trunk's host and port (IP authentication; the port too, so
  that phones on the provider's address are not taken for it) is a provider's call: its
  Request-URI user, else its To user, must be one of the tenant's DIDs, whose destination it
  goes to without digest (outside the DID's hours, to its closed destination); an unknown DID is
  refused with 404.
- Registration: only the holder of a trunk's lease (one worker of one Call Manager)
  registers it (`TrunkRegistrations`, with `trunk_registration.RegistrationClient`); each
  change of its state is reported, a failure as an alert.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select

from ..cluster.destinations import Destination, parse_destination
from ..cluster.dial_patterns import DialPattern, compile_pattern, normalise
from ..cluster.models import Did, NumberFormat, OutboundRoute, OutboundRouteTrunk, Tenant, Trunk
from ..cluster.models.trunk import DEFAULT_DOWN_AFTER, DEFAULT_UP_AFTER
from ..cluster.schedules import BusinessHours, parse_hours, validate_timezone
from ..cluster.state.leases import LeaseStore
from ..cluster.validation import InvalidValue
from ..runtime.timers import Timer, TimerQueue
from ..sip.headers import Address
from ..sip.message import SipRequest, SipResponse
from ..sip.stack import SipStack
from ..sip.uri import SipUri
from .trunk_codecs import restrict_offer
from .trunk_numbers import NumberPlan, written_for_trunk
from .trunk_registration import FAILED, RegistrationClient, RegistrationStatus, TrunkAccount

log = logging.getLogger(__name__)

CATALOG_TTL = 5.0
"""Seconds a catalogue read from the database is used: a trunk added takes effect within it."""
REGISTRATION_LEASE_TTL = 10.0
"""Seconds a worker holds a trunk's registration after its last renewal (its death frees it)."""


@dataclass(frozen=True, slots=True)
class TrunkEntry:
    tenant_id: int
    tenant_domain: str
    name: str
    host: str
    port: int
    transport: str
    """"UDP" or "TCP", as the SIP stack names it."""
    address: str
    """The host's IP address: where requests go, and (with the port) the source that
    authenticates a call in."""
    username: str | None = None
    password: str | None = None
    register: bool = False
    max_calls: int = 0
    caller_id: str | None = None
    probe_interval: float = 0
    """Seconds between OPTIONS probes; 0: not probed."""
    down_after: int = DEFAULT_DOWN_AFTER
    """Failed probes in a row after which it is down."""
    up_after: int = DEFAULT_UP_AFTER
    """Answered probes in a row after which it is up again."""
    codecs: tuple[str, ...] = ()
    """The codecs offered to it and accepted from it, in order; (): any."""
    numbers: NumberPlan = NumberPlan()

    @property
    def key(self) -> str:
        return f"{self.tenant_domain}/{self.name}"

    @property
    def destination(self) -> tuple[str, int]:
        return self.address, self.port

    @property
    def account(self) -> TrunkAccount | None:
        if self.username is None or self.password is None:
            return None
        return TrunkAccount(host=self.host, port=self.port, transport=self.transport, username=self.username,
                            password=self.password)

    def caller_from(self, number: str) -> str:
        """The caller's number of a call from the provider, as phones and CDRs show it."""
        return written_for_trunk(number, self.numbers)

    def accepted_offer(self, body: bytes) -> bytes | None:
        """The provider's offer with only the trunk's codecs; None when it has none of them."""
        return restrict_offer(body, self.codecs)


@dataclass(frozen=True, slots=True)
class RouteEntry:
    name: str
    pattern: DialPattern
    strip: int
    prepend: str
    permission: str
    trunks: tuple[TrunkEntry, ...]


@dataclass(frozen=True, slots=True)
class TrunkCall:
    """A call's branch through a trunk: the number it dials there and the trunks left to try."""

    trunk: TrunkEntry
    number: str
    """The dialled number as the route rewrote it."""
    route: str
    remaining: tuple[TrunkEntry, ...] = ()

    @property
    def sent_number(self) -> str:
        """The number as the trunk gets it: the route's, in the trunk's number format."""
        return written_for_trunk(self.number, self.trunk.numbers)

    @property
    def request_uri(self) -> str:
        return str(SipUri(host=self.trunk.host, port=self.trunk.port, user=self.sent_number))

    def from_address(self, caller: str, display_name: str | None, tag: str) -> Address:
        """The From of the INVITE: the trunk's presented number, else the caller's extension, in
        the trunk's number format."""
        user = written_for_trunk(self.trunk.caller_id or caller, self.trunk.numbers)
        return Address(uri=SipUri(host=self.trunk.host, user=user), display_name=display_name,
                       params={"tag": tag})

    def identity(self, caller: str, display_name: str | None, tag: str, *, withheld: bool
                 ) -> tuple[Address, list[tuple[str, str]]]:
        """The From of the INVITE and the identity headers that go with it. Withheld (the
        caller's phone asked for privacy), the From is anonymous (RFC 3323) and the presented
        number goes to the provider, a trusted peer, in P-Asserted-Identity with `Privacy: id`
        asking it not to pass the number on (RFC 3325)."""
        presented = self.from_address(caller, display_name, tag)
        if not withheld:
            return presented, []
        anonymous = Address(uri=ANONYMOUS_URI, display_name="Anonymous", params={"tag": tag})
        return anonymous, [("P-Asserted-Identity", str(Address(uri=presented.uri))), ("Privacy", PRIVACY_ID)]

    def offer(self, body: bytes) -> bytes:
        """The call's offer as the trunk gets it: its codecs only, in its order. An offer with
        none of them goes as it is (logged), for the provider to accept or refuse."""
        restricted = restrict_offer(body, self.trunk.codecs)
        if restricted is None:
            log.warning("call to %s: the offer has none of trunk %s's codecs (%s): sent as it is",
                        self.number, self.trunk.name, ",".join(self.trunk.codecs))
            return body
        return restricted

    def to_address(self) -> Address:
        return Address(uri=SipUri(host=self.trunk.host, user=self.sent_number))


PRIVACY_ID = "id"
WITHHOLDING_PRIVACY = frozenset({PRIVACY_ID, "user", "header"})
"""Privacy values (RFC 3323, RFC 3325) with which a caller asks that its number not be shown."""
ANONYMOUS_USER = "anonymous"
ANONYMOUS_URI = SipUri(host="anonymous.invalid", user=ANONYMOUS_USER)
"""The From URI of a call whose caller is withheld (RFC 3323 section 4.1.1.3)."""


def withholds_identity(request: SipRequest) -> bool:
    """Whether the caller's INVITE asks that its number be withheld: a Privacy of id, user or
    header, or an anonymous From (as phones send for a withheld call)."""
    values = {value.strip().lower() for header in request.headers.get_all("Privacy")
              for value in header.split(";")}
    return bool(values & WITHHOLDING_PRIVACY) or (request.from_.sip_uri.user or "").lower() == ANONYMOUS_USER


@dataclass(frozen=True, slots=True)
class DidRoute:
    """Where a DID's calls go: `destination`, or `closed` outside its `hours`."""

    destination: Destination
    hours: BusinessHours | None = None
    closed: Destination | None = None

    def destination_at(self, at: datetime) -> tuple[Destination, bool]:
        """(where a call at the aware datetime `at` goes, whether the DID is open then)."""
        if self.hours is None or self.closed is None or self.hours.is_open(at):
            return self.destination, True
        return self.closed, False


TrunkDown = Callable[[TrunkEntry], str | None]
"""Why a trunk is down (its probes failed), None while it may carry calls."""


def never_down(trunk: TrunkEntry) -> str | None:
    return None


@dataclass(frozen=True)
class TrunkPlan:
    """The tenants' trunks, routes (in the order they are tried) and DIDs."""

    trunks: tuple[TrunkEntry, ...] = ()
    routes: dict[str, tuple[RouteEntry, ...]] = field(default_factory=dict)
    """By tenant domain."""
    dids: dict[tuple[str, str], DidRoute] = field(default_factory=dict)
    """(tenant domain, number) -> where its calls go."""

    def outbound(self, domain: str, dialed: str, calls_on: Callable[[TrunkEntry], int],
                 down: TrunkDown = never_down) -> TrunkCall | tuple[int, str] | None:
        """Where a call of tenant `domain` to `dialed` leaves: its first trunk with room that is
        not down (the rest to try after it), the status refusing it when every trunk of the
        matching route is full or down, or None when no route matches. `calls_on(trunk)`
        counts a trunk's calls, `down(trunk)` says why it is down."""
        for route in self.routes.get(domain, ()):
            if not route.pattern.matches(dialed):
                continue
            number = normalise(dialed, strip=route.strip, prepend=route.prepend)
            available = [trunk for trunk in route.trunks if _usable(trunk, calls_on, down, dialed)]
            if not available:
                log.warning("call to %s in %s: route %s matches (pattern %s) but every trunk is at its limit "
                            "or down", dialed, domain, route.name, route.pattern.text)
                return 503, "All Trunks Busy"
            first = available[0]
            call = TrunkCall(first, number, route.name, tuple(available[1:]))
            log.info("call to %s in %s: route %s (pattern %s) dials %s on trunk %s", dialed, domain,
                     route.name, route.pattern.text, call.sent_number, first.name)
            return call
        return None

    def trunk_at(self, source: tuple[str, int]) -> TrunkEntry | None:
        """The trunk whose host and port are `source` (a provider's server calling us), if any."""
        return next((trunk for trunk in self.trunks if trunk.destination == source), None)

    def did_route(self, trunk: TrunkEntry, numbers: Iterable[str]) -> tuple[str, DidRoute] | None:
        """The first of `numbers` (the Request-URI user, the To user) that is a DID of the
        trunk's tenant, with where its calls go."""
        for number in numbers:
            route = self.dids.get((trunk.tenant_domain, number))
            if route is not None:
                return number, route
        return None


def next_trunk(call: TrunkCall, calls_on: Callable[[TrunkEntry], int], down: TrunkDown = never_down
               ) -> TrunkCall | None:
    """The same call on the next trunk of its route with room and not down; None when none is left."""
    remaining = [trunk for trunk in call.remaining if _usable(trunk, calls_on, down, call.number)]
    if not remaining:
        return None
    return TrunkCall(remaining[0], call.number, call.route, tuple(remaining[1:]))


def _usable(trunk: TrunkEntry, calls_on: Callable[[TrunkEntry], int], down: TrunkDown, dialed: str) -> bool:
    if trunk.max_calls and calls_on(trunk) >= trunk.max_calls:
        log.info("call to %s: trunk %s skipped, at its limit of %d calls", dialed, trunk.name,
                 trunk.max_calls)
        return False
    why = down(trunk)
    if why is not None:
        log.info("call to %s: trunk %s skipped, %s", dialed, trunk.name, why)
        return False
    return True


def _resolve(host: str) -> str | None:
    try:
        return str(socket.getaddrinfo(host, None, socket.AF_INET)[0][4][0])
    except (OSError, IndexError):
        return None


_TRUNKS = (select(*Trunk.__table__.c, Tenant.domain).join(Tenant, Tenant.id == Trunk.tenant_id)
           .where(Trunk.enabled.is_(True)))
_ROUTES = (select(*OutboundRoute.__table__.c, Tenant.domain)
           .join(Tenant, Tenant.id == OutboundRoute.tenant_id)
           .order_by(OutboundRoute.priority, OutboundRoute.name))
_ROUTE_TRUNKS = (select(*OutboundRouteTrunk.__table__.c)
                 .order_by(OutboundRouteTrunk.route_id, OutboundRouteTrunk.position))
_DIDS = select(*Did.__table__.c, Tenant.domain).join(Tenant, Tenant.id == Did.tenant_id)


class TrunkCatalog:
    """The `TrunkPlan` read from the database, again every `ttl` seconds (`tick`)."""

    def __init__(self, *, engine: Engine, ttl: float = CATALOG_TTL,
                 resolve: Callable[[str], str | None] = _resolve) -> None:
        self._engine = engine
        self._ttl = ttl
        self._resolve = resolve
        self._loaded_at = float("-inf")
        self.plan = TrunkPlan()

    def tick(self, now: float) -> bool:
        """Read the plan again when it is `ttl` old; whether it was read."""
        if now - self._loaded_at < self._ttl:
            return False
        self.plan = self._load()
        self._loaded_at = now
        return True

    def _load(self) -> TrunkPlan:
        with self._engine.connect() as connection:
            trunk_rows = connection.execute(_TRUNKS).all()
            route_rows = connection.execute(_ROUTES).all()
            route_trunks = connection.execute(_ROUTE_TRUNKS).all()
            did_rows = connection.execute(_DIDS).all()
        trunks: dict[int, TrunkEntry] = {}
        for row in trunk_rows:
            address = self._resolve(row.host)
            if address is None:
                log.warning("trunk %s of %s: host %s does not resolve; the trunk is left out", row.name,
                            row.domain, row.host)
                continue
            trunks[row.id] = TrunkEntry(
                tenant_id=row.tenant_id, tenant_domain=row.domain, name=row.name, host=row.host,
                port=row.port, transport=str(row.transport).upper(), address=address,
                username=row.username, password=row.password, register=row.register,
                max_calls=row.max_calls, caller_id=row.caller_id, probe_interval=float(row.probe_interval),
                down_after=row.down_after, up_after=row.up_after,
                codecs=tuple(row.codecs.split(",")) if row.codecs else (),
                numbers=NumberPlan(number_format=NumberFormat(row.number_format),
                                   country_code=row.country_code, national_prefix=row.national_prefix,
                                   international_prefix=row.international_prefix))
        ordered: dict[int, list[TrunkEntry]] = {}
        for link in route_trunks:
            if link.trunk_id in trunks:
                ordered.setdefault(link.route_id, []).append(trunks[link.trunk_id])
        routes: dict[str, list[RouteEntry]] = {}
        for route in route_rows:
            try:
                pattern = compile_pattern(route.pattern)
            except InvalidValue as exc:
                log.error("route %s of %s left out: %s", route.name, route.domain, exc)
                continue
            routes.setdefault(route.domain, []).append(RouteEntry(
                name=route.name, pattern=pattern, strip=route.strip, prepend=route.prepend,
                permission=str(route.permission), trunks=tuple(ordered.get(route.id, ()))))
        dids = {}
        for row in did_rows:
            try:
                dids[(row.domain, row.number)] = did_route(row)
            except InvalidValue as exc:
                log.error("DID %s of %s left out: %s", row.number, row.domain, exc)
        return TrunkPlan(trunks=tuple(trunks.values()),
                         routes={domain: tuple(entries) for domain, entries in routes.items()}, dids=dids)


def did_route(row: Any) -> DidRoute:
    """Where the calls of a DID's row go; InvalidValue naming what is wrong with it."""
    hours = None
    if row.hours and row.closed_destination:
        holidays = frozenset(date.fromisoformat(day) for day in (row.holidays or "").split(",") if day)
        hours = BusinessHours(parse_hours(row.hours), validate_timezone(row.timezone or "UTC"), holidays)
    return DidRoute(parse_destination(row.destination), hours,
                    parse_destination(row.closed_destination) if hours is not None else None)


@dataclass(frozen=True, slots=True)
class TrunkStateChange:
    """A trunk's registration or probes changed: what the event on the bus says of it."""

    up: bool
    reason: str
    """Why: "registration: 403 Forbidden", "OPTIONS: no answer (2 probes in a row)"."""
    probed: bool = False
    """Seen by the OPTIONS probes, which every worker runs (so one of them tells the bus);
    else by the registration, which one worker holds."""


TrunkStateCallback = Callable[[TrunkEntry, TrunkStateChange, float], None]
"""(trunk, what changed, now)."""


class TrunkRegistrations:
    """The registrations of the trunks that want one and whose lease this worker holds."""

    def __init__(self, *, stack: SipStack, timers: TimerQueue, leases: LeaseStore | None, owner: str,
                 make_tag: Callable[[], str], on_state: TrunkStateCallback) -> None:
        self._stack = stack
        self._timers = timers
        self._leases = leases
        self._owner = owner
        self._make_tag = make_tag
        self._on_state = on_state
        self._clients: dict[str, tuple[TrunkEntry, RegistrationClient]] = {}
        self._timer: dict[str, Timer] = {}

    def statuses(self) -> dict[str, tuple[TrunkEntry, RegistrationStatus]]:
        """Each registration held here, by trunk key ("tenant/name")."""
        return {key: (trunk, client.status) for key, (trunk, client) in self._clients.items()}

    def update(self, trunks: Sequence[TrunkEntry], now: float) -> None:
        """Register the trunks that want it and whose lease is ours; drop the others.
        StateStoreUnavailable from a Redis lease store propagates (the next round tries again)."""
        wanted = {trunk.key: trunk for trunk in trunks if trunk.register and trunk.account is not None}
        for key in list(self._clients):
            if wanted.get(key) != self._clients[key][0] or not self._holds(key, now):
                self._drop(key)
        for key, trunk in wanted.items():
            if key not in self._clients and self._holds(key, now):
                self._start(trunk, now)

    def _holds(self, key: str, now: float) -> bool:
        if self._leases is None:
            return True
        return self._leases.hold(f"trunk-registration:{key}", self._owner, REGISTRATION_LEASE_TTL, now)

    def _start(self, trunk: TrunkEntry, now: float) -> None:
        account = trunk.account
        assert account is not None
        contact = SipUri(host=self._stack.host, port=self._stack.port, user=account.username,
                         params={"transport": "tcp"} if trunk.transport == "TCP" else {})
        client = RegistrationClient(account=account, contact=str(contact),
                                    call_id=self._make_tag() + self._make_tag(), from_tag=self._make_tag(),
                                    via=lambda: self._stack.via(trunk.transport), make_cnonce=self._make_tag)
        self._clients[trunk.key] = (trunk, client)
        log.info("trunk %s: registering %s at %s:%d", trunk.key, account.username, trunk.host, trunk.port)
        self._send(trunk, client, client.start(now), now)

    def _drop(self, key: str) -> None:
        self._clients.pop(key, None)
        timer = self._timer.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _send(self, trunk: TrunkEntry, client: RegistrationClient, request: SipRequest, now: float) -> None:
        tx = self._stack.send_request(request, trunk.destination, trunk.transport, now)
        tx.user_data = lambda response, t: self._on_response(trunk, client, response, t)

    def _on_response(self, trunk: TrunkEntry, client: RegistrationClient, response: SipResponse,
                     now: float) -> None:
        if self._clients.get(trunk.key, (None, None))[1] is not client:
            return  # dropped since
        before = client.status
        following = client.handle_response(response, now)
        if following is not None:
            self._send(trunk, client, following, now)
            return
        status = client.status
        if status.phase is not before.phase or status.code != before.code:
            if status.phase is FAILED:
                log.warning("trunk %s: registration failed: %s %s", trunk.key, status.code, status.reason)
            else:
                log.info("trunk %s: registered (%s %s)", trunk.key, status.code, status.reason)
            change = TrunkStateChange(up=status.phase is not FAILED,
                                      reason=f"registration: {status.code} {status.reason}")
            self._on_state(trunk, change, now)
        self._arm(trunk, client)

    def _arm(self, trunk: TrunkEntry, client: RegistrationClient) -> None:
        old = self._timer.pop(trunk.key, None)
        if old is not None:
            old.cancel()
        deadline = client.next_timer()
        if deadline is None:
            return

        def due(t: float) -> None:
            self._timer.pop(trunk.key, None)
            request = client.handle_timer(t)
            if request is not None and self._clients.get(trunk.key, (None, None))[1] is client:
                self._send(trunk, client, request, t)

        self._timer[trunk.key] = self._timers.schedule(deadline, due)


def trunk_statuses(registrations: TrunkRegistrations, probes: list[dict[str, object]], now: float
                   ) -> dict[str, list[dict[str, object]]]:
    """The registrations held here and the probes' states (`TrunkProbes.listing`), as the
    control API lists them (`pbx trunk list`)."""
    held: list[dict[str, object]] = [
        {"tenant": trunk.tenant_domain, "name": trunk.name, "state": status.phase.name.lower(),
         "code": status.code, "reason": status.reason,
         "expires_in": None if status.expires_at is None else max(0, round(status.expires_at - now))}
        for trunk, status in registrations.statuses().values()]
    return {"trunks": held, "probes": probes}


def merge_trunk_statuses(bodies: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, object]]]:
    """One answer from several workers' `trunk_statuses`: each registration from the worker
    holding it, each trunk's probes once (down when a worker sees it down, with how many do)."""
    registrations: dict[tuple[str, str], dict[str, object]] = {}
    probes: dict[tuple[str, str], dict[str, Any]] = {}
    for body in bodies:
        for entry in body.get("trunks", []):
            key = (entry["tenant"], entry["name"])
            if key not in registrations or entry["state"] == "registered":
                registrations[key] = entry
        for entry in body.get("probes", []):
            key = (entry["tenant"], entry["name"])
            merged = probes.get(key)
            if merged is None:
                probes[key] = dict(entry)
                continue
            down = int(merged["workers_down"]) + int(entry["workers_down"])
            if entry["state"] == "down" and merged["state"] != "down":
                merged.update(entry)
            merged["workers_down"], merged["workers"] = down, int(merged["workers"]) + int(entry["workers"])
    return {"trunks": list(registrations.values()), "probes": list(probes.values())}

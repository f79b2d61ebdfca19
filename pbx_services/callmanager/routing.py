"""Where a call goes: the targets of its branches, and what their final answers make of it.

A dialled number is a user's extension, whose every registered contact rings at once
(parallel forking), or a number an application server serves (an IVR menu, a queue, a
meeting room): the number's home worker for the roles whose calls meet on one worker (a
meeting room), else the least loaded worker of the role; a number none of these has leaves
through the tenant's outbound routes and trunks (`trunks.py`). An application server that fails
a call (5xx, or silence) is suspected and another of its role is tried. When every branch
failed, the caller gets the one final answer that says most (after RFC 3261 16.7).

A new call and a transfer's target are routed alike, in the call's tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..cluster.events import Disposition
from ..cluster.models import ServerRole
from ..cluster.state.location import LocationStore
from .appservers import PLACED_BY_NUMBER, AppEndpoint, AppServerPool
from .permissions import Caller, limit_refusal, permission_refusal
from .trunks import TrunkCall, TrunkCatalog, TrunkDown, TrunkEntry, never_down, next_trunk

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one branch of a call goes: a registered contact, an application server, or a trunk."""

    contact: str
    """The Request-URI."""
    source: tuple[str, int]
    """Where the INVITE is sent."""
    transport: str
    app_endpoint: AppEndpoint | None = None
    trunk: TrunkCall | None = None
    user: str | None = None
    """The extension whose device this is (a user's contact), None otherwise."""


class CallRouter:
    def __init__(self, *, location: LocationStore, extension_exists: Callable[[str, str], bool],
                 service_role: Callable[[str, str], ServerRole | None] | None,
                 app_servers: AppServerPool | None, wall_offset: float, trunks: TrunkCatalog | None = None,
                 trunk_calls: Callable[[TrunkEntry], int] = lambda trunk: 0,
                 trunk_down: TrunkDown = never_down,
                 call_counts: Callable[[Caller, float], tuple[int, int]] = lambda caller, now: (0, 0)
                 ) -> None:
        """`extension_exists(realm, number)` says whether a user has that extension,
        `service_role(realm, number)` which role of application server serves the number,
        `trunk_calls(trunk)` how many calls go through a trunk now, `trunk_down(trunk)` why it
        is down (its probes), `call_counts(caller, now)` the calls in progress of the caller and of
        its tenant (for their limits)."""
        self._location = location
        self._extension_exists = extension_exists
        self._service_role = service_role or _no_service
        self._app_servers = app_servers
        self._wall_offset = wall_offset
        self._trunks = trunks
        self._trunk_calls = trunk_calls
        self._trunk_down = trunk_down
        self._call_counts = call_counts

    def route(self, realm: str, dialed: str, now: float, *, outbound: bool = True,
              caller: Caller | None = None) -> list[Target] | tuple[int, str]:
        """Where a call to `dialed` in tenant `realm` goes: its branches' targets, or the status
        (code, reason) that refuses it. Not `outbound`: never through a trunk (a call that came
        in through one). A `caller` (a user) is held to its permission and limits (`permissions`)."""
        targets = self._targets(realm, dialed, now, outbound=outbound, caller=caller)
        if caller is None or isinstance(targets, tuple):
            return targets
        trunk = targets[0].trunk
        route_class = None if trunk is None else self._route_class(realm, trunk.route)
        return limit_refusal(caller, dialed, route_class, self._call_counts(caller, now)) or targets

    def _targets(self, realm: str, dialed: str, now: float, *, outbound: bool, caller: Caller | None
                 ) -> list[Target] | tuple[int, str]:
        if not dialed:
            return 404, "Not Found"
        if self._extension_exists(realm, dialed):
            bindings = self._location.lookup(f"sip:{dialed}@{realm}", now + self._wall_offset)
            if not bindings:
                return 480, "Temporarily Unavailable"
            return [Target(b.contact, b.source, b.transport, user=dialed) for b in bindings]
        role = self._service_role(realm, dialed)
        if role is None:
            return self._outbound(realm, dialed, caller) if outbound else (404, "Not Found")
        return self.service_targets(role, realm, dialed)

    def feature_targets(self, role: ServerRole, realm: str, number: str, now: float, *,
                        caller: Caller) -> list[Target] | tuple[int, str]:
        """Where a user's feature code goes: an application server of `role`, dialled as the
        feature's service number `number`; the caller is held to its limits as for any call."""
        targets = self.service_targets(role, realm, number)
        if isinstance(targets, tuple):
            return targets
        return limit_refusal(caller, number, None, self._call_counts(caller, now)) or targets

    def service_targets(self, role: ServerRole, realm: str, number: str) -> list[Target] | tuple[int, str]:
        """The application server of `role` that a call to `number` goes to (a number the role
        serves: a menu's, or a feature code's service number), or 503 when none is available."""
        endpoint = self._pick_app_endpoint(role, number, realm)
        if endpoint is None:
            log.warning("no %s server available for %s@%s", role, number, realm)
            return 503, f"No {role.value.upper() if role is ServerRole.IVR else role.value} Server Available"
        return [_app_target(endpoint, number)]

    def replacement(self, endpoint: AppEndpoint, code: int, now: float, *, number: str, realm: str,
                    dialed: str, tried: Iterable[AppEndpoint]) -> Target | None:
        """An application server failed a call to `number` of `realm` (`code`; 408: it was
        silent): it is suspected, and the target that dials `dialed` on another of its role
        (none of `tried`) is returned; None when there is none."""
        assert self._app_servers is not None
        self._app_servers.suspect(endpoint, now,
                                  f"answered {code}" if code != 408 else "did not answer a call")
        other = self._pick_app_endpoint(endpoint.role, number, realm, exclude=tried)
        return None if other is None else _app_target(other, dialed)

    def _outbound(self, realm: str, dialed: str, caller: Caller | None) -> list[Target] | tuple[int, str]:
        found = None if self._trunks is None else self._trunks.plan.outbound(realm, dialed, self._trunk_calls,
                                                                              self._trunk_down)
        if found is None:
            log.info("call to %s in %s: no extension, service or outbound route has the number", dialed,
                     realm)
            return 404, "Not Found"
        if isinstance(found, tuple):
            return found
        if caller is not None:
            refused = permission_refusal(caller, dialed, found.route, self._route_class(realm, found.route))
            if refused is not None:
                return refused
        return [_trunk_target(found)]

    def _route_class(self, realm: str, route: str) -> str:
        """The permission class of the tenant's outbound route named `route`."""
        assert self._trunks is not None
        routes = self._trunks.plan.routes.get(realm, ())
        return next(entry.permission for entry in routes if entry.name == route)

    def next_trunk(self, failed: TrunkCall, code: int) -> Target | None:
        """A trunk failed a call (`code`; 408: it was silent): the target on the route's next
        trunk with room, None when none is left."""
        following = next_trunk(failed, self._trunk_calls, self._trunk_down)
        if following is None:
            log.warning("call to %s: trunk %s answered %d and route %s has no other trunk left",
                        failed.number, failed.trunk.name, code, failed.route)
            return None
        log.info("call to %s: trunk %s answered %d, route %s tries trunk %s", failed.number,
                 failed.trunk.name, code, failed.route, following.trunk.name)
        return _trunk_target(following)

    def trunk_at(self, source: tuple[str, int]) -> TrunkEntry | None:
        """The trunk whose host:port is `source`: a call from there is a provider's (IP authentication)."""
        return None if self._trunks is None else self._trunks.plan.trunk_at(source)

    def did(self, trunk: TrunkEntry, numbers: list[str], now: float) -> str | tuple[int, str]:
        """The number of the dial plan a call from `trunk` to `numbers` (its Request-URI and To
        users) goes to now (the DID's closed destination outside its hours), or the status
        refusing it: 404 for a number that is no DID."""
        assert self._trunks is not None
        found = self._trunks.plan.did_route(trunk, numbers)
        if found is None:
            log.info("call from trunk %s to %s: no such DID in %s", trunk.key, " / ".join(numbers),
                     trunk.tenant_domain)
            return 404, "Unknown DID"
        did, route = found
        destination, open_now = route.destination_at(datetime.fromtimestamp(now + self._wall_offset, UTC))
        log.info("call from trunk %s to DID %s: goes to %s%s", trunk.key, did, destination,
                 "" if open_now else " (outside its hours: its closed destination)")
        assert destination.number is not None
        return destination.number

    def _pick_app_endpoint(self, role: ServerRole, number: str, realm: str, *,
                           exclude: Iterable[AppEndpoint] = ()) -> AppEndpoint | None:
        """The endpoint a call to `number` goes to: the number's home for the roles whose calls
        meet on one worker (a meeting room), else the least loaded."""
        if self._app_servers is None:
            return None
        if role in PLACED_BY_NUMBER:
            return self._app_servers.home_for(role, number, realm, exclude=exclude)
        return self._app_servers.pick(role, exclude=exclude)


def _app_target(endpoint: AppEndpoint, dialed: str) -> Target:
    host, port = endpoint.address
    return Target(f"sip:{dialed}@{host}:{port}", endpoint.address, "UDP", endpoint)


def _trunk_target(call: TrunkCall) -> Target:
    return Target(call.request_uri, call.trunk.destination, call.trunk.transport, trunk=call)


def _no_service(realm: str, number: str) -> ServerRole | None:
    return None


def server_failed(code: int) -> bool:
    """A final status that blames the server that sent it (5xx) or its silence (408): another
    application server of the role may do better. A 6xx is the callee's answer everywhere."""
    return 500 <= code < 600 or code == 408


def best_final_status(codes: list[int]) -> int:
    """The one final answer to give the caller when every branch failed (after RFC 3261 16.7)."""
    if any(600 <= c < 700 for c in codes):
        return min(c for c in codes if 600 <= c < 700)
    for preferred in (486, 487, 404, 403):
        if preferred in codes:
            return preferred
    # Unreachable devices (timeouts, server errors) mean the callee is not available now.
    client_errors = [c for c in codes if 400 <= c < 500 and c != 408]
    return min(client_errors) if client_errors else 480


def disposition_for(status: int) -> Disposition:
    if status in (486, 600):
        return Disposition.BUSY
    if status in (480, 408):
        return Disposition.NO_ANSWER
    if status == 487:
        return Disposition.CANCELLED
    return Disposition.FAILED

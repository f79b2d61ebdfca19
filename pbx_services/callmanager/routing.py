"""Where a call goes: the targets of its branches, and what their final answers make of it.

A dialled number is a user's extension, whose every registered contact rings at once
(parallel forking), or a number an application server serves (an IVR menu, a queue, a
meeting room): the number's home worker for the roles whose calls meet on one worker (a
meeting room), else the least loaded worker of the role. An application server that fails
a call (5xx, or silence) is suspected and another of its role is tried. When every branch
failed, the caller gets the one final answer that says most (after RFC 3261 16.7).

A new call and a transfer's target are routed alike, in the call's tenant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..cluster.events import Disposition
from ..cluster.models import ServerRole
from ..cluster.state.location import LocationStore
from .appservers import PLACED_BY_NUMBER, AppEndpoint, AppServerPool

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one branch of a call goes: a registered contact, or an application server."""

    contact: str
    """The Request-URI."""
    source: tuple[str, int]
    """Where the INVITE is sent."""
    transport: str
    app_endpoint: AppEndpoint | None = None


class CallRouter:
    def __init__(self, *, location: LocationStore, extension_exists: Callable[[str, str], bool],
                 service_role: Callable[[str, str], ServerRole | None] | None,
                 app_servers: AppServerPool | None, wall_offset: float) -> None:
        """`extension_exists(realm, number)` says whether a user has that extension,
        `service_role(realm, number)` which role of application server serves the number."""
        self._location = location
        self._extension_exists = extension_exists
        self._service_role = service_role or _no_service
        self._app_servers = app_servers
        self._wall_offset = wall_offset

    def route(self, realm: str, dialed: str, now: float) -> list[Target] | tuple[int, str]:
        """Where a call to `dialed` in tenant `realm` goes: its branches' targets, or the status
        (code, reason) that refuses it."""
        if not dialed:
            return 404, "Not Found"
        if self._extension_exists(realm, dialed):
            bindings = self._location.lookup(f"sip:{dialed}@{realm}", now + self._wall_offset)
            if not bindings:
                return 480, "Temporarily Unavailable"
            return [Target(b.contact, b.source, b.transport) for b in bindings]
        role = self._service_role(realm, dialed)
        if role is None:
            return 404, "Not Found"
        endpoint = self._pick_app_endpoint(role, dialed, realm)
        if endpoint is None:
            log.warning("no %s server available for %s@%s", role, dialed, realm)
            return 503, f"No {role.value.upper() if role is ServerRole.IVR else role.value} Server Available"
        return [_app_target(endpoint, dialed)]

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

"""Who may call what: a user's outbound permission against the class of the route a call
leaves through, and the concurrent-call limits of the user and of its tenant.

A route above the caller's permission (internal < local < national < international <
premium) is refused with 403; so is a call past the user's or the tenant's limit. We answer
403 (the caller may not make this call now) rather than 486, which a phone shows as the
callee being busy (FreeSWITCH's `limit` hangs up with USER_BUSY) and which would set off
the callee's forwarding on busy, or 503, which tells the phone to try another server
(RFC 3263) when the limit is the caller's and every server would refuse it alike.

An emergency call (a route of class emergency, or one of `EMERGENCY_NUMBERS`) is never
refused for either. Calls to the tenant's extensions and services never reach a route, so
the permission does not restrict them (the limits do). A call counts from its INVITE until
it ends, in the worker that holds it: with several workers, each applies the limits to its
own calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from ..cluster.models import PermissionClass
from ..cluster.models.user import permits
from .call import Call

log = logging.getLogger(__name__)

EMERGENCY_NUMBERS = frozenset({"112", "911", "999"})
"""Numbers that are emergency calls whatever the route they leave through."""
NOT_ALLOWED = (403, "Not Allowed To Call This Number")
LIMIT_REACHED = (403, "Call Limit Reached")


@dataclass(frozen=True, slots=True)
class Caller:
    """A user placing a call, with what it may do."""

    extension: str
    tenant_id: int
    permission: str
    """The widest class of outbound route the user may dial."""
    max_calls: int = 0
    """The user's concurrent-call limit; 0: none."""
    tenant_max_calls: int = 0
    """The tenant's concurrent-call limit; 0: none."""


def is_emergency(dialed: str, route_class: str | None) -> bool:
    return dialed in EMERGENCY_NUMBERS or route_class == PermissionClass.EMERGENCY


def permission_refusal(caller: Caller, dialed: str, route: str, route_class: str) -> tuple[int, str] | None:
    """The status refusing `caller`'s call to `dialed` through `route` (of `route_class`), or
    None when its permission allows it."""
    if is_emergency(dialed, route_class) or permits(caller.permission, route_class):
        return None
    log.info("call from %s to %s refused: route %s is %s, user's permission is %s", caller.extension, dialed,
             route, route_class, caller.permission)
    return NOT_ALLOWED


def limit_refusal(caller: Caller, dialed: str, route_class: str | None, calls: Iterable[Call]
                  ) -> tuple[int, str] | None:
    """The status refusing `caller`'s new call to `dialed` because the user or its tenant has
    as many `calls` in progress as its limit allows, or None. Emergency calls pass."""
    if not caller.max_calls and not caller.tenant_max_calls:
        return None
    tenant_calls = [call for call in calls if call.tenant_id == caller.tenant_id]
    user_calls = sum(1 for call in tenant_calls if call.caller == caller.extension)
    reached = None
    if caller.max_calls and user_calls >= caller.max_calls:
        reached = f"user's limit of {caller.max_calls} calls reached ({user_calls} in progress)"
    elif caller.tenant_max_calls and len(tenant_calls) >= caller.tenant_max_calls:
        reached = (f"tenant's limit of {caller.tenant_max_calls} calls reached "
                   f"({len(tenant_calls)} in progress)")
    if reached is None:
        return None
    if is_emergency(dialed, route_class):
        log.warning("call from %s to %s: emergency call put through although the %s", caller.extension,
                    dialed, reached)
        return None
    log.info("call from %s to %s refused: %s", caller.extension, dialed, reached)
    return LIMIT_REACHED

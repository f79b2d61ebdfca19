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
it ends: every call toward the tenant's limit, the calls a user placed toward the user's.
The counts are the cluster's (`CallCounter`, over `cluster.state.call_counts`), so that a
user's phones on three Call Managers and their workers are held to one limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..cluster.models import PermissionClass
from ..cluster.models.user import permits
from ..cluster.state.call_counts import CallCountStore, tenant_key, trunk_key, user_key
from ..cluster.state.errors import StateStoreUnavailable
from .call import Call
from .trunks import TrunkEntry

log = logging.getLogger(__name__)

EMERGENCY_NUMBERS = frozenset({"112", "911", "999"})
"""Numbers that are emergency calls whatever the route they leave through."""
NOT_ALLOWED = (403, "Not Allowed To Call This Number")
LIMIT_REACHED = (403, "Call Limit Reached")
COUNT_TTL = 60.0
"""Seconds a call stays counted without being renewed: how long a dead worker's calls count."""
RENEW_INTERVAL = 20.0


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
    withholds_number: bool = False
    """Its number is withheld on its calls out through a trunk (`models.User.withhold_number`)."""


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


def limit_refusal(caller: Caller, dialed: str, route_class: str | None, counts: tuple[int, int]
                  ) -> tuple[int, str] | None:
    """The status refusing `caller`'s new call to `dialed` because the user or its tenant has
    as many calls in progress (`counts`: the user's, the tenant's) as its limit allows, or
    None. Emergency calls pass."""
    if not caller.max_calls and not caller.tenant_max_calls:
        return None
    user_calls, tenant_calls = counts
    reached = None
    if caller.max_calls and user_calls >= caller.max_calls:
        reached = f"user's limit of {caller.max_calls} calls reached ({user_calls} in progress)"
    elif caller.tenant_max_calls and tenant_calls >= caller.tenant_max_calls:
        reached = f"tenant's limit of {caller.tenant_max_calls} calls reached ({tenant_calls} in progress)"
    if reached is None:
        return None
    if is_emergency(dialed, route_class):
        log.warning("call from %s to %s: emergency call put through although the %s", caller.extension,
                    dialed, reached)
        return None
    log.info("call from %s to %s refused: %s", caller.extension, dialed, reached)
    return LIMIT_REACHED


def _failed(final: int | None) -> bool:
    return final is not None and not 200 <= final < 300


class CallCounter:
    """This worker's calls counted in the cluster's counts as they start (and as a branch to a
    trunk starts or fails), renewed while they last, counted out as they end; and the counts a
    new call's limits (and a trunk's `max_calls`) are checked against. While the state store
    cannot be reached, no call is refused for a limit (the log says so)."""

    def __init__(self, store: CallCountStore) -> None:
        self._store = store
        self._renewed_at = float("-inf")
        self._now = 0.0
        """The time of the last call counted or renewed, for a trunk's count (asked without one)."""

    @staticmethod
    def keys(call: Call) -> tuple[str, ...]:
        """A call counts for its tenant, for the user who placed it (not a trunk's or an
        application server's call), and for each trunk one of its branches rings or talks through
        (a call taken over has no branches: its callee's leg says the trunk)."""
        keys: list[str] = []
        if call.tenant_id is not None:
            keys.append(tenant_key(call.tenant_id))
            if call.limits is not None:
                keys.append(user_key(call.tenant_id, call.limits.extension))
        legs = [branch.leg for branch in call.branches if not _failed(branch.final)]
        if call.b is not None:
            legs.append(call.b)
        keys.extend(sorted({trunk_key(leg.trunk) for leg in legs if leg.trunk is not None}))
        return tuple(keys)

    def trunk_calls(self, trunk: TrunkEntry) -> int:
        """The calls ringing or answered through `trunk` in the whole cluster."""
        try:
            return self._store.count(trunk_key(trunk.key), self._now)
        except StateStoreUnavailable as exc:
            log.warning("trunk %s: its call limit not checked: %s", trunk.name, exc)
            return 0

    def counts(self, caller: Caller, now: float) -> tuple[int, int]:
        """The calls in progress of `caller` and of its tenant."""
        if not caller.max_calls and not caller.tenant_max_calls:
            return 0, 0
        user_count, tenant_count = user_key(caller.tenant_id, caller.extension), tenant_key(caller.tenant_id)
        try:
            user = self._store.count(user_count, now) if caller.max_calls else 0
            tenant = self._store.count(tenant_count, now) if caller.tenant_max_calls else 0
        except StateStoreUnavailable as exc:
            log.warning("call from %s: concurrent-call limits not checked: %s", caller.extension, exc)
            return 0, 0
        return user, tenant

    def changed(self, call: Call, now: float) -> None:
        """The call started, or a branch of it to a trunk started or failed: counted anew."""
        self._now = now
        keys = self.keys(call)
        if keys == call.counted:
            return
        gone = tuple(key for key in call.counted if key not in keys)
        call.counted = keys
        if gone:
            self._remove(gone, call.record_key)
        self._write(lambda: self._store.add([(keys, call.record_key)], COUNT_TTL, now))

    def ended(self, call: Call) -> None:
        counted, call.counted = call.counted, ()
        if counted:
            self._remove(counted, call.record_key)

    def renew(self, calls: Iterable[Call], now: float) -> None:
        """Every RENEW_INTERVAL: the calls this worker holds stay counted (a call taken over
        from a dead worker is counted in again here)."""
        self._now = now
        if now - self._renewed_at < RENEW_INTERVAL:
            return
        self._renewed_at = now
        renewed = []
        for call in calls:
            keys = self.keys(call)
            gone = tuple(key for key in call.counted if key not in keys)
            if gone:
                self._remove(gone, call.record_key)
            call.counted = keys
            renewed.append((keys, call.record_key))
        self._write(lambda: self._store.add(renewed, COUNT_TTL, now))

    def _remove(self, keys: tuple[str, ...], member: str) -> None:
        self._write(lambda: self._store.remove(keys, member))

    @staticmethod
    def _write(operation: Callable[[], None]) -> None:
        try:
            operation()
        except StateStoreUnavailable as exc:
            log.warning("calls in progress not counted for the limits: %s", exc)

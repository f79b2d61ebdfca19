"""What the Call Manager has live, read-only, for the portal: its calls and who is registered.

Two control API resources (`runtime.control`):

- GET /api/calls: the calls this worker carries, oldest first (a supervisor of several
  workers joins their lists: a call lives on one worker).
- GET /api/registrations with the body {"aors": ["1001@example.com", ...]}: the live bindings
  of each address of record, from the location store every worker shares (so one answers).
  The store cannot list every registration (Redis would have to scan all its keys), so the
  caller names the users it shows, at most MAX_AORS of them.

Sans-IO: it is given the calls, the location store and both clocks (call times are the
event loop's, bindings expire on the wall clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..cluster.state.location import Binding, LocationStore
from ..runtime.control import NOT_FOUND, ControlReply, ControlRequest
from .call import Call

CONTROL_PATHS = ("calls", "registrations")
MAX_AORS = 1000


def call_summary(call: Call, now: float) -> dict[str, Any]:
    """One call as the portal shows it; `now` on the clock of the call's `started_at`."""
    return {
        "call_id": call.call_id,
        "caller": call.caller,
        "callee": call.callee,
        "domain": call.realm,
        "tenant_id": call.tenant_id,
        "phase": call.phase.name.lower(),
        "seconds": round(now - call.started_at, 1),
        "talking_seconds": round(now - call.answered_at, 1) if call.answered_at is not None else None,
        "application_server": call.app_endpoint.server if call.app_endpoint is not None else None,
    }


def binding_summary(binding: Binding, now: float) -> dict[str, Any]:
    """One registered contact; `now` on the wall clock."""
    return {"contact": binding.contact, "source": f"{binding.source[0]}:{binding.source[1]}",
            "transport": binding.transport, "expires_in": binding.remaining(now),
            "user_agent": binding.user_agent}


def answer_live(request: ControlRequest, *, calls: Iterable[Call], location: LocationStore, now: float,
                wall_now: float) -> ControlReply:
    """The reply to a request of CONTROL_PATHS; `now` on the calls' clock, `wall_now` on the bindings'."""
    if request.method != "GET":
        return NOT_FOUND
    if request.path == ("calls",):
        return ControlReply(200, {"calls": [call_summary(call, now)
                                            for call in sorted(calls, key=lambda call: call.started_at)]})
    if request.path == ("registrations",):
        return _registrations(request.body.get("aors"), location, wall_now)
    return NOT_FOUND


def _registrations(aors: object, location: LocationStore, now: float) -> ControlReply:
    if not isinstance(aors, list) or not all(isinstance(aor, str) and "@" in aor for aor in aors):
        return ControlReply.error(400, "aors: a list of addresses of record (\"1001@example.com\")")
    if len(aors) > MAX_AORS:
        return ControlReply.error(400, f"aors: at most {MAX_AORS} at once, not {len(aors)}")
    found = {}
    for aor in aors:
        user, _, domain = aor.rpartition("@")
        # The registrar's key: the extension as dialled, the tenant's domain (lower case).
        bindings = location.lookup(f"sip:{user}@{domain.lower()}", now)
        if bindings:
            found[aor] = [binding_summary(binding, now) for binding in bindings]
    return ControlReply(200, {"registrations": found})

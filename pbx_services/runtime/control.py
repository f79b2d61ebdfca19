"""The control API of a daemon: requests under `/api/` on its HTTP endpoint, for the CLI and the portal.

A request names a resource by path (`/api/meetings/example.com/850/lock`); its first segment
(`meetings`) says which component answers it: a component that serves requests lists that
segment in `control_paths` and answers in `control`. A supervisor of worker processes asks
each worker over its channel and merges their answers (`merge_replies`): a room lives on
one worker, so one answers and the others say 404.

Every request carries `Authorization: Bearer <token>`, where the token is derived from the
cluster's `auth.secret` (`control_token`): whoever can read the config may control the
daemons, and the token does not reveal the secret. Bodies are JSON objects.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

API_PREFIX = "/api/"
MAX_BODY = 65536


@dataclass(frozen=True, slots=True)
class ControlRequest:
    method: str
    """GET or POST."""
    path: tuple[str, ...]
    """The segments after `/api/`, percent-decoded: ("meetings", "example.com", "850", "lock")."""
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ControlReply:
    status: int
    body: dict[str, Any]

    @classmethod
    def error(cls, status: int, message: str) -> ControlReply:
        return cls(status, {"error": message})


NOT_FOUND = ControlReply.error(404, "no such resource")


@runtime_checkable
class ControlledComponent(Protocol):
    """A daemon's component that answers control requests."""

    @property
    def control_paths(self) -> Sequence[str]:
        """The first path segments it answers ("meetings")."""

    async def control(self, request: ControlRequest) -> ControlReply:
        """The reply to `request`; 404 when what it names is not here."""


async def dispatch(components: Sequence[object], request: ControlRequest) -> ControlReply:
    """The reply of the component that serves the request's first segment."""
    for component in components:
        if isinstance(component, ControlledComponent) and request.path[:1] and \
                request.path[0] in component.control_paths:
            return await component.control(request)
    return NOT_FOUND


def control_token(secret: str) -> str:
    """The bearer token of the control API, derived from the cluster's `auth.secret`."""
    return hmac.new(bytes.fromhex(secret), b"pbx control api", hashlib.sha256).hexdigest()


def merge_replies(replies: Sequence[ControlReply]) -> ControlReply:
    """One reply from the workers': those that found the resource; lists of several 200s joined."""
    # A worker that found it answers before one that failed (5xx: it did not answer in time).
    found = sorted((reply for reply in replies if reply.status != 404), key=lambda reply: reply.status >= 500)
    if not found:
        return replies[0] if replies else NOT_FOUND
    if len(found) == 1 or any(reply.status != 200 for reply in found):
        return found[0]
    body: dict[str, Any] = dict(found[0].body)
    for reply in found[1:]:
        for key, value in reply.body.items():
            if isinstance(value, list) and isinstance(body.get(key), list):
                body[key] = body[key] + value
    return ControlReply(200, body)

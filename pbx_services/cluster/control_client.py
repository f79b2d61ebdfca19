"""Requests to the daemons' control API (`runtime.control`) over HTTP, for the CLI and the portal.

A server's API answers on its host at its `http_port` (the servers table); the bearer token
comes from the cluster's `auth.secret`, which the caller's config holds.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from ..runtime.control import API_PREFIX, ControlReply, control_token

TIMEOUT = 3.0


class ControlUnreachable(Exception):
    """The server's HTTP endpoint did not answer, or not as a control API does."""


def control_request(host: str, port: int, secret: str, method: str, path: Sequence[str],
                    body: dict[str, Any] | None = None, *, timeout: float = TIMEOUT) -> ControlReply:
    """`method` on /api/PATH of the daemon at host:port; its reply (any status)."""
    target = API_PREFIX + "/".join(quote(segment, safe="") for segment in path)
    payload = json.dumps(body).encode() if body is not None else b""
    headers = {"Authorization": f"Bearer {control_token(secret)}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, target, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise ControlUnreachable(f"{host}:{port} does not answer: {exc}") from None
    finally:
        connection.close()
    try:
        reply = json.loads(raw)
    except ValueError:
        raise ControlUnreachable(f"{host}:{port} answered {response.status} without JSON") from None
    if not isinstance(reply, dict):
        raise ControlUnreachable(f"{host}:{port} answered {response.status} with {raw[:80]!r}")
    return ControlReply(response.status, reply)

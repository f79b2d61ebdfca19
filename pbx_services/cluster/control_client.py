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
from .config import PbxConfig
from .servers import ServerEntry

TIMEOUT = 3.0


class ControlUnreachable(Exception):
    """The server's HTTP endpoint did not answer, or not as a control API does."""


class CallManagerUnavailable(Exception):
    """The Call Manager did not answer, or not with what was asked; the message says why."""


class NotOnAnyServer(Exception):
    """No server has what was asked for; the message says which could not be asked, and why."""


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


def locate(servers: Sequence[ServerEntry], secret: str,
           path: Sequence[str]) -> tuple[ServerEntry, ControlReply]:
    """The server (of `servers`, at their HTTP ports) that answers GET `path` with 200, and its reply:
    a meeting or a queue lives on one server. NotOnAnyServer when none does."""
    unreachable = []
    for server in servers:
        if server.http_port is None:
            unreachable.append(f"{server.name} has no HTTP port (pbx server add --http-port)")
            continue
        try:
            reply = control_request(server.host, server.http_port, secret, "GET", path)
        except ControlUnreachable as exc:
            unreachable.append(f"{server.name}: {exc}")
            continue
        if reply.status == 200:
            return server, reply
        if reply.status != 404:
            unreachable.append(f"{server.name}: {reply.body.get('error', reply.status)}")
    raise NotOnAnyServer("; ".join(unreachable))


def ask_call_manager(config: PbxConfig, path: Sequence[str],
                     body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET `path` of the control API of this host's Call Manager (the `http` section: behind the
    VIP, the one carrying the calls); its JSON, or CallManagerUnavailable saying why not."""
    if config.auth is None:
        raise CallManagerUnavailable("no auth.secret in the configuration: the control API cannot be asked")
    try:
        reply = control_request(str(config.http.host), config.http.port,
                                config.auth.secret.get_secret_value(), "GET", path, body)
    except ControlUnreachable as exc:
        raise CallManagerUnavailable(f"the Call Manager does not answer: {exc}") from None
    if reply.status != 200:
        raise CallManagerUnavailable(f"the Call Manager answered {reply.status}: "
                                     f"{reply.body.get('error', '')}")
    return reply.body

"""The control API on the HTTP endpoint: the token, the body, the path, on loopback (and the
client the CLI uses to reach it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from pbx_services.cluster.control_client import ControlUnreachable, control_request
from pbx_services.runtime.control import ControlReply, ControlRequest, control_token
from pbx_services.transport import http
from pbx_services.transport.http import HttpEndpoint

SECRET = "ab" * 16
TOKEN = control_token(SECRET)


def run_with_api(body: Callable[[int, list[ControlRequest]], Awaitable[None]], *,
                 token: str | None = TOKEN) -> None:
    seen: list[ControlRequest] = []

    async def control(request: ControlRequest) -> ControlReply:
        seen.append(request)
        if request.path == ("slow",):
            await asyncio.sleep(60)
        return ControlReply(200, {"echo": list(request.path), "body": request.body})

    async def main() -> None:
        endpoint = HttpEndpoint(registry=CollectorRegistry(), health=lambda: {"status": "ok"},
                                max_connections=8, max_per_source=8, control=control, control_token=token)
        await endpoint.start("127.0.0.1", 0)
        assert endpoint._server is not None
        try:
            await body(endpoint._server.sockets[0].getsockname()[1], seen)
        finally:
            endpoint.close()

    asyncio.run(main())


async def _request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"\r\n" + body)
    reply = await asyncio.wait_for(reader.read(), 2.0)
    writer.close()
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def _head(method: str, path: str, *, token: str | None = TOKEN, length: int = 0) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: pbx", f"Content-Length: {length}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines) + "\r\n"


def test_a_request_with_the_token_reaches_the_daemon_with_its_path_and_body() -> None:
    async def body(port: int, seen: list[ControlRequest]) -> None:
        payload = b'{"muted": false}'
        status, reply = await _request(port, _head("POST", "/api/meetings/a.example/8%2050/lock",
                                                   length=len(payload)), payload)
        assert (status, reply) == (200, {"echo": ["meetings", "a.example", "8 50", "lock"],
                                         "body": {"muted": False}})
        assert seen == [ControlRequest("POST", ("meetings", "a.example", "8 50", "lock"), {"muted": False})]

    run_with_api(body)


def test_no_token_a_wrong_one_or_none_configured_is_refused_and_the_daemon_never_sees_it() -> None:
    async def body(port: int, seen: list[ControlRequest]) -> None:
        assert (await _request(port, _head("GET", "/api/meetings", token=None)))[0] == 401
        assert (await _request(port, _head("GET", "/api/meetings", token="0" * 64)))[0] == 401
        assert (await _request(port, _head("GET", "/api/meetings", token=TOKEN[:-1])))[0] == 401
        assert seen == []

    run_with_api(body)

    async def unconfigured(port: int, seen: list[ControlRequest]) -> None:
        status, reply = await _request(port, _head("GET", "/api/meetings"))
        assert (status, reply) == (403, {"error": "the control API is off: the config has no auth.secret"})

    run_with_api(unconfigured, token=None)


def test_a_bad_body_gets_400_naming_what_is_wrong_and_the_endpoint_keeps_serving() -> None:
    async def body(port: int, seen: list[ControlRequest]) -> None:
        for payload, error in ((b"{not json", "the body is not JSON"), (b"\xff\xfe", "the body is not JSON"),
                               (b"[1, 2]", "the body is not a JSON object")):
            assert await _request(port, _head("POST", "/api/x", length=len(payload)), payload) == (
                400, {"error": error})
        assert (await _request(port, _head("POST", "/api/x", length=10**6)))[0] == 413
        assert (await _request(port, _head("DELETE", "/api/x")))[0] == 405
        assert seen == []
        assert (await _request(port, _head("GET", "/api/x")))[0] == 200

    run_with_api(body)


def test_a_request_the_daemon_does_not_answer_in_time_gets_504(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "CONTROL_TIMEOUT", 0.3)

    async def body(port: int, seen: list[ControlRequest]) -> None:
        assert await _request(port, _head("GET", "/api/slow")) == (504, {"error": "no answer within 0.3 s"})

    run_with_api(body)


def test_the_client_sends_the_token_quotes_the_path_and_reads_the_reply() -> None:
    async def body(port: int, seen: list[ControlRequest]) -> None:
        reply = await asyncio.to_thread(control_request, "127.0.0.1", port, SECRET, "POST",
                                        ["meetings", "a/b", "850"], {"locked": True})
        assert reply == ControlReply(200, {"echo": ["meetings", "a/b", "850"], "body": {"locked": True}})
        wrong = await asyncio.to_thread(control_request, "127.0.0.1", port, "cd" * 16, "GET", ["x"])
        assert wrong.status == 401

    run_with_api(body)


def test_the_client_says_when_nothing_answers() -> None:
    try:
        control_request("127.0.0.1", 9, SECRET, "GET", ["meetings"], timeout=1)
    except ControlUnreachable as exc:
        assert "127.0.0.1:9 does not answer" in str(exc)
    else:
        raise AssertionError("no error")

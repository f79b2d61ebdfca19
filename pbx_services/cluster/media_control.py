"""The media control protocol's wire format: one JSON object per UDP datagram, after a cookie.

    datagram = cookie SP json-object

The Call Manager sends requests (`{"command": "offer", ...}`); the media server answers
each with the same cookie (`{"result": "ok", ...}` or `{"result": "error", "error_reason":
...}`). A retransmitted request (same cookie) gets the first reply again, so requests are
safe to repeat. The media server may also send a notification (a request with its own
cookie, such as `timeout`) to whoever last controlled the call. The commands and their
fields are in docs/media-control.md; this module only checks what every message needs.

Sans-IO: bytes in, `ControlMessage` out, and back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_COOKIE_LENGTH = 64
MAX_DATAGRAM = 65507

COMMANDS = frozenset({
    "ping", "offer", "answer", "delete", "query", "record_start", "record_stop", "play_tone",
    "play_file", "stop_playback", "statistics",
    # Sent by the media server to the Call Manager.
    "timeout",
})
RESULT_OK = "ok"
ERROR_UNKNOWN_CALL = "unknown call"
"""The `error_reason` for a call_id the server does not hold (freed, or never offered)."""
RESULT_PONG = "pong"
RESULT_ERROR = "error"
LEGS = ("a", "b")


class ControlProtocolError(Exception):
    """A datagram that is not a control message; `cookie` is set when a reply can still be sent."""

    def __init__(self, reason: str, cookie: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cookie = cookie


@dataclass
class ControlMessage:
    cookie: str
    """Matches a reply to its request; unique per request from one sender."""
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return "command" in self.body

    @property
    def command(self) -> str:
        return str(self.body.get("command", ""))

    @property
    def result(self) -> str:
        return str(self.body.get("result", ""))

    @classmethod
    def parse(cls, data: bytes) -> ControlMessage:
        cookie_bytes, sep, payload = data.partition(b" ")
        if not sep or not cookie_bytes:
            raise ControlProtocolError("control message has no cookie")
        if len(cookie_bytes) > MAX_COOKIE_LENGTH:
            raise ControlProtocolError("control message cookie is longer than 64 bytes")
        try:
            cookie = cookie_bytes.decode("ascii")
        except UnicodeDecodeError:
            raise ControlProtocolError("control message cookie is not ASCII") from None
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise ControlProtocolError("control message body is not JSON", cookie) from None
        if not isinstance(body, dict):
            raise ControlProtocolError("control message body is not a JSON object", cookie)
        if "command" in body:
            if body["command"] not in COMMANDS:
                raise ControlProtocolError(f"unknown command {body['command']!r}", cookie)
        elif "result" not in body:
            raise ControlProtocolError("control message has neither command nor result", cookie)
        return cls(cookie, body)

    def serialize(self) -> bytes:
        data = self.cookie.encode("ascii") + b" " + json.dumps(self.body, separators=(",", ":")).encode()
        if len(data) > MAX_DATAGRAM:
            raise ValueError(f"control message of {len(data)} bytes does not fit a datagram")
        return data


def request(cookie: str, command: str, **fields: Any) -> ControlMessage:
    if command not in COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    return ControlMessage(cookie, {"command": command, **fields})


def reply(cookie: str, **fields: Any) -> ControlMessage:
    return ControlMessage(cookie, {"result": RESULT_OK, **fields})


def error_reply(cookie: str, reason: str) -> ControlMessage:
    return ControlMessage(cookie, {"result": RESULT_ERROR, "error_reason": reason})

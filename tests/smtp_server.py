"""A real SMTP server for tests: aiosmtpd on a free port of loopback, keeping what it receives.

`SmtpServer(...)` starts it (aiosmtpd's Controller options pass through: `tls_context` and
`require_starttls` for STARTTLS, `ssl_context` for implicit TLS, `authenticator`...); `inbox`
holds each message with its envelope recipients; `stop()` ends it.
"""

from __future__ import annotations

import email
import email.policy
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """What the SMTP server received: (envelope recipients, the message) each."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's)
        parsed = email.message_from_bytes(envelope.content, _class=EmailMessage, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float) -> list[tuple[list[str], EmailMessage]]:
        """The messages once there are `count` of them, or when `timeout` seconds have passed."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.messages


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpServer:
    def __init__(self, port: int | None = None, **options: Any) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self._controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

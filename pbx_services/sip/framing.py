"""Cutting SIP messages out of a byte stream (TCP, TLS): RFC 3261 section 18.3.

On a stream, Content-Length is mandatory and says where the body ends. A CRLF pair
between messages is a keep-alive ping (RFC 5626 section 3.5.1) and is reported so the
transport can answer it with a single CRLF.
"""

from __future__ import annotations

import re

from .errors import RemoteProtocolError

KEEPALIVE_PING = b"\r\n\r\n"
KEEPALIVE_PONG = b"\r\n"

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)


class StreamFramer:
    """Feed it bytes as they arrive; it returns whole messages (and `KEEPALIVE_PING`s)."""

    def __init__(self, *, max_message_size: int) -> None:
        self._buffer = bytearray()
        self._max = max_message_size

    def feed(self, data: bytes) -> list[bytes]:
        """Complete messages so far; raises RemoteProtocolError when the stream is unusable.

        After an error the connection must be closed: the message boundaries are lost.
        """
        self._buffer += data
        messages: list[bytes] = []
        while True:
            if self._buffer.startswith(KEEPALIVE_PING):
                del self._buffer[:4]
                messages.append(KEEPALIVE_PING)
                continue
            if self._buffer in (b"\r", b"\r\n", b"\r\n\r"):
                return messages  # perhaps the start of a ping
            if self._buffer.startswith(b"\r\n"):
                del self._buffer[:2]  # a stray CRLF before a message (RFC 3261 7.5 allows it)
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self._max:
                    raise RemoteProtocolError(f"SIP header section exceeds {self._max} bytes",
                                              status_code=513)
                return messages
            head = bytes(self._buffer[:end + 2])
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                raise RemoteProtocolError("message on a stream has no Content-Length")
            total = end + 4 + int(match.group(1))
            if total > self._max:
                raise RemoteProtocolError(f"message of {total} bytes exceeds {self._max}", status_code=513)
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]

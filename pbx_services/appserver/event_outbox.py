"""Events of an application server's worker (a meeting's talkers, later a queue's agents), put on
the cluster's bus in batches, off the event loop.

The sans-IO application calls `publish` (an append); every `interval` seconds what gathered is
sent to the Redis stream of `redis_bus` in one pipeline, in a thread of the loop's executor, so
that neither a Redis round trip nor an outage ever delays a 20 ms mixing tick. While Redis is
away events are dropped beyond `max_pending` (oldest first), counted, and logged once per outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import redis

from ..cluster.redis_bus import DEFAULT_MAXLEN, DEFAULT_STREAM, encode_event
from ..cluster.state.redis import redis_client

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.2
MAX_PENDING = 10_000


class EventOutbox:
    def __init__(self, url: str, *, timeout: float, interval: float = FLUSH_INTERVAL,
                 max_pending: int = MAX_PENDING, stream: str = DEFAULT_STREAM) -> None:
        self._client, self.description = redis_client(url, timeout=timeout)
        self._interval = interval
        self._stream = stream
        self._pending: deque[dict[str, str]] = deque(maxlen=max_pending)
        self._flushing: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._failing = False
        self.sent = 0
        self.dropped = 0

    def publish(self, event: object) -> None:
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append(encode_event(event))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._flushing is not None and not self._flushing.done():
            self._timer = asyncio.get_running_loop().call_later(self._interval, self._flush)
            return
        batch = list(self._pending)
        self._pending.clear()
        self._flushing = asyncio.get_running_loop().run_in_executor(None, self._send, batch)

    def _send(self, batch: list[dict[str, str]]) -> None:
        try:
            with self._client.pipeline(transaction=False) as pipeline:
                for fields in batch:
                    pipeline.xadd(self._stream, fields,  # type: ignore[arg-type]
                                  maxlen=DEFAULT_MAXLEN, approximate=True)
                pipeline.execute()
        except redis.RedisError as exc:
            self.dropped += len(batch)
            if not self._failing:
                log.error("events not put on the bus at %s (%s); dropping them until it answers",
                          self.description, exc)
            self._failing = True
            return
        if self._failing:
            log.warning("the bus at %s answers again (%d events dropped so far)", self.description,
                        self.dropped)
        self._failing = False
        self.sent += len(batch)

    def close(self) -> None:
        """Send what is left (at the worker's stop), then let the connection go."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._send(list(self._pending))
            self._pending.clear()
        self._client.close()

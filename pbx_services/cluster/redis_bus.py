"""The event bus of a cluster: events (see `events.py`) as entries of a Redis stream.

Every process of every host publishes on the same stream, `pbx:events`, with XADD; an
entry has two fields, `type` (the event's class name) and `data` (the event as JSON, with
datetimes in ISO 8601 and enums as their values). The stream is capped at about `maxlen`
entries. Readers (`read_events`, `pbx event tail`) turn entries back into the dataclasses
of `events.py`; an entry of a type this version does not know is logged and skipped, so an
older reader keeps working beside a newer publisher.

`RedisStreamBus` is the publishing half of `bus.EventBus`; consumers in other processes read
the stream with `read_events` (there is no `subscribe` across processes yet).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import redis

from . import events

log = logging.getLogger(__name__)

DEFAULT_STREAM = "pbx:events"
DEFAULT_MAXLEN = 100_000

EVENT_TYPES: Mapping[str, type] = {
    name: value for name, value in vars(events).items()
    if isinstance(value, type) and dataclasses.is_dataclass(value)
}
"""The events a reader can rebuild, by class name: every dataclass of `events.py`."""


class RedisStreamBus:
    """Publishes events on a Redis stream (see the module's doc)."""

    def __init__(self, client: redis.Redis, *, stream: str = DEFAULT_STREAM,
                 maxlen: int = DEFAULT_MAXLEN) -> None:
        self._client = client
        self.stream = stream
        self.maxlen = maxlen

    def publish(self, event: object) -> str:
        """XADD `event` to the stream; returns its entry id. Raises redis-py's errors."""
        fields: dict[Any, Any] = encode_event(event)
        entry_id: Any = self._client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        return _text(entry_id)


def encode_event(event: object) -> dict[str, str]:
    """The stream fields of `event`, a dataclass instance."""
    if not dataclasses.is_dataclass(event) or isinstance(event, type):
        raise TypeError(f"{event!r} is not an event (a dataclass instance)")
    data = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
    text = json.dumps(data, default=_json_value, separators=(",", ":"))
    return {"type": type(event).__name__, "data": text}


def decode_event(fields: Mapping[Any, Any]) -> object | None:
    """The event of an entry's fields; None (logged) for an unknown type or broken data. A field
    the event type does not have is left out: a newer version's publisher (a rolling upgrade)
    adds fields, and its events are still read."""
    fields = {_text(key): _text(value) for key, value in fields.items()}
    name = fields.get("type", "")
    event_type = EVENT_TYPES.get(name)
    if event_type is None:
        log.warning("event bus: skipped an entry of unknown type %.80r", name)
        return None
    try:
        data = json.loads(fields["data"])
        hints = typing.get_type_hints(event_type)
        known = {key: value for key, value in data.items() if key in hints}
        return event_type(**{key: _from_json(hints[key], value) for key, value in known.items()})
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("event bus: skipped a %s entry that does not parse (%s): %.200r", name, exc,
                    fields.get("data"))
        return None


def read_events(client: redis.Redis, stream: str = DEFAULT_STREAM, last_id: str = "$",
                block_ms: int | None = None, *, count: int = 1000) -> Iterator[tuple[str, object]]:
    """The events of the stream after entry `last_id` (`$`: those added after this call, `0`: all),
    as (entry id, event), oldest first. Without `block_ms` it stops at the end of the stream;
    with it, it follows the stream for ever, each XREAD waiting up to `block_ms` (the client's
    socket timeout must be longer). Raises redis-py's errors."""
    if last_id == "$":
        # The id of the newest entry now, not "$" itself: nothing added between two reads, or
        # between this call and the first read, is missed.
        newest: Any = client.xrevrange(stream, count=1)
        last_id = _text(newest[0][0]) if newest else "0-0"
    return _entries_after(client, stream, last_id, block_ms, count)


def _entries_after(client: redis.Redis, stream: str, last_id: str, block_ms: int | None,
                   count: int) -> Iterator[tuple[str, object]]:
    while True:
        reply: Any = client.xread({stream: last_id}, count=count, block=block_ms)
        if not reply and block_ms is None:
            return
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                last_id = _text(entry_id)
                event = decode_event(fields)
                if event is not None:
                    yield last_id, event


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _from_json(kind: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(option for option in typing.get_args(kind) if option is not type(None))
    if kind is datetime:
        return datetime.fromisoformat(value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind in (int, float, str, bool) and not isinstance(value, kind):
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw

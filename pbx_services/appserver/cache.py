"""A cache of what an application server reads from the system of record (menus, prompts,
rooms): values kept `ttl` seconds, bounded by weight, the least recently used dropped first.
Callers pass `now` (monotonic seconds); the cache reads no clock."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

KeyT = TypeVar("KeyT")
ValueT = TypeVar("ValueT")


@dataclass(slots=True)
class _Entry(Generic[ValueT]):
    value: ValueT
    loaded_at: float
    weight: int


class ExpiringLru(Generic[KeyT, ValueT]):
    """Values kept `ttl` seconds, the least recently used dropped past `max_weight` in all."""

    def __init__(self, *, ttl: float, max_weight: int) -> None:
        self._ttl = ttl
        self._max_weight = max_weight
        self._weight = 0
        self._entries: OrderedDict[KeyT, _Entry[ValueT]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: KeyT) -> _Entry[ValueT] | None:
        """The entry of `key`, fresh or not, without touching its place."""
        return self._entries.get(key)

    def lookup(self, key: KeyT, now: float) -> _Entry[ValueT] | None:
        """The entry of `key` if it is fresh at `now`, None otherwise."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now - entry.loaded_at >= self._ttl:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def store(self, key: KeyT, value: ValueT, now: float, weight: int = 1) -> ValueT:
        if key in self._entries:
            self._remove(key)
        self._entries[key] = _Entry(value, now, weight)
        self._weight += weight
        while self._weight > self._max_weight and len(self._entries) > 1:
            self._remove(next(iter(self._entries)))
        return value

    def _remove(self, key: KeyT) -> None:
        self._weight -= self._entries.pop(key).weight

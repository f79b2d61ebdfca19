"""Where a thing that lives on one application server at a time lives now: a meeting room's
meeting on one meeting server worker (later a queue on one queue server).

Every Call Manager process asks the same store, so the participants of a room dialling in
through different Call Managers, or minutes apart, all reach the worker holding it. The home
changes only by compare-and-set (`move`): two processes choosing a new home for the same room
at once agree on whichever wrote first. In this process (`InMemoryHomes`, the all-in-one) or
in the cluster's Redis (`redis.RedisHomes`).
"""

from __future__ import annotations

from typing import Protocol


class HomeStore(Protocol):
    def home(self, key: str) -> str | None:
        """The home of `key` ("host:port" of an endpoint), None when it has none yet."""
        ...

    def move(self, key: str, expected: str | None, home: str) -> str:
        """Make `home` the home of `key` if its home is still `expected`; the home it has now."""
        ...


class InMemoryHomes:
    def __init__(self) -> None:
        self._homes: dict[str, str] = {}

    def home(self, key: str) -> str | None:
        return self._homes.get(key)

    def move(self, key: str, expected: str | None, home: str) -> str:
        current = self._homes.get(key)
        if current == expected:
            self._homes[key] = home
            return home
        assert current is not None
        return current

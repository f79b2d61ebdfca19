"""The users' lines as every Call Manager worker sees them, for BLF (the dialog event package):
a watcher's worker must see a colleague's calls whichever worker holds them.

Each worker publishes the lines that have calls in its hands: "REALM/EXT" -> that user's
dialogs there (a JSON text, `dialog_info` writes and reads it). Once in a while it publishes
them all, replacing what it published before (`publish`); every other second only the lines
that changed and those that ended (`update`), which also keeps the others live. A worker's
lines lapse `ttl` seconds after its last publication, so those of a worker that died go dark.
`read` merges the named lines from every worker whose publication is live.

In this process (`InMemoryLines`, the caller's clock) or in Redis (`redis.RedisLines`: a hash
per worker, expiring, and a sorted set of the workers by the wall-clock end of their lines).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol


class LineStore(Protocol):
    def publish(self, owner: str, lines: Mapping[str, str], ttl: float, now: float) -> None:
        """`owner`'s lines now, replacing its last ones; live for `ttl` seconds from `now` (wall clock)."""
        ...

    def update(self, owner: str, changed: Mapping[str, str], ended: Collection[str], ttl: float,
               now: float) -> bool:
        """`owner`'s lines changed and ended since its last publication; all its lines live for
        `ttl` seconds from `now`. False when the store had none of its lines any more (they
        lapsed, or Redis failed over): the caller publishes them all at once (till then the
        store may hold these changes alone)."""
        ...

    def read(self, keys: Collection[str], now: float) -> dict[str, list[str]]:
        """Each of `keys` that some live worker published, with what each published for it."""
        ...


class InMemoryLines:
    def __init__(self) -> None:
        self._published: dict[str, tuple[dict[str, str], float]] = {}

    def publish(self, owner: str, lines: Mapping[str, str], ttl: float, now: float) -> None:
        self._published[owner] = (dict(lines), now + ttl)

    def update(self, owner: str, changed: Mapping[str, str], ended: Collection[str], ttl: float,
               now: float) -> bool:
        published = self._published.get(owner)
        if published is None or published[1] <= now:
            return False
        lines = published[0]
        lines.update(changed)
        for key in ended:
            lines.pop(key, None)
        self._published[owner] = (lines, now + ttl)
        return True

    def read(self, keys: Collection[str], now: float) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for lines, until in self._published.values():
            if until <= now:
                continue
            for key in keys:
                if key in lines:
                    found.setdefault(key, []).append(lines[key])
        return found

"""The users' lines each worker publishes for BLF (both stores)."""

from __future__ import annotations

import time

from pbx_services.cluster.state import StateStore


def test_a_read_merges_every_live_workers_publication_of_a_line(store: StateStore) -> None:
    now = time.time()
    store.lines.publish("cm1/0", {"a.example/1002": "[0]", "a.example/1001": "[1]"}, ttl=3, now=now)
    store.lines.publish("cm2/0", {"a.example/1002": "[2]"}, ttl=3, now=now)
    found = store.lines.read(["a.example/1002", "a.example/1003"], now)
    assert sorted(found["a.example/1002"]) == ["[0]", "[2]"] and "a.example/1003" not in found
    store.lines.publish("cm1/0", {}, ttl=3, now=now + 1)  # its calls ended: replaced, not added to
    assert store.lines.read(["a.example/1002", "a.example/1001"], now + 1) == {"a.example/1002": ["[2]"]}
    assert store.lines.read([], now) == {}


def test_a_worker_that_stops_publishing_goes_dark(store: StateStore) -> None:
    now = time.time()
    store.lines.publish("cm1/0", {"a.example/1002": "[0]"}, ttl=3, now=now)
    assert store.lines.read(["a.example/1002"], now + 2.9) == {"a.example/1002": ["[0]"]}
    assert store.lines.read(["a.example/1002"], now + 3.1) == {}

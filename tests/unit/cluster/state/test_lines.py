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


def test_an_update_changes_and_ends_lines_and_keeps_the_others_live(store: StateStore) -> None:
    now = time.time()
    store.lines.publish("cm1/0", {"a.example/1001": "[1]", "a.example/1002": "[2]"}, ttl=3, now=now)

    updated = store.lines.update("cm1/0", {"a.example/1001": "[1b]", "a.example/1003": "[3]"},
                                 ["a.example/1002"], ttl=3, now=now + 2)

    assert updated
    assert store.lines.read(["a.example/1001", "a.example/1002", "a.example/1003"], now + 4.9) == {
        "a.example/1001": ["[1b]"], "a.example/1003": ["[3]"]}
    assert store.lines.read(["a.example/1001"], now + 5.1) == {}


def test_an_update_of_lines_the_store_lost_asks_for_them_all(store: StateStore) -> None:
    """Lapsed (a worker stalled past the time to live), or lost in a Redis failover."""
    now = time.time()
    store.lines.publish("cm1/0", {}, ttl=1, now=now)  # no lines: still known to be live
    assert store.lines.update("cm1/0", {"a.example/1001": "[1]"}, [], ttl=1, now=now + 0.5)
    time.sleep(1.2)  # Redis expires the hash on its own clock

    assert not store.lines.update("cm1/0", {"a.example/1002": "[2]"}, [], ttl=3, now=now + 1.7)
    assert not store.lines.update("worker-never-published", {}, [], ttl=3, now=now)
    store.lines.publish("cm1/0", {"a.example/1001": "[1]", "a.example/1002": "[2]"}, ttl=3, now=now + 1.7)
    assert store.lines.read(["a.example/1001", "a.example/1002"], now + 1.7) == {
        "a.example/1001": ["[1]"], "a.example/1002": ["[2]"]}

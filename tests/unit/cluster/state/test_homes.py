"""The homes of meeting rooms: one per key, changed only by compare-and-set (both stores)."""

from __future__ import annotations

from pbx_services.cluster.state import StateStore

KEY = "meeting:pbx.local:850"


def test_a_key_has_no_home_until_one_is_set(store: StateStore) -> None:
    assert store.homes.home(KEY) is None
    assert store.homes.move(KEY, None, "192.0.2.91:5100") == "192.0.2.91:5100"
    assert store.homes.home(KEY) == "192.0.2.91:5100"


def test_a_move_from_a_home_that_is_no_longer_current_loses(store: StateStore) -> None:
    store.homes.move(KEY, None, "192.0.2.91:5100")
    assert store.homes.move(KEY, None, "192.0.2.92:5100") == "192.0.2.91:5100"
    assert store.homes.move(KEY, "192.0.2.93:5100", "192.0.2.92:5100") == "192.0.2.91:5100"
    assert store.homes.move(KEY, "192.0.2.91:5100", "192.0.2.92:5100") == "192.0.2.92:5100"
    assert store.homes.home(KEY) == "192.0.2.92:5100"
    assert store.homes.home("meeting:pbx.local:851") is None

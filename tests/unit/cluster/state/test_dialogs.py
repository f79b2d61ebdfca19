"""Call records on both implementations: found by either leg, listed by owner, deleted whole."""

from __future__ import annotations

from pbx_services.cluster.state import StateStore
from pbx_services.cluster.state.dialogs import CallRecord


def record(key: str = "call-1@10.0.0.1/a1", owner: str = "cm1/0") -> CallRecord:
    return CallRecord(key=key, owner=owner, dialogs=(("call-1@10.0.0.1", "a1"), ("b-call", "b1")),
                      data={"caller": "100", "legs": [{"cseq": 2}]})


def test_a_record_is_found_by_either_legs_dialog(store: StateStore) -> None:
    saved = record()
    store.dialogs.save(saved, ttl=60)

    assert store.dialogs.find("call-1@10.0.0.1", "a1") == saved
    assert store.dialogs.find("b-call", "b1") == saved
    assert store.dialogs.find("b-call", "a1") is None


def test_owned_by_lists_the_owners_calls_and_follows_a_takeover(store: StateStore) -> None:
    first, second = record("k1"), record("k2")
    store.dialogs.save(first, ttl=60)
    store.dialogs.save(second, ttl=60)
    taken = CallRecord(key="k2", owner="cm1/1", dialogs=second.dialogs, data=second.data)
    store.dialogs.save(taken, ttl=60)

    assert store.dialogs.owned_by("cm1/0") == [first]
    assert store.dialogs.owned_by("cm1/1") == [taken]


def test_delete_forgets_the_record_and_its_dialogs(store: StateStore) -> None:
    saved = record()
    store.dialogs.save(saved, ttl=60)

    store.dialogs.delete(saved)

    assert store.dialogs.find("call-1@10.0.0.1", "a1") is None
    assert store.dialogs.owned_by("cm1/0") == []


def test_a_conditional_save_writes_only_over_a_record_naming_the_expected_owner(store: StateStore) -> None:
    mine = record(owner="cm1/0")
    assert store.dialogs.save(mine, ttl=60, if_owner="cm1/0") is False  # nothing stored yet
    assert store.dialogs.save(mine, ttl=60) is True
    assert store.dialogs.save(mine, ttl=60, if_owner="cm1/0") is True
    taken = CallRecord(key=mine.key, owner="cm2/0", dialogs=mine.dialogs, data=mine.data)
    assert store.dialogs.save(taken, ttl=60) is True

    # The previous holder's next write fails: the call is cm2's now.
    assert store.dialogs.save(mine, ttl=60, if_owner="cm1/0") is False
    assert store.dialogs.find("b-call", "b1") == taken


def test_owners_lists_who_holds_records_and_forgets_owners_left_with_none(store: StateStore) -> None:
    first, second = record("k1", owner="cm1/0"), record("k2", owner="cm2/0")
    store.dialogs.save(first, ttl=60)
    store.dialogs.save(second, ttl=60)
    assert store.dialogs.owners() == ["cm1/0", "cm2/0"]

    store.dialogs.delete(first)

    assert store.dialogs.owners() == ["cm2/0"]


def test_an_owner_is_alive_while_marked_and_not_after_mark_gone(store: StateStore) -> None:
    store.dialogs.mark_alive("cm1/0", ttl=30, now=1000.0)
    store.dialogs.mark_alive("cm2/0", ttl=30, now=1000.0)

    assert store.dialogs.alive(["cm1/0", "cm2/0", "cm3/0"], 1001.0) == {"cm1/0", "cm2/0"}
    store.dialogs.mark_gone("cm2/0")
    assert store.dialogs.alive(["cm1/0", "cm2/0"], 1001.0) == {"cm1/0"}
    assert store.dialogs.alive([], 1001.0) == set()

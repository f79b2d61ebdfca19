"""The location store's contract, on both implementations: bindings per AOR, order and expiry."""

from __future__ import annotations

from pbx_services.cluster.state import StateStore
from pbx_services.cluster.state.location import Binding

AOR = "sip:100@pbx.local"
NOW = 1_800_000_000.0


def binding(contact: str, *, expires_at: float, refreshed_at: float = NOW, q: float = 1.0,
            aor: str = AOR, instance_id: str | None = None) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, call_id="reg-1@10.0.0.1", cseq=1,
                   source=("10.0.0.1", 5062), transport="UDP", refreshed_at=refreshed_at, q=q,
                   user_agent="Phone/1.0", instance_id=instance_id)


def test_an_unknown_aor_has_no_bindings(store: StateStore) -> None:
    assert store.location.lookup(AOR, NOW) == []
    assert store.location.binding_count() == 0


def test_saved_bindings_come_back_whole_until_they_expire(store: StateStore) -> None:
    desk = binding("sip:100@10.0.0.1:5062", expires_at=NOW + 100, instance_id="<urn:uuid:1>")

    assert store.location.update(AOR, save=[desk], now=NOW) == [desk]

    assert store.location.lookup(AOR, NOW + 99.9) == [desk]
    assert store.location.lookup(AOR, NOW + 100) == []
    assert store.location.binding_count() == 1


def test_lookup_orders_by_q_then_most_recently_refreshed(store: StateStore) -> None:
    preferred = binding("sip:100@10.0.0.1:5001", expires_at=NOW + 50, refreshed_at=NOW, q=1.0)
    recent_short = binding("sip:100@10.0.0.1:5002", expires_at=NOW + 70, refreshed_at=NOW + 10, q=0.9)
    old_long = binding("sip:100@10.0.0.1:5003", expires_at=NOW + 3600, refreshed_at=NOW, q=0.9)
    low = binding("sip:100@10.0.0.1:5004", expires_at=NOW + 3600, refreshed_at=NOW + 20, q=0.5)

    store.location.update(AOR, save=[low, old_long, preferred, recent_short], now=NOW)

    assert store.location.lookup(AOR, NOW + 20) == [preferred, recent_short, old_long, low]


def test_update_removes_then_saves_and_returns_what_is_live(store: StateStore) -> None:
    first = binding("sip:100@10.0.0.1:5001", expires_at=NOW + 100)
    second = binding("sip:100@10.0.0.1:5002", expires_at=NOW + 100)
    store.location.update(AOR, save=[first, second], now=NOW)
    refreshed = binding("sip:100@10.0.0.1:5002", expires_at=NOW + 300, refreshed_at=NOW + 50)

    after = store.location.update(AOR, save=[refreshed], remove=[first.contact, "sip:never@x"], now=NOW + 50)

    assert after == [refreshed]
    assert store.location.lookup(AOR, NOW + 200) == [refreshed]
    assert store.location.update(AOR, remove=[refreshed.contact], now=NOW + 60) == []
    assert store.location.binding_count() == 0


def test_purge_drops_expired_bindings_only(store: StateStore) -> None:
    short = binding("sip:100@10.0.0.1:5001", expires_at=NOW + 60)
    long = binding("sip:100@10.0.0.1:5002", expires_at=NOW + 120)
    other = binding("sip:200@10.0.0.2:5062", expires_at=NOW + 60, aor="sip:200@pbx.local")
    store.location.update(AOR, save=[long, short], now=NOW)
    store.location.update(other.aor, save=[other], now=NOW)

    assert store.location.purge(NOW + 59) == 0
    assert store.location.purge(NOW + 60) == 2

    assert store.location.binding_count() == 1
    assert store.location.lookup(AOR, NOW + 60) == [long]
    assert store.location.purge(NOW + 120) == 1
    assert store.location.binding_count() == 0


def test_a_refreshed_binding_outlives_its_first_deadline(store: StateStore) -> None:
    store.location.update(AOR, save=[binding("sip:100@10.0.0.1:5062", expires_at=NOW + 60)], now=NOW)
    refreshed = binding("sip:100@10.0.0.1:5062", expires_at=NOW + 160, refreshed_at=NOW + 50)
    store.location.update(AOR, save=[refreshed], now=NOW + 50)

    assert store.location.purge(NOW + 60) == 0
    assert store.location.lookup(AOR, NOW + 60) == [refreshed]
    assert store.location.purge(NOW + 160) == 1


def test_remaining_rounds_to_the_nearest_second_and_never_goes_negative() -> None:
    b = binding("sip:100@10.0.0.1:5062", expires_at=100.0)

    assert b.remaining(0.0) == 100
    assert b.remaining(40.4) == 60
    assert b.remaining(40.6) == 59
    assert b.remaining(150.0) == 0

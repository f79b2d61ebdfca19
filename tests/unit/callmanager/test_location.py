"""The location service: bindings per address of record, their order and their expiry."""

from __future__ import annotations

from pbx_services.callmanager.location import Binding, LocationService

AOR = "sip:100@pbx.local"


def binding(contact: str, *, expires_at: float, refreshed_at: float = 0.0, q: float = 1.0,
            aor: str = AOR) -> Binding:
    return Binding(aor=aor, contact=contact, expires_at=expires_at, call_id="reg-1@10.0.0.1", cseq=1,
                   source=("10.0.0.1", 5062), transport="UDP", refreshed_at=refreshed_at, q=q)


def test_an_unknown_aor_has_no_bindings() -> None:
    location = LocationService()

    assert location.lookup(AOR, 0.0) == []
    assert location.next_timer() is None
    assert location.binding_count() == 0
    assert len(location) == 0


def test_saved_bindings_are_found_until_they_expire() -> None:
    location = LocationService()
    desk = binding("sip:100@10.0.0.1:5062", expires_at=100.0)
    location.save(desk)

    assert location.lookup(AOR, 99.9) == [desk]
    assert location.lookup(AOR, 100.0) == []
    assert location.binding_count() == 1


def test_lookup_orders_by_q_then_most_recently_refreshed() -> None:
    location = LocationService()
    preferred = binding("sip:100@10.0.0.1:5001", expires_at=50.0, refreshed_at=0.0, q=1.0)
    recent_short = binding("sip:100@10.0.0.1:5002", expires_at=70.0, refreshed_at=10.0, q=0.9)
    old_long = binding("sip:100@10.0.0.1:5003", expires_at=3600.0, refreshed_at=0.0, q=0.9)
    low = binding("sip:100@10.0.0.1:5004", expires_at=3600.0, refreshed_at=20.0, q=0.5)
    for b in (low, old_long, preferred, recent_short):
        location.save(b)

    assert location.lookup(AOR, 20.0) == [preferred, recent_short, old_long, low]


def test_saving_the_same_contact_replaces_it() -> None:
    location = LocationService()
    location.save(binding("sip:100@10.0.0.1:5062", expires_at=100.0))
    refreshed = binding("sip:100@10.0.0.1:5062", expires_at=200.0, refreshed_at=90.0)

    location.save(refreshed)

    assert location.lookup(AOR, 150.0) == [refreshed]
    assert location.binding_count() == 1


def test_handle_timer_drops_expired_bindings_and_returns_them() -> None:
    location = LocationService()
    short = binding("sip:100@10.0.0.1:5001", expires_at=60.0)
    long = binding("sip:100@10.0.0.1:5002", expires_at=120.0)
    other = binding("sip:200@10.0.0.2:5062", expires_at=60.0, aor="sip:200@pbx.local")
    for b in (long, short, other):
        location.save(b)
    assert location.next_timer() == 60.0

    assert location.handle_timer(59.0) == []
    expired = location.handle_timer(60.0)

    assert sorted(b.contact for b in expired) == ["sip:100@10.0.0.1:5001", "sip:200@10.0.0.2:5062"]
    assert location.binding_count() == 1
    assert len(location) == 1
    assert location.next_timer() == 120.0
    assert location.handle_timer(120.0) == [long]
    assert len(location) == 0
    assert location.next_timer() is None


def test_a_refreshed_binding_outlives_its_first_deadline() -> None:
    location = LocationService()
    location.save(binding("sip:100@10.0.0.1:5062", expires_at=60.0))
    refreshed = binding("sip:100@10.0.0.1:5062", expires_at=160.0, refreshed_at=50.0)
    location.save(refreshed)

    assert location.handle_timer(60.0) == []
    assert location.lookup(AOR, 60.0) == [refreshed]
    assert location.handle_timer(160.0) == [refreshed]


def test_a_refresh_to_a_shorter_time_expires_at_the_shorter_time() -> None:
    location = LocationService()
    location.save(binding("sip:100@10.0.0.1:5062", expires_at=3600.0))
    shorter = binding("sip:100@10.0.0.1:5062", expires_at=70.0, refreshed_at=10.0)
    location.save(shorter)

    assert location.next_timer() == 70.0
    assert location.handle_timer(70.0) == [shorter]
    assert location.handle_timer(3600.0) == []


def test_remove_and_remove_all() -> None:
    location = LocationService()
    first = binding("sip:100@10.0.0.1:5001", expires_at=100.0)
    second = binding("sip:100@10.0.0.1:5002", expires_at=100.0)
    location.save(first)
    location.save(second)

    assert location.remove(AOR, "sip:100@10.0.0.1:9999") is None
    assert location.remove(AOR, first.contact) is first
    assert location.lookup(AOR, 0.0) == [second]
    assert location.remove_all(AOR) == [second]
    assert location.remove_all(AOR) == []
    assert location.remove("sip:nobody@pbx.local", first.contact) is None
    # The expiry of removed bindings finds nothing to do.
    assert location.handle_timer(100.0) == []


def test_remaining_rounds_to_the_nearest_second_and_never_goes_negative() -> None:
    b = binding("sip:100@10.0.0.1:5062", expires_at=100.0)

    assert b.remaining(0.0) == 100
    assert b.remaining(39.6) == 60
    assert b.remaining(40.4) == 60
    assert b.remaining(100.0) == 0
    assert b.remaining(150.0) == 0

"""Failed authentications and blocks on both implementations, through the limiter's policy."""

from __future__ import annotations

from pbx_services.callmanager.policy import AuthFailureLimiter
from pbx_services.cluster.state import StateStore

NOW = 1_800_000_000.0


def limiter(store: StateStore) -> AuthFailureLimiter:
    return AuthFailureLimiter(limit=3, window=60.0, block_seconds=600.0, store=store.auth_failures)


def test_the_limit_th_failure_within_the_window_blocks(store: StateStore) -> None:
    policy = limiter(store)

    assert [policy.record_failure("192.0.2.1", NOW + t) for t in (0.0, 10.0, 20.0)] == [False, False, True]

    assert policy.is_blocked("192.0.2.1", NOW + 20)
    assert not policy.is_blocked("192.0.2.2", NOW + 20)
    assert policy.blocked_count(NOW + 20) == 1


def test_two_workers_count_the_same_source_together(store: StateStore) -> None:
    worker_1, worker_2 = limiter(store), limiter(store)

    assert worker_1.record_failure("192.0.2.9", NOW) is False
    assert worker_2.record_failure("192.0.2.9", NOW + 1) is False
    assert worker_1.record_failure("192.0.2.9", NOW + 2) is True

    assert worker_2.is_blocked("192.0.2.9", NOW + 3)


def test_purge_forgets_blocks_that_ended(store: StateStore) -> None:
    policy = limiter(store)
    store.auth_failures.block("192.0.2.1", NOW, 10)

    policy.purge(NOW + 11)

    assert policy.blocked_count(NOW + 11) == 0

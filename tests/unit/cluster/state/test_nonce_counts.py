"""Nonce-counts on both implementations: a count must grow, whichever process checks it."""

from __future__ import annotations

from pbx_services.cluster.state import StateStore
from pbx_services.sip.digest import NonceManager, NonceStatus

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def test_a_count_is_accepted_once_and_only_upward(store: StateStore) -> None:
    nonces = NonceManager(SECRET, 300, counts=store.nonce_counts)
    nonce = nonces.make_nonce(NOW)

    assert nonces.check(nonce, 1, NOW + 1) is NonceStatus.VALID
    assert nonces.check(nonce, 1, NOW + 2) is NonceStatus.REPLAY
    assert nonces.check(nonce, 3, NOW + 3) is NonceStatus.VALID
    assert nonces.check(nonce, 2, NOW + 4) is NonceStatus.REPLAY


def test_two_workers_sharing_the_counts_catch_a_replay_across_them(store: StateStore) -> None:
    worker_1 = NonceManager(SECRET, 300, counts=store.nonce_counts)
    worker_2 = NonceManager(SECRET, 300, counts=store.nonce_counts)
    nonce = worker_1.make_nonce(NOW)

    assert worker_1.check(nonce, 1, NOW + 1) is NonceStatus.VALID
    assert worker_2.check(nonce, 1, NOW + 1) is NonceStatus.REPLAY
    assert worker_2.check(nonce, 2, NOW + 1) is NonceStatus.VALID

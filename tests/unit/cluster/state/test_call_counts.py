"""The calls counted against the concurrent-call limits (both stores)."""

from __future__ import annotations

import time

from pbx_services.cluster.state import StateStore
from pbx_services.cluster.state.call_counts import tenant_key, user_key

TENANT, USER = tenant_key(1), user_key(1, "1001")


def test_calls_count_under_each_of_their_keys_until_counted_out(store: StateStore) -> None:
    counts = store.call_counts
    counts.add([((TENANT, USER), "a/1"), ((TENANT,), "b/1"), ((tenant_key(2),), "c/1")], ttl=60, now=0.0)
    assert (counts.count(TENANT, 1.0), counts.count(USER, 1.0), counts.count(tenant_key(2), 1.0)) == (2, 1, 1)
    counts.add([((TENANT, USER), "a/1")], ttl=60, now=2.0)  # renewed: still one call
    assert counts.count(TENANT, 2.0) == 2
    counts.remove((TENANT, USER), "a/1")
    assert (counts.count(TENANT, 3.0), counts.count(USER, 3.0)) == (1, 0)
    counts.remove((TENANT, USER), "gone/1")
    assert counts.count(user_key(1, "1002"), 3.0) == 0


def test_a_call_not_renewed_lapses(store: StateStore) -> None:
    # A worker that died renews nothing: its calls stop counting `ttl` after its last renewal.
    counts = store.call_counts
    counts.add([((TENANT,), "dead/1")], ttl=0.2, now=0.0)
    counts.add([((TENANT,), "live/1")], ttl=60, now=0.0)
    assert counts.count(TENANT, 0.0) == 2
    time.sleep(0.3)  # Redis lapses them by its own clock, the in-process store by `now`
    assert counts.count(TENANT, 0.3) == 1

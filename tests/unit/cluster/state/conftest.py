from __future__ import annotations

from collections.abc import Iterator

import pytest

from pbx_services.cluster.state import StateStore, open_state_store
from tests.redis_server import RedisServer

NONCE_TTL = 300.0


@pytest.fixture(params=["in-process", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[StateStore]:
    """Each contract test runs on both implementations."""
    if request.param == "in-process":
        yield open_state_store(None, nonce_ttl=NONCE_TTL)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.client().flushall()
    state = open_state_store(server.url, nonce_ttl=NONCE_TTL)
    yield state
    state.close()

"""What only the Redis store does: URLs, start-up errors, Redis going away, values that do not parse."""

from __future__ import annotations

import logging
import time

import pytest

from pbx_services.cluster.state import StateStoreUnavailable, open_state_store
from pbx_services.cluster.state.redis import redis_client
from tests.redis_server import RedisServer

from .test_location import AOR, NOW, binding


def test_a_sentinel_url_names_the_sentinels_and_the_master() -> None:
    client, description = redis_client("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/pbx/2",
                                       timeout=0.5)

    pool = client.connection_pool
    assert pool.service_name == "pbx"  # type: ignore[attr-defined]
    assert [s.connection_pool.connection_kwargs["port"]
            for s in pool.sentinel_manager.sentinels] == [26379, 26380]  # type: ignore[attr-defined]
    assert pool.connection_kwargs["db"] == 2
    assert description == "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26380/pbx/2"


def test_neither_redis_nor_the_sentinels_are_retried_by_the_client_itself() -> None:
    """redis-py would retry 10 times with up to 10 s of backoff, the Call Manager's loop standing
    still meanwhile (found in the lab with a Sentinel host cut off)."""
    client, _ = redis_client("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380/pbx/2", timeout=0.5)
    sentinels = client.connection_pool.sentinel_manager.sentinels  # type: ignore[attr-defined]
    plain, _ = redis_client("redis://127.0.0.1:1/0", timeout=0.5)

    for each in (client, plain, *sentinels):
        assert each.get_retry().get_retries() == 0
    assert all(s.connection_pool.connection_kwargs["password"] == "s3cret" for s in sentinels)


@pytest.mark.parametrize(("url", "message"), [
    ("redis+sentinel://10.0.0.1:26379", "no master name"),
    ("redis+sentinel://10.0.0.1/pbx/0", "sentinel address '10.0.0.1' is not host:port"),
    ("redis+sentinel://10.0.0.1:26379/pbx/zero", "path '/pbx/zero' is not /MASTER-NAME or /MASTER-NAME/DB"),
])
def test_a_malformed_sentinel_url_is_refused_with_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StateStoreUnavailable, match=message):
        open_state_store(url, nonce_ttl=300)


def test_an_unreachable_redis_is_refused_at_start_up() -> None:
    with pytest.raises(StateStoreUnavailable, match=r"Redis at redis://127.0.0.1:1/0 is unreachable"):
        open_state_store("redis://127.0.0.1:1/0", nonce_ttl=300)


def test_a_database_redis_does_not_have_is_refused_at_start_up(redis_server: RedisServer) -> None:
    with pytest.raises(StateStoreUnavailable, match="refused us"):
        open_state_store(f"redis://127.0.0.1:{redis_server.port}/99", nonce_ttl=300)


def test_a_value_that_does_not_parse_is_logged_with_its_key_and_skipped(
        redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    client = redis_server.client()
    client.flushall()
    store = open_state_store(redis_server.url, nonce_ttl=300)
    good = binding("sip:100@10.0.0.1:5001", expires_at=NOW + 100)
    store.location.update(AOR, save=[good], now=NOW)
    client.hset(f"pbx:loc:{AOR}", mapping={"sip:100@10.0.0.1:5002": "{not json",
                                            "sip:100@10.0.0.1:5003": "[1, 2]"})
    client.set("pbx:dlg:c:t", "k")
    client.set("pbx:call:k", "[]")

    with caplog.at_level(logging.ERROR, logger="pbx_services.cluster.state.redis"):
        assert store.location.lookup(AOR, NOW) == [good]
        assert store.dialogs.find("c", "t") is None

    assert f"pbx:loc:{AOR}: not JSON" in caplog.text
    assert f"a binding in pbx:loc:{AOR}: not a binding" in caplog.text
    assert "pbx:call:k: not a call record" in caplog.text
    store.close()


def test_while_redis_is_away_calls_fail_fast_and_recover_when_it_is_back(
        tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-outage"))
    server.start()
    store = open_state_store(server.url, nonce_ttl=300)
    saved = binding("sip:100@10.0.0.1:5001", expires_at=NOW + 100)
    store.location.update(AOR, save=[saved], now=NOW)
    server.stop()

    with caplog.at_level(logging.WARNING, logger="pbx_services.cluster.state.redis"):
        with pytest.raises(StateStoreUnavailable):
            store.location.lookup(AOR, NOW)
        started = time.monotonic()
        for _ in range(100):
            with pytest.raises(StateStoreUnavailable):
                store.location.lookup(AOR, NOW)
        assert time.monotonic() - started < 0.5  # no connection attempt per call
        server.start()  # same port, empty: a restarted Redis without persistence
        time.sleep(1.1)
        assert store.location.lookup(AOR, NOW) == []
        assert store.location.update(AOR, save=[saved], now=NOW) == [saved]

    assert caplog.text.count("is unreachable") == 1
    assert "is back" in caplog.text
    store.close()
    server.stop()


def test_a_block_made_by_another_worker_is_seen_within_a_second(redis_server: RedisServer) -> None:
    redis_server.client().flushall()
    worker_1 = open_state_store(redis_server.url, nonce_ttl=300)
    worker_2 = open_state_store(redis_server.url, nonce_ttl=300)
    assert not worker_2.auth_failures.blocked("192.0.2.7", NOW)

    worker_1.auth_failures.block("192.0.2.7", NOW, 600)

    assert worker_1.auth_failures.blocked("192.0.2.7", NOW + 0.1)  # here at once
    assert not worker_2.auth_failures.blocked("192.0.2.7", NOW + 0.5)  # its answer of NOW still holds
    assert worker_2.auth_failures.blocked("192.0.2.7", NOW + 1.0)
    worker_1.close()
    worker_2.close()

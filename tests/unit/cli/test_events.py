"""`pbx event publish-server-state` and `pbx event tail` on a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbx_services.cluster.events import ServerState, ServerStateChanged
from pbx_services.cluster.redis_bus import read_events
from tests.redis_server import RedisServer

from .conftest import run


@pytest.fixture
def config(redis_server: RedisServer, tmp_path: Path) -> Path:
    redis_server.client().flushall()
    path = tmp_path / "callmanager.yml"
    path.write_text(f"state: {{url: '{redis_server.url}'}}\nauth: {{secret: '{'ab' * 16}'}}\n")
    return path


def publish(capsys: pytest.CaptureFixture[str], config: Path, *extra: str) -> tuple[int, str, str]:
    return run(capsys, "event", "publish-server-state", "--server", "cm1", "--role", "callmanager",
               "--config", str(config), *extra)


def test_publish_server_state_adds_the_event_to_the_bus(
        capsys: pytest.CaptureFixture[str], redis_server: RedisServer, config: Path) -> None:
    status, out, err = publish(capsys, config, "--state", "fault", "--reason", "pbx_vip: MASTER -> FAULT")

    assert (status, err) == (0, "")
    [(entry_id, event)] = list(read_events(redis_server.client(), last_id="0"))
    assert out == f"published callmanager cm1 fault as pbx:events {entry_id}\n"
    assert isinstance(event, ServerStateChanged)
    assert (event.server, event.role, event.state, event.reason) == (
        "cm1", "callmanager", ServerState.FAULT, "pbx_vip: MASTER -> FAULT")
    assert event.time.tzinfo is not None


def test_tail_once_prints_the_stream_as_json_lines(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    for state in ("backup", "master"):
        publish(capsys, config, "--state", state)

    status, out, _ = run(capsys, "event", "tail", "--from", "0", "--once", "--config", str(config))

    assert status == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["type"], line["data"]["state"]) for line in lines] == [
        ("ServerStateChanged", "backup"), ("ServerStateChanged", "master")]
    assert set(lines[0]) == {"id", "type", "data"}
    assert run(capsys, "event", "tail", "--from", lines[0]["id"], "--once", "--config", str(config))[1] \
        == out.splitlines(keepends=True)[1]


def test_redis_away_is_one_line_and_status_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "callmanager.yml"
    config.write_text("state: {url: 'redis://127.0.0.1:1/0'}\n")

    status, out, err = publish(capsys, config, "--state", "master")

    assert (status, out) == (1, "")
    assert err.startswith("pbx: Redis at redis://127.0.0.1:1/0: ")
    assert len(err.splitlines()) == 1


def test_a_config_without_state_url_has_no_bus(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "media.yml"
    config.write_text("media: {control_host: 127.0.0.1}\n")

    status, _, err = publish(capsys, config, "--state", "up")

    assert (status, err) == (1, f"pbx: {config}: no state.url, so no event bus\n")


def test_an_unknown_state_is_a_usage_mistake(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, _, err = publish(capsys, config, "--state", "sleepy")

    assert status == 2
    assert "invalid choice: 'sleepy'" in err

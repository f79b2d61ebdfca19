"""Fixtures for integration tests: a real `pbx allinone` on loopback, with real users."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer

PBX = [sys.executable, "-m", "pbx_services.cli"]
MEDIA_PORTS_PER_PBX = 200
_media_port_blocks = itertools.count()


def media_ports() -> tuple[int, int]:
    """A range of RTP ports of its own for each media server a test starts, below the kernel's
    ephemeral ports (32768 up) so that no phone's socket takes one."""
    base = 20000 + (next(_media_port_blocks) * MEDIA_PORTS_PER_PBX) % 12000
    return base, base + MEDIA_PORTS_PER_PBX - 1


def stable_port() -> int:
    """A port free for UDP and TCP below the kernel's ephemeral ports (and the media ports'
    blocks), for a daemon started again on the same port: an ephemeral port it left free could
    be taken by another process's socket in between."""
    for _ in range(200):
        port = random.randrange(10000, 20000)
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


def free_port(*, pair_spacing: int = 1) -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (and the `pair_spacing - 1` after it)."""
    for _ in range(200):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        if port + pair_spacing > 65535:
            continue
        try:
            for offset in range(pair_spacing):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


def pbx(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PBX, *args], capture_output=True, text=True, check=check, timeout=120)


@dataclass
class PbxServer:
    data_dir: Path
    port: int
    http_port: int
    process: subprocess.Popen[str]
    passwords: dict[str, str] = field(default_factory=dict)
    domain: str = "pbx.local"
    log_lines: list[str] = field(default_factory=list)
    """The daemon's log so far, a line an item."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add_user(self, extension: str, password: str | None = None) -> str:
        password = password or secrets.token_urlsafe(12)
        # `=` form: a random password may start with "-".
        pbx("user", "add", extension, f"--password={password}", "--data-dir", str(self.data_dir))
        self.passwords[extension] = password
        return password

    def metrics(self) -> dict[str, float]:
        """The daemon's /metrics, as {"name{labels}": value}."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def health(self) -> dict[str, Any]:
        """The daemon's /health (whatever its status code)."""
        import json
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/health", timeout=5) as reply:
                return dict(json.loads(reply.read()))
        except urllib.error.HTTPError as error:
            return dict(json.loads(error.read()))

    def cdrs(self) -> list[dict[str, object]]:
        import sqlite3

        with sqlite3.connect(self.data_dir / "pbx.sqlite3") as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute("SELECT * FROM cdrs ORDER BY id")]

    def wait_for_cdrs(self, count: int, timeout: float = 10.0) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.cdrs()
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)


def start_allinone(data_dir: Path, port: int, *, env: dict[str, str] | None = None
                   ) -> subprocess.Popen[str]:
    process = subprocess.Popen([*PBX, "allinone", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                                "--sip-port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **(env or {})})
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if "Call Manager listening on" in line:
            return process
    process.kill()
    raise RuntimeError("pbx allinone did not start:\n" + "".join(seen))


def stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_for(what: str, condition: Callable[[], object], timeout: float = 15.0, *,
             interval: float = 0.05) -> float:
    """Poll `condition` until it holds; the seconds it took. Fails naming `what` past `timeout`:
    what a daemon reports once a second is waited for, not slept for, so a slow machine does not
    fail a test."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not after {timeout} s"
        time.sleep(interval)
    return time.monotonic() - started


def distinct_ports(count: int, port: Callable[[], int] = lambda: free_port(), *,
                   taken: Iterable[int] = ()) -> list[int]:
    """`count` ports from `port`, none twice and none of `taken`: two draws of a free port may
    give the same one, which a daemon refuses for two of its parts."""
    chosen: list[int] = []
    avoid = set(taken)
    for _ in range(count * 50):
        if len(chosen) == count:
            break
        candidate = port()
        if candidate not in avoid:
            avoid.add(candidate)
            chosen.append(candidate)
    if len(chosen) < count:
        raise RuntimeError(f"no {count} distinct free ports found")
    return chosen


def allinone_ports_env(http_port: int, port: Callable[[], int] = lambda: free_port(), *,
                       sip_port: int | None = None) -> dict[str, str]:
    """Ports of its own for every part of an all-in-one (its embedded media, IVR, meeting and queue
    servers'), so that several run at once and none takes a phone's ephemeral port; `port`
    gives the single ports (`stable_port` for a PBX started again on the same ones), all
    different from each other, from `http_port` and from `sip_port`."""
    taken = [http_port] if sip_port is None else [http_port, sip_port]
    control, portal, *sip_ports = distinct_ports(5, port, taken=taken)
    env = {"PBX_HTTP__PORT": str(http_port), "PBX_MEDIA__CONTROL_PORT": str(control),
           "PBX_PORTAL__PORT": str(portal)}
    for section in ("MEDIA", "IVR", "MEETING", "QUEUE"):
        port_min, port_max = media_ports()
        env |= {f"PBX_{section}__PORT_MIN": str(port_min), f"PBX_{section}__PORT_MAX": str(port_max)}
    for section, sip in zip(("IVR", "MEETING", "QUEUE"), sip_ports, strict=True):
        env[f"PBX_{section}__SIP_PORT"] = str(sip)
    return env


@contextlib.contextmanager
def running_pbx(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[PbxServer]:
    """`pbx init` then `pbx allinone` on free ports; stopped (and required to exit 0) afterwards."""
    pbx("init", "--data-dir", str(data_dir))
    port, http_port = distinct_ports(2)
    ports_env = allinone_ports_env(http_port, sip_port=port)
    process = start_allinone(data_dir, port, env={**ports_env, **(env or {})})
    server = PbxServer(data_dir=data_dir, port=port, http_port=http_port, process=process)
    # Drain the daemon's output so a chatty log never blocks it on a full pipe.
    log_lines = server.log_lines
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: log_lines.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        yield server
    finally:
        code = stop(process)
        reader.join(timeout=5)
    assert code == 0, f"pbx allinone exited with {code}:\n" + "".join(log_lines[-50:])


@pytest.fixture
def pbx_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PbxServer]:
    """A running `pbx allinone`; `@pytest.mark.pbx_env(PBX_X__Y="...")` adds config by environment."""
    marker = request.node.get_closest_marker("pbx_env")
    with running_pbx(tmp_path / "data", marker.kwargs if marker else None) as server:
        yield server


@pytest.fixture(scope="module")
def shared_pbx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PbxServer]:
    """One `pbx allinone` for a whole module of tests that do not disturb each other."""
    with running_pbx(tmp_path_factory.mktemp("pbx") / "data") as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis of its own for the test (the cluster's state store and bus)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()

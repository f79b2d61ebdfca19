"""Bad input gets a clear answer and the daemon keeps serving: garbage, broken and oversized
messages, a bad config value, a port that is taken."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import PBX, PbxServer, free_port, pbx, start_allinone, stop
from tests.integration.test_ivr_calls import add_menu
from tests.integration.test_ivr_failover import AppServerDaemon

pytestmark = pytest.mark.integration


def _exchange(port: int, data: bytes, *, timeout: float = 2.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recv(65535)
        except TimeoutError:
            return None


def _options(port: int, *, branch: str = "z9hG4bKopt1", extra: str = "", body: bytes = b"") -> bytes:
    return (f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=p1\r\nTo: <sip:127.0.0.1>\r\n"
            f"Call-ID: {branch}@test\r\nCSeq: 1 OPTIONS\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body


def _status(reply: bytes | None) -> int | None:
    return int(reply.split(b" ", 2)[1]) if reply else None


def test_daemon_answers_options(pbx_server: PbxServer) -> None:
    reply = _exchange(pbx_server.port, _options(pbx_server.port))
    assert _status(reply) == 200
    assert reply is not None and b"Allow: INVITE" in reply


def test_garbage_is_dropped_and_counted(pbx_server: PbxServer) -> None:
    for garbage in (b"\x00\x01\x02garbage\xff", b"hello world", b"INVITE\r\n\r\n"):
        assert _exchange(pbx_server.port, garbage, timeout=0.5) is None
    assert pbx_server.metrics()['pbx_sip_messages_total{outcome="dropped_garbage"}'] == 3
    assert _status(_exchange(pbx_server.port, _options(pbx_server.port))) == 200


def test_malformed_request_gets_400_saying_why(pbx_server: PbxServer) -> None:
    broken = _options(pbx_server.port, branch="z9hG4bKbad").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    reply = _exchange(pbx_server.port, broken)
    assert _status(reply) == 400
    assert reply is not None and b"malformed CSeq" in reply
    assert _status(_exchange(pbx_server.port, _options(pbx_server.port))) == 200
    assert pbx_server.metrics()['pbx_sip_messages_total{outcome="refused_requests"}'] == 1


def test_unsupported_extension_and_unknown_method(pbx_server: PbxServer) -> None:
    reply = _exchange(pbx_server.port, _options(pbx_server.port, branch="z9hG4bKreq",
                                                 extra="Require: nosuchextension\r\n"))
    assert _status(reply) == 420
    assert reply is not None and b"Unsupported: nosuchextension" in reply
    unknown = _options(pbx_server.port, branch="z9hG4bKunk").replace(b"OPTIONS", b"FROBNICATE")
    assert _status(_exchange(pbx_server.port, unknown)) == 501


def test_oversized_message_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    port = free_port()
    process = start_allinone(data_dir, port, env={"PBX_SIP__MAX_MESSAGE_SIZE": "2048",
                                                  "PBX_HTTP__PORT": "0"})
    try:
        big = _options(port, branch="z9hG4bKbig", extra="Content-Type: text/plain\r\n", body=b"x" * 4000)
        assert _status(_exchange(port, big)) == 513
        assert _status(_exchange(port, _options(port))) == 200
    finally:
        assert stop(process) == 0


@pytest.mark.parametrize(("env", "key"), [
    ({"PBX_SIP__PORT": "70000"}, "sip.port"),
    ({"PBX_REGISTRAR__MIN_EXPIRES": "soon"}, "registrar.min_expires"),
    ({"PBX_POLICY__TRUSTED_NETWORKS": "10.0.0.0/33"}, "policy.trusted_networks"),
])
def test_bad_config_value_stops_startup_naming_the_key(tmp_path: Path, env: dict[str, str], key: str) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    result = subprocess.run([*PBX, "allinone", "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=30, env={**_base_env(), **env})
    assert result.returncode == 1
    assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_in_config_file_names_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    config = data_dir / "pbx.yml"
    config.write_text(config.read_text() + "\nregistrar:\n  max_contacts: -3\n")
    result = subprocess.run([*PBX, "allinone", "--data-dir", str(data_dir)], capture_output=True, text=True,
                            timeout=30, env=_base_env())
    assert result.returncode == 1
    assert "registrar.max_contacts" in result.stderr


def test_port_in_use_fails_with_a_clear_message(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", port))
        result = subprocess.run([*PBX, "allinone", "--data-dir", str(data_dir), "--sip-port", str(port)],
                                capture_output=True, text=True, timeout=30, env=_base_env())
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr


def _base_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PBX_")} | {"PBX_HTTP__PORT": "0"}


# -- the IVR server (`pbx ivr`), an application server of its own --------------------------------------


@pytest.fixture
def ivr_daemon(tmp_path: Path) -> Iterator[AppServerDaemon]:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    add_menu(data_dir, options={"2": "hangup"})
    daemon = AppServerDaemon("ivr", data_dir, tmp_path / "ivr.yml")
    daemon.start()
    yield daemon
    daemon.stop()


def _final(port: int, data: bytes) -> bytes | None:
    """The final response to a request (provisional ones skipped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data, ("127.0.0.1", port))
        try:
            while True:
                reply = sock.recv(65535)
                if (_status(reply) or 0) >= 200:
                    return reply
        except TimeoutError:
            return None


def _invite(port: int, *, user: str = "800", sdp: bool = True, branch: str = "z9hG4bKinv1") -> bytes:
    body = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            b"m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n") if sdp else b""
    return (f"INVITE sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch={branch};rport\r\nMax-Forwards: 70\r\n"
            f"From: <sip:1001@pbx.local>;tag=c1\r\nTo: <sip:{user}@pbx.local>\r\nCall-ID: {branch}@test\r\n"
            "CSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:9>\r\n"
            + ("Content-Type: application/sdp\r\n" if sdp else "")
            + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_ivr_server_refuses_bad_input_and_keeps_serving(ivr_daemon: AppServerDaemon) -> None:
    port = ivr_daemon.sip_port
    for garbage in (b"\x00\x01\x02garbage\xff", b"hello world", b"INVITE\r\n\r\n"):
        assert _exchange(port, garbage, timeout=0.5) is None
    broken = _options(port, branch="z9hG4bKbad").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    reply = _exchange(port, broken)
    assert _status(reply) == 400 and reply is not None and b"malformed CSeq" in reply
    # A number that is no menu, and an INVITE without an offer, are refused with why.
    reply = _final(port, _invite(port, user="899", branch="z9hG4bKnomenu"))
    assert _status(reply) == 404 and reply is not None and b"No Such IVR Menu" in reply
    assert _status(_final(port, _invite(port, sdp=False, branch="z9hG4bKnosdp"))) == 488
    assert _status(_exchange(port, _options(port))) == 200
    assert ivr_daemon.health()["status"] == "ok"
    # Counted on /metrics, from the worker's report (once a second).
    expected = {"refused_requests": 1, "dropped_garbage": 3}
    deadline = time.monotonic() + 5
    while (counted := _ivr_messages(ivr_daemon, expected)) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counted == expected


def _ivr_messages(ivr_daemon: AppServerDaemon, outcomes: Iterable[str]) -> dict[str, float]:
    """The IVR worker 0's SIP messages of each outcome, read from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ivr_daemon.http_port}/metrics", timeout=2) as reply:
        lines = dict(line.rsplit(" ", 1) for line in reply.read().decode().splitlines()
                     if line and not line.startswith("#"))
    return {outcome: float(lines.get(f'pbx_ivr_sip_messages_total{{outcome="{outcome}",worker="0"}}', 0))
            for outcome in outcomes}


@pytest.mark.parametrize(("section", "key"), [
    ({"ivr": {"sip_port": 70000}}, "ivr.sip_port"),
    ({"ivr": {"port_min": 31000, "port_max": 30000}}, "ivr: port_min"),
    ({"ivr": {"workers": "many"}}, "ivr.workers"),
])
def test_ivr_server_bad_config_value_stops_startup_naming_the_key(tmp_path: Path, section: dict[str, object],
                                                                  key: str) -> None:
    config = tmp_path / "ivr.yml"
    database = {"url": f"sqlite:///{tmp_path / 'pbx.sqlite3'}"}
    config.write_text(yaml.safe_dump({"database": database, **section}))
    result = subprocess.run([*PBX, "ivr", "--config", str(config)], capture_output=True, text=True,
                            timeout=30, env=_base_env())
    assert result.returncode == 1
    assert key in result.stderr
    assert "Traceback" not in result.stderr

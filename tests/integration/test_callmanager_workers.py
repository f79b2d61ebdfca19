"""Several Call Manager workers on Redis: calls across workers, a worker killed, the whole Call
Manager restarted, Redis away for a while; real phones (pjsua2, sipp) and Debian's redis-server."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pbx_services.callmanager.workers import worker_of_tag
from pbx_services.sip.message import SipResponse, parse_message
from tests.integration.conftest import (
    PBX,
    PbxServer,
    free_port,
    pbx,
    running_pbx,
    stable_port,
    start_allinone,
    stop,
    wait_for,
)
from tests.integration.peers import sipp
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_media_failover import media_daemon, wait_for_media_servers
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed"),
]

WORKERS = 2
SOCKET_PER_CALL = ("-t", "un", "-max_socket", "4096")
"""sipp options: each call from a socket of its own, as from phones of their own (the kernel
spreads datagrams over the workers by source address)."""


def workers_env(redis_server: RedisServer) -> dict[str, str]:
    return {"PBX_STATE__URL": redis_server.url, "PBX_CALLMANAGER__WORKERS": str(WORKERS),
            "PBX_AUTH__ALGORITHMS": "MD5,SHA-256"}


@pytest.fixture
def pbx_server(tmp_path: Path, redis_server: RedisServer) -> Iterator[PbxServer]:
    with running_pbx(tmp_path / "data", workers_env(redis_server)) as server:
        yield server


def answering_worker(pbx_server: PbxServer, port: int) -> int:
    """Which worker answers OPTIONS from 127.0.0.1:`port` (its To tag names it): the one the
    kernel gives that phone's datagrams to."""
    options = (f"OPTIONS sip:{pbx_server.address} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:probe@pbx.local>;tag=probe\r\nTo: <sip:pbx.local>\r\n"
               f"Call-ID: {secrets.token_hex(8)}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", port))
        probe.settimeout(5)
        probe.sendto(options.encode(), ("127.0.0.1", pbx_server.port))
        response = parse_message(probe.recv(65535))
    assert isinstance(response, SipResponse) and response.status_code == 200
    worker = worker_of_tag(response.to.tag)
    assert worker is not None, response.to.tag
    return worker


def port_on_worker(pbx_server: PbxServer, worker: int) -> int:
    for _ in range(100):
        port = free_port()
        if answering_worker(pbx_server, port) == worker:
            return port
    raise AssertionError(f"no port found whose datagrams reach worker {worker}")


def _state(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda event: event["state"] == name


def phone_on_worker(pbx_server: PbxServer, extension: str, worker: int) -> Pjsua2Phone:
    phone = Pjsua2Phone(user=extension, password=pbx_server.add_user(extension), server=pbx_server.address,
                        port=port_on_worker(pbx_server, worker))
    assert phone.register()["code"] == 200
    return phone


def call(caller: Pjsua2Phone, callee: Pjsua2Phone, pbx_server: PbxServer) -> None:
    caller.send("call", uri=f"sip:{callee.user}@{pbx_server.address}")
    callee.wait_for("incoming")
    assert caller.wait_for("call_state", _state("EARLY"))["code"] == 180
    callee.send("answer", code=200)
    confirmed = caller.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
    assert (confirmed["state"], confirmed["code"]) == ("CONFIRMED", 200), confirmed
    callee.wait_for("call_state", _state("CONFIRMED"))


def hang_up(by: Pjsua2Phone, other: Pjsua2Phone) -> None:
    """`by` hangs up; the BYE the PBX then sends `other` ends its side too."""
    by.send("hangup")
    by.wait_for("call_state", _state("DISCONNECTED"))
    other.wait_for("call_state", _state("DISCONNECTED"), timeout=15)


def rx_packets(phone: Pjsua2Phone) -> int:
    return int(phone.stats()["rx_packets"])


def worker_metric(metrics: dict[str, float], name: str, worker: int, **labels: str) -> float:
    """A metric of one worker (the exposition lists labels in name order)."""
    shown = ",".join(f'{key}="{value}"' for key, value in sorted({**labels, "worker": str(worker)}.items()))
    return metrics.get(f"{name}{{{shown}}}", 0.0)


def test_phones_on_two_workers_call_each_other_through_redis(pbx_server: PbxServer) -> None:
    caller = phone_on_worker(pbx_server, "1001", worker=0)
    callee = phone_on_worker(pbx_server, "1002", worker=1)
    try:
        assert pbx_server.metrics()["pbx_registered_contacts"] == 2
        call(caller, callee, pbx_server)
        time.sleep(2)
        assert rx_packets(caller) > 50 and rx_packets(callee) > 50
        hang_up(caller, callee)
    finally:
        caller.close()
        callee.close()
    [cdr] = pbx_server.wait_for_cdrs(1)
    assert (cdr["caller"], cdr["callee"], cdr["disposition"], cdr["hangup_by"]) == (
        "1001", "1002", "ANSWERED", "caller")

    def reported(metrics: dict[str, float]) -> bool:
        return (all(worker_metric(metrics, "pbx_sip_messages_total", worker, outcome="received_requests") > 0
                    for worker in range(WORKERS))
                # The callee's answers and requests land on worker 1 and go to worker 0, which holds the call.
                and worker_metric(metrics, "pbx_callmanager_forwarded_total", 1, direction="out") > 0
                and worker_metric(metrics, "pbx_callmanager_forwarded_total", 0, direction="in") > 0
                and metrics["pbx_registered_contacts"] == 0)  # the phones unregistered as they closed

    wait_for("the workers' reports: requests on both, the callee's forwarded from worker 1 to 0, no contact",
             lambda: reported(pbx_server.metrics()), 10)


def test_a_users_call_limit_holds_across_the_workers(pbx_server: PbxServer) -> None:
    # 1001 may have one call at a time. Its desk phone's calls are held by worker 0, its
    # softphone's by worker 1: the second call is refused though worker 1 holds no call of 1001.
    password = pbx_server.add_user("1001")
    pbx("user", "set", "1001", "--max-calls", "1", "--data-dir", str(pbx_server.data_dir))
    desk = Pjsua2Phone(user="1001", password=password, server=pbx_server.address,
                       port=port_on_worker(pbx_server, 0))
    soft = Pjsua2Phone(user="1001", password=password, server=pbx_server.address,
                       port=port_on_worker(pbx_server, 1))
    callee = phone_on_worker(pbx_server, "1002", worker=0)
    other = phone_on_worker(pbx_server, "1003", worker=1)
    try:
        assert desk.register()["code"] == 200 and soft.register()["code"] == 200
        call(desk, callee, pbx_server)
        soft.send("call", uri=f"sip:1003@{pbx_server.address}")
        refused = soft.wait_for("call_state", _state("DISCONNECTED"))
        assert (refused["code"], refused["reason"]) == (403, "Call Limit Reached"), refused
        hang_up(desk, callee)
        call(soft, other, pbx_server)  # the first call ended: the softphone may call now
        hang_up(soft, other)
    finally:
        for phone in (desk, soft, callee, other):
            phone.close()
    refusal = "refused: user's limit of 1 calls reached (1 in progress)"
    assert any(refusal in line for line in pbx_server.log_lines)


def test_a_worker_killed_during_a_call_takes_it_back_and_its_registrations_still_route(
        pbx_server: PbxServer) -> None:
    caller = phone_on_worker(pbx_server, "1001", worker=0)
    callee = phone_on_worker(pbx_server, "1002", worker=1)
    try:
        call(caller, callee, pbx_server)
        time.sleep(1)
        [victim] = [w for w in pbx_server.health()["workers"] if w["worker"] == 0]
        before = rx_packets(caller), rx_packets(callee)

        os.kill(victim["pid"], signal.SIGKILL)

        time.sleep(2)
        after = rx_packets(caller), rx_packets(callee)
        assert after[0] - before[0] > 50 and after[1] - before[1] > 50  # the audio went on
        deadline = time.monotonic() + 15
        while True:
            worker = next(w for w in pbx_server.health()["workers"] if w["worker"] == 0)
            if worker["up"] and worker["pid"] != victim["pid"]:
                break
            assert time.monotonic() < deadline, pbx_server.health()
            time.sleep(0.2)
        assert worker["restarts"] == 1
        hang_up(callee, caller)
        [cdr] = pbx_server.wait_for_cdrs(1)
        assert (cdr["disposition"], cdr["hangup_by"]) == ("ANSWERED", "callee")
        # Registered before the kill, not since: still reachable.
        call(caller, callee, pbx_server)
        hang_up(caller, callee)
        assert len(pbx_server.wait_for_cdrs(2)) == 2
    finally:
        caller.close()
        callee.close()


class _Restartable:
    """`pbx allinone` with workers and without its embedded media server, which the test stops
    and starts again on the same ports (below the ephemeral range, so nothing takes them)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        pbx("init", "--data-dir", str(data_dir))
        self.http_port = stable_port()
        self.env = {**env, "PBX_HTTP__PORT": str(self.http_port), "PBX_MEDIA__EMBEDDED": "false"}
        self.server = PbxServer(data_dir=data_dir, port=stable_port(), http_port=self.http_port,
                                process=subprocess.Popen(["true"]))
        self.log: list[str] = []

    def start(self) -> None:
        process = start_allinone(self.server.data_dir, self.server.port, env=self.env)
        self.server.process = process
        assert process.stdout is not None
        reader = threading.Thread(target=lambda: self.log.extend(iter(process.stdout.readline, "")),
                                  daemon=True)
        reader.start()

    def stop(self) -> None:
        assert stop(self.server.process) == 0, "".join(self.log[-40:])


def test_after_a_restart_of_the_whole_call_manager_registrations_and_calls_are_still_there(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """The Call Manager (every worker) stops and starts again; the media server, a daemon of
    its own as in a cluster, goes on carrying the call's audio meanwhile."""
    pbx_node = _Restartable(tmp_path / "data", workers_env(redis_server))
    pbx_node.start()
    server = pbx_node.server
    callee, password = "2000", server.add_user("2000")
    callee_port = free_port()
    registered = sipp.run("register_callee", tmp_path, "-s", callee, "-ap", password, "-m", "1",
                          remote=server.address, port=callee_port)
    assert registered.successful == 1, registered.output
    with media_daemon(server, "media1", tmp_path):
        wait_for_media_servers(server, "media1")
        caller = phone_on_worker(server, "1001", worker=0)
        other = phone_on_worker(server, "1002", worker=1)
        try:
            call(caller, other, server)
            pbx_node.stop()
            before = rx_packets(caller), rx_packets(other)
            time.sleep(1)
            assert rx_packets(caller) - before[0] > 25 and rx_packets(other) - before[1] > 25
            pbx_node.start()

            # The call made before the restart is hung up cleanly by BYE from either side.
            hang_up(other, caller)
            [cdr] = server.wait_for_cdrs(1)
            assert (cdr["disposition"], cdr["hangup_by"]) == ("ANSWERED", "callee")
            # The sipp phone registered before the restart takes calls without registering again.
            uas, uas_stat = sipp.start("uas_answer", tmp_path, "-m", "1", port=callee_port)
            caller.send("call", uri=f"sip:{callee}@{server.address}")
            confirmed = caller.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
            assert (confirmed["state"], confirmed["code"]) == ("CONFIRMED", 200), confirmed
            caller.send("hangup")
            caller.wait_for("call_state", _state("DISCONNECTED"))
            served = sipp.finish(uas, uas_stat, timeout=30)
            assert served.successful == 1, served.output
        finally:
            caller.close()
            other.close()
            pbx_node.stop()


def test_redis_away_for_ten_seconds_refuses_registrations_then_everything_works_again(
        pbx_server: PbxServer, redis_server: RedisServer, tmp_path: Path) -> None:
    users = {str(3000 + n): pbx_server.add_user(str(3000 + n)) for n in range(20)}
    users_file = sipp.write_users(tmp_path / "users.csv", users)

    def register_all(*options: str) -> sipp.SippResult:
        return sipp.run("register_auth", tmp_path, "-inf", str(users_file), "-m", "20", "-r", "20",
                        *SOCKET_PER_CALL, *options, remote=pbx_server.address)

    assert register_all().successful == 20
    redis_server.stop()
    started = time.monotonic()
    during = register_all("-recv_timeout", "3000")
    assert (during.successful, during.failed) == (0, 20), during.output  # each refused: 500, Retry-After
    assert pbx_server.process.poll() is None
    time.sleep(max(0.0, 10 - (time.monotonic() - started)))
    assert pbx_server.health()["status"] == "degraded"
    metrics = pbx_server.metrics()
    refused = sum(worker_metric(metrics, "pbx_sip_messages_total", w, outcome="refused_store_unavailable")
                  for w in range(WORKERS))
    assert refused >= 20  # the REGISTERs answered 500 with Retry-After, none lost silently
    redis_server.start()  # empty, as a Redis without persistence comes back

    time.sleep(1.5)
    after = register_all()
    assert (after.successful, after.failed) == (20, 0), after.output
    health = pbx_server.health()
    assert health["status"] == "ok"
    assert health["holds_sip_address"] is True  # 127.0.0.1 is this host's: it serves the calls
    assert pbx_server.metrics()["pbx_registered_contacts"] == 20


def test_sipp_registers_10000_users_across_the_workers(pbx_server: PbxServer, tmp_path: Path) -> None:
    users = {str(100000 + n): "pw" + secrets.token_urlsafe(9) for n in range(10_000)}
    csv_file = tmp_path / "users.csv"
    csv_file.write_text("extension,password\n" + "".join(f"{e},{p}\n" for e, p in users.items()))
    pbx("user", "import", str(csv_file), "--data-dir", str(pbx_server.data_dir))

    result = sipp.run("register_auth", tmp_path, "-inf", str(sipp.write_users(tmp_path / "in.csv", users)),
                      "-m", "10000", "-r", "500", "-l", "2000", *SOCKET_PER_CALL, remote=pbx_server.address)

    assert (result.successful, result.failed) == (10_000, 0), result.output
    wait_for("10,000 contacts in the workers' reports",
             lambda: pbx_server.metrics()["pbx_registered_contacts"] == 10_000, 10)
    metrics = pbx_server.metrics()
    handled = [worker_metric(metrics, "pbx_sip_messages_total", w, outcome="received_requests")
               for w in range(WORKERS)]
    assert all(count > 2_000 for count in handled), handled


def test_a_state_url_that_cannot_be_reached_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    dead_port = free_port()
    result = subprocess.run(
        [*PBX, "allinone", "--data-dir", str(data_dir), "--sip-port", str(free_port())],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PBX_STATE__URL": f"redis://127.0.0.1:{dead_port}/0",
             "PBX_CALLMANAGER__WORKERS": "2", "PBX_HTTP__PORT": "0", "PBX_MEDIA__EMBEDDED": "false"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"pbx allinone: state.url: Redis at redis://127.0.0.1:{dead_port}/0 is unreachable: "
        f"Error 111 connecting to 127.0.0.1:{dead_port}. Connection refused.")

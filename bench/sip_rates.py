#!/usr/bin/env python3
"""SIP rates benchmark: the PBX's Call Manager with 1, 2, 4 workers side by side with Kamailio.

One run measures, in turn, Kamailio (bench/kamailio/kamailio.cfg, anchoring calls' media
on rtpengine) and the PBX (`pbx init`, `pbx user import`, `pbx allinone`: its embedded
media server anchors the calls) with each Call Manager worker count of --pbx-workers, each
PBX on a Redis of its own started for it (state.url set for every worker count, 1
included, so that the curve compares like with like; `memory` adds one worker on the
in-process store). On each server:

- memory (first, on the fresh server): registers --mem-users users and reports the growth
  per registration of the RSS and PSS of all the server's processes and, for the PBX, of
  Redis (INFO used_memory; the keys by kind);
- REGISTER with digest auth: sipp ramps the rate (distinct users per call); the result
  is the highest rate whose step had no failed call and no retransmission and ran at the
  rate asked;
- calls with SDP: --callees sipp UASes registered as extensions answer, a sipp UAC calls
  them (INVITE/407/ACK/INVITE/200/ACK, BYE) at ramping rates; the same "clean" rule, and
  the calls' media must have been anchored (rtpengine's sessions, the media sockets).

sipp sends every call from a socket of its own (`-t un`): a multi-worker PBX spreads
datagrams over its workers by source address (SO_REUSEPORT), so one socket would land on
one worker; Kamailio gets the same load. It prints a table (PBX/Kamailio ratios per worker
count) and writes the results as JSON to --output. Everything it starts is stopped by pid
on exit, Ctrl-C or error. Python 3.11 stdlib only; needs sipp, kamailio, rtpengine and
redis-server (scripts/install-test-deps.sh). See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    CLK_TCK,
    BenchError,
    Processes,
    Terminated,
    cpu_ticks,
    free_tcp_port,
    free_udp_port,
    ignore_stop_signals,
    log,
    machine_busy_ticks,
    ng_request,
    pbx_metrics,
    process_tree,
    raise_on_stop_signals,
    read_sipp_errors,
    read_sipp_stat,
    require_tools,
    tail,
    udp_sockets,
    wait_quiet,
)
from benchlib import (
    start_redis as start_redis_server,
)
from benchlib import (
    start_rtpengine as start_rtpengine_server,
)

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "data" / "sipp"
KAMAILIO_CFG = Path(__file__).resolve().parent / "kamailio" / "kamailio.cfg"

HOST = "127.0.0.1"
SIPP_BUFF_SIZE = "4194304"
# sipp's -t un: a socket per call, at most this many open at once (then shared); the
# open-files limit here is 20,000.
SIPP_MAX_SOCKETS = "4096"
DEFAULT_PASSWORD = "bench-secret"

# Extension ranges: the register/call ramp users, the callees, and the users of the memory
# phase (disjoint, so that the memory phase starts from none of them registered).
RAMP_USER_BASE = 100000
RAMP_USER_MAX = 99999
CALLEE_BASE = 200000
MAX_CALLEES = 64
MEM_USER_BASE = 300000

# The PBX's settings for the run (--pbx-env adds or overrides):
# - sipp answers only the first digest challenge of a 401/407, and only if it is MD5:
#   offer MD5 first (SHA-256 is still offered, so a challenge costs what it costs in
#   production);
# - all the load comes from 127.0.0.1: a brute-force block of that source, set off by
#   stale-nonce answers in an overloaded step, would spoil every later phase.
PBX_BENCH_ENV = {
    "PBX_AUTH__ALGORITHMS": "MD5,SHA-256",
    "PBX_POLICY__TRUSTED_NETWORKS": "127.0.0.0/8",
}
# A worker's tag ends in ".w<index>" (pbx_services/callmanager/workers.py): the To tag of
# its answer to OPTIONS says which worker the kernel gives a source address to.
WORKER_TAG = re.compile(r"\.w(\d{1,4})$")

WARMUP_USERS = 500
WARMUP_RATE = 500

REGISTER_GOAL_RATIO = 0.5
# Fine steps where the PBX's limits are, coarse ones up to Kamailio's.
DEFAULT_REGISTER_RATES = (
    "250,500,750,1000,1250,1500,2000,2500,3000,4000,5000,6000,8000,10000,12000,16000,20000,24000,28000,32000"
)
DEFAULT_CALL_RATES = "50,100,150,200,250,300,400,500,600,800,1000,1250,1500,2000,2500,3000,4000"
DEFAULT_PBX_WORKERS = "1,2,4"
# RTP ports of rtpengine (for Kamailio) and of the PBX's media server: they never run at
# once, so they share one range, below the kernel's ephemeral ports (where sipp's sockets
# are) and apart from the integration tests' (20000-31999). A call holds 4 ports (2 legs,
# RTP and RTCP).
DEFAULT_MEDIA_PORTS = "4000-19999"
PORTS_PER_CALL = 4
# A step is "at the rate asked" when its calls completed at >= 90% of it: neither sipp
# (sending) nor the server (answering) fell behind.
MIN_ACHIEVED_FRACTION = 0.9


# ---------------------------------------------------------------- processes


def _proc_kb(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return ""


def memory_kb(root: int) -> dict[str, Any]:
    """Summed VmRSS and Pss (kB) of root and its descendants, and each process's."""
    pids = process_tree(root)
    each = [
        {
            "pid": pid,
            "cmd": _cmdline(pid),
            "rss_kb": _proc_kb(f"/proc/{pid}/status", "VmRSS:"),
            "pss_kb": _proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:"),
        }
        for pid in pids
    ]
    return {
        "processes": len(each),
        "rss_kb": sum(p["rss_kb"] for p in each),
        "pss_kb": sum(p["pss_kb"] for p in each),
        "each": each,
    }


@dataclass
class OptionsAnswer:
    status: str
    to_tag: str | None


def sip_ping(port: int, timeout: float, local_port: int = 0) -> OptionsAnswer | None:
    """Send OPTIONS to HOST:port from local_port (0: any); the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, local_port))
        lport = s.getsockname()[1]
        call_id = uuid.uuid4().hex
        msg = (
            f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{lport};rport;branch=z9hG4bK{call_id[:16]}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:bench@{HOST}:{lport}>;tag={call_id[16:24]}\r\n"
            f"To: <sip:{HOST}:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        s.settimeout(timeout)
        s.sendto(msg.encode(), (HOST, port))
        try:
            data, _ = s.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None
    head = data.split(b"\r\n\r\n", 1)[0].decode(errors="replace").split("\r\n")
    if not head[0].startswith("SIP/2.0 "):
        return None
    to_tag = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() in ("to", "t"):
            found = re.search(r";\s*tag=([^;>\s]+)", value)
            to_tag = found.group(1) if found else None
    return OptionsAnswer(head[0], to_tag)


def wait_answering(
    name: str, proc: subprocess.Popen[bytes], port: int, timeout: float, log_path: Path
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} before answering:\n{tail(log_path)}")
        answer = sip_ping(port, 0.5)
        if answer:
            return answer.status
    raise BenchError(
        f"{name} did not answer OPTIONS on {HOST}:{port} within {timeout:.0f} s:\n{tail(log_path)}"
    )


def log_problems(path: Path, pattern: str, keep: int = 8) -> dict[str, Any]:
    """The warning and error lines of a server's log, grouped with their numbers blanked
    out: how many, and the most frequent kinds with one example each."""
    matcher = re.compile(pattern)
    kinds: Counter[str] = Counter()
    examples: dict[str, str] = {}
    try:
        with open(path, errors="replace") as f:
            for line in f:
                if not matcher.search(line):
                    continue
                # Drop the timestamp and process ids, blank the numbers: one kind per message.
                text = line.strip()
                kind = re.sub(r"[0-9a-f]{8,}|\d+", "#", text)[:200]
                kinds[kind] += 1
                examples.setdefault(kind, text[:400])
    except OSError:
        return {"lines": 0, "kinds": []}
    return {
        "lines": sum(kinds.values()),
        "kinds": [{"count": n, "example": examples[k]} for k, n in kinds.most_common(keep)],
    }


# ---------------------------------------------------------------- CPU


class CpuMeter:
    """CPU used over a step (% of one core): the server's processes, its helper (Redis or
    rtpengine), sipp (the children this script reaped meanwhile, and the `sipp` processes
    still running when it stops) and other work."""

    def __init__(self, server: Server, sipp: list[int] | None = None) -> None:
        self.server_pids = process_tree(server.proc.pid)
        self.helper_pids = process_tree(server.helper.proc.pid) if server.helper else []
        self.sipp_pids = sipp or []
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_ticks()
        self.server0 = cpu_ticks(self.server_pids)
        self.helper0 = cpu_ticks(self.helper_pids)
        self.sipp0 = cpu_ticks(self.sipp_pids)
        self.times0 = os.times()

    def stop(self) -> dict[str, float]:
        seconds = max(time.monotonic() - self.t0, 1e-3)
        busy = (machine_busy_ticks() - self.busy0) / CLK_TCK
        server = (cpu_ticks(self.server_pids) - self.server0) / CLK_TCK
        helper = (cpu_ticks(self.helper_pids) - self.helper0) / CLK_TCK
        times = os.times()
        sipp = (times.children_user + times.children_system) - (
            self.times0.children_user + self.times0.children_system
        )
        sipp += (cpu_ticks(self.sipp_pids) - self.sipp0) / CLK_TCK
        me = (times.user + times.system) - (self.times0.user + self.times0.system)
        other = max(0.0, busy - server - helper - sipp - me)

        def pct(value: float) -> float:
            return round(100.0 * value / seconds, 1)

        return {
            "seconds": round(seconds, 2),
            "server_pct": pct(server),
            "helper_pct": pct(helper),
            "sipp_pct": pct(sipp),
            "other_pct": pct(other),
            "machine_pct": pct(busy),
        }


# ---------------------------------------------------------------- Redis and rtpengine


class RedisClient:
    """Just enough RESP (Redis's protocol) for INFO, DBSIZE, SCAN and MEMORY USAGE."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def command(self, *args: str | int) -> Any:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Any:
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise BenchError("redis: connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError(f"redis: {rest.decode(errors='replace')}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2]
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise BenchError(f"redis: unexpected reply {line[:40]!r}")

    def info(self, section: str) -> dict[str, str]:
        text = self.command("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")

    def memory(self) -> dict[str, int]:
        info = self.info("memory")
        return {
            "used_memory": int(info["used_memory"]),
            "used_memory_rss": int(info["used_memory_rss"]),
            "keys": int(self.command("DBSIZE")),
        }

    def keys_by_kind(self, samples: int = 200) -> dict[str, dict[str, int]]:
        """Every key counted by kind (its name up to the last ':' before a variable part,
        e.g. `pbx:loc:` or `pbx:nc:`), and their memory estimated from MEMORY USAGE of up to
        `samples` keys of each kind."""
        counts: Counter[str] = Counter()
        sampled: dict[str, list[bytes]] = {}
        cursor = b"0"
        while True:
            cursor, keys = self.command("SCAN", cursor.decode(), "COUNT", 1000)
            for key in keys:
                kind = key_kind(key.decode(errors="replace"))
                counts[kind] += 1
                chosen = sampled.setdefault(kind, [])
                if len(chosen) < samples:
                    chosen.append(key)
            if cursor == b"0":
                break
        out = {}
        for kind, count in counts.most_common():
            usages = [
                self.command("MEMORY", "USAGE", key.decode(), "SAMPLES", 0) or 0 for key in sampled[kind]
            ]
            average = sum(usages) / len(usages) if usages else 0.0
            out[kind] = {"keys": count, "bytes_per_key": round(average), "bytes": round(average * count)}
        return out


# The PBX's keys that are one for all (pbx_services/cluster/state/redis.py): each is a kind.
SINGLE_KEYS = ("pbx:loc:expiry", "pbx:blocked")


def key_kind(key: str) -> str:
    """`pbx:loc:100001@pbx.local` -> `pbx:loc:`; a key without a variable part is itself."""
    parts = key.split(":")
    if len(parts) >= 3 and key not in SINGLE_KEYS:
        return ":".join(parts[:2]) + ":"
    return key


@dataclass
class Helper:
    """A process a server needs: rtpengine (Kamailio) or Redis (the PBX)."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)


def start_redis(procs: Processes, args: argparse.Namespace, workdir: Path) -> tuple[Helper, RedisClient]:
    rundir = workdir / "redis"
    rundir.mkdir(exist_ok=True)
    redis = start_redis_server(procs, args.redis_bin, HOST, rundir)
    client = RedisClient(redis.port)
    version = client.info("server").get("redis_version", "")
    log(f"Redis {version} on {HOST}:{redis.port}")
    info = {"cmd": redis.cmd, "version": version}
    return Helper("redis", redis.port, redis.proc, redis.log_path, info), client


RTPENGINE_TOTALS = ("managedsessions", "rejectedsessions", "regularterminatedsessions", "timeoutsessions")


def rtpengine_totals(port: int) -> dict[str, int]:
    """rtpengine's session counters since it started (NG `statistics`)."""
    reply = ng_request(HOST, port, {"command": "statistics"}, timeout=5.0) or {}
    totals = reply.get("statistics", {}).get("totalstatistics", {})
    return {name: int(totals.get(name, 0)) for name in RTPENGINE_TOTALS}


def start_rtpengine(procs: Processes, args: argparse.Namespace, workdir: Path) -> Helper:
    port_min, port_max = args.media_ports
    # Kamailio pings rtpengine as it starts and leaves a silent one aside: it answers first.
    rtpengine = start_rtpengine_server(
        procs,
        args.rtpengine_bin,
        HOST,
        workdir,
        ng_port=free_udp_port(HOST),
        port_min=port_min,
        port_max=port_max,
        threads=args.rtpengine_threads,
        options=(f"--log-level={args.rtpengine_log_level}",),
    )
    return Helper(
        "rtpengine",
        rtpengine.ng_port,
        rtpengine.proc,
        rtpengine.log_path,
        {"cmd": rtpengine.cmd, "version": rtpengine.version, "ng_port": rtpengine.ng_port},
    )


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    """Its key in the results: kamailio, pbx-1, pbx-2, pbx-4, pbx-memory."""
    label: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    problems_pattern: str
    """What marks a warning or an error in its log."""
    reuseport_workers: int = 1
    """Processes on the SIP port, each with its own socket (the PBX's workers): the kernel
    gives each source address to one of them."""
    helper: Helper | None = None
    redis: RedisClient | None = None
    http_port: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PbxVariant:
    workers: int
    redis: bool

    @property
    def name(self) -> str:
        return f"pbx-{self.workers}" if self.redis else "pbx-memory"

    @property
    def label(self) -> str:
        return f"pbx {self.workers}w" if self.redis else "pbx 1w mem"


def start_kamailio(procs: Processes, args: argparse.Namespace, workdir: Path) -> Server:
    rundir = workdir / "kamailio"
    rundir.mkdir()
    rtpengine = start_rtpengine(procs, args, workdir)
    port = args.kamailio_port or free_udp_port(HOST)
    pidfile = rundir / "kamailio.pid"
    cmd = [
        args.kamailio_bin,
        "-f",
        str(KAMAILIO_CFG),
        "-l",
        f"udp:{HOST}:{port}",
        "-A",
        f'BENCH_PASSWORD="{args.password}"',
        "-A",
        f"BENCH_CHILDREN={args.kamailio_children}",
        "-A",
        "WITH_RTPENGINE",
        "-A",
        f'RTPENGINE_SOCK="udp:{HOST}:{rtpengine.port}"',
        "-Y",
        str(rundir),
        "-P",
        str(pidfile),
        "-x",
        "tlsf",
        "-X",
        "tlsf",
        "-m",
        "1024",
        "-M",
        "16",
        "-DD",
        "-E",
    ]
    log_path = rundir / "kamailio.log"
    log(f"starting Kamailio on {HOST}:{port} ({args.kamailio_children} children, media on rtpengine)")
    proc = procs.start("kamailio", cmd, log_path=log_path, cwd=rundir)
    status = wait_answering("kamailio", proc, port, 15.0, log_path)
    log(f"Kamailio answers OPTIONS: {status}")
    version = subprocess.run([args.kamailio_bin, "-v"], capture_output=True, text=True, timeout=10)
    return Server(
        "kamailio",
        "kamailio",
        port,
        proc,
        log_path,
        r"\b(WARNING|ERROR|CRITICAL|ALERT|BUG)\b",
        helper=rtpengine,
        info={
            "cmd": cmd,
            "version": version.stdout.splitlines()[0] if version.stdout else "",
            "children": args.kamailio_children,
            "options_answer": status,
            "rtpengine": rtpengine.info,
        },
    )


def write_pbx_users(path: Path, extensions: list[str], password: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["extension", "password"])
        writer.writerows([ext, password] for ext in extensions)


def start_pbx(
    procs: Processes,
    args: argparse.Namespace,
    workdir: Path,
    variant: PbxVariant,
    users_csv: Path,
    users: int,
) -> Server:
    """A fresh PBX (its own database and, on Redis, its own Redis) for one variant."""
    rundir = workdir / variant.name
    rundir.mkdir()
    datadir = rundir / "data"
    pbx = shlex.split(args.pbx_cmd)
    port_min, port_max = args.media_ports
    http_port = free_tcp_port(HOST)
    pbx_env = dict(PBX_BENCH_ENV)
    pbx_env.update(
        {
            "PBX_CALLMANAGER__WORKERS": str(variant.workers),
            "PBX_HTTP__PORT": str(http_port),
            "PBX_MEDIA__CONTROL_PORT": str(free_udp_port(HOST)),
            "PBX_MEDIA__PORT_MIN": str(port_min),
            "PBX_MEDIA__PORT_MAX": str(port_max),
        }
    )
    helper, client = (None, None)
    if variant.redis:
        helper, client = start_redis(procs, args, rundir)
        pbx_env["PBX_STATE__URL"] = f"redis://{HOST}:{helper.port}/0"
    pbx_env.update(args.pbx_env)
    env = {**os.environ, **pbx_env}
    log_path = rundir / "pbx.log"

    def run(step: str, cmd: list[str], timeout: float) -> None:
        log(f"{variant.name}: {step}: {shlex.join(cmd)}")
        proc = procs.start(f"pbx {step}", cmd, log_path=log_path, env=env, cwd=rundir)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            raise BenchError(f"`{shlex.join(cmd)}` took more than {timeout:.0f} s") from None
        procs.stop(proc)
        if rc != 0:
            raise BenchError(f"`{shlex.join(cmd)}` exited with {rc}:\n{tail(log_path)}")

    run("init", [*pbx, "init", "--data-dir", str(datadir)], 120)
    started = time.monotonic()
    run(
        "user import",
        [*pbx, "user", "import", str(users_csv), "--data-dir", str(datadir)],
        args.import_timeout,
    )
    import_seconds = time.monotonic() - started

    port = args.pbx_port or free_udp_port(HOST)
    cmd = [*pbx, "allinone", "--data-dir", str(datadir), "--host", HOST, "--sip-port", str(port)]
    settings = " ".join(f"{k}={v}" for k, v in pbx_env.items())
    log(f"starting PBX ({variant.label}) on {HOST}:{port}: {settings} {shlex.join(cmd)}")
    proc = procs.start(f"pbx allinone ({variant.label})", cmd, log_path=log_path, env=env, cwd=rundir)
    status = wait_answering("pbx", proc, port, args.pbx_start_timeout, log_path)
    # Every worker must be up (each binds the port as it starts): wait for them all to
    # report to the supervisor.
    if variant.workers > 1:
        deadline = time.monotonic() + args.pbx_start_timeout
        while len(workers_up(http_port)) < variant.workers:
            if time.monotonic() > deadline:
                raise BenchError(f"not every PBX worker came up:\n{tail(log_path)}")
            time.sleep(0.2)
    log(f"PBX answers OPTIONS: {status}")
    return Server(
        variant.name,
        variant.label,
        port,
        proc,
        log_path,
        r"\b(WARNING|ERROR|CRITICAL)\b|Traceback",
        reuseport_workers=variant.workers,
        helper=helper,
        redis=client,
        http_port=http_port,
        info={
            "cmd": cmd,
            "env": pbx_env,
            "workers": variant.workers,
            "state": "redis" if variant.redis else "in-process",
            "redis": helper.info if helper else None,
            "users_imported": users,
            "import_seconds": round(import_seconds, 1),
            "options_answer": status,
        },
    )


def stop_server(procs: Processes, server: Server) -> None:
    procs.stop(server.proc)
    if server.redis is not None:
        server.redis.close()
    if server.helper is not None:
        procs.stop(server.helper.proc)


# ---------------------------------------------------------------- the PBX's /metrics


def workers_up(http_port: int) -> list[str]:
    metrics = pbx_metrics(HOST, http_port)
    return [k for k, v in metrics.items() if k.startswith("pbx_callmanager_worker_up{") and v == 1]


# The outcomes of pbx_sip_messages_total that are the normal course of things.
ROUTINE_OUTCOMES = ("received_requests", "received_responses", "forwarded_to_owner", "keepalive")


def metrics_summary(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """What the PBX counted over a ramp: the messages each worker received (the kernel's
    spread), those it handed to the worker owning their call, and every other outcome."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after if after[k] - before.get(k, 0.0) != 0}
    received: dict[str, float] = {}
    forwarded: dict[str, float] = {}
    unusual: dict[str, float] = {}
    for key, value in delta.items():
        if not key.startswith(("pbx_sip_messages_total", "pbx_media_control_problems_total")):
            continue
        worker = re.search(r'worker="(\d+)"', key)
        who = worker.group(1) if worker else "0"
        outcome = re.search(r'(?:outcome|problem|kind|reason)="([^"]+)"', key)
        what = outcome.group(1) if outcome else key
        if what in ("received_requests", "received_responses"):
            received[who] = received.get(who, 0.0) + value
        elif what == "forwarded_to_owner":
            forwarded[who] = forwarded.get(who, 0.0) + value
        elif what not in ROUTINE_OUTCOMES:
            unusual[key] = value
    total = sum(received.values())
    return {
        "received_by_worker": {w: int(v) for w, v in sorted(received.items())},
        "received_share_by_worker": {w: round(v / total, 3) for w, v in sorted(received.items())}
        if total
        else {},
        "forwarded_to_owner_by_worker": {w: int(v) for w, v in sorted(forwarded.items())},
        "unusual": {k: int(v) for k, v in sorted(unusual.items())},
    }


def settled_metrics(server: Server) -> dict[str, float]:
    """/metrics once the workers have reported what they did (every second)."""
    if server.http_port is None:
        return {}
    time.sleep(1.5 if server.reuseport_workers > 1 else 0.0)
    return pbx_metrics(HOST, server.http_port)


# ---------------------------------------------------------------- sipp


def write_sipp_users(path: Path, extensions: list[str], password: str, callees: int = 0) -> None:
    """sipp injection file: [field0] user, [field1] the whole [authentication] keyword and,
    with callees, [field2] the callee of the user's call (round robin)."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for i, ext in enumerate(extensions):
            callee = f";{CALLEE_BASE + i % callees}" if callees else ""
            f.write(f"{ext};[authentication username={ext} password={password}]{callee}\n")


@dataclass
class SippResult:
    exit_code: int | None
    wall_seconds: float
    counters: dict[str, int]
    errors: list[str]

    @property
    def successful(self) -> int:
        return self.counters.get("SuccessfulCall(C)", 0)

    @property
    def failed(self) -> int:
        return self.counters.get("FailedCall(C)", 0)

    @property
    def retransmissions(self) -> int:
        return self.counters.get("Retransmissions(C)", 0)


def open_calls_limit(wanted: int) -> int:
    """sipp's -l: enough for the rate, under its open-files limit (20,000 here)."""
    return max(1000, min(wanted, 15000))


SOCKET_PER_CALL = ["-t", "un", "-max_socket", SIPP_MAX_SOCKETS]


class Sipp:
    """Builds and runs sipp command lines; each run gets its own files in workdir."""

    def __init__(self, procs: Processes, binary: str, workdir: Path) -> None:
        self.procs = procs
        self.binary = binary
        self.workdir = workdir
        self.runs = 0

    def command(
        self, scenario: str, *, remote_port: int | None, local_port: int, extra: list[str], tag: str
    ) -> tuple[list[str], Path, Path]:
        self.runs += 1
        base = self.workdir / f"sipp-{self.runs:03d}-{tag}"
        stat, err = base.with_suffix(".stat.csv"), base.with_suffix(".err.log")
        cmd = [self.binary]
        if remote_port is not None:
            cmd.append(f"{HOST}:{remote_port}")
        cmd += [
            "-sf",
            str(SCENARIOS / scenario),
            "-i",
            HOST,
            "-p",
            str(local_port),
            "-buff_size",
            SIPP_BUFF_SIZE,
            "-nostdin",
            "-default_behaviors",
            "all,-abortunexp",
            "-trace_stat",
            "-stf",
            str(stat),
            "-fd",
            "1",
            "-trace_err",
            "-error_file",
            str(err),
            *extra,
        ]
        return cmd, stat, err

    def start(
        self, scenario: str, *, remote_port: int | None, local_port: int, extra: list[str], tag: str
    ) -> tuple[subprocess.Popen[bytes], Path, Path, float]:
        cmd, stat, err = self.command(
            scenario, remote_port=remote_port, local_port=local_port, extra=extra, tag=tag
        )
        proc = self.procs.start(f"sipp {tag}", cmd, log_path=stat.with_suffix(".out"))
        return proc, stat, err, time.monotonic()

    def finish(
        self,
        proc: subprocess.Popen[bytes],
        stat: Path,
        err: Path,
        started: float,
        timeout: float,
        sample: Callable[[], None] | None = None,
    ) -> SippResult:
        """Wait for sipp (calling `sample` every second meanwhile), then read its results."""
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                proc.wait(timeout=min(1.0, max(deadline - time.monotonic(), 0.01)))
            except subprocess.TimeoutExpired:
                pass
            if sample is not None:
                sample()
        if proc.poll() is None:
            log(f"sipp (pid {proc.pid}) still running after {timeout:.0f} s: stopping it")
        wall = time.monotonic() - started
        self.procs.stop(proc)
        return SippResult(proc.returncode, wall, read_sipp_stat(stat), read_sipp_errors(err))

    def run(
        self,
        scenario: str,
        *,
        remote_port: int | None,
        local_port: int,
        extra: list[str],
        tag: str,
        timeout: float,
    ) -> SippResult:
        proc, stat, err, started = self.start(
            scenario, remote_port=remote_port, local_port=local_port, extra=extra, tag=tag
        )
        return self.finish(proc, stat, err, started, timeout)


# ---------------------------------------------------------------- steps and ramps


@dataclass
class Step:
    rate: int
    calls: int
    successful: int
    failed: int
    retransmissions: int
    wall_seconds: float
    achieved_rate: float
    clean: bool
    sipp_exit: int | None
    detail: dict[str, Any] = field(default_factory=dict)


def step_calls(rate: int, args: argparse.Namespace) -> int:
    return max(1, min(int(rate * args.step_seconds), int(args.max_step_calls)))


def judge(rate: int, calls: int, result: SippResult, hold_seconds: float) -> Step:
    # The time the calls took to complete: the wall time of the sipp run less the last
    # call's hold time and a small start-up allowance.
    completing = max(result.wall_seconds - hold_seconds - 0.2, 1e-3)
    achieved = min(calls / completing, float(rate) * 10)
    clean = (
        result.successful == calls
        and result.failed == 0
        and result.retransmissions == 0
        and achieved >= MIN_ACHIEVED_FRACTION * rate
    )
    return Step(
        rate,
        calls,
        result.successful,
        result.failed,
        result.retransmissions,
        round(result.wall_seconds, 2),
        round(achieved, 1),
        clean,
        result.exit_code,
        {"counters": result.counters, "errors": result.errors},
    )


def at_ramp_top(steps: list[Step], rates: list[int]) -> bool:
    """The highest rate of the ramp ran clean: the server's limit is above it."""
    return bool(steps) and steps[-1].clean and steps[-1].rate == rates[-1]


def describe(step: Step) -> str:
    verdict = "clean" if step.clean else "NOT clean"
    errors = step.detail.get("errors") or []
    cpu = step.detail.get("cpu") or {}
    return (
        f"rate {step.rate}/s: {step.successful}/{step.calls} ok, {step.failed} failed, "
        f"{step.retransmissions} retransmissions, completed at {step.achieved_rate:.0f}/s -> {verdict}"
        + (
            f" [CPU % of a core: server {cpu['server_pct']}, {cpu['helper_pct']} helper, "
            f"sipp {cpu['sipp_pct']}, other work {cpu['other_pct']}]"
            if cpu
            else ""
        )
        + (f" (sipp: {errors[0]})" if errors and not step.clean else "")
        + str(step.detail.get("note", ""))
    )


def settle(server: Server, timeout: float = 30.0) -> None:
    """Wait until the server answers OPTIONS within 50 ms 3 times in a row: its backlog
    from the previous step is drained, so that it does not count against the next one."""
    started, quick = time.monotonic(), 0
    while quick < 3 and time.monotonic() - started < timeout:
        sent = time.monotonic()
        answered = sip_ping(server.port, 1.0) is not None
        quick = quick + 1 if answered and time.monotonic() - sent < 0.05 else 0
        time.sleep(0.2)
    if quick < 3:
        log(f"{server.name} still slow to answer OPTIONS after {timeout:.0f} s; going on")


class Deadline:
    """A time budget, within an enclosing one (`parent`) if given."""

    def __init__(self, seconds: float, parent: Deadline | None = None) -> None:
        self.end = time.monotonic() + seconds
        self.parent = parent

    def left(self) -> float:
        own = self.end - time.monotonic()
        return min(own, self.parent.left()) if self.parent else own


def quiet(server: Server, args: argparse.Namespace) -> float:
    """Wait (a while) for other work on the machine to calm down; its last reading."""
    exclude = process_tree(server.proc.pid) + (process_tree(server.helper.proc.pid) if server.helper else [])
    return wait_quiet(below_pct=args.quiet_below, wait_seconds=args.quiet_wait, exclude=exclude)


def ramp(
    server: Server,
    args: argparse.Namespace,
    rates: list[int],
    deadline: Deadline,
    budget_of: Callable[[int], float],
    run_step: Callable[[int], Step],
    what: str,
) -> dict[str, Any]:
    """Run the steps of a ramp; an unclean step is run again (--retries) after other work
    has calmed down; the ramp stops at a step that stays unclean."""
    settle(server)
    quiet_before = quiet(server, args)
    metrics_before = settled_metrics(server)
    steps: list[Step] = []
    stopped = None
    for rate in rates:
        if deadline.left() < budget_of(rate):
            stopped = "time budget (--max-seconds) exhausted"
            break
        attempts: list[dict[str, Any]] = []
        for attempt in range(args.retries + 1):
            if attempt:
                log(f"{server.name}: running the {rate}/s step again")
                quiet(server, args)
                settle(server)
            step = run_step(rate)
            log(f"{server.name} {what} {describe(step)}")
            if step.clean or attempt == args.retries or deadline.left() < budget_of(rate):
                break
            attempts.append(asdict(step))
        step.detail["earlier_attempts"] = attempts
        steps.append(step)
        if not step.clean:
            stopped = f"first unclean step at {rate}/s"
            break
        if step.detail.get("stop_after"):
            stopped = step.detail["stop_after"]
            break
        settle(server)
    best = max((s.rate for s in steps if s.clean), default=0)
    return {
        "max_clean_rate": best,
        "at_ramp_top": at_ramp_top(steps, rates) or bool(stopped and "media ports" in stopped),
        "stopped": stopped,
        "other_work_before_pct": quiet_before,
        "metrics": metrics_summary(metrics_before, settled_metrics(server)) if server.http_port else None,
        "steps": [asdict(s) for s in steps],
    }


def register_ramp(
    server: Server, sipp: Sipp, args: argparse.Namespace, users_csv: Path, deadline: Deadline
) -> dict[str, Any]:
    def budget(rate: int) -> float:
        return step_calls(rate, args) / rate + 20

    def run_step(rate: int) -> Step:
        calls = step_calls(rate, args)
        meter = CpuMeter(server)
        result = sipp.run(
            "register_auth.xml",
            remote_port=server.port,
            local_port=free_udp_port(HOST),
            extra=[
                *SOCKET_PER_CALL,
                "-inf",
                str(users_csv),
                "-r",
                str(rate),
                "-m",
                str(calls),
                "-l",
                str(open_calls_limit(rate * 5)),
                "-recv_timeout",
                "5000",
                "-timeout",
                f"{int(budget(rate))}s",
            ],
            tag=f"{server.name}-register-{rate}",
            timeout=budget(rate) + 10,
        )
        step = judge(rate, calls, result, 0.0)
        step.detail["cpu"] = meter.stop()
        return step

    return ramp(server, args, args.register_rates, deadline, budget, run_step, "REGISTER")


def worker_of_port(server: Server, local_port: int) -> int | None:
    """The PBX worker the kernel gives datagrams from HOST:local_port to (the worker mark of
    the To tag of its answer to OPTIONS)."""
    answer = sip_ping(server.port, 1.0, local_port)
    found = WORKER_TAG.search(answer.to_tag or "") if answer else None
    return int(found.group(1)) if found else None


def callee_ports(server: Server, count: int) -> list[int]:
    """Ports for the callees' sipp UASes: with several PBX workers on the port, chosen so
    that the callees' answers spread over the workers evenly, as many phones' would."""
    workers = server.reuseport_workers
    if workers <= 1:
        return [free_udp_port(HOST) for _ in range(count)]
    wanted = Counter(k % workers for k in range(count))
    ports: dict[int, list[int]] = {}
    spare: list[int] = []
    for _ in range(50 * count):
        if all(len(ports.get(w, [])) >= n for w, n in wanted.items()):
            break
        port = free_udp_port(HOST)
        worker = worker_of_port(server, port)
        if worker is not None and len(ports.get(worker, [])) < wanted.get(worker, 0):
            ports.setdefault(worker, []).append(port)
        else:
            spare.append(port)
    chosen = [p for w in sorted(ports) for p in ports[w]]
    if len(chosen) < count:
        log(f"{server.name}: could not spread the callees over the workers ({ports}): going on")
        chosen += spare[: count - len(chosen)]
    return chosen


def call_ramp(
    server: Server, sipp: Sipp, args: argparse.Namespace, callers_csv: Path, deadline: Deadline
) -> dict[str, Any]:
    settle(server)
    callees = [str(CALLEE_BASE + k) for k in range(args.callees)]
    ports = callee_ports(server, args.callees)
    for callee, port in zip(callees, ports, strict=True):
        reg = sipp.run(
            "register_callee.xml",
            remote_port=server.port,
            local_port=port,
            extra=["-s", callee, "-ap", args.password, "-m", "1", "-recv_timeout", "5000", "-timeout", "20s"],
            tag=f"{server.name}-register-callee-{callee}",
            timeout=30,
        )
        if reg.successful != 1:
            log(
                f"{server.name}: the callee {callee} did not register "
                f"({reg.counters}, {reg.errors}): no call phase"
            )
            return {
                "max_clean_rate": 0,
                "stopped": f"callee {callee} registration failed",
                "steps": [],
                "callee_registration": reg.counters,
            }
    callee_workers = [worker_of_port(server, p) for p in ports] if server.reuseport_workers > 1 else None
    if callee_workers:
        log(f"{server.name}: callees {', '.join(callees)} land on workers {callee_workers}")

    hold_s = float(args.call_hold_ms) / 1000
    port_min, port_max = args.media_ports
    media_capacity = (port_max - port_min + 1) // PORTS_PER_CALL

    def budget(rate: int) -> float:
        return step_calls(rate, args) / rate + hold_s + 25

    def run_step(rate: int) -> Step:
        calls = step_calls(rate, args)
        rtp_before = (
            rtpengine_totals(server.helper.port) if server.name == "kamailio" and server.helper else None
        )
        # A fresh UAS per callee and step (on its registered contact) so that its counters are the step's.
        uases = []
        for k, (callee, port) in enumerate(zip(callees, ports, strict=True)):
            share = len(range(k, calls, args.callees))
            if share:
                uases.append(
                    (
                        share,
                        sipp.start(
                            "uas_answer.xml",
                            remote_port=None,
                            local_port=port,
                            extra=[
                                "-m",
                                str(share),
                                "-recv_timeout",
                                "10000",
                                "-timeout",
                                f"{int(budget(rate) + 5)}s",
                            ],
                            tag=f"{server.name}-uas-{callee}-{rate}",
                        ),
                    )
                )
        time.sleep(0.3)
        anchored_sockets = [0]

        def sample() -> None:
            anchored_sockets[0] = max(anchored_sockets[0], udp_sockets(HOST, port_min, port_max).sockets)

        # The CPU over the calls, not over the UASes' last 2 s (their timewait).
        meter = CpuMeter(server, sipp=[handle[0].pid for _, handle in uases])
        proc, stat, err, started = sipp.start(
            "uac_auth_sdp.xml",
            remote_port=server.port,
            local_port=free_udp_port(HOST),
            extra=[
                *SOCKET_PER_CALL,
                "-inf",
                str(callers_csv),
                "-r",
                str(rate),
                "-m",
                str(calls),
                "-d",
                str(args.call_hold_ms),
                "-l",
                str(open_calls_limit(int(rate * (hold_s + 3) * 3))),
                "-recv_timeout",
                "10000",
                "-timeout",
                f"{int(budget(rate))}s",
            ],
            tag=f"{server.name}-uac-{rate}",
        )
        uac = sipp.finish(proc, stat, err, started, budget(rate) + 10, sample=sample)
        cpu = meter.stop()
        # Each UAS ends its last call 2 s after the last BYE (timewait).
        uas_results = [(share, sipp.finish(*handle, timeout=5.0)) for share, handle in uases]
        step = judge(rate, calls, uac, hold_s)
        uas_clean = all(
            r.successful == share and r.failed == 0 and r.retransmissions == 0 for share, r in uas_results
        )
        step.detail["uas"] = [
            {"calls": share, "counters": r.counters, "errors": r.errors} for share, r in uas_results
        ]
        step.detail["cpu"] = cpu
        # Sockets sampled every second while the calls went on: the media ports the
        # server had open (two legs x RTP + RTCP per anchored call).
        step.detail["media_sockets_peak"] = anchored_sockets[0]
        step.detail["anchored_calls_peak"] = anchored_sockets[0] // PORTS_PER_CALL
        anchored_ok = anchored_sockets[0] >= PORTS_PER_CALL
        if rtp_before is not None:
            rtp_after = rtpengine_totals(server.helper.port)  # type: ignore[union-attr]
            sessions = {k: rtp_after[k] - rtp_before[k] for k in RTPENGINE_TOTALS}
            step.detail["rtpengine_sessions"] = sessions
            anchored_ok = anchored_ok and sessions["managedsessions"] >= step.successful
        step.detail["anchored"] = anchored_ok
        step.clean = step.clean and uas_clean and anchored_ok
        # The next rate would need more media ports than the range has: stop here.
        next_rates = [r for r in args.call_rates if r > rate]
        if next_rates and next_rates[0] * (hold_s + 0.5) > media_capacity:
            step.detail["stop_after"] = (
                f"media ports: {next_rates[0]}/s would need about {int(next_rates[0] * (hold_s + 0.5))} "
                f"calls at once, the range (--media-ports) holds {media_capacity}"
            )
        bad_uas = [
            (share, r) for share, r in uas_results if r.successful != share or r.failed or r.retransmissions
        ]
        rtpengine = step.detail.get("rtpengine_sessions")
        step.detail["note"] = (
            f"; media anchored: peak {step.detail['anchored_calls_peak']} calls"
            + (f", rtpengine sessions {rtpengine}" if rtpengine is not None else "")
            + "".join(
                f" (UAS: {r.successful}/{share} ok, {r.failed} failed, {r.retransmissions} retransmissions"
                + (f": {r.errors[0]}" if r.errors else "")
                + ")"
                for share, r in bad_uas[:2]
            )
        )
        return step

    result = ramp(server, args, args.call_rates, deadline, budget, run_step, "INVITE")
    result.update({"hold_ms": args.call_hold_ms, "callees": args.callees, "callee_workers": callee_workers})
    return result


def memory_phase(
    server: Server, sipp: Sipp, args: argparse.Namespace, files: dict[str, Path], deadline: Deadline
) -> dict[str, Any]:
    """RSS/PSS growth per registration, on a server that has served nothing but a warm-up,
    and for the PBX on Redis, the growth of Redis's memory.

    It runs first: after the ramps, the memory freed by their transactions would be
    reused by the registrations and hide their cost.
    """
    count, rate = args.mem_users, args.mem_rate
    budget = count / rate + WARMUP_USERS / WARMUP_RATE + 40 + args.mem_settle_seconds
    if deadline.left() < budget:
        return {"skipped": "time budget (--max-seconds) exhausted"}

    def register(csv_path: Path, users: int, at: int, tag: str, seconds: float) -> SippResult:
        return sipp.run(
            "register_auth.xml",
            remote_port=server.port,
            local_port=free_udp_port(HOST),
            extra=[
                *SOCKET_PER_CALL,
                "-inf",
                str(csv_path),
                "-r",
                str(at),
                "-m",
                str(users),
                "-l",
                str(open_calls_limit(at * 5)),
                "-recv_timeout",
                "5000",
                "-timeout",
                f"{int(seconds)}s",
            ],
            tag=f"{server.name}-{tag}",
            timeout=seconds + 10,
        )

    def redis_memory() -> dict[str, int] | None:
        return server.redis.memory() if server.redis else None

    # Warm-up: first-use allocations (code paths, caches, pools) are not per-user cost.
    warmup = register(files["ramp"], WARMUP_USERS, WARMUP_RATE, "warmup", 30)
    time.sleep(2.0)
    before, redis_before = memory_kb(server.proc.pid), redis_memory()
    log(
        f"{server.name}: registering {count} users at {rate}/s for the memory phase "
        f"(RSS before {before['rss_kb'] / 1024:.1f} MiB in {before['processes']} processes)"
    )
    meter = CpuMeter(server)
    result = register(files["mem"], count, rate, "memory", budget)
    cpu = meter.stop()
    time.sleep(2.0)
    # Right after the storm the server still holds its SIP transactions (RFC 3261: 32 s for
    # a REGISTER over UDP); what stays once they are gone is the cost of a registered user.
    after, redis_after = memory_kb(server.proc.pid), redis_memory()
    time.sleep(args.mem_settle_seconds)
    settled, redis_settled = memory_kb(server.proc.pid), redis_memory()
    registered = result.successful

    def per_user(grown_bytes: float) -> float | None:
        return round(grown_bytes / registered, 1) if registered else None

    def grown(snapshot: dict[str, Any], key: str) -> float:
        return float(snapshot[f"{key}_kb"] - before[f"{key}_kb"]) * 1024

    if result.errors:
        log(f"{server.name}: sipp reported: {result.errors[0]}")
    out: dict[str, Any] = {
        "users": count,
        "rate": rate,
        "warmup_registered": warmup.successful,
        "registered": registered,
        "failed": result.failed,
        "retransmissions": result.retransmissions,
        "cpu": cpu,
        "before": before,
        "after": after,
        "settled": settled,
        "settle_seconds": args.mem_settle_seconds,
        "rss_bytes_per_user_right_after": per_user(grown(after, "rss")),
        "rss_bytes_per_user": per_user(grown(settled, "rss")),
        "pss_bytes_per_user": per_user(grown(settled, "pss")),
        "errors": result.errors,
    }
    message = (
        f"{server.name}: {registered}/{count} registered ({result.retransmissions} retransmissions); "
        f"RSS {before['rss_kb'] / 1024:.1f} -> {after['rss_kb'] / 1024:.1f} MiB = "
        f"{out['rss_bytes_per_user_right_after']} bytes/user right after, "
        f"{settled['rss_kb'] / 1024:.1f} MiB = {out['rss_bytes_per_user']} bytes/user "
        f"{args.mem_settle_seconds:.0f} s later (PSS {out['pss_bytes_per_user']} bytes/user)"
    )
    if server.redis is not None and redis_before and redis_after and redis_settled:
        kinds = server.redis.keys_by_kind()
        out["redis"] = {
            "before": redis_before,
            "after": redis_after,
            "settled": redis_settled,
            "keys_by_kind": kinds,
            "used_bytes_per_user_right_after": per_user(
                redis_after["used_memory"] - redis_before["used_memory"]
            ),
            "used_bytes_per_user": per_user(redis_settled["used_memory"] - redis_before["used_memory"]),
            "rss_bytes_per_user": per_user(
                redis_settled["used_memory_rss"] - redis_before["used_memory_rss"]
            ),
            # What a registration leaves in Redis by kind of key (the nonce-counts expire
            # with their nonce, auth.nonce_ttl after the challenge).
            "location_bytes_per_user": per_user(
                sum(v["bytes"] for k, v in kinds.items() if k.startswith("pbx:loc"))
            ),
            "nonce_count_bytes_per_user": per_user(kinds.get("pbx:nc:", {}).get("bytes", 0)),
        }
        r = out["redis"]
        message += (
            f"; Redis used_memory {redis_before['used_memory'] / 2**20:.1f} -> "
            f"{redis_settled['used_memory'] / 2**20:.1f} MiB = {r['used_bytes_per_user']} bytes/user "
            f"(location {r['location_bytes_per_user']}, nonce-counts {r['nonce_count_bytes_per_user']}), "
            f"{redis_settled['keys']} keys"
        )
    log(message)
    return out


def bench_server(
    server: Server,
    sipp: Sipp,
    args: argparse.Namespace,
    files: dict[str, Path],
    deadline: Deadline,
    out: dict[str, Any],
    memory: bool,
) -> None:
    """Run the phases on one server, filling `out` as they end (so an interrupted run keeps them)."""
    out.update({"label": server.label, "server": server.info, "port": server.port})
    try:
        if "memory" in args.phases and memory:
            out["memory"] = memory_phase(server, sipp, args, files, deadline)
        if "register" in args.phases:
            # Half of what is left for this server, the rest for the calls.
            share = deadline.left() / 2 if "calls" in args.phases else deadline.left()
            out["register"] = register_ramp(server, sipp, args, files["ramp"], Deadline(share, deadline))
        if "calls" in args.phases:
            out["calls"] = call_ramp(server, sipp, args, files["ramp"], deadline)
    finally:
        if server.proc.poll() is not None:
            out["exited"] = server.proc.returncode
            log(
                f"{server.name} exited with {server.proc.returncode} during the run:\n{tail(server.log_path)}"
            )
        out["log_problems"] = log_problems(server.log_path, server.problems_pattern)
        if server.helper is not None and server.helper.name == "rtpengine":
            out["rtpengine_totals"] = rtpengine_totals(server.helper.port)
            out["rtpengine_log_problems"] = log_problems(
                server.helper.log_path, r"\b(ERR|WARNING|CRIT|ALERT)\b"
            )
        if out["log_problems"]["lines"]:
            first = out["log_problems"]["kinds"][0]
            log(
                f"{server.name}: {out['log_problems']['lines']} warning/error lines in its log; "
                f"most frequent ({first['count']}x): {first['example']}"
            )


# ---------------------------------------------------------------- report


def _get(results: dict[str, Any], server: str, path: tuple[str, ...]) -> float | None:
    value: Any = results.get(server, {})
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


RATE_ROWS = (
    ("REGISTER+auth, highest clean rate (/s)", ("register", "max_clean_rate")),
    ("calls with SDP (media anchored), highest clean rate (calls/s)", ("calls", "max_clean_rate")),
)
MEMORY_ROWS = (
    ("RSS per registration, server's processes (bytes)", ("memory", "rss_bytes_per_user")),
    ("PSS per registration, server's processes (bytes)", ("memory", "pss_bytes_per_user")),
    ("Redis used_memory per registration (bytes)", ("memory", "redis", "used_bytes_per_user")),
    ("  of it: location (bytes)", ("memory", "redis", "location_bytes_per_user")),
    ("  of it: nonce-counts, for auth.nonce_ttl (bytes)", ("memory", "redis", "nonce_count_bytes_per_user")),
)


MEMORY_RATIO = "memory.pss_and_redis_bytes_per_user"


def pss_and_redis(results: dict[str, Any], server: str) -> float | None:
    """The whole cost of a registration: the server's PSS growth plus Redis's."""
    pss = _get(results, server, ("memory", "pss_bytes_per_user"))
    redis = _get(results, server, ("memory", "redis", "used_bytes_per_user"))
    return None if pss is None else pss + (redis or 0)


def ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for server in results:
        if not server.startswith("pbx"):
            continue
        row: dict[str, float | None] = {}
        for _, path in RATE_ROWS:
            pbx, kam = _get(results, server, path), _get(results, "kamailio", path)
            row[".".join(path)] = round(pbx / kam, 3) if pbx is not None and kam else None
        pbx, kam = pss_and_redis(results, server), pss_and_redis(results, "kamailio")
        row[MEMORY_RATIO] = round(pbx / kam, 2) if pbx is not None and kam else None
        out[server] = row
    return out


def goal_met(results: dict[str, Any], server: str, register_ratio: float | None) -> bool | None:
    """Whether the PBX registers at >= REGISTER_GOAL_RATIO of Kamailio's rate; None when the
    ramps cannot tell (a server clean at the top of its ramp only gives a bound)."""
    if register_ratio is None:
        return None
    kam_top = bool(results.get("kamailio", {}).get("register", {}).get("at_ramp_top"))
    pbx_top = bool(results.get(server, {}).get("register", {}).get("at_ramp_top"))
    reached = register_ratio >= REGISTER_GOAL_RATIO
    if kam_top and pbx_top:
        return None
    if kam_top:  # the true ratio is at most register_ratio
        return None if reached else False
    if pbx_top:  # the true ratio is at least register_ratio
        return True if reached else None
    return reached


def print_table(results: dict[str, Any], ratio: dict[str, dict[str, float | None]]) -> None:
    servers = [s for s in results if isinstance(results[s], dict) and "label" in results[s]]
    if not servers:
        return

    def at_top(server: str, section: str) -> bool:
        return bool(results.get(server, {}).get(section, {}).get("at_ramp_top"))

    def cell(value: float | None, prefix: str = "", fmt: str = "{:.0f}") -> str:
        return "-" if value is None else prefix + fmt.format(value)

    labels = [label for label, _ in (*RATE_ROWS, *MEMORY_ROWS)] + ["PSS + Redis per registration (bytes)"]
    width = max(len(label) for label in labels)
    print()
    print(f"{'':{width}}" + "".join(f"  {results[s]['label']:>11}" for s in servers))
    for label, path in RATE_ROWS:
        print(
            f"{label:{width}}"
            + "".join(
                f"  {cell(_get(results, s, path), '>=' if at_top(s, path[0]) else ''):>11}" for s in servers
            )
        )
        kam_top = at_top("kamailio", path[0])
        cells = []
        for s in servers:
            if s == "kamailio" or s not in ratio:
                cells.append("")
                continue
            prefix = {(True, False): "<=", (False, True): ">=", (True, True): "~"}.get(
                (kam_top, at_top(s, path[0])), ""
            )
            cells.append(cell(ratio[s].get(".".join(path)), prefix, "{:.2f}"))
        print(f"{'  PBX/Kamailio':{width}}" + "".join(f"  {c:>11}" for c in cells))
    for label, memory_path in MEMORY_ROWS:
        print(f"{label:{width}}" + "".join(f"  {cell(_get(results, s, memory_path)):>11}" for s in servers))
    print(
        f"{'PSS + Redis per registration (bytes)':{width}}"
        + "".join(f"  {cell(pss_and_redis(results, s)):>11}" for s in servers)
    )
    print(
        f"{'  PBX/Kamailio':{width}}"
        + "".join(
            f"  {'' if s not in ratio else cell(ratio[s][MEMORY_RATIO], '', '{:.2f}'):>11}" for s in servers
        )
    )
    print()
    for s in servers:
        reg = ratio.get(s, {}).get("register.max_clean_rate")
        if reg is not None:
            met = {True: "met", False: "NOT met", None: "undetermined (raise --register-rates)"}[
                goal_met(results, s, reg)
            ]
            print(
                f"goal, {results[s]['label']}: REGISTER+auth rate >= {REGISTER_GOAL_RATIO:.0%} "
                f"of Kamailio's: {met}"
            )
    for s in servers:
        for section in ("register", "calls"):
            stopped = results[s].get(section, {}).get("stopped")
            if stopped:
                print(f"{results[s]['label']} {section}: ramp stopped: {stopped}")
    if any(at_top(s, section) for s in servers for section in ("register", "calls")):
        print(">=: clean at the top of the ramp (or of what the media ports allow): the limit is higher")
    print()


# ---------------------------------------------------------------- main


def parse_rates(text: str) -> list[int]:
    rates = sorted({int(r) for r in text.split(",") if r.strip()})
    if not rates or rates[0] <= 0:
        raise argparse.ArgumentTypeError("rates must be positive integers, comma-separated")
    return rates


def parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_phases(text: str) -> set[str]:
    phases = {p.strip() for p in text.split(",") if p.strip()}
    unknown = phases - {"register", "calls", "memory"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown phases: {', '.join(sorted(unknown))}")
    return phases


def parse_variants(text: str) -> list[PbxVariant]:
    """`1,2,4`: that many Call Manager workers on Redis each; `memory`: one on the
    in-process store."""
    variants = []
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        if item == "memory":
            variant = PbxVariant(1, redis=False)
        elif item.isdigit() and 1 <= int(item) <= 64:
            variant = PbxVariant(int(item), redis=True)
        else:
            raise argparse.ArgumentTypeError(f"expected worker counts (1-64) or 'memory', got {item!r}")
        if variant not in variants:
            variants.append(variant)
    if not variants:
        raise argparse.ArgumentTypeError("no worker count")
    return variants


def parse_port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        port_min, port_max = int(low), int(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN-MAX, got {text!r}") from None
    if not sep or not 1024 <= port_min < port_max <= 65535 or port_max - port_min < 99:
        raise argparse.ArgumentTypeError(
            f"expected a range of at least 100 ports in 1024-65535, got {text!r}"
        )
    return port_min, port_max


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="REGISTER and call rates and memory per registration, the PBX with 1, 2, 4 "
        "Call Manager workers side by side with Kamailio (see bench/README.md)",
    )
    p.add_argument(
        "--only",
        choices=("both", "kamailio", "pbx"),
        default="both",
        help="which servers to run (default: both)",
    )
    p.add_argument(
        "--phases",
        type=parse_phases,
        default={"register", "calls", "memory"},
        help="comma-separated subset of register,calls,memory (default: all)",
    )
    p.add_argument(
        "--pbx-workers",
        type=parse_variants,
        default=parse_variants(DEFAULT_PBX_WORKERS),
        help="Call Manager worker counts to measure, each on a fresh Redis; 'memory': one worker on "
        f"the in-process store (default: {DEFAULT_PBX_WORKERS})",
    )
    p.add_argument(
        "--mem-workers",
        type=parse_variants,
        default=None,
        help="the worker counts (of --pbx-workers) whose memory phase runs (default: all of them)",
    )
    p.add_argument("--output", type=Path, default=Path("sip_rates.json"), help="JSON results file")
    p.add_argument(
        "--pbx-cmd",
        default="pbx",
        help="how to run the pbx command line, e.g. 'python -m pbx_services.cli' (default: pbx)",
    )
    p.add_argument(
        "--pbx-env",
        type=parse_env,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment setting for the pbx commands, repeatable (default: "
        + " ".join(f"{k}={v}" for k, v in PBX_BENCH_ENV.items())
        + ")",
    )
    p.add_argument("--pbx-port", type=int, default=0, help="PBX SIP port (default: a free one)")
    p.add_argument(
        "--pbx-start-timeout", type=float, default=60.0, help="seconds for the PBX to answer OPTIONS"
    )
    p.add_argument("--import-timeout", type=float, default=600.0, help="seconds for `pbx user import`")
    p.add_argument("--kamailio-bin", default="kamailio")
    p.add_argument("--kamailio-port", type=int, default=0, help="Kamailio SIP port (default: a free one)")
    p.add_argument("--kamailio-children", type=int, default=4, help="Kamailio UDP workers (default: 4)")
    p.add_argument("--rtpengine-bin", default="rtpengine")
    p.add_argument("--rtpengine-threads", type=int, default=2, help="rtpengine's threads (default: 2)")
    p.add_argument(
        "--rtpengine-log-level",
        type=int,
        default=5,
        help="rtpengine's log level (default: 5, notices; 6 logs every offer, answer and delete)",
    )
    p.add_argument("--redis-bin", default="redis-server")
    p.add_argument("--sipp-bin", default="sipp")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="the password of every benchmark user")
    p.add_argument(
        "--media-ports",
        type=parse_port_range,
        default=parse_port_range(DEFAULT_MEDIA_PORTS),
        help=f"RTP ports of rtpengine and of the PBX's media server (default: {DEFAULT_MEDIA_PORTS})",
    )
    p.add_argument(
        "--register-rates",
        type=parse_rates,
        default=parse_rates(DEFAULT_REGISTER_RATES),
        help=f"REGISTER ramp, registrations/s (default: {DEFAULT_REGISTER_RATES})",
    )
    p.add_argument(
        "--call-rates",
        type=parse_rates,
        default=parse_rates(DEFAULT_CALL_RATES),
        help=f"call ramp, calls/s (default: {DEFAULT_CALL_RATES})",
    )
    p.add_argument(
        "--callees",
        type=int,
        default=4,
        help="registered callees (a sipp UAS each) the calls are spread over (default: 4)",
    )
    p.add_argument("--step-seconds", type=float, default=3.0, help="length of each ramp step (default: 3)")
    p.add_argument(
        "--max-step-calls", type=int, default=60000, help="bound on the calls of one step (default: 60000)"
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times an unclean step is run again before the ramp stops (default: 1)",
    )
    p.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before a ramp and a retried step, wait until other work uses less than this %% of a core "
        "(default: 25)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=10.0, help="but at most this many seconds (default: 10)"
    )
    p.add_argument("--call-hold-ms", type=int, default=1000, help="time between ACK and BYE (default: 1000)")
    p.add_argument("--mem-users", type=int, default=100000, help="users registered for the memory phase")
    p.add_argument(
        "--mem-settle-seconds",
        type=float,
        default=40.0,
        help="wait before the memory reading that counts, past the SIP transactions' 32 s (default: 40)",
    )
    p.add_argument(
        "--mem-rate",
        type=int,
        default=400,
        help="their registration rate (default: 400/s, under every server's clean rate: one PBX worker "
        "on Redis is clean to about 500/s)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=2700.0,
        help="time budget of the whole run, shared out equally among the servers still to run; "
        "steps that do not fit are skipped (default: 2700)",
    )
    p.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary directory (logs, sipp stats)"
    )
    args = p.parse_args(argv)
    if args.max_step_calls > RAMP_USER_MAX:
        p.error(f"--max-step-calls is at most {RAMP_USER_MAX}")
    if not 1 <= args.mem_users <= 1_000_000:
        p.error("--mem-users must be between 1 and 1000000")
    if not 1 <= args.callees <= MAX_CALLEES:
        p.error(f"--callees must be between 1 and {MAX_CALLEES}")
    if args.mem_workers is None:
        args.mem_workers = args.pbx_workers
    elif not set(args.mem_workers) <= set(args.pbx_workers):
        p.error("--mem-workers must be among --pbx-workers")
    return args


def check_tools(args: argparse.Namespace) -> None:
    needed = [args.sipp_bin]
    if args.only in ("both", "kamailio"):
        needed += [args.kamailio_bin, args.rtpengine_bin]
    if args.only in ("both", "pbx") and any(v.redis for v in args.pbx_workers):
        needed.append(args.redis_bin)
    require_tools(needed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()

    deadline = Deadline(args.max_seconds)
    workdir = Path(tempfile.mkdtemp(prefix="sip-rates-"))
    procs = Processes()
    results: dict[str, Any] = {}
    exit_code = 0
    try:
        check_tools(args)
        ramp_count = min(
            max(step_calls(r, args) for r in args.register_rates + args.call_rates), RAMP_USER_MAX
        )
        ramp_users = [str(RAMP_USER_BASE + i) for i in range(ramp_count)]
        callees = [str(CALLEE_BASE + k) for k in range(args.callees)]
        mem_users = [str(MEM_USER_BASE + i) for i in range(args.mem_users)]
        files = {"ramp": workdir / "ramp-users.csv", "mem": workdir / "mem-users.csv"}
        write_sipp_users(files["ramp"], ramp_users, args.password, callees=args.callees)
        write_sipp_users(files["mem"], mem_users, args.password)
        pbx_users = workdir / "pbx-users.csv"
        write_pbx_users(pbx_users, [*ramp_users, *callees, *mem_users], args.password)
        sipp = Sipp(procs, args.sipp_bin, workdir)

        runs: list[tuple[str, PbxVariant | None]] = []
        if args.only in ("both", "kamailio"):
            runs.append(("kamailio", None))
        if args.only in ("both", "pbx"):
            runs += [(variant.name, variant) for variant in args.pbx_workers]
        for index, (name, variant) in enumerate(runs):
            # Each server gets an equal share of what is left, so that a slow one does not
            # leave the last ones without time.
            share = Deadline(deadline.left() / (len(runs) - index), deadline)
            if variant is None:
                server = start_kamailio(procs, args, workdir)
                memory = True
            else:
                server = start_pbx(
                    procs, args, workdir, variant, pbx_users, len(ramp_users) + len(callees) + len(mem_users)
                )
                memory = variant in args.mem_workers
            try:
                bench_server(server, sipp, args, files, share, results.setdefault(name, {}), memory)
            finally:
                stop_server(procs, server)
    except BenchError as exc:
        log(f"error: {exc}")
        results["error"] = str(exc)
        exit_code = 2
    except (KeyboardInterrupt, Terminated) as exc:
        log(f"interrupted ({type(exc).__name__} {exc}): stopping everything")
        results["error"] = "interrupted"
        exit_code = 130
    finally:
        ignore_stop_signals()
        procs.stop_all()
        ratio = ratios(results)
        report = {
            "benchmark": "sip_rates",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {k: _jsonable(v) for k, v in vars(args).items()},
            "results": results,
            "ratios_pbx_over_kamailio": ratio,
            "goal": {
                "register_ratio_min": REGISTER_GOAL_RATIO,
                "met": {s: goal_met(results, s, r.get("register.max_clean_rate")) for s, r in ratio.items()},
            },
            "workdir": str(workdir) if args.keep_workdir else None,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print_table(results, ratio)
        log(f"results written to {args.output}")
        if args.keep_workdir:
            log(f"logs and sipp statistics kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


def _jsonable(value: Any) -> Any:
    if isinstance(value, set):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, PbxVariant):
        return value.name
    return value


if __name__ == "__main__":
    sys.exit(main())

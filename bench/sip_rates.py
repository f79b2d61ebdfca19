#!/usr/bin/env python3
"""SIP rates benchmark: the PBX's Call Manager side by side with Kamailio.

One run starts Kamailio (bench/kamailio/kamailio.cfg) as the reference and the
PBX (`pbx init`, `pbx user import`, `pbx allinone`), then measures on each:

- memory (first, on a fresh server): registers --mem-users users and reports
  the growth of the RSS (and PSS) of all the server's processes per user;
- REGISTER with digest auth: sipp ramps the rate (distinct users per call);
  the result is the highest rate whose step had no failed call and no
  retransmission and ran at the rate asked;
- INVITE/ACK/BYE with auth: a sipp UAS registered as an extension answers,
  a sipp UAC calls it at ramping rates; the same "clean" rule.

It prints a table (PBX/Kamailio ratios) and writes the results as JSON to
--output. Everything it starts is stopped by pid on exit, Ctrl-C or error.
Python 3.11 stdlib only; needs sipp and kamailio (scripts/install-test-deps.sh).
See bench/README.md.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    BenchError,
    Processes,
    Terminated,
    ignore_stop_signals,
    log,
    process_tree,
    raise_on_stop_signals,
    require_tools,
    tail,
)

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "tests" / "data" / "sipp"
KAMAILIO_CFG = Path(__file__).resolve().parent / "kamailio" / "kamailio.cfg"

HOST = "127.0.0.1"
SIPP_BUFF_SIZE = "4194304"
DEFAULT_PASSWORD = "bench-secret"

# Extension ranges: the register/call ramp users, the callee, and the users of
# the memory phase (disjoint, so that the memory phase starts from none of them
# registered).
RAMP_USER_BASE = 100000
RAMP_USER_MAX = 99999
CALLEE = "200000"
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

WARMUP_USERS = 500
WARMUP_RATE = 500

REGISTER_GOAL_RATIO = 0.5
DEFAULT_REGISTER_RATES = "500,1000,2000,4000,8000,12000,16000,20000,24000,28000,32000"
DEFAULT_CALL_RATES = "100,250,500,1000,2000,3000,4000,5000,6000,8000"
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


def memory_kb(root: int) -> dict[str, int]:
    """Summed VmRSS and Pss (kB) of root and its descendants."""
    pids = process_tree(root)
    return {
        "processes": len(pids),
        "rss_kb": sum(_proc_kb(f"/proc/{pid}/status", "VmRSS:") for pid in pids),
        "pss_kb": sum(_proc_kb(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in pids),
    }


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def sip_ping(port: int, timeout: float) -> str | None:
    """Send OPTIONS to HOST:port; return the status line of the answer, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
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
        first = data.split(b"\r\n", 1)[0].decode(errors="replace")
        return first if first.startswith("SIP/2.0 ") else None


def wait_answering(
    name: str, proc: subprocess.Popen[bytes], port: int, timeout: float, log_path: Path
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode} before answering:\n{tail(log_path)}")
        status = sip_ping(port, 0.5)
        if status:
            return status
    raise BenchError(
        f"{name} did not answer OPTIONS on {HOST}:{port} within {timeout:.0f} s:\n{tail(log_path)}"
    )


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)


def start_kamailio(procs: Processes, args: argparse.Namespace, workdir: Path) -> Server:
    rundir = workdir / "kamailio"
    rundir.mkdir()
    port = args.kamailio_port or free_udp_port()
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
    log(f"starting Kamailio on {HOST}:{port} ({args.kamailio_children} children)")
    proc = procs.start("kamailio", cmd, log_path=log_path, cwd=rundir)
    status = wait_answering("kamailio", proc, port, 15.0, log_path)
    log(f"Kamailio answers OPTIONS: {status}")
    version = subprocess.run([args.kamailio_bin, "-v"], capture_output=True, text=True, timeout=10)
    return Server(
        "kamailio",
        port,
        proc,
        log_path,
        {
            "cmd": cmd,
            "version": version.stdout.splitlines()[0] if version.stdout else "",
            "children": args.kamailio_children,
            "options_answer": status,
        },
    )


def write_pbx_users(path: Path, extensions: list[str], password: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["extension", "password"])
        writer.writerows([ext, password] for ext in extensions)


def start_pbx(procs: Processes, args: argparse.Namespace, workdir: Path, extensions: list[str]) -> Server:
    datadir = workdir / "pbx-data"
    datadir.mkdir()
    pbx = shlex.split(args.pbx_cmd)
    pbx_env = dict(PBX_BENCH_ENV)
    pbx_env.update(args.pbx_env)
    env = {**os.environ, **pbx_env}
    log_path = workdir / "pbx.log"

    def run(step: str, cmd: list[str], timeout: float) -> None:
        log(f"{step}: {shlex.join(cmd)}")
        proc = procs.start(f"pbx {step}", cmd, log_path=log_path, env=env, cwd=workdir)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.stop(proc)
            raise BenchError(f"`{shlex.join(cmd)}` took more than {timeout:.0f} s") from None
        if rc != 0:
            raise BenchError(f"`{shlex.join(cmd)}` exited with {rc}:\n{tail(log_path)}")

    users_csv = workdir / "pbx-users.csv"
    write_pbx_users(users_csv, extensions, args.password)
    run("init", [*pbx, "init", "--data-dir", str(datadir)], 120)
    started = time.monotonic()
    run(
        "user import",
        [*pbx, "user", "import", str(users_csv), "--data-dir", str(datadir)],
        args.import_timeout,
    )
    import_seconds = time.monotonic() - started

    port = args.pbx_port or free_udp_port()
    cmd = [*pbx, "allinone", "--data-dir", str(datadir), "--host", HOST, "--sip-port", str(port)]
    log(
        f"starting PBX on {HOST}:{port}: {' '.join(f'{k}={v}' for k, v in pbx_env.items())} {shlex.join(cmd)}"
    )
    proc = procs.start("pbx allinone", cmd, log_path=log_path, env=env, cwd=workdir)
    status = wait_answering("pbx", proc, port, args.pbx_start_timeout, log_path)
    log(f"PBX answers OPTIONS: {status}")
    return Server(
        "pbx",
        port,
        proc,
        log_path,
        {
            "cmd": cmd,
            "env": pbx_env,
            "users_imported": len(extensions),
            "import_seconds": round(import_seconds, 1),
            "options_answer": status,
        },
    )


# ---------------------------------------------------------------- sipp


def write_sipp_users(path: Path, extensions: list[str], password: str) -> None:
    """sipp injection file: [field0] user, [field1] the whole [authentication] keyword."""
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for ext in extensions:
            f.write(f"{ext};[authentication username={ext} password={password}]\n")


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


STAT_COLUMNS = (
    "OutgoingCall(C)",
    "IncomingCall(C)",
    "SuccessfulCall(C)",
    "FailedCall(C)",
    "Retransmissions(C)",
    "FailedMaxUDPRetrans(C)",
    "FailedUnexpectedMessage(C)",
    "FailedTimeoutOnRecv(C)",
    "OutOfCallMsgs(C)",
    "DeadCallMsgs(C)",
    "Warnings(C)",
    "FatalErrors(C)",
)


def read_stat(path: Path) -> dict[str, int]:
    """Cumulative counters from the last row of a sipp -trace_stat CSV."""
    try:
        rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    except OSError:
        return {}
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    counters = {}
    for name, value in zip(header, last, strict=False):
        if name in STAT_COLUMNS:
            try:
                counters[name] = int(value)
            except ValueError:
                pass
    return counters


# sipp's -error_file: "The following events occurred:", then events that each start with
# "DATE\tTIME\tEPOCH: " (and may span lines: a received message is quoted in full).
SIPP_EVENT = re.compile(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ")


def read_errors(path: Path, keep: int = 5) -> list[str]:
    """The first events of a sipp error file, each cut to its first line, and how many there were."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    events = [e.strip() for e in SIPP_EVENT.split(text)[1:] if e.strip()]
    summary = [e.splitlines()[0][:200] for e in events[:keep]]
    if len(events) > keep:
        summary.append(f"... {len(events)} events in all")
    return summary


def open_calls_limit(wanted: int) -> int:
    """sipp's -l: enough for the rate, under its open-files limit (20,000 here)."""
    return max(1000, min(wanted, 15000))


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
        self, proc: subprocess.Popen[bytes], stat: Path, err: Path, started: float, timeout: float
    ) -> SippResult:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"sipp (pid {proc.pid}) still running after {timeout:.0f} s: stopping it")
        wall = time.monotonic() - started
        self.procs.stop(proc)
        return SippResult(proc.returncode, wall, read_stat(stat), read_errors(err))

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


# ---------------------------------------------------------------- phases


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
    return (
        f"rate {step.rate}/s: {step.successful}/{step.calls} ok, {step.failed} failed, "
        f"{step.retransmissions} retransmissions, completed at {step.achieved_rate:.0f}/s -> {verdict}"
        + (f" (sipp: {errors[0]})" if errors and not step.clean else "")
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
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def register_ramp(
    server: Server, sipp: Sipp, args: argparse.Namespace, users_csv: Path, deadline: Deadline
) -> dict[str, Any]:
    settle(server)
    steps: list[Step] = []
    stopped = None
    for rate in args.register_rates:
        calls = step_calls(rate, args)
        budget = calls / rate + 20
        if deadline.left() < budget:
            stopped = "time budget (--max-seconds) exhausted"
            break
        result = sipp.run(
            "register_auth.xml",
            remote_port=server.port,
            local_port=free_udp_port(),
            extra=[
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
                f"{int(budget)}s",
            ],
            tag=f"{server.name}-register-{rate}",
            timeout=budget + 10,
        )
        step = judge(rate, calls, result, 0.0)
        steps.append(step)
        log(f"{server.name} REGISTER {describe(step)}")
        if not step.clean:
            stopped = f"first unclean step at {rate}/s"
            break
        settle(server)
    best = max((s.rate for s in steps if s.clean), default=0)
    return {
        "max_clean_rate": best,
        "at_ramp_top": at_ramp_top(steps, args.register_rates),
        "stopped": stopped,
        "steps": [asdict(s) for s in steps],
    }


def call_ramp(
    server: Server, sipp: Sipp, args: argparse.Namespace, callers_csv: Path, deadline: Deadline
) -> dict[str, Any]:
    settle(server)
    uas_port = free_udp_port()
    reg = sipp.run(
        "register_callee.xml",
        remote_port=server.port,
        local_port=uas_port,
        extra=["-s", CALLEE, "-ap", args.password, "-m", "1", "-recv_timeout", "5000", "-timeout", "20s"],
        tag=f"{server.name}-register-callee",
        timeout=30,
    )
    if reg.successful != 1:
        log(
            f"{server.name}: the callee {CALLEE} did not register "
            f"({reg.counters}, {reg.errors}): no call phase"
        )
        return {
            "max_clean_rate": 0,
            "stopped": "callee registration failed",
            "steps": [],
            "callee_registration": reg.counters,
        }

    hold_s = args.call_hold_ms / 1000
    steps: list[Step] = []
    stopped = None
    for rate in args.call_rates:
        calls = step_calls(rate, args)
        budget = calls / rate + hold_s + 25
        if deadline.left() < budget:
            stopped = "time budget (--max-seconds) exhausted"
            break
        # A fresh UAS per step (on the registered contact) so that its counters are the step's.
        uas, uas_stat, uas_err, uas_started = sipp.start(
            "uas_answer.xml",
            remote_port=None,
            local_port=uas_port,
            extra=["-m", str(calls), "-recv_timeout", "10000", "-timeout", f"{int(budget + 5)}s"],
            tag=f"{server.name}-uas-{rate}",
        )
        time.sleep(0.3)
        uac = sipp.run(
            "uac_auth.xml",
            remote_port=server.port,
            local_port=free_udp_port(),
            extra=[
                "-inf",
                str(callers_csv),
                "-s",
                CALLEE,
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
                f"{int(budget)}s",
            ],
            tag=f"{server.name}-uac-{rate}",
            timeout=budget + 10,
        )
        # The UAS ends its last call 2 s after the last BYE (timewait).
        uas_result = sipp.finish(uas, uas_stat, uas_err, uas_started, timeout=5.0)
        step = judge(rate, calls, uac, hold_s)
        uas_clean = (
            uas_result.successful == calls and uas_result.failed == 0 and uas_result.retransmissions == 0
        )
        step.detail["uas"] = {"counters": uas_result.counters, "errors": uas_result.errors}
        step.clean = step.clean and uas_clean
        steps.append(step)
        log(
            f"{server.name} INVITE {describe(step)}"
            + (
                ""
                if uas_clean
                else f" (UAS: {uas_result.successful} ok, {uas_result.failed} failed, "
                f"{uas_result.retransmissions} retransmissions)"
            )
        )
        if not step.clean:
            stopped = f"first unclean step at {rate}/s"
            break
        settle(server)
    best = max((s.rate for s in steps if s.clean), default=0)
    return {
        "max_clean_rate": best,
        "at_ramp_top": at_ramp_top(steps, args.call_rates),
        "stopped": stopped,
        "hold_ms": args.call_hold_ms,
        "steps": [asdict(s) for s in steps],
    }


def memory_phase(
    server: Server, sipp: Sipp, args: argparse.Namespace, files: dict[str, Path], deadline: Deadline
) -> dict[str, Any]:
    """RSS/PSS growth per registration, on a server that has served nothing but a warm-up.

    It runs first: after the ramps, the memory freed by their transactions would be
    reused by the registrations and hide their cost.
    """
    count, rate = args.mem_users, args.mem_rate
    budget = count / rate + WARMUP_USERS / WARMUP_RATE + 40 + args.mem_settle_seconds
    if deadline.left() < budget:
        return {"skipped": "time budget (--max-seconds) exhausted"}
    # Warm-up: first-use allocations (code paths, caches, pools) are not per-user cost.
    warmup = sipp.run(
        "register_auth.xml",
        remote_port=server.port,
        local_port=free_udp_port(),
        extra=[
            "-inf",
            str(files["ramp"]),
            "-r",
            str(WARMUP_RATE),
            "-m",
            str(WARMUP_USERS),
            "-recv_timeout",
            "5000",
            "-timeout",
            "30s",
        ],
        tag=f"{server.name}-warmup",
        timeout=40,
    )
    time.sleep(2.0)
    before = memory_kb(server.proc.pid)
    log(
        f"{server.name}: registering {count} users at {rate}/s for the memory phase "
        f"(RSS before {before['rss_kb'] / 1024:.1f} MiB in {before['processes']} processes)"
    )
    result = sipp.run(
        "register_auth.xml",
        remote_port=server.port,
        local_port=free_udp_port(),
        extra=[
            "-inf",
            str(files["mem"]),
            "-r",
            str(rate),
            "-m",
            str(count),
            "-l",
            str(open_calls_limit(rate * 5)),
            "-recv_timeout",
            "5000",
            "-timeout",
            f"{int(budget)}s",
        ],
        tag=f"{server.name}-memory",
        timeout=budget + 10,
    )
    time.sleep(2.0)
    # Right after the storm the server still holds its SIP transactions (RFC 3261: 32 s for
    # a REGISTER over UDP); what stays once they are gone is the cost of a registered user.
    after = memory_kb(server.proc.pid)
    time.sleep(args.mem_settle_seconds)
    settled = memory_kb(server.proc.pid)
    registered = result.successful

    def per_user(snapshot: dict[str, int], key: str) -> float | None:
        grown = snapshot[f"{key}_kb"] - before[f"{key}_kb"]
        return round(grown * 1024 / registered, 1) if registered else None

    if result.errors:
        log(f"{server.name}: sipp reported: {result.errors[0]}")
    log(
        f"{server.name}: {registered}/{count} registered; RSS {before['rss_kb'] / 1024:.1f} -> "
        f"{after['rss_kb'] / 1024:.1f} MiB = {per_user(after, 'rss')} bytes/user right after, "
        f"{settled['rss_kb'] / 1024:.1f} MiB = {per_user(settled, 'rss')} bytes/user "
        f"{args.mem_settle_seconds:.0f} s later (PSS {per_user(settled, 'pss')} bytes/user)"
    )
    return {
        "users": count,
        "rate": rate,
        "warmup_registered": warmup.successful,
        "registered": registered,
        "failed": result.failed,
        "retransmissions": result.retransmissions,
        "before": before,
        "after": after,
        "settled": settled,
        "settle_seconds": args.mem_settle_seconds,
        "rss_bytes_per_user_right_after": per_user(after, "rss"),
        "rss_bytes_per_user": per_user(settled, "rss"),
        "pss_bytes_per_user": per_user(settled, "pss"),
        "errors": result.errors,
    }


def bench_server(
    server: Server,
    sipp: Sipp,
    args: argparse.Namespace,
    files: dict[str, Path],
    deadline: Deadline,
    out: dict[str, Any],
) -> None:
    """Run the phases on one server, filling `out` as they end (so an interrupted run keeps them)."""
    out.update({"server": server.info, "port": server.port})
    if "memory" in args.phases:
        out["memory"] = memory_phase(server, sipp, args, files, deadline)
    if "register" in args.phases:
        out["register"] = register_ramp(server, sipp, args, files["ramp"], deadline)
    if "calls" in args.phases:
        out["calls"] = call_ramp(server, sipp, args, files["ramp"], deadline)
    if server.proc.poll() is not None:
        out["exited"] = server.proc.returncode
        log(f"{server.name} exited with {server.proc.returncode} during the run:\n{tail(server.log_path)}")


# ---------------------------------------------------------------- report


ROWS = (
    ("REGISTER+auth, highest clean rate (/s)", ("register", "max_clean_rate")),
    ("INVITE/ACK/BYE, highest clean rate (calls/s)", ("calls", "max_clean_rate")),
    ("RSS per registered user (bytes)", ("memory", "rss_bytes_per_user")),
    ("PSS per registered user (bytes)", ("memory", "pss_bytes_per_user")),
)


def _get(results: dict[str, Any], server: str, path: tuple[str, str]) -> float | None:
    value = results.get(server, {}).get(path[0], {}).get(path[1])
    return value if isinstance(value, int | float) else None


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for _, path in ROWS:
        pbx, kam = _get(results, "pbx", path), _get(results, "kamailio", path)
        out[".".join(path)] = round(pbx / kam, 3) if pbx is not None and kam else None
    return out


def goal_met(results: dict[str, Any], register_ratio: float | None) -> bool | None:
    """Whether the PBX registers at >= REGISTER_GOAL_RATIO of Kamailio's rate; None when the
    ramps cannot tell (a server clean at the top of its ramp only gives a bound)."""
    if register_ratio is None:
        return None
    kam_top = bool(results.get("kamailio", {}).get("register", {}).get("at_ramp_top"))
    pbx_top = bool(results.get("pbx", {}).get("register", {}).get("at_ramp_top"))
    reached = register_ratio >= REGISTER_GOAL_RATIO
    if kam_top and pbx_top:
        return None
    if kam_top:  # the true ratio is at most register_ratio
        return None if reached else False
    if pbx_top:  # the true ratio is at least register_ratio
        return True if reached else None
    return reached


def print_table(results: dict[str, Any], ratio: dict[str, float | None]) -> None:
    def at_top(server: str, section: str) -> bool:
        return bool(results.get(server, {}).get(section, {}).get("at_ramp_top"))

    def cell(value: float | None, prefix: str = "", fmt: str = "{:.0f}") -> str:
        return "-" if value is None else prefix + fmt.format(value)

    width = max(len(label) for label, _ in ROWS)
    print()
    print(f"{'':{width}}  {'kamailio':>10}  {'pbx':>10}  {'pbx/kamailio':>12}")
    for label, path in ROWS:
        kam, pbx = _get(results, "kamailio", path), _get(results, "pbx", path)
        # A server clean at the top of the ramp has a limit above it: its value is a lower bound.
        kam_top, pbx_top = at_top("kamailio", path[0]), at_top("pbx", path[0])
        ratio_prefix = {(True, False): "<=", (False, True): ">=", (True, True): "~"}.get(
            (kam_top, pbx_top), ""
        )
        kam_cell, pbx_cell = cell(kam, ">=" if kam_top else ""), cell(pbx, ">=" if pbx_top else "")
        ratio_cell = cell(ratio[".".join(path)], ratio_prefix, "{:.2f}")
        print(f"{label:{width}}  {kam_cell:>10}  {pbx_cell:>10}  {ratio_cell:>12}")
    reg = ratio["register.max_clean_rate"]
    if reg is not None:
        met = {True: "met", False: "NOT met", None: "undetermined (raise --register-rates)"}[
            goal_met(results, reg)
        ]
        print(f"\ngoal: PBX REGISTER+auth rate >= {REGISTER_GOAL_RATIO:.0%} of Kamailio's: {met} ({reg:.2f})")
    if any(at_top(server, section) for server in ("kamailio", "pbx") for section in ("register", "calls")):
        print(">=: clean at the top of the ramp, so the limit is higher (see --register-rates, --call-rates)")
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="REGISTER and call rates and memory per registration, "
        "the PBX side by side with Kamailio (see bench/README.md)",
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
    p.add_argument("--sipp-bin", default="sipp")
    p.add_argument("--password", default=DEFAULT_PASSWORD, help="the password of every benchmark user")
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
    p.add_argument("--step-seconds", type=float, default=3.0, help="length of each ramp step (default: 3)")
    p.add_argument(
        "--max-step-calls", type=int, default=60000, help="bound on the calls of one step (default: 60000)"
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
        default=1000,
        help="their registration rate (default: 1000/s, under both servers' clean rates)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="time budget of the whole run; steps that do not fit are skipped (default: 1800)",
    )
    p.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary directory (logs, sipp stats)"
    )
    args = p.parse_args(argv)
    if args.max_step_calls > RAMP_USER_MAX:
        p.error(f"--max-step-calls is at most {RAMP_USER_MAX}")
    if not 1 <= args.mem_users <= 1_000_000:
        p.error("--mem-users must be between 1 and 1000000")
    return args


def check_tools(args: argparse.Namespace) -> None:
    needed = [args.sipp_bin]
    if args.only in ("both", "kamailio"):
        needed.append(args.kamailio_bin)
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
        mem_users = [str(MEM_USER_BASE + i) for i in range(args.mem_users)]
        files = {"ramp": workdir / "ramp-users.csv", "mem": workdir / "mem-users.csv"}
        write_sipp_users(files["ramp"], ramp_users, args.password)
        write_sipp_users(files["mem"], mem_users, args.password)
        sipp = Sipp(procs, args.sipp_bin, workdir)

        if args.only in ("both", "kamailio"):
            server = start_kamailio(procs, args, workdir)
            try:
                bench_server(server, sipp, args, files, deadline, results.setdefault("kamailio", {}))
            finally:
                procs.stop(server.proc)
        if args.only in ("both", "pbx"):
            server = start_pbx(procs, args, workdir, [*ramp_users, CALLEE, *mem_users])
            try:
                bench_server(server, sipp, args, files, deadline, results.setdefault("pbx", {}))
            finally:
                procs.stop(server.proc)
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
            "settings": {
                k: sorted(v) if isinstance(v, set) else (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
            },
            "results": results,
            "ratios_pbx_over_kamailio": ratio,
            "goal": {
                "register_ratio_min": REGISTER_GOAL_RATIO,
                "met": goal_met(results, ratio["register.max_clean_rate"]),
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


if __name__ == "__main__":
    sys.exit(main())

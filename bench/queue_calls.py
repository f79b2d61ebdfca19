#!/usr/bin/env python3
"""Queue benchmark (issue 11): the callers ONE queue worker holds waiting with music, and the calls
per second a queue server distributes to agents through the Call Manager.

The PBX under test: `pbx init`, the benchmark's users imported (agents, callers), a music prompt
(`pbx prompt add`), queue 701 (`--join-empty`, no member: its callers wait for ever) and queue 700
(round-robin over the agents, wrap-up 0, no auto-pause), a Redis of its own (`state.url`), and
`pbx queue --config FILE` with one worker (`queue.workers: 1`), listed in the servers table
(`pbx server add`) so that the Call Manager routes to it and trusts it.

(a) WAITING CALLERS. sipp (bench/queue_waiter.xml) calls the queue worker's SIP port directly at
--call-rate until N callers wait in queue 701, each for as long as the step lasts, with an offer of
PCMU on sipp's media port; sipp runs with -rtp_echo, so every packet of music comes back to the
worker (the caller's audio, which it receives and decodes). Over a window with all N waiting: the
worker's CPU (/proc, its pid from /health), the music packets that came back to sipp against the
N x 50/s due, the worker's late ticks (/metrics: a 20 ms tick a whole frame late). Reference in
the same run: rtpengine playing the same music file to as many calls (benchlib.rtpengine_playback,
as bench/ivr_calls.py does). The steps alternate, ours N then rtpengine N. Clean: every call
answered and ended, all N waiting in the window, under --loss-limit % of the packets lost, and
(ours) no late tick in the window (those of the whole step are reported: the first caller of a
step, after a pause, reloads the queue and its music), no call refused or timed out.

(b) DISTRIBUTION RATE. `pbx allinone` without its embedded queue, IVR and meeting servers is the
Call Manager (and media server), on the same database and Redis. --agents agents register
(tests/data/sipp/register_auth.xml), all with their Contact on the port of one sipp UAS
(bench/queue_agent.xml) that answers every call at once and takes the join's re-INVITE. Callers
(bench/queue_caller.xml, sipp UAC with digest auth) call queue 700 through the Call Manager at a
ramp of rates, each talking --hold ms once joined. The queue server answers the caller, claims an
agent in Redis, calls it through the Call Manager, and once it answers REFERs the caller's call
with Replaces; the Call Manager joins them and re-INVITEs the caller (the agents' SDP differs from
the queue server's), which marks the join at the caller. Per step: calls offered (sipp), answered
by the queue and joined (/metrics, the callers' log), the time from each caller's answer to its
join (the caller's log, per call), the rate at which they were joined, retransmissions, the
CPU of the queue worker, the Call Manager, Redis and sipp. Clean: every call answered and joined,
no failure and no retransmission, the joins at >= 90% of the rate asked and the 95th percentile
of answer-to-join under --join-limit ms. The ramp stops at its first unclean step (run once more
first, --retries) and before a rate the agents cannot take (rate x (hold + 0.5 s) > agents).

It prints two tables and the summary, with the figures of the issue (FreeSWITCH's mod_callcenter:
about 200 waiting callers and 20 calls/s; the aim ten times that), and writes JSON to --output.
There is no queue (ACD) server in Debian 12 to run side by side (FreeSWITCH and Asterisk are not
in its archive): (b) is reported in absolute figures. Everything it starts is stopped by pid on
exit, Ctrl-C, SIGTERM or an error. Python 3.11 stdlib only; needs sipp, rtpengine, redis-server
and the `pbx` command. See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchlib import (
    CPU_SATURATED_PCT,
    END_MARGIN_SECONDS,
    LOOPBACK,
    MACHINE_FULL_FRACTION,
    PACKETS_PER_SECOND,
    SAMPLE_RATE,
    SETTLE_SECONDS,
    SIPP_BUFF_SIZE,
    AppServer,
    BenchError,
    CpuWindow,
    Processes,
    RedisServer,
    RtpengineServer,
    add_run_options,
    alternating_ramp,
    echo_packets,
    echo_step_problems,
    echoed_now,
    end_run,
    finish_sipp,
    free_sipp_media_port,
    free_tcp_port,
    free_udp_port,
    give_verdict,
    http_json,
    idle_pct,
    log,
    pbx_env,
    pbx_metrics,
    process_tree,
    raise_on_stop_signals,
    read_sipp_errors,
    read_sipp_stat,
    require_tools,
    rtpengine_playback,
    run_guarded,
    run_pbx,
    sipp_echo_options,
    sipp_trace_options,
    sleep_until,
    start_app_server,
    start_redis,
    start_rtpengine,
    tail,
    worker_health,
    write_looped_wav,
)

BENCH_DIR = Path(__file__).resolve().parent
WAITER_SCENARIO = BENCH_DIR / "queue_waiter.xml"
CALLER_SCENARIO = BENCH_DIR / "queue_caller.xml"
AGENT_SCENARIO = BENCH_DIR / "queue_agent.xml"
REGISTER_SCENARIO = BENCH_DIR.parent / "tests" / "data" / "sipp" / "register_auth.xml"

HOST = LOOPBACK
DOMAIN = "pbx.local"  # the tenant `pbx init` creates; the scenarios name it
WAIT_QUEUE = "701"  # join-empty, no member
AGENT_QUEUE = "700"  # round-robin over the agents
MUSIC = "music"
MUSIC_SECONDS = 60
PASSWORD = "bench-Secret-1"
AGENT_BASE = 4000
CALLER_BASE = 6000
CALLERS = 1000  # caller users, used in turn (sipp's users file wraps)
QUEUE_SERVER = "bench-queue"

# mod_callcenter's figures in the issue, and the aim: ten times past them.
MOD_CALLCENTER_WAITING = 200
MOD_CALLCENTER_CPS = 20
AIM_FACTOR = 10

DEFAULT_WAITING = "100,200,400,800,1200,1600,2000"
DEFAULT_RATES = "10,20,50,100,150,200,300,400"
# RTP ports: the queue worker 2 per call, rtpengine 4, the Call Manager's media server 4 per
# anchored call; below the kernel's ephemeral ports and apart from the integration tests'
# (20000-31999).
QUEUE_PORTS = (4000, 8999)
MEDIA_PORTS = (9000, 11999)
RTPENGINE_PORTS = (12000, 19999)
MAX_WAITING = 2000
# An agent is busy for the caller's talk time and about this long besides (ring, join, BYE).
AGENT_OVERHEAD_SECONDS = 0.5
# The callers wait this long at most for their join (bench/queue_caller.xml's re-INVITE timeout).
JOIN_TIMEOUT_SECONDS = 10.0
# The Call Manager's anchored calls: the caller's, and the queue server's to the agent until the join.
MEDIA_PORTS_PER_CALL = 8


# ---------------------------------------------------------------- the music


def write_music(path: Path, seconds: int) -> None:
    """Hold music, 8 kHz 16-bit mono: a tune of plucked notes (a fundamental and three falling
    harmonics, each note decaying) over a soft bass, looped; level about that of speech."""
    tune = [392.0, 440.0, 494.0, 587.0, 494.0, 440.0, 392.0, 330.0]
    bass = [98.0, 110.0, 82.4, 98.0]
    note = int(0.375 * SAMPLE_RATE)
    bar: list[int] = []
    for index, pitch in enumerate(tune):
        root = bass[index // 2]
        for i in range(note):
            t = i / SAMPLE_RATE
            decay = math.exp(-4.0 * t)
            voice = sum(math.sin(2 * math.pi * k * pitch * t) / k**1.5 for k in range(1, 5))
            under = 0.4 * math.sin(2 * math.pi * root * t)
            bar.append(int(5000 * (decay * voice + under) / 2.2))
    write_looped_wav(path, bar, seconds)


# ---------------------------------------------------------------- the PBX


@dataclass
class Pbx:
    data: Path
    redis: RedisServer
    queue: AppServer
    callmanager: subprocess.Popen[bytes] | None = None
    cm_port: int = 0
    cm_http_port: int = 0
    cm_log: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def agents_of(count: int) -> list[str]:
    return [str(AGENT_BASE + i) for i in range(count)]


def callers_of(count: int) -> list[str]:
    return [str(CALLER_BASE + i) for i in range(count)]


def prepare_pbx(procs: Processes, args: argparse.Namespace, workdir: Path) -> Pbx:
    """The database (users, music, queues), Redis and the queue server, with one worker."""
    data = workdir / "data"
    directory = ("--data-dir", str(data))
    run_pbx(args.pbx_cmd, "init", *directory)
    users = workdir / "users.csv"
    users.write_text(
        "extension,password\n"
        + "".join(f"{ext},{PASSWORD}\n" for ext in [*agents_of(args.agents), *callers_of(CALLERS)])
    )
    run_pbx(args.pbx_cmd, "user", "import", str(users), *directory)
    music = workdir / "music.wav"
    write_music(music, MUSIC_SECONDS)
    run_pbx(args.pbx_cmd, "prompt", "add", *directory, MUSIC, str(music))
    run_pbx(
        args.pbx_cmd,
        "queue",
        "add",
        WAIT_QUEUE,
        "--join-empty",
        "--music",
        MUSIC,
        "--name",
        "bench waiting",
        *directory,
    )
    members = [word for agent in agents_of(args.agents) for word in ("--member", agent)]
    run_pbx(
        args.pbx_cmd,
        "queue",
        "add",
        AGENT_QUEUE,
        "--strategy",
        args.strategy,
        *members,
        "--wrap-up",
        "0",
        "--max-misses",
        "0",
        "--music",
        MUSIC,
        "--name",
        "bench agents",
        *directory,
    )
    redis = start_redis(procs, args.redis_bin, HOST, workdir)
    queue = start_app_server(
        procs,
        role="queue",
        what="queue",
        command=lambda config: [*shlex.split(args.pbx_cmd), "queue", "--config", str(config)],
        data=data,
        ports=QUEUE_PORTS,
        workdir=workdir,
        timeout=args.start_timeout,
        # The callers of (b) send no RTP: they must not time out while they wait.
        settings={"rtp_timeout": 300, "recording_dir": str(workdir / "recordings")},
        sections=f'state: {{url: "redis://{HOST}:{redis.port}/0"}}\n',
        log_level=args.log_level,
    )
    # Listed once up: the Call Manager, started later, routes the queues to it and trusts it.
    run_pbx(
        args.pbx_cmd,
        "server",
        "add",
        QUEUE_SERVER,
        "--role",
        "queue",
        "--host",
        HOST,
        "--port",
        str(queue.sip_port),
        "--http-port",
        str(queue.http_port),
        *directory,
    )
    return Pbx(data, redis, queue, info={"music": str(music)})


QUEUE_COUNTERS = (
    "calls_answered",
    "calls_refused",
    "rtp_timeouts",
    "late_ticks",
    "transfers",
    "transfers_failed",
)


def queue_counters(queue: AppServer) -> dict[str, float]:
    """The worker's counters (pbx_queue_<name>_total) and queue 700's and 701's offered and
    answered (pbx_queue_offered_total{queue="pbx.local/700"}, ...)."""
    metrics = pbx_metrics(HOST, queue.http_port)
    if not metrics:
        raise BenchError(f"the queue server's /metrics (port {queue.http_port}) did not answer")
    out = {
        name: sum(v for k, v in metrics.items() if k.startswith(f"pbx_queue_{name}_total{{"))
        for name in QUEUE_COUNTERS
    }
    for number in (WAIT_QUEUE, AGENT_QUEUE):
        for name in ("offered", "answered", "abandoned", "refused", "overflowed"):
            out[f"{number}_{name}"] = sum(
                v
                for k, v in metrics.items()
                if k.startswith(f"pbx_queue_{name}_total{{") and f'queue="{DOMAIN}/{number}"' in k
            )
    return out


def counted(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {name: int(after[name] - before.get(name, 0.0)) for name in after}


def log_problems(path: Path | None, offset: int) -> tuple[int, list[str]]:
    """The WARNING, ERROR and Traceback lines a log got from `offset` on: their count, the first few."""
    if path is None:
        return 0, []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return 0, []
    lines = [line for line in text.splitlines() if re.search(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback", line)]
    return len(lines), [line[:300] for line in lines[:5]]


def log_size(path: Path | None) -> int:
    try:
        return path.stat().st_size if path else 0
    except OSError:
        return 0


# ---------------------------------------------------------------- (a) waiting callers


def hold_seconds(calls: int, args: argparse.Namespace) -> float:
    """How long each waiting caller stays: until the window has ended."""
    return calls / args.call_rate + SETTLE_SECONDS + args.window + END_MARGIN_SECONDS


def waiting_estimate(calls: int, args: argparse.Namespace) -> float:
    """About how long a step of one server takes, set-up and tear-down included."""
    return calls / args.call_rate + hold_seconds(calls, args) + 8.0


def waiting_step(
    procs: Processes, pbx: Pbx, calls: int, args: argparse.Namespace, stepdir: Path
) -> dict[str, Any]:
    queue = pbx.queue
    before = queue_counters(queue)
    restarts = (worker_health(queue.http_port) or {}).get("restarts") or 0
    offset = log_size(queue.log_path)
    media_port = free_sipp_media_port()
    hold = hold_seconds(calls, args)
    limit = calls / args.call_rate + hold + 30
    cmd = [
        args.sipp_bin,
        f"{HOST}:{queue.sip_port}",
        "-sf",
        str(WAITER_SCENARIO),
        "-s",
        WAIT_QUEUE,
        *sipp_echo_options(stepdir, media_port, limit),
        "-m",
        str(calls),
        "-l",
        str(calls),
        "-r",
        f"{args.call_rate:g}",
        "-rp",
        "1000",
        "-d",
        str(round(hold * 1000)),
        *sipp_trace_options(stepdir),
    ]
    log_path = stepdir / "sipp.out"
    started = time.monotonic()
    sipp = procs.start("sipp (waiting callers)", cmd, log_path=log_path, cwd=stepdir)
    sleep_until(started + calls / args.call_rate + SETTLE_SECONDS, sipp, "sipp", log_path)
    health = worker_health(queue.http_port) or {}
    screen = stepdir / "screen.log"
    echoed0 = echoed_now(sipp, screen)
    cpu = CpuWindow([queue.worker_pid], process_tree(sipp.pid), {"redis": [pbx.redis.proc.pid]})
    late0 = queue_counters(queue)["late_ticks"]
    sleep_until(cpu.start[0] + args.window, sipp, "sipp", log_path)
    echoed1 = echoed_now(sipp, screen)
    usage = cpu.end()
    # The worker reports once a second: these are the window's give or take a second.
    late_in_window = int(queue_counters(queue)["late_ticks"] - late0)
    drops = finish_sipp(sipp, media_port, limit)
    ended = time.monotonic()
    time.sleep(1.5)  # the worker reports what it did once a second
    worker = counted(before, queue_counters(queue))
    after = worker_health(queue.http_port) or {}
    worker["restarts"] = (after.get("restarts") or 0) - restarts
    worker["late_ticks_in_window"] = late_in_window
    if after.get("pid") and after["pid"] != queue.worker_pid:
        log(f"the queue worker was restarted (pid {queue.worker_pid}, now {after['pid']})")
        queue.worker_pid = int(after["pid"])
    stat = read_sipp_stat(stepdir / "stat.csv")
    problems, first = log_problems(queue.log_path, offset)
    step = {
        "server": "ours",
        "calls": calls,
        "calls_up": health.get("callers_waiting"),
        "hold_seconds": round(hold, 1),
        "sipp": {
            "exit_code": sipp.returncode,
            "successful": stat.get("SuccessfulCall(C)", 0),
            "failed": stat.get("FailedCall(C)", 0),
            "retransmissions": stat.get("Retransmissions(C)", 0),
            "errors": read_sipp_errors(stepdir / "errors.log"),
            "seconds": round(ended - started, 1),
        },
        "packets": echo_packets(
            echoed1[0] - echoed0[0], calls * PACKETS_PER_SECOND * (echoed1[1] - echoed0[1]), calls, drops
        ),
        "worker": worker,
        "log_problems": {"count": problems, "first": first},
        "cpu": usage,
    }
    return judge_waiting(step, calls, args)


def judge_waiting(step: dict[str, Any], calls: int, args: argparse.Namespace) -> dict[str, Any]:
    problems = echo_step_problems(step, calls, args.loss_limit)
    if step["server"] == "ours":
        sipp, worker = step["sipp"], step["worker"]
        if sipp["successful"] != calls or sipp["failed"]:
            problems.append(f"sipp: {sipp['successful']} calls successful, {sipp['failed']} failed")
        if worker[f"{WAIT_QUEUE}_offered"] != calls:
            problems.append(f"the queue was offered {worker[f'{WAIT_QUEUE}_offered']} callers")
        if worker["restarts"]:
            problems.append("the worker died and was restarted")
        if worker["late_ticks_in_window"]:
            problems.append(f"{worker['late_ticks_in_window']} ticks a frame late in the window")
        if worker["calls_refused"] or worker["rtp_timeouts"]:
            problems.append(f"{worker['calls_refused']} calls refused, {worker['rtp_timeouts']} RTP timeouts")
    return give_verdict(step, calls, problems)


def verdict_suffix(step: dict[str, Any]) -> str:
    """What made a step unclean, for its progress line."""
    if not step["problems"]:
        return ""
    full = " (inconclusive: the machine was full)" if step["inconclusive"] else ""
    return " -- " + "; ".join(step["problems"]) + full


def describe_waiting(step: dict[str, Any]) -> str:
    cpu, packets = step["cpu"], step["packets"]
    text = (
        f"{step['server']} {step['calls']} waiting: {'clean' if step['clean'] else 'NOT clean'}; "
        f"server {cpu['server_pct']}% of a core ({step['cpu_ms_per_call_second']} ms per call-second), "
        f"sipp {cpu['sipp_pct']}%, other work {cpu['other_pct']}%; {packets['received']} of "
        f"{packets['expected']} packets back (loss {packets['loss_pct']}%, {packets['dropped_at_sipp']} "
        f"dropped at sipp's socket)"
    )
    if step["server"] == "ours":
        worker, sipp = step["worker"], step["sipp"]
        text += (
            f"; late ticks {worker['late_ticks']} ({worker['late_ticks_in_window']} in the window), "
            f"sipp {sipp['successful']} ok {sipp['failed']} failed, "
            f"log problems {step['log_problems']['count']}"
        )
    return text + verdict_suffix(step)


def waiting_ramp(
    procs: Processes,
    pbx: Pbx,
    rtpengine: RtpengineServer | None,
    args: argparse.Namespace,
    workdir: Path,
    deadline: float,
    notes: list[str],
    steps: list[dict[str, Any]],
) -> None:
    """The ramp of (a), its steps appended to `steps` as they end."""

    def run_step(server: str, calls: int, stepdir: Path) -> dict[str, Any]:
        if server == "ours":
            return waiting_step(procs, pbx, calls, args, stepdir)
        assert rtpengine is not None
        step = rtpengine_playback(
            procs,
            rtpengine,
            sipp_bin=args.sipp_bin,
            calls=calls,
            call_rate=args.call_rate,
            settle=SETTLE_SECONDS,
            window=args.window,
            limit=3 * calls / args.call_rate + hold_seconds(calls, args) + 60,
            stepdir=stepdir,
            media_file=Path(pbx.info["music"]),
        )
        return judge_waiting(step, calls, args)

    alternating_ramp(
        steps,
        notes,
        counts=args.waiting,
        servers=["ours"] + (["rtpengine"] if rtpengine is not None else []),
        what="waiting callers",
        run_step=run_step,
        estimate=lambda calls: waiting_estimate(calls, args),
        describe=describe_waiting,
        deadline=deadline,
        retries=args.retries,
        workdir=workdir,
        quiet_below=args.quiet_below,
        quiet_wait=args.quiet_wait,
    )


# ---------------------------------------------------------------- (b) distribution rate


def start_callmanager(procs: Processes, pbx: Pbx, args: argparse.Namespace, workdir: Path) -> None:
    """`pbx allinone` as the Call Manager: its own queue, IVR and meeting servers off, on the
    run's Redis; returns once it sees the queue server up."""
    port, http_port = free_udp_port(HOST), free_tcp_port(HOST)
    settings = {
        "PBX_QUEUE__EMBEDDED": "false",
        "PBX_IVR__EMBEDDED": "false",
        "PBX_MEETING__EMBEDDED": "false",
        "PBX_STATE__URL": f"redis://{HOST}:{pbx.redis.port}/0",
        "PBX_CALLMANAGER__WORKERS": str(args.cm_workers),
        "PBX_HTTP__PORT": str(http_port),
        "PBX_MEDIA__CONTROL_PORT": str(free_udp_port(HOST)),
        "PBX_MEDIA__PORT_MIN": str(MEDIA_PORTS[0]),
        "PBX_MEDIA__PORT_MAX": str(MEDIA_PORTS[1]),
        # sipp answers only a first, MD5, challenge; all the load comes from 127.0.0.1.
        "PBX_AUTH__ALGORITHMS": "MD5,SHA-256",
        "PBX_POLICY__TRUSTED_NETWORKS": "127.0.0.0/8",
        "PBX_LOG__LEVEL": args.log_level,
    }
    cmd = [
        *shlex.split(args.pbx_cmd),
        "allinone",
        "--data-dir",
        str(pbx.data),
        "--host",
        HOST,
        "--sip-port",
        str(port),
    ]
    log_path = workdir / "callmanager.log"
    log(f"starting the Call Manager: {' '.join(f'{k}={v}' for k, v in settings.items())} {shlex.join(cmd)}")
    proc = procs.start("pbx allinone", cmd, log_path=log_path, env={**pbx_env(), **settings}, cwd=workdir)
    deadline = time.monotonic() + args.start_timeout
    while True:
        endpoints = (http_json(http_port, "/health") or {}).get("application_endpoints") or []
        if any(e.get("server") == QUEUE_SERVER and e.get("up") for e in endpoints):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"the Call Manager did not come up with the queue server:\n{tail(log_path)}")
        time.sleep(0.3)
    pbx.callmanager, pbx.cm_port, pbx.cm_http_port, pbx.cm_log = proc, port, http_port, log_path
    pbx.info["callmanager"] = {"cmd": cmd, "env": settings}
    log(f"the Call Manager answers on {HOST}:{port} and sees the queue server up")


def sipp_base(
    args: argparse.Namespace, scenario: Path, local_port: int, stepdir: Path, tag: str
) -> list[str]:
    return [
        args.sipp_bin,
        "-sf",
        str(scenario),
        "-i",
        HOST,
        "-p",
        str(local_port),
        "-mi",
        HOST,
        "-mp",
        str(free_sipp_media_port()),
        "-buff_size",
        SIPP_BUFF_SIZE,
        "-nostdin",
        *sipp_trace_options(stepdir, f"{tag}."),
    ]


@dataclass
class Agents:
    proc: subprocess.Popen[bytes]
    log_path: Path


def start_agents(procs: Processes, pbx: Pbx, args: argparse.Namespace, workdir: Path) -> Agents:
    """Register every agent with its Contact on one port, then the UAS that answers there."""
    port = free_udp_port(HOST)
    users = workdir / "agents.inf"
    users.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{ext};[authentication username={ext} password={PASSWORD}]\n" for ext in agents_of(args.agents)
        )
    )
    cmd = [
        *sipp_base(args, REGISTER_SCENARIO, port, workdir, "register"),
        f"{HOST}:{pbx.cm_port}",
        "-inf",
        str(users),
        "-m",
        str(args.agents),
        "-r",
        "200",
        "-timeout",
        "60s",
    ]
    log(f"registering {args.agents} agents, Contact {HOST}:{port}")
    proc = procs.start("sipp (register agents)", cmd, log_path=workdir / "register.out", cwd=workdir)
    try:
        proc.wait(timeout=70)
    except subprocess.TimeoutExpired:
        procs.stop(proc)
    stat = read_sipp_stat(workdir / "register.stat.csv")
    if stat.get("SuccessfulCall(C)") != args.agents:
        raise BenchError(
            f"{stat.get('SuccessfulCall(C)')} of {args.agents} agents registered: "
            f"{read_sipp_errors(workdir / 'register.errors.log')}"
        )
    procs.stop(proc)
    log_path = workdir / "agents.log"
    cmd = [
        *sipp_base(args, AGENT_SCENARIO, port, workdir, "agents"),
        "-trace_logs",
        "-log_file",
        str(log_path),
    ]
    agents = procs.start("sipp (agents)", cmd, log_path=workdir / "agents.out", cwd=workdir)
    time.sleep(0.5)
    if agents.poll() is not None:
        raise BenchError(f"the agents' sipp exited ({agents.returncode}):\n{tail(workdir / 'agents.out')}")
    return Agents(agents, log_path)


LOGGED_TIME = re.compile(r"^(answer|join) (\d+) ([\d.]+) ([\d.]+)$", re.M)
DROPPED = re.compile(r"^dropped \d+$", re.M)


def caller_times(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    """From the callers' log: each call's answer and join times (seconds since the epoch)."""
    answers: dict[int, float] = {}
    joins: dict[int, float] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return answers, joins
    for kind, call, seconds, micros in LOGGED_TIME.findall(text):
        (answers if kind == "answer" else joins)[int(call)] = float(seconds) + float(micros) / 1e6
    return answers, joins


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def rate_step(
    procs: Processes, pbx: Pbx, agents: Agents, rate: int, args: argparse.Namespace, stepdir: Path
) -> dict[str, Any]:
    calls = max(1, round(rate * args.step_seconds))
    callers = stepdir / "callers.inf"
    callers.write_text(
        "SEQUENTIAL\n"
        + "".join(
            f"{ext};[authentication username={ext} password={PASSWORD}];{AGENT_QUEUE}\n"
            for ext in callers_of(CALLERS)
        )
    )
    before = queue_counters(pbx.queue)
    offsets = {"queue": log_size(pbx.queue.log_path), "callmanager": log_size(pbx.cm_log)}
    agent_log0 = log_size(agents.log_path)
    limit = calls / rate + JOIN_TIMEOUT_SECONDS + args.hold / 1000 + 30
    log_path = stepdir / "callers.log"
    cmd = [
        *sipp_base(args, CALLER_SCENARIO, free_udp_port(HOST), stepdir, "callers"),
        f"{HOST}:{pbx.cm_port}",
        "-inf",
        str(callers),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-rp",
        "1000",
        "-l",
        str(max(100, math.ceil(rate * (JOIN_TIMEOUT_SECONDS + args.hold / 1000 + 2)))),
        "-d",
        str(args.hold),
        "-timeout",
        f"{math.ceil(limit)}s",
        "-trace_logs",
        "-log_file",
        str(log_path),
    ]
    sipp = procs.start("sipp (callers)", cmd, log_path=stepdir / "callers.out", cwd=stepdir)
    assert pbx.callmanager is not None
    cpu = CpuWindow(
        [pbx.queue.worker_pid],
        process_tree(sipp.pid) + process_tree(agents.proc.pid),
        {"callmanager": process_tree(pbx.callmanager.pid), "redis": [pbx.redis.proc.pid]},
    )
    try:
        sipp.wait(timeout=limit + 5)
    except subprocess.TimeoutExpired:
        log(f"the callers' sipp (pid {sipp.pid}) overran {limit:.0f} s: stopping it")
    usage = cpu.end()
    procs.stop(sipp)
    time.sleep(1.5)  # the queue worker reports once a second
    worker = counted(before, queue_counters(pbx.queue))
    stat = read_sipp_stat(stepdir / "callers.stat.csv")
    answers, joins = caller_times(log_path)
    try:
        dropped = len(DROPPED.findall(log_path.read_text(errors="replace")))
    except OSError:
        dropped = 0
    delays = [1000 * (joins[c] - answers[c]) for c in joins if c in answers]
    join_times = sorted(joins.values())
    span = join_times[-1] - join_times[0] if len(join_times) > 1 else 0.0
    try:
        with open(agents.log_path, "rb") as f:
            f.seek(agent_log0)
            agent_lines = f.read().decode(errors="replace")
    except OSError:
        agent_lines = ""
    problems_by_log = {
        name: log_problems(path, offsets[name])
        for name, path in (("queue", pbx.queue.log_path), ("callmanager", pbx.cm_log))
    }
    step = {
        "rate": rate,
        "calls": calls,
        "sipp": {
            "exit_code": sipp.returncode,
            "successful": stat.get("SuccessfulCall(C)", 0),
            "failed": stat.get("FailedCall(C)", 0),
            "retransmissions": stat.get("Retransmissions(C)", 0),
            "errors": read_sipp_errors(stepdir / "callers.errors.log"),
        },
        "answered_by_queue": len(answers),
        "joined": len(joins),
        # Hung up by the Call Manager before any join (its queue server taken for gone).
        "dropped_by_pbx": dropped,
        "queue": {
            "offered": worker[f"{AGENT_QUEUE}_offered"],
            "answered": worker[f"{AGENT_QUEUE}_answered"],
            "abandoned": worker[f"{AGENT_QUEUE}_abandoned"],
            "transfers": worker["transfers"],
            "transfers_failed": worker["transfers_failed"],
            "late_ticks": worker["late_ticks"],
        },
        "agents": {
            "rings": agent_lines.count("\nring ") + agent_lines.startswith("ring "),
            "joins": agent_lines.count("\njoin ") + agent_lines.startswith("join "),
        },
        # Joins per second over the step: (joins - 1) / (last join - first join).
        "joined_rate": round((len(join_times) - 1) / span, 1) if span > 0 else None,
        "join_ms": {
            "mean": round(sum(delays) / len(delays), 1) if delays else None,
            **{
                name: round(v, 1) if (v := percentile(delays, q)) is not None else None
                for name, q in (("p50", 0.5), ("p95", 0.95), ("max", 1.0))
            },
        },
        "log_problems": {name: {"count": n, "first": first} for name, (n, first) in problems_by_log.items()},
        "cpu": usage,
    }
    return judge_rate(step, args)


def judge_rate(step: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    calls, rate, sipp = step["calls"], step["rate"], step["sipp"]
    problems = []
    if sipp["successful"] != calls or sipp["failed"]:
        problems.append(f"sipp: {sipp['successful']} of {calls} calls successful, {sipp['failed']} failed")
    if step["joined"] != calls or step["queue"]["answered"] != calls:
        problems.append(
            f"{step['joined']} of {calls} callers joined (queue: {step['queue']['answered']} answered "
            f"of {step['queue']['offered']} offered)"
        )
    if step["dropped_by_pbx"]:
        problems.append(f"{step['dropped_by_pbx']} callers hung up by the Call Manager before a join")
    if sipp["retransmissions"]:
        problems.append(f"{sipp['retransmissions']} retransmissions")
    if calls > 1 and (step["joined_rate"] or 0) < 0.9 * rate:
        problems.append(f"joined at {step['joined_rate']}/s")
    p95 = step["join_ms"]["p95"]
    if p95 is not None and p95 > args.join_limit:
        problems.append(f"answer to join p95 {p95} ms")
    cpu = step["cpu"]
    busy = [cpu["server_pct"], cpu["callmanager_pct"]]
    full = cpu["machine_pct"] >= MACHINE_FULL_FRACTION * 100 * (os.cpu_count() or 1)
    step["clean"] = not problems
    step["problems"] = problems
    step["inconclusive"] = bool(problems) and full and max(busy) < CPU_SATURATED_PCT
    return step


def describe_rate(step: dict[str, Any]) -> str:
    cpu, ms = step["cpu"], step["join_ms"]
    problems = sum(v["count"] for v in step["log_problems"].values())
    text = (
        f"{step['rate']} calls/s: {'clean' if step['clean'] else 'NOT clean'}; "
        f"{step['joined']} of {step['calls']} joined at {step['joined_rate']}/s, answer to join "
        f"mean {ms['mean']} p50 {ms['p50']} p95 {ms['p95']} max {ms['max']} ms; "
        f"dropped by the PBX {step['dropped_by_pbx']}, retransmissions {step['sipp']['retransmissions']}; "
        f"queue worker {cpu['server_pct']}%, "
        f"Call Manager {cpu['callmanager_pct']}%, Redis {cpu['redis_pct']}%, sipp {cpu['sipp_pct']}%, other "
        f"{cpu['other_pct']}% of a core; warnings/errors in the logs: {problems}"
    )
    return text + verdict_suffix(step)


def rate_ramp(
    procs: Processes,
    pbx: Pbx,
    agents: Agents,
    args: argparse.Namespace,
    workdir: Path,
    deadline: float,
    notes: list[str],
    steps: list[dict[str, Any]],
) -> None:
    """The ramp of (b), its steps appended to `steps` as they end: up to the rates the agents and
    the media ports can take."""
    rates = []
    for rate in args.rates:
        if rate * (args.hold / 1000 + AGENT_OVERHEAD_SECONDS) > args.agents:
            notes.append(
                f"rate: ramp stopped before {rate}/s: {args.agents} agents cannot take it "
                f"(talking {args.hold} ms each; add --agents)"
            )
            break
        if rate * (args.hold / 1000 + 2) * MEDIA_PORTS_PER_CALL > MEDIA_PORTS[1] - MEDIA_PORTS[0]:
            notes.append(f"rate: ramp stopped before {rate}/s: the media ports would not suffice")
            break
        rates.append(rate)

    def run_step(_server: str, rate: int, stepdir: Path) -> dict[str, Any]:
        step = rate_step(procs, pbx, agents, rate, args, stepdir)
        time.sleep(1.0)  # the last calls' BYEs, the agents back to available
        return step

    alternating_ramp(
        steps,
        notes,
        counts=rates,
        servers=["rate"],
        what="calls/s",
        run_step=run_step,
        estimate=lambda rate: args.step_seconds + args.hold / 1000 + 10,
        describe=describe_rate,
        deadline=deadline,
        retries=args.retries,
        workdir=workdir,
        quiet_below=args.quiet_below,
        quiet_wait=args.quiet_wait,
    )


# ---------------------------------------------------------------- summary and output


def summarize(
    waiting: list[dict[str, Any]], rates: list[dict[str, Any]], ramp: list[int], rate_ramp_top: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for server in ("ours", "rtpengine"):
        mine = [s for s in waiting if s["server"] == server]
        clean = [s for s in mine if s["clean"]]
        best = max(clean, key=lambda s: s["calls"]) if clean else None
        ms = best["cpu_ms_per_call_second"] if best else None
        out[server] = {
            "max_clean_waiting": best["calls"] if best else None,
            # No step above failed for the server's own sake, or the ramp ended clean: a lower bound.
            "lower_bound": best is not None
            and (
                best["calls"] == ramp[-1]
                or not any(s["calls"] > best["calls"] and not s["inconclusive"] for s in mine)
            ),
            "cpu_pct_at_max": best["cpu"]["server_pct"] if best else None,
            "cpu_ms_per_call_second_at_max": ms,
            "calls_per_core": round(1000 / ms) if ms else None,
        }
    ours, ref = out["ours"], out["rtpengine"]
    out["waiting_over_mod_callcenter"] = (
        round(ours["max_clean_waiting"] / MOD_CALLCENTER_WAITING, 2) if ours["max_clean_waiting"] else None
    )
    if ours["max_clean_waiting"] and ref["max_clean_waiting"]:
        mark = {(True, False): ">=", (False, True): "<=", (True, True): "~"}.get(
            (ours["lower_bound"], ref["lower_bound"]), ""
        )
        out["waiting_ours_over_rtpengine"] = (
            f"{mark}{ours['max_clean_waiting'] / ref['max_clean_waiting']:.2f}"
        )
    else:
        out["waiting_ours_over_rtpengine"] = None
    by = {(s["server"], s["calls"]): s for s in waiting if s["clean"]}
    out["cpu_per_call_ours_over_rtpengine"] = {
        str(calls): round(
            by[("ours", calls)]["cpu_ms_per_call_second"]
            / by[("rtpengine", calls)]["cpu_ms_per_call_second"],
            2,
        )
        for calls in sorted(c for server, c in by if server == "ours")
        if ("rtpengine", calls) in by and by[("rtpengine", calls)]["cpu_ms_per_call_second"]
    }
    clean_rates = [s for s in rates if s["clean"]]
    best_rate = max(clean_rates, key=lambda s: s["rate"]) if clean_rates else None
    out["rate"] = {
        "max_clean_cps": best_rate["rate"] if best_rate else None,
        "lower_bound": best_rate is not None and best_rate["rate"] == rate_ramp_top,
        "join_ms_at_max": best_rate["join_ms"] if best_rate else None,
        "over_mod_callcenter": round(best_rate["rate"] / MOD_CALLCENTER_CPS, 2) if best_rate else None,
        "over_aim": round(best_rate["rate"] / (AIM_FACTOR * MOD_CALLCENTER_CPS), 2) if best_rate else None,
    }
    return out


def print_tables(waiting: list[dict[str, Any]], rates: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    if waiting:
        print()
        print("(a) waiting callers, one queue worker (ours) and rtpengine playing the same music")
        print(
            f"{'calls':>6}  {'server':<9}  {'clean':<5}  {'CPU %':>6}  {'ms/call-s':>9}  {'loss %':>6}  "
            f"{'late':>5}  {'sipp %':>6}  {'other %':>7}"
        )
        for step in sorted(waiting, key=lambda s: (s["calls"], s["server"])):
            clean = "yes" if step["clean"] else ("inc." if step["inconclusive"] else "NO")
            worker = step.get("worker")
            late = f"{worker['late_ticks_in_window']}/{worker['late_ticks']}" if worker else "-"
            print(
                f"{step['calls']:>6}  {step['server']:<9}  {clean:<5}  {step['cpu']['server_pct']:>6.1f}  "
                f"{step['cpu_ms_per_call_second']:>9.3f}  {step['packets']['loss_pct']:>6.2f}  {late:>5}  "
                f"{step['cpu']['sipp_pct']:>6.1f}  {step['cpu']['other_pct']:>7.1f}"
            )
        for server in ("ours", "rtpengine"):
            s = summary[server]
            if s["max_clean_waiting"] is not None:
                print(
                    f"{server}: {'>=' if s['lower_bound'] else ''}{s['max_clean_waiting']} callers clean, "
                    f"{s['cpu_pct_at_max']}% of a core there, "
                    f"{s['cpu_ms_per_call_second_at_max']} ms CPU per "
                    f"call-second (about {s['calls_per_core']} at 100% of a core)"
                )
        if summary["waiting_over_mod_callcenter"] is not None:
            print(
                f"waiting callers on one worker / mod_callcenter's {MOD_CALLCENTER_WAITING}: "
                f"{'>=' if summary['ours']['lower_bound'] else ''}{summary['waiting_over_mod_callcenter']} "
                f"(aim: {AIM_FACTOR})"
            )
        if summary["waiting_ours_over_rtpengine"] is not None:
            print(f"highest clean step, ours/rtpengine: {summary['waiting_ours_over_rtpengine']}")
        for calls, ratio in summary["cpu_per_call_ours_over_rtpengine"].items():
            print(f"CPU per call, ours/rtpengine, at {calls} callers: {ratio}")
    if rates:
        print()
        print("(b) distribution rate: callers through the Call Manager, joined to agents by the queue server")
        print(
            f"{'rate':>5}  {'calls':>6}  {'joined':>6}  {'clean':<5}  {'joins/s':>7}  {'mean ms':>7}  "
            f"{'p95 ms':>7}  {'max ms':>7}  {'queue %':>7}  {'CM %':>6}  {'redis %':>7}  {'sipp %':>6}  "
            f"{'other %':>7}  {'log':>4}"
        )
        for step in rates:
            clean = "yes" if step["clean"] else ("inc." if step["inconclusive"] else "NO")
            ms, cpu = step["join_ms"], step["cpu"]
            problems = sum(v["count"] for v in step["log_problems"].values())
            print(
                f"{step['rate']:>5}  {step['calls']:>6}  {step['joined']:>6}  {clean:<5}  "
                f"{step['joined_rate'] or 0:>7.1f}  {ms['mean'] or 0:>7.1f}  {ms['p95'] or 0:>7.1f}  "
                f"{ms['max'] or 0:>7.1f}  {cpu['server_pct']:>7.1f}  {cpu['callmanager_pct']:>6.1f}  "
                f"{cpu['redis_pct']:>7.1f}  {cpu['sipp_pct']:>6.1f}  {cpu['other_pct']:>7.1f}  {problems:>4}"
            )
        r = summary["rate"]
        if r["max_clean_cps"] is not None:
            print(
                f"highest clean rate: {'>=' if r['lower_bound'] else ''}{r['max_clean_cps']} calls/s joined; "
                f"/ mod_callcenter's {MOD_CALLCENTER_CPS}: {r['over_mod_callcenter']}; / the aim "
                f"{AIM_FACTOR * MOD_CALLCENTER_CPS}: {r['over_aim']}"
            )
    print(
        "clean (a): every caller answered, all waiting in the window, loss under the limit, "
        "ours no late tick in the window (late: in the window/over the whole step); "
        "(b): every call answered and joined, no retransmission, joins at >= 90% of the rate, p95 answer to "
        "join under the limit. inc.: unclean while the machine was full. >=: the ramp's top was clean, or no "
        "step above failed for the server's own sake.\n"
        "No ACD server is packaged for Debian 12 (FreeSWITCH, Asterisk): (b) is in absolute figures."
    )
    print()


# ---------------------------------------------------------------- main


def parse_counts(text: str, top: int | None = None) -> list[int]:
    try:
        values = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers, comma-separated, got {text!r}") from None
    if not values or values[0] <= 0 or (top is not None and values[-1] > top):
        raise argparse.ArgumentTypeError(f"numbers must be between 1 and {top or 'any'}")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Callers one queue worker holds waiting with music (next to rtpengine playing as many), "
        "and calls per second a queue server distributes to agents (see bench/README.md)"
    )
    p.add_argument("--phases", choices=("both", "waiting", "rate"), default="both", help="which measurements")
    p.add_argument(
        "--waiting",
        type=lambda t: parse_counts(t, MAX_WAITING),
        default=parse_counts(DEFAULT_WAITING),
        help=f"(a) waiting callers of each step (default: {DEFAULT_WAITING})",
    )
    p.add_argument("--no-reference", action="store_true", help="(a) without rtpengine")
    p.add_argument(
        "--call-rate",
        type=float,
        default=100.0,
        help="(a) callers placed per second until a step's are waiting (default: 100)",
    )
    p.add_argument(
        "--window", type=float, default=10.0, help="(a) seconds measured with all waiting (default: 10)"
    )
    p.add_argument(
        "--loss-limit",
        type=float,
        default=0.5,
        help="(a) %% of the music packets due that may fail to come back (default: 0.5)",
    )
    p.add_argument(
        "--rates",
        type=parse_counts,
        default=parse_counts(DEFAULT_RATES),
        help=f"(b) calls per second of each step (default: {DEFAULT_RATES})",
    )
    p.add_argument(
        "--step-seconds", type=float, default=10.0, help="(b) seconds of calls per step (default: 10)"
    )
    p.add_argument(
        "--agents", type=int, default=200, help="(b) registered agents in the queue (default: 200)"
    )
    p.add_argument(
        "--strategy", default="round-robin", help="(b) the queue's strategy (default: round-robin)"
    )
    p.add_argument(
        "--hold",
        type=int,
        default=500,
        help="(b) ms each caller talks to the agent once joined (default: 500)",
    )
    p.add_argument(
        "--join-limit",
        type=float,
        default=1000.0,
        help="(b) ms from answer to join that 95%% of the calls must be under (default: 1000)",
    )
    p.add_argument("--cm-workers", type=int, default=1, help="(b) Call Manager workers (default: 1)")
    p.add_argument("--retries", type=int, default=1, help="times an unclean step is run again (default: 1)")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=480.0,
        help="time budget of the run, 2/3 for (a) when both run; steps that do not fit are "
        "skipped (default: 480)",
    )
    p.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING"),
        default="WARNING",
        help="the queue server's and the Call Manager's (default: WARNING; INFO logs every call)",
    )
    add_run_options(
        p,
        output="queue_calls.json",
        tools={"sipp": "sipp", "rtpengine": "rtpengine", "redis": "redis-server"},
    )
    args = p.parse_args(argv)
    if args.call_rate <= 0 or args.window < 3 or args.agents < 1 or args.hold < 0 or args.step_seconds <= 0:
        p.error("--call-rate, --agents and --step-seconds must be positive, --window at least 3 s")
    return args


def check_prerequisites(args: argparse.Namespace) -> None:
    tools = [args.sipp_bin, args.redis_bin]
    if args.phases != "rate" and not args.no_reference:
        tools.append(args.rtpengine_bin)
    require_tools(tools)
    if shutil.which(shlex.split(args.pbx_cmd)[0]) is None:
        raise BenchError(
            f"not found: {shlex.split(args.pbx_cmd)[0]} (the pbx command: `pip install -e .` in the "
            "checkout, or give --pbx-cmd, e.g. '.venv/bin/python -m pbx_services.cli')"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()
    started = time.monotonic()
    deadline = started + args.max_seconds
    workdir = Path(tempfile.mkdtemp(prefix="queue-calls-"))
    procs = Processes()
    waiting: list[dict[str, Any]] = []
    rates: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    notes: list[str] = []

    def body() -> int:
        status = 0
        check_prerequisites(args)
        pbx = prepare_pbx(procs, args, workdir)
        info["queue_server"] = pbx.queue.info
        info["queue_server"]["idle_pct"] = idle_pct([pbx.queue.worker_pid])
        if args.phases in ("both", "waiting"):
            rtpengine = None
            if not args.no_reference:
                rtpengine = start_rtpengine(
                    procs,
                    args.rtpengine_bin,
                    HOST,
                    workdir,
                    ng_port=free_udp_port(HOST),
                    port_min=RTPENGINE_PORTS[0],
                    port_max=RTPENGINE_PORTS[1],
                    threads=1,
                    options=("--media-num-threads=1", "--log-level=5"),
                )
                info["rtpengine"] = {"cmd": rtpengine.cmd, "version": rtpengine.version}
                log(f"rtpengine answers ping ({rtpengine.version})")
            share = deadline if args.phases == "waiting" else started + args.max_seconds * 2 / 3
            try:
                waiting_ramp(procs, pbx, rtpengine, args, workdir, share, notes, waiting)
            except BenchError as exc:  # a step that could not be carried out: on to (b)
                log(f"error: {exc}")
                notes.append(f"waiting: stopped by an error: {exc}")
                status = 2
            if rtpengine is not None:
                procs.stop(rtpengine.proc)
        if args.phases in ("both", "rate"):
            start_callmanager(procs, pbx, args, workdir)
            info["callmanager"] = pbx.info["callmanager"]
            agents = start_agents(procs, pbx, args, workdir)
            rate_ramp(procs, pbx, agents, args, workdir, deadline, notes, rates)
        return status

    try:
        exit_code = run_guarded(body, procs=procs, notes=notes)
    finally:
        summary = summarize(waiting, rates, args.waiting, args.rates[-1])
        report = {
            "benchmark": "queue_calls",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "reference_figures": {
                "mod_callcenter_waiting": MOD_CALLCENTER_WAITING,
                "mod_callcenter_cps": MOD_CALLCENTER_CPS,
                "aim_factor": AIM_FACTOR,
            },
            "servers": info,
            "waiting_steps": waiting,
            "rate_steps": rates,
            "summary": summary,
            "notes": notes,
            "seconds": round(time.monotonic() - started, 1),
            "workdir": str(workdir) if args.keep_workdir else None,
        }
        end_run(
            report,
            output=args.output,
            print_results=partial(print_tables, waiting, rates, summary),
            notes=notes,
            workdir=workdir,
            keep=args.keep_workdir,
        )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

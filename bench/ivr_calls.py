#!/usr/bin/env python3
"""IVR benchmark: the concurrent calls ONE IVR worker holds in real time, and its CPU per call,
side by side with rtpengine playing media to as many calls.

Ours: `pbx ivr --config FILE` with one worker (`ivr.workers: 1`), a menu 800 of the default
tenant whose greeting is a 60 s speech-like prompt, options 1, 2, 3 = repeat (a digit stops
the greeting and plays it again from the start: every call hears it for its whole length).
sipp (bench/ivr_caller.xml) calls the worker's SIP port directly at --call-rate until N
calls are up, each for --hold seconds, with an SDP offer of PCMU and telephone-event on
sipp's media port; sipp runs with -rtp_echo, so every packet of the greeting comes back to
the worker, 20 ms apart per call, as the caller's audio (PCMU: the worker decodes it and its
in-band DTMF detector reads it), and each call sends three RFC 4733 digits (pcap files
written here, played by sipp from its media port). The worker's CPU is read from
/proc/PID/stat (its pid from the daemon's /health) over a window in which all N calls are
up; sipp's screen, dumped on SIGUSR2 at both ends of the window, counts the packets it
echoed (what arrived from the worker); /metrics gives the worker's late ticks (a whole frame
late), digits, answered, refused and timed-out calls.

Reference: rtpengine (Debian's rtpengine-daemon, userspace, one worker and one media
playback thread) with N calls set up over its NG protocol at the same rate: offer (party A
at sipp's media port, sipp with -rtp_echo and nothing else), answer (party B at a socket of
this script), `block media` of A (what A sends is received and dropped, as the IVR consumes
the caller's audio) and `play media` of the same greeting (a WAV file) to A. The same sipp
echo counts what arrived. rtpengine detects no DTMF here: no digits are sent to it.

A step (N calls) is clean when every call was answered and ended well, all N were up in
the window, fewer than --loss-limit % of the packets due in the window (N x 50/s) failed to
come back, and (ours) no tick was a frame late and every digit sent was detected. The steps
alternate (ours N, rtpengine N, ours N', ...) so that other work falls on both alike; an
unclean step is run again (--retries) unless the server used a whole core, and a server's
ramp stops at its first step that stays unclean. It prints a table with the ratios and writes
JSON to --output. Everything it starts is stopped by pid on exit, Ctrl-C or error. Python
3.11 stdlib only; needs sipp, rtpengine, the `pbx` command, and root (sipp sends the digits
on a raw socket). See bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchlib import (
    END_MARGIN_SECONDS,
    PACKETS_PER_SECOND,
    SAMPLE_RATE,
    SETTLE_SECONDS,
    AppServer,
    BenchError,
    CpuWindow,
    Processes,
    RtpengineServer,
    add_run_options,
    alternating_ramp,
    echo_packets,
    echo_step_problems,
    echoed_now,
    end_run,
    finish_sipp,
    free_sipp_media_port,
    free_udp_port,
    give_verdict,
    idle_pct,
    log,
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
    start_rtpengine,
    worker_health,
    write_looped_wav,
)

BENCH_DIR = Path(__file__).resolve().parent
SCENARIO = BENCH_DIR / "ivr_caller.xml"

HOST = "127.0.0.1"
SERVERS = ("ours", "rtpengine")
MENU = "800"  # of the tenant `pbx init` creates, pbx.local (bench/ivr_caller.xml names it)
GREETING = "greeting"
GREETING_SECONDS = 60
# The digits each call sends, in this order, one pcap file each (bench/ivr_caller.xml names
# them digit1.pcap ...); every one is an option of the menu that plays the greeting again.
DIGITS = ("1", "2", "3")
EVENT_PAYLOAD_TYPE = 101

DEFAULT_STEPS = "50,100,150,200,300,400"
# RTP ports: ours 2 per call (RTP, RTCP), rtpengine 4 (two parties); both below the
# kernel's ephemeral ports and apart from the integration tests' (20000-31999).
OURS_PORTS = (4000, 11999)
RTPENGINE_PORTS = (12000, 19999)
MAX_CALLS = 2000
MIN_WINDOW_SECONDS = 5.0


# ---------------------------------------------------------------- audio and digits


def write_greeting(path: Path, seconds: int) -> None:
    """A speech-like prompt, 8 kHz 16-bit mono: voiced syllables (12 harmonics of a gliding
    pitch of 115-190 Hz, falling off as 1/k) with a pause after every third. It is loud, as
    a caller speaking is, so the in-band DTMF detector does its whole work on every block
    (it skips quiet ones), and it is no DTMF tone pair."""
    syllables = [
        (0.22, 130, 170, 1.0),
        (0.18, 170, 150, 0.8),
        (0.30, 150, 120, 1.0),
        (0.25, 140, 190, 0.9),
        (0.20, 190, 160, 0.7),
        (0.35, 160, 115, 1.0),
    ]
    phrase: list[int] = []
    for index, (length, pitch_from, pitch_to, level) in enumerate(syllables):
        count = int(length * SAMPLE_RATE)
        phase = 0.0
        for i in range(count):
            position = i / count
            phase += 2 * math.pi * (pitch_from + (pitch_to - pitch_from) * position) / SAMPLE_RATE
            voiced = sum(math.sin(k * phase) / k for k in range(1, 13))
            phrase.append(int(3500 * level * math.sin(math.pi * position) * voiced))
        if index % 3 == 2:
            phrase.extend([0] * int(0.12 * SAMPLE_RATE))
    write_looped_wav(path, phrase, seconds)


def _ip_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def write_digit_pcap(path: Path, digit: str, index: int) -> None:
    """One RFC 4733 event (payload type 101) as sipp's play_pcap_audio wants it: Ethernet,
    IPv4, UDP (sipp puts in its own ports and checksum). Each digit of a call has its own
    RTP timestamp (the receiver knows an event by it) and sequence numbers that follow the
    previous digit's; 7 updates 20 ms apart (the first marked), then the end packet three
    times, 160 ms in all."""
    event = "0123456789*#".index(digit)
    ssrc, timestamp, sequence = 0x5EED1234, 40000 * (index + 1), 100 * (index + 1)
    records = []
    updates = [(160 * (i + 1), False) for i in range(7)] + [(1280, True)] * 3
    for i, (duration, end) in enumerate(updates):
        rtp = struct.pack(
            "!BBHII",
            0x80,
            EVENT_PAYLOAD_TYPE | (0x80 if i == 0 else 0),
            sequence + min(i, 7),
            timestamp,
            ssrc,
        )
        rtp += struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        udp = struct.pack("!HHHH", 10000, 20000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(udp),
            i,
            0,
            64,
            socket.IPPROTO_UDP,
            0,
            socket.inet_aton(HOST),
            socket.inet_aton(HOST),
        )
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        frame = b"\0" * 12 + b"\x08\x00" + ip + udp
        at = 0.02 * min(i, 7)
        records.append(struct.pack("<IIII", int(at), int(at % 1 * 1e6), len(frame), len(frame)) + frame)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # linktype 1: Ethernet
    path.write_bytes(header + b"".join(records))


# ---------------------------------------------------------------- ports and processes


# ---------------------------------------------------------------- our IVR server


def start_ivr(procs: Processes, args: argparse.Namespace, workdir: Path, greeting: Path) -> AppServer:
    data = workdir / "ivr-data"
    run_pbx(args.pbx_cmd, "init", "--data-dir", str(data))
    run_pbx(args.pbx_cmd, "prompt", "add", "--data-dir", str(data), GREETING, str(greeting))
    options = [word for digit in DIGITS for word in ("--option", f"{digit}=repeat")]
    run_pbx(args.pbx_cmd,
        "ivr",
        "add",
        "--data-dir",
        str(data),
        MENU,
        "--greeting",
        GREETING,
        *options,
        "--timeout",
        "60",
        "--retries",
        "10",
        "--final",
        "hangup",
        "--name",
        "benchmark",
    )
    return start_app_server(
        procs,
        role="ivr",
        what="IVR",
        command=lambda config: [*shlex.split(args.pbx_cmd), "ivr", "--config", str(config)],
        data=data,
        ports=OURS_PORTS,
        workdir=workdir,
        timeout=args.start_timeout,
    )


IVR_COUNTERS = ("calls_answered", "calls_refused", "rtp_timeouts", "digits", "late_ticks")


def ivr_counters(ivr: AppServer) -> dict[str, float]:
    """The worker's counters from /metrics (pbx_ivr_<name>_total{worker="0"})."""
    metrics = pbx_metrics(HOST, ivr.http_port)
    if not metrics:
        raise BenchError(f"the IVR server's /metrics (port {ivr.http_port}) did not answer")
    out = {}
    for name in IVR_COUNTERS:
        values = [
            v for k, v in metrics.items() if k.startswith((f"pbx_ivr_{name}_total{{", f"pbx_ivr_{name}{{"))
        ]
        out[name] = sum(values)
    return out


def settled_counters(ivr: AppServer) -> dict[str, float]:
    """The counters once the worker has reported what it did (it reports every second)."""
    time.sleep(1.5)
    return ivr_counters(ivr)


# ---------------------------------------------------------------- steps


def window_seconds(calls: int, args: argparse.Namespace) -> float:
    return args.hold - calls / args.call_rate - SETTLE_SECONDS - END_MARGIN_SECONDS


def step_estimate(calls: int, args: argparse.Namespace) -> float:
    """About how long a step of one server takes, set-up and tear-down included."""
    return calls / args.call_rate + args.hold + 8.0


def ivr_step(
    procs: Processes, ivr: AppServer, calls: int, args: argparse.Namespace, stepdir: Path
) -> dict[str, Any]:
    before = ivr_counters(ivr)
    restarts = (worker_health(ivr.http_port) or {}).get("restarts")
    media_port = free_sipp_media_port()
    pause_ms = round(args.hold * 1000 / (len(DIGITS) + 1))
    limit = calls / args.call_rate + args.hold + 30
    cmd = [
        args.sipp_bin,
        f"{HOST}:{ivr.sip_port}",
        "-sf",
        str(SCENARIO),
        "-s",
        MENU,
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
        str(pause_ms),
        *sipp_trace_options(stepdir),
    ]
    log_path = stepdir / "sipp.out"
    started = time.monotonic()
    sipp = procs.start("sipp", cmd, log_path=log_path, cwd=stepdir)
    sleep_until(started + calls / args.call_rate + SETTLE_SECONDS, sipp, "sipp", log_path)
    up = (worker_health(ivr.http_port) or {}).get("calls")
    screen = stepdir / "screen.log"
    echoed0 = echoed_now(sipp, screen)
    cpu = CpuWindow([ivr.worker_pid], process_tree(sipp.pid))
    in_window = ivr_counters(ivr)
    sleep_until(cpu.start[0] + window_seconds(calls, args), sipp, "sipp", log_path)
    echoed1 = echoed_now(sipp, screen)
    usage = cpu.end()
    # The worker reports once a second: these are the window's give or take a second.
    late_in_window = int(ivr_counters(ivr)["late_ticks"] - in_window["late_ticks"])
    drops = finish_sipp(sipp, media_port, limit)
    ended = time.monotonic()
    after = settled_counters(ivr)
    counted = {name: int(after[name] - before[name]) for name in IVR_COUNTERS}
    health = worker_health(ivr.http_port) or {}
    counted["restarts"] = (health.get("restarts") or 0) - (restarts or 0)
    counted["late_ticks_in_window"] = late_in_window
    if health.get("pid") and health["pid"] != ivr.worker_pid:  # it died: measure the new one
        log(f"the IVR worker was restarted (pid {ivr.worker_pid}, now {health['pid']})")
        ivr.worker_pid = int(health["pid"])
    stat = read_sipp_stat(stepdir / "stat.csv")
    successful = stat.get("SuccessfulCall(C)", 0)
    expected = calls * PACKETS_PER_SECOND * (echoed1[1] - echoed0[1])
    received = echoed1[0] - echoed0[0]
    errors = [e for e in read_sipp_errors(stepdir / "errors.log") if "looking for pcap files" not in e]
    step = {
        "server": "ours",
        "calls": calls,
        "calls_up": up,
        "sipp": {
            "exit_code": sipp.returncode,
            "successful": successful,
            "failed": stat.get("FailedCall(C)", 0),
            "retransmissions": stat.get("Retransmissions(C)", 0),
            "errors": errors,
            "seconds": round(ended - started, 1),
        },
        "packets": echo_packets(received, expected, calls, drops),
        # A call succeeds once sipp has carried out all of its scenario, the digits included.
        "digits": {"sent": successful * len(DIGITS), "detected": counted["digits"]},
        "worker": counted,
        "cpu": usage,
    }
    return judge(step, calls, args)


def rtpengine_step(
    procs: Processes,
    rtpengine: RtpengineServer,
    calls: int,
    args: argparse.Namespace,
    stepdir: Path,
    greeting: Path,
) -> dict[str, Any]:
    step = rtpengine_playback(
        procs,
        rtpengine,
        sipp_bin=args.sipp_bin,
        calls=calls,
        call_rate=args.call_rate,
        settle=SETTLE_SECONDS,
        window=window_seconds(calls, args),
        limit=calls / args.call_rate + args.hold + 30,
        stepdir=stepdir,
        media_file=greeting,
    )
    return judge(step, calls, args)


def judge(step: dict[str, Any], calls: int, args: argparse.Namespace) -> dict[str, Any]:
    """Whether the step is clean, and if not why (and whether the machine, not the server, was
    the limit)."""
    problems = echo_step_problems(step, calls, args.loss_limit)
    if step["server"] == "ours":
        sipp, worker, digits = step["sipp"], step["worker"], step["digits"]
        if sipp["successful"] != calls or sipp["failed"]:
            problems.append(f"sipp: {sipp['successful']} calls successful, {sipp['failed']} failed")
        if worker["restarts"]:
            problems.append("the worker died and was restarted")
        if worker["late_ticks"]:
            problems.append(f"{worker['late_ticks']} ticks a frame late")
        if digits["detected"] != digits["sent"] or digits["sent"] != calls * len(DIGITS):
            problems.append(f"{digits['detected']} digits detected of {digits['sent']} sent")
        if worker["calls_refused"] or worker["rtp_timeouts"]:
            problems.append(f"{worker['calls_refused']} calls refused, {worker['rtp_timeouts']} RTP timeouts")
    return give_verdict(step, calls, problems)


def add_idle(step: dict[str, Any], idle: float) -> dict[str, Any]:
    """CPU per call above what the server uses with no call."""
    busy_ms = 10 * (step["cpu"]["server_pct"] - idle)  # ms per second
    step["idle_pct"] = idle
    step["cpu_ms_per_call_second_above_idle"] = round(busy_ms / step["calls"], 4)
    return step


def describe(step: dict[str, Any]) -> str:
    cpu, packets = step["cpu"], step["packets"]
    text = (
        f"{step['server']} {step['calls']} calls: {'clean' if step['clean'] else 'NOT clean'}; "
        f"server {cpu['server_pct']}% of a core ({step['cpu_ms_per_call_second']} ms per call-second), "
        f"sipp {cpu['sipp_pct']}%, other work {cpu['other_pct']}%; "
        f"{packets['received']} of {packets['expected']} packets back (loss {packets['loss_pct']}%, "
        f"{packets['dropped_at_sipp']} dropped at sipp's socket); busiest threads "
        + ", ".join(f"{name} {pct}%" for name, pct in cpu["threads"].items())
    )
    if step["server"] == "ours":
        worker, digits, sipp = step["worker"], step["digits"], step["sipp"]
        text += (
            f"; late ticks {worker['late_ticks']} ({worker['late_ticks_in_window']} in the window), "
            f"digits {digits['detected']}/{digits['sent']}, "
            f"sipp {sipp['successful']} ok {sipp['failed']} failed"
        )
    if step["problems"]:
        text += (
            " -- "
            + "; ".join(step["problems"])
            + (" (inconclusive: the machine was full)" if step["inconclusive"] else "")
        )
    return text


# ---------------------------------------------------------------- summary


def summarize(steps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for server in SERVERS:
        mine = [s for s in steps if s["server"] == server]
        clean = [s for s in mine if s["clean"]]
        best = max(clean, key=lambda s: s["calls"]) if clean else None
        ms = best["cpu_ms_per_call_second"] if best else None
        out[server] = {
            "max_clean_calls": best["calls"] if best else None,
            # No step above it failed for the server's own sake: its limit is higher.
            "lower_bound": best is not None
            and not any(s["calls"] > best["calls"] and not s["inconclusive"] for s in mine),
            "cpu_pct_at_max": best["cpu"]["server_pct"] if best else None,
            "cpu_ms_per_call_second_at_max": ms,
            "calls_per_core": round(1000 / ms) if ms else None,
        }
    by = {(s["server"], s["calls"]): s for s in steps if s["clean"]}
    ratios: dict[str, Any] = {}
    for calls in sorted({c for server, c in by if server == "ours"}):
        ref = by.get(("rtpengine", calls))
        if ref is not None and ref["cpu_ms_per_call_second"]:
            ratios[str(calls)] = round(
                by[("ours", calls)]["cpu_ms_per_call_second"] / ref["cpu_ms_per_call_second"], 2
            )
    out["cpu_per_call_ours_over_rtpengine"] = ratios
    ours, ref = out["ours"], out["rtpengine"]
    if ours["max_clean_calls"] and ref["max_clean_calls"]:
        mark = {(True, False): ">=", (False, True): "<=", (True, True): "~"}.get(
            (ours["lower_bound"], ref["lower_bound"]), ""
        )
        out["max_clean_calls_ours_over_rtpengine"] = (
            f"{mark}{ours['max_clean_calls'] / ref['max_clean_calls']:.2f}"
        )
    else:
        out["max_clean_calls_ours_over_rtpengine"] = None
    return out


def print_table(steps: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print()
    print(
        f"{'calls':>6}  {'server':<9}  {'clean':<5}  {'CPU %':>6}  {'ms/call-s':>9}  {'>idle':>6}  "
        f"{'loss %':>6}  {'late':>4}  {'digits':>9}  {'sipp %':>6}  {'other %':>7}"
    )
    for step in sorted(steps, key=lambda s: (s["calls"], SERVERS.index(s["server"]))):
        ours = step["server"] == "ours"
        clean = "yes" if step["clean"] else ("inc." if step["inconclusive"] else "NO")
        digits = f"{step['digits']['detected']}/{step['digits']['sent']}" if ours else "-"
        late = str(step["worker"]["late_ticks"]) if ours else "-"
        print(
            f"{step['calls']:>6}  {step['server']:<9}  {clean:<5}  {step['cpu']['server_pct']:>6.1f}  "
            f"{step['cpu_ms_per_call_second']:>9.3f}  {step['cpu_ms_per_call_second_above_idle']:>6.3f}  "
            f"{step['packets']['loss_pct']:>6.2f}  {late:>4}  {digits:>9}  {step['cpu']['sipp_pct']:>6.1f}  "
            f"{step['cpu']['other_pct']:>7.1f}"
        )
    print()
    for server in SERVERS:
        s = summary[server]
        if s["max_clean_calls"] is None:
            continue
        print(
            f"{server}: {'>=' if s['lower_bound'] else ''}{s['max_clean_calls']} calls clean on one worker, "
            f"{s['cpu_pct_at_max']}% of a core there, {s['cpu_ms_per_call_second_at_max']} ms CPU per "
            f"call-second (about {s['calls_per_core']} calls at 100% of a core)"
        )
    for calls, ratio in summary["cpu_per_call_ours_over_rtpengine"].items():
        print(f"CPU per call, ours/rtpengine, at {calls} calls: {ratio}")
    if summary["max_clean_calls_ours_over_rtpengine"] is not None:
        print(f"highest clean step, ours/rtpengine: {summary['max_clean_calls_ours_over_rtpengine']}")
    print(
        "clean: every call answered and ended, all up in the window, loss under the limit; ours also no "
        "late tick and every digit detected; inc.: unclean while the machine was full.\n"
        "ms/call-s: the server's CPU ms per second of call (>idle: less its CPU with no call); "
        ">=: no step above failed for the server's own sake, its limit is higher"
    )
    print()


# ---------------------------------------------------------------- main


def parse_steps(text: str) -> list[int]:
    try:
        steps = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected call counts, comma-separated, got {text!r}") from None
    if not steps or steps[0] <= 0 or steps[-1] > MAX_CALLS:
        raise argparse.ArgumentTypeError(f"call counts must be between 1 and {MAX_CALLS}")
    return steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Concurrent IVR calls one IVR worker holds in real time and its CPU per call, side "
        "by side with rtpengine playing media (see bench/README.md)"
    )
    p.add_argument("--only", choices=("both", "ours", "rtpengine"), default="both", help="which servers")
    p.add_argument(
        "--steps",
        type=parse_steps,
        default=parse_steps(DEFAULT_STEPS),
        help=f"concurrent calls of each step (default: {DEFAULT_STEPS})",
    )
    p.add_argument("--hold", type=float, default=20.0, help="seconds each call lasts (default: 20)")
    p.add_argument(
        "--call-rate",
        type=float,
        default=100.0,
        help="calls placed per second until a step's calls are up (default: 100)",
    )
    p.add_argument(
        "--loss-limit",
        type=float,
        default=0.5,
        help="%% of the packets due in the window that may fail to come back (default: 0.5)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times an unclean step is run again before the ramp stops, unless the server used a whole "
        "core (default: 1)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=290.0,
        help="time budget of the run; steps that do not fit are skipped (default: 290)",
    )
    add_run_options(p, output="ivr_calls.json", tools={"sipp": "sipp", "rtpengine": "rtpengine"})
    args = p.parse_args(argv)
    if args.call_rate <= 0 or args.hold <= 0:
        p.error("--call-rate and --hold must be positive")
    shortest = window_seconds(args.steps[-1], args)
    if shortest < MIN_WINDOW_SECONDS:
        p.error(
            f"{args.steps[-1]} calls at {args.call_rate:g}/s held {args.hold:g} s leave a window of "
            f"{shortest:.1f} s with all calls up: raise --hold or --call-rate (at least "
            f"{MIN_WINDOW_SECONDS:.0f} s needed)"
        )
    return args


def check_prerequisites(args: argparse.Namespace) -> None:
    tools = [args.sipp_bin]
    if args.only in ("both", "rtpengine"):
        tools.append(args.rtpengine_bin)
    require_tools(tools)
    if args.only in ("both", "ours") and shutil.which(shlex.split(args.pbx_cmd)[0]) is None:
        raise BenchError(
            f"not found: {shlex.split(args.pbx_cmd)[0]} (the pbx command: `pip install -e .` in the "
            "checkout, or give --pbx-cmd, e.g. '.venv/bin/python -m pbx_services.cli')"
        )
    if os.geteuid() != 0:
        raise BenchError("run as root: sipp sends the digits with play_pcap_audio, on a raw socket")
    version = subprocess.run([args.sipp_bin, "-v"], capture_output=True, text=True, timeout=10).stdout
    if "PCAP" not in version:
        raise BenchError(f"this sipp was built without pcap play (needed for the digits): {version.strip()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()
    deadline = time.monotonic() + args.max_seconds
    workdir = Path(tempfile.mkdtemp(prefix="ivr-calls-"))
    procs = Processes()
    steps: list[dict[str, Any]] = []
    servers_info: dict[str, Any] = {}
    notes: list[str] = []

    def body() -> None:
        check_prerequisites(args)
        greeting = workdir / "greeting.wav"
        write_greeting(greeting, GREETING_SECONDS)
        wanted = [s for s in SERVERS if args.only in ("both", s)]
        ivr = rtpengine = None
        if "ours" in wanted:
            ivr = start_ivr(procs, args, workdir, greeting)
            servers_info["ours"] = ivr.info
            servers_info["ours"]["idle_pct"] = idle_pct([ivr.worker_pid])
        if "rtpengine" in wanted:
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
            servers_info["rtpengine"] = {
                "cmd": rtpengine.cmd,
                "version": rtpengine.version,
                "idle_pct": idle_pct(process_tree(rtpengine.proc.pid)),
            }
            log(f"rtpengine answers ping ({rtpengine.version})")

        def run_step(server: str, calls: int, stepdir: Path) -> dict[str, Any]:
            if server == "ours":
                assert ivr is not None
                for index, digit in enumerate(DIGITS):
                    write_digit_pcap(stepdir / f"digit{index + 1}.pcap", digit, index)
                step = ivr_step(procs, ivr, calls, args, stepdir)
            else:
                assert rtpengine is not None
                step = rtpengine_step(procs, rtpengine, calls, args, stepdir, greeting)
            return add_idle(step, servers_info[server]["idle_pct"])

        alternating_ramp(
            steps,
            notes,
            counts=args.steps,
            servers=wanted,
            what="calls",
            run_step=run_step,
            estimate=lambda calls: step_estimate(calls, args),
            describe=describe,
            deadline=deadline,
            retries=args.retries,
            workdir=workdir,
            quiet_below=args.quiet_below,
            quiet_wait=args.quiet_wait,
        )

    try:
        exit_code = run_guarded(body, procs=procs, notes=notes)
    finally:
        summary = summarize(steps)
        report = {
            "benchmark": "ivr_calls",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "servers": servers_info,
            "steps": steps,
            "summary": summary,
            "notes": notes,
            "workdir": str(workdir) if args.keep_workdir else None,
        }
        end_run(
            report,
            output=args.output,
            print_results=partial(print_table, steps, summary) if steps else None,
            notes=notes,
            workdir=workdir,
            keep=args.keep_workdir,
        )
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmarks in bench/ share: logging, their errors, their common options and the
end of a run, the child processes they start and stop by pid, the signals that stop a run,
the CPU and UDP sockets read from /proc, free ports, sipp's statistics and error files, the
PBX's /metrics and /health, the PBX's application servers (IVR, meeting, queue) started with
one worker, the reference servers they start (rtpengine with its NG protocol, Redis), and
the steps of calls whose media sipp echoes back (counted over a window, with rtpengine
playing a file to as many calls as the reference), ramped server after server.

The benchmarks are run as `python3 bench/NAME.py`, so this directory is on sys.path
and they import it as `benchlib`. Python 3.11 stdlib only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """The benchmark cannot go on (a server did not start, a tool is missing)."""


class Terminated(BaseException):
    """SIGTERM/SIGHUP received: unwind and clean up like Ctrl-C."""


def require_tools(tools: list[str]) -> None:
    """Raise BenchError naming the tools that are not on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise BenchError(f"not found: {', '.join(missing)} (run scripts/install-test-deps.sh)")


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- pbx commands and workers


def pbx_env() -> dict[str, str]:
    """The environment of the pbx commands: without PBX_* variables, which would override the
    benchmark's configuration."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PBX_")}


def run_pbx(pbx_cmd: str, *words: str) -> str:
    """`pbx_cmd WORDS...`, its output; BenchError with what it said when it fails."""
    cmd = [*shlex.split(pbx_cmd), *words]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=pbx_env())
    if result.returncode != 0:
        raise BenchError(f"`{shlex.join(cmd)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def http_json(http_port: int, path: str, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """GET http://host:http_port/path as a JSON object; None when it does not answer one."""
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}{path}", timeout=5) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def worker_health(http_port: int, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """Worker 0 of an application server (IVR, meeting) in its /health, None when it does not answer."""
    workers = (http_json(http_port, "/health", host) or {}).get("workers") or []
    return workers[0] if workers else None


def wait_for_worker(proc: subprocess.Popen[bytes], http_port: int, timeout: float, what: str,
                    log_path: Path) -> dict[str, Any]:
    """Worker 0's /health entry once it is up with a pid; BenchError naming `what` if the
    daemon exits or `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        worker = worker_health(http_port)
        if worker is not None and worker.get("up") and worker.get("pid"):
            return worker
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"{what} did not come up:\n{tail(log_path)}")
        time.sleep(0.2)


@dataclass
class AppServer:
    """A PBX application server (IVR, meeting, queue) with one worker, as start_app_server left it."""

    proc: subprocess.Popen[bytes]
    sip_port: int
    http_port: int
    worker_pid: int
    """Worker 0's pid (the one measured); changed when the supervisor restarts it."""
    log_path: Path
    info: dict[str, Any] = field(default_factory=dict)
    """Its command line, configuration and worker's pid, for the report."""


def start_app_server(
    procs: Processes,
    *,
    role: str,
    what: str,
    command: Callable[[Path], list[str]],
    data: Path,
    ports: tuple[int, int],
    workdir: Path,
    timeout: float,
    settings: dict[str, str | int] | None = None,
    sections: str = "",
    log_level: str = "WARNING",
    host: str = "127.0.0.1",
) -> AppServer:
    """Start the application server of `role` ("ivr", "meeting", "queue"; `what` names it in the
    log) with one worker on free SIP and HTTP ports of `host`, the database of `data` (a `pbx
    init` directory), the RTP ports `ports`, `settings` more in its section and `sections` (YAML)
    besides, its configuration in workdir/ROLE.yml and its log in workdir/ROLE.log; `command`
    gives its command line for that configuration. Returns once its worker 0 is up."""
    sip_port, http_port = free_udp_port(host), free_tcp_port(host)
    section = {"sip_host": host, "sip_port": sip_port, "rtp_host": host, "port_min": ports[0],
               "port_max": ports[1], "workers": 1, **(settings or {})}
    config = workdir / f"{role}.yml"
    config.write_text(
        f'database: {{url: "sqlite:///{data / "pbx.sqlite3"}"}}\n'
        f"{role}:\n" + "".join(f"  {key}: {value}\n" for key, value in section.items())
        + sections
        + f"http: {{host: {host}, port: {http_port}}}\nlog: {{level: {log_level}}}\n"
    )
    cmd = command(config)
    log_path = workdir / f"{role}.log"
    log(f"starting our {what} server: {shlex.join(cmd)}")
    proc = procs.start(f"pbx {role}", cmd, log_path=log_path, env=pbx_env())
    worker = wait_for_worker(proc, http_port, timeout, f"the {what} server's worker on {host}:{sip_port}",
                             log_path)
    log(f"our {what} worker (pid {worker['pid']}) answers on {host}:{sip_port}, /health on port {http_port}")
    return AppServer(proc, sip_port, http_port, int(worker["pid"]), log_path,
                     {"cmd": cmd, "config": config.read_text(), "worker_pid": worker["pid"]})


def add_run_options(p: argparse.ArgumentParser, *, output: str, tools: dict[str, str]) -> None:
    """The options every benchmark of the PBX's servers has: waiting for a quiet machine, how to
    run `pbx` and each of `tools` (--NAME-bin, default the binary), where the JSON goes (default
    `output`), whether to keep the working directory."""
    p.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before a step, wait until other work uses less than this %% of a core (default: 25)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=15.0, help="but at most this many seconds (default: 15)"
    )
    p.add_argument(
        "--pbx-cmd",
        default="pbx",
        help="how to run the pbx command line, e.g. '.venv/bin/python -m pbx_services.cli' (default: pbx)",
    )
    p.add_argument("--start-timeout", type=float, default=60.0, help="seconds for a server to come up")
    for name, binary in tools.items():
        p.add_argument(f"--{name}-bin", default=binary)
    p.add_argument("--output", type=Path, default=Path(output), help="JSON results file")
    p.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary directory (server logs, sipp's files)"
    )


def run_guarded(body: Callable[[], int | None], *, procs: Processes, notes: list[str]) -> int:
    """Run a benchmark's body; its exit status: what the body returns (0 for None), 2 when it
    ends on a BenchError, 130 when interrupted (Ctrl-C, SIGTERM, SIGHUP), said in the log and in
    `notes`. Whatever happens, further stop signals are then ignored and every process in `procs`
    is stopped (the caller writes its results after it, in a `finally`)."""
    try:
        return body() or 0
    except BenchError as exc:
        log(f"error: {exc}")
        notes.append(f"error: {exc}")
        return 2
    except (KeyboardInterrupt, Terminated) as exc:
        log(f"interrupted ({type(exc).__name__} {exc}): stopping everything")
        notes.append("interrupted")
        return 130
    finally:
        ignore_stop_signals()
        procs.stop_all()


def end_run(report: dict[str, Any], *, output: Path, print_results: Callable[[], None] | None,
            notes: list[str], workdir: Path, keep: bool) -> None:
    """The end of a run: the report written to `output` as JSON, the results (when there are
    any) and the notes printed, the working directory removed unless `keep`."""
    output.write_text(json.dumps(report, indent=2) + "\n")
    if print_results is not None:
        print_results()
    for note in notes:
        print(note)
    log(f"results written to {output}")
    if keep:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------- signals


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


def raise_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP raise Terminated, so that the run cleans up as on Ctrl-C."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)


def ignore_stop_signals() -> None:
    """For the clean-up: a second Ctrl-C or SIGTERM must not cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


# ---------------------------------------------------------------- processes


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """root and all its descendants that are alive now."""
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class Processes:
    """Every process the bench starts, so that all are stopped (by pid) at exit."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pipes: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start cmd, its output (stderr only with pipes=True) appended to log_path."""
        log_file = open(log_path, "ab")  # the child keeps its own descriptor
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file,
                stderr=log_file if pipes else subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            log_file.close()
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
        """SIGTERM the process, then SIGKILL it and whatever it forked that is left."""
        tree = process_tree(proc.pid) if proc.poll() is None else []
        if proc.poll() is None:
            _signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
        for pid in tree[1:]:
            if os.path.exists(f"/proc/{pid}"):
                _signal(pid, signal.SIGKILL)
        for stream in (proc.stdin, proc.stdout):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        for name, proc in reversed(self._procs):
            if proc.poll() is None:
                log(f"stopping {name} (pid {proc.pid})")
            self.stop(proc)
        self._procs.clear()


# ---------------------------------------------------------------- CPU and sockets, from /proc

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_ticks(path: str) -> int | None:
    """utime + stime (clock ticks) from a /proc stat file (fields 14 and 15 of proc(5))."""
    try:
        with open(path, "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (clock ticks, all threads) summed over pids."""
    return sum(stat_ticks(f"/proc/{pid}/stat") or 0 for pid in pids)


def thread_ticks(pids: list[int]) -> dict[str, int]:
    """utime + stime of each thread of pids, by "pid/tid name"."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            ticks = stat_ticks(f"/proc/{pid}/task/{tid}/stat")
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
            except OSError:
                name = "?"
            if ticks is not None:
                out[f"{pid}/{tid} {name}"] = ticks
    return out


def machine_busy_ticks() -> int:
    """CPU time (clock ticks, all CPUs) the machine spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # less idle and iowait


def other_load_pct(seconds: float, exclude: list[int]) -> float:
    """CPU used over `seconds` by everything but this script and the `exclude` processes
    (% of one core): other work sharing the machine."""
    mine = [os.getpid(), *exclude]
    busy0, own0, t0 = machine_busy_ticks(), cpu_ticks(mine), time.monotonic()
    time.sleep(seconds)
    busy1, own1, t1 = machine_busy_ticks(), cpu_ticks(mine), time.monotonic()
    return max(0.0, 100.0 * ((busy1 - busy0) - (own1 - own0)) / CLK_TCK / (t1 - t0))


def wait_quiet(*, below_pct: float, wait_seconds: float, exclude: list[int]) -> float:
    """Wait (at most wait_seconds) until other work uses under below_pct % of a core;
    return the last reading."""
    deadline = time.monotonic() + wait_seconds
    load = other_load_pct(1.0, exclude)
    if load >= below_pct:
        log(f"other work on the machine uses {load:.0f}% of a core: waiting for it to calm down")
    while load >= below_pct and time.monotonic() < deadline:
        load = other_load_pct(1.0, exclude)
    if load >= below_pct:
        log(f"other work still uses {load:.0f}% of a core after {wait_seconds:.0f} s: going on")
    return round(load, 1)


class UdpSockets(NamedTuple):
    sockets: int
    drops: int
    """Datagrams they dropped (receive buffer full) since they were opened."""


def udp_sockets(host: str, port_min: int, port_max: int) -> UdpSockets:
    """The UDP sockets bound to host on ports port_min..port_max, from /proc/net/udp (the
    drops are its last column)."""
    prefix = socket.inet_aton(host)[::-1].hex().upper() + ":"
    count = drops = 0
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) < 13 or not fields[1].startswith(prefix):
                    continue
                if port_min <= int(fields[1][len(prefix) :], 16) <= port_max:
                    count += 1
                    drops += int(fields[12])
    except (OSError, ValueError, StopIteration):
        pass
    return UdpSockets(count, drops)


# ---------------------------------------------------------------- bencode (rtpengine's NG protocol)


def bencode(value: Any) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes | bytearray):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else bytes(k), v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value (strings are decoded as UTF-8, with replacement)."""

    def parse(i: int) -> tuple[Any, int]:
        c = data[i : i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if c == b"l":
            items, i = [], i + 1
            while data[i : i + 1] != b"e":
                item, i = parse(i)
                items.append(item)
            return items, i + 1
        if c == b"d":
            out, i = {}, i + 1
            while data[i : i + 1] != b"e":
                key, i = parse(i)
                out[key], i = parse(i)
            return out, i + 1
        if c.isdigit():
            colon = data.index(b":", i)
            start = colon + 1
            end = start + int(data[i:colon])
            if end > len(data):
                raise ValueError("bencoded string runs past the end")
            return data[start:end].decode(errors="replace"), end
        raise ValueError(f"bad bencode at offset {i}")

    try:
        value, end = parse(0)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"not bencode: {exc}") from None
    if end != len(data):
        raise ValueError("trailing data after the bencoded value")
    return value


def free_tcp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RedisServer(NamedTuple):
    proc: subprocess.Popen[bytes]
    port: int
    cmd: list[str]
    log_path: Path


def start_redis(procs: Processes, binary: str, host: str, workdir: Path) -> RedisServer:
    """Debian's redis-server on a free port of `host`, no persistence, its files in `workdir`;
    returns once it answers PING."""
    port = free_tcp_port(host)
    log_path = workdir / "redis.log"
    cmd = [binary, "--port", str(port), "--bind", host, "--save", "", "--appendonly", "no",
           "--dir", str(workdir)]
    proc = procs.start("redis-server", cmd, log_path=log_path, cwd=workdir)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection((host, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return RedisServer(proc, port, cmd, log_path)
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"redis-server did not answer PING on {host}:{port}:\n{tail(log_path)}")
        time.sleep(0.05)


# ---------------------------------------------------------------- rtpengine


def ng_request(host: str, port: int, command: dict[str, Any], timeout: float = 1.0) -> dict[str, Any] | None:
    """One request of rtpengine's NG protocol (COOKIE SP bencoded dictionary) over UDP; its
    reply, or None when none came within `timeout`."""
    cookie = uuid.uuid4().hex[:12].encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + bencode(command), (host, port))
        try:
            data = s.recv(65535)
        except (TimeoutError, ConnectionRefusedError):
            return None
    got, _, body = data.partition(b" ")
    if got != cookie:
        return None
    reply = bdecode(body)
    return reply if isinstance(reply, dict) else None


class RtpengineServer(NamedTuple):
    proc: subprocess.Popen[bytes]
    ng_port: int
    cmd: list[str]
    log_path: Path
    version: str


def start_rtpengine(
    procs: Processes,
    binary: str,
    host: str,
    workdir: Path,
    *,
    ng_port: int,
    port_min: int,
    port_max: int,
    threads: int,
    options: tuple[str, ...] = (),
) -> RtpengineServer:
    """Debian's rtpengine, userspace only, its NG protocol on host:ng_port and its media on
    ports port_min..port_max of host, `threads` worker threads and `options` besides, its log
    in workdir/rtpengine.log; returns once it answers ping."""
    cmd = [
        binary,
        "--config-file=none",  # not /etc/rtpengine/rtpengine.conf (kernel table, other ports)
        "--table=-1",  # userspace forwarding only
        f"--interface={host}",
        f"--listen-ng={host}:{ng_port}",
        f"--num-threads={threads}",
        "--delete-delay=0",  # a deleted call frees its ports at once
        f"--port-min={port_min}",
        f"--port-max={port_max}",
        *options,
        "--foreground",
        "--log-stderr",
    ]
    log_path = workdir / "rtpengine.log"
    log(f"starting rtpengine: {shlex.join(cmd)}")
    proc = procs.start("rtpengine", cmd, log_path=log_path, cwd=workdir)
    deadline = time.monotonic() + 15
    while (ng_request(host, ng_port, {"command": "ping"}, timeout=0.5) or {}).get("result") != "pong":
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"rtpengine did not answer ping on {host}:{ng_port}:\n{tail(log_path)}")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    return RtpengineServer(proc, ng_port, cmd, log_path, (version.stdout or version.stderr).strip())


# ---------------------------------------------------------------- sipp's files

SIPP_STAT_COLUMNS = (
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


def read_sipp_stat(path: Path) -> dict[str, int]:
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
        if name in SIPP_STAT_COLUMNS:
            try:
                counters[name] = int(value)
            except ValueError:
                pass
    return counters


# sipp's -error_file: "The following events occurred:", then events that each start with
# "DATE\tTIME\tEPOCH: " (and may span lines: a received message is quoted in full).
SIPP_EVENT = re.compile(r"\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: ")


def read_sipp_errors(path: Path, keep: int = 5) -> list[str]:
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


# ---------------------------------------------------------------- the PBX's /metrics

METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def pbx_metrics(host: str, http_port: int | None) -> dict[str, float]:
    """A PBX daemon's /metrics as {'name{labels}': value} (empty when it does not answer)."""
    if http_port is None:
        return {}
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}/metrics", timeout=5) as response:
            text = response.read().decode(errors="replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        found = METRIC_LINE.match(line)
        if found and not line.startswith("#"):
            try:
                out[found.group(1) + (found.group(2) or "")] = float(found.group(3))
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------- media to sipp callers, echoed back

# All the benchmarks' traffic is on the loopback interface.
LOOPBACK = "127.0.0.1"
PACKETS_PER_SECOND = 50  # 20 ms frames
SAMPLE_RATE = 8000
# A window of calls starts this long after the last call was placed (its ACK, its first
# frames) and ends this long before the first call hangs up.
SETTLE_SECONDS = 2.0
END_MARGIN_SECONDS = 0.5
# A step is inconclusive rather than unclean when the machine was this full (the server,
# sipp and other work, of all the cores) and the server itself was not saturated.
MACHINE_FULL_FRACTION = 0.9
CPU_SATURATED_PCT = 95.0


def write_looped_wav(path: Path, samples: list[int], seconds: int) -> None:
    """`samples` (16-bit, 8 kHz) repeated into a mono WAV file of `seconds` seconds."""
    frames = struct.pack(f"<{len(samples)}h", *samples)
    repeats = math.ceil(seconds * SAMPLE_RATE / len(samples))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((frames * repeats)[: seconds * SAMPLE_RATE * 2])
SIPP_BUFF_SIZE = "4194304"
# sipp's media port (and +2, which it binds too): above the kernel's ephemeral ports.
SIPP_MEDIA_PORTS = (61000, 64990)


def free_sipp_media_port() -> int:
    """An even port M of LOOPBACK with M and M + 2 free: sipp's media port (it binds both)."""
    low, high = SIPP_MEDIA_PORTS
    for port in random.sample(range(low, high, 2), 200):
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind((LOOPBACK, port))
                b.bind((LOOPBACK, port + 2))
        except OSError:
            continue
        return port
    raise BenchError(f"no free UDP port pair between {low} and {high}")


def thread_label(key: str) -> str:
    """thread_ticks' "pid/tid name" as "name (tid)"."""
    pid_tid, name = key.split(" ", 1)
    return f"{name} ({pid_tid.split('/')[-1]})"


class CpuWindow:
    """CPU used over a window (% of one core): the server's processes, sipp's, those of each of
    the `helpers` groups (reported as NAME_pct), and other work on the machine (everything else
    but this script)."""

    def __init__(self, server_pids: list[int], sipp_pids: list[int],
                 helpers: dict[str, list[int]] | None = None) -> None:
        self.groups = {"server": server_pids, "sipp": sipp_pids, **(helpers or {})}
        self.server_pids = server_pids
        self.threads = thread_ticks(server_pids)
        self.start = self._read()

    def _read(self) -> tuple[float, dict[str, int], int, int]:
        return (
            time.monotonic(),
            {name: cpu_ticks(pids) for name, pids in self.groups.items()},
            cpu_ticks([os.getpid()]),
            machine_busy_ticks(),
        )

    def end(self) -> dict[str, Any]:
        t0, groups0, me0, busy0 = self.start
        t1, groups1, me1, busy1 = self._read()
        seconds = t1 - t0

        def pct(ticks: int) -> float:
            return round(100.0 * ticks / CLK_TCK / seconds, 1)

        used = {name: groups1[name] - groups0[name] for name in self.groups}
        me, busy = me1 - me0, busy1 - busy0
        threads = {
            thread_label(key): pct(ticks - self.threads.get(key, 0))
            for key, ticks in thread_ticks(self.server_pids).items()
        }
        return {
            "seconds": round(seconds, 3),
            **{f"{name}_pct": pct(ticks) for name, ticks in used.items()},
            "server_cpu_s": used["server"] / CLK_TCK,
            "other_pct": pct(max(0, busy - sum(used.values()) - me)),
            "machine_pct": pct(busy),
            # The server's busiest threads.
            "threads": dict(sorted(threads.items(), key=lambda item: -item[1])[:3]),
        }


def idle_pct(pids: list[int], seconds: float = 3.0) -> float:
    """The server's CPU with no call (% of one core): its timers, its housekeeping."""
    window = CpuWindow(pids, [])
    time.sleep(seconds)
    return float(window.end()["server_pct"])


# In sipp's scenario screen, when -rtp_echo is on; its screens go to -screen_file (with
# -trace_screen) each time it gets SIGUSR2. They are left out of the screens it writes as it
# exits, so the counts are taken while it runs.
ECHOED = re.compile(r"(\d+) Total echo RTP pckts 1st stream")


def echoed_counts(path: Path) -> list[int]:
    try:
        return [int(n) for n in ECHOED.findall(path.read_text(errors="replace"))]
    except OSError:
        return []


def echoed_now(proc: subprocess.Popen[bytes], path: Path, timeout: float = 3.0) -> tuple[int, float]:
    """The RTP packets sipp has received on its media port and echoed so far (all that the
    server sent it), and when it was asked: SIGUSR2 makes it append its screens to its
    -screen_file (at once: its main loop checks every few ms). The file is
    written through a stdio buffer, but a dump is several kB and the count is near its top,
    so it is on disk once the dump is written."""
    seen = len(echoed_counts(path))
    asked = time.monotonic()
    os.kill(proc.pid, signal.SIGUSR2)
    while time.monotonic() < asked + timeout:
        counts = echoed_counts(path)
        if len(counts) > seen:
            return counts[-1], asked
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise BenchError(f"sipp (pid {proc.pid}) wrote no echo count to {path} on SIGUSR2")


def finish_sipp(proc: subprocess.Popen[bytes], media_port: int, timeout: float) -> int:
    """Wait (at most `timeout`) for sipp to exit; the datagrams its media socket dropped (read
    while it is open: the kernel's receive buffer was full, sipp's echo did not keep up)."""
    deadline = time.monotonic() + timeout
    drops = 0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            raise BenchError(f"sipp (pid {proc.pid}) did not finish within {timeout:.0f} s")
        sockets = udp_sockets(LOOPBACK, media_port, media_port)
        if sockets.sockets:
            drops = sockets.drops
        time.sleep(0.1)
    return drops


def sipp_echo_options(stepdir: Path, media_port: int, limit: float) -> list[str]:
    """sipp's options for calls whose media comes back (-rtp_echo from `media_port`), its
    screens to stepdir/screen.log (for echoed_now), stopped after `limit` seconds."""
    return [
        "-i",
        LOOPBACK,
        "-p",
        str(free_udp_port(LOOPBACK)),
        "-mi",
        LOOPBACK,
        "-mp",
        str(media_port),
        "-rtp_echo",
        "-buff_size",
        SIPP_BUFF_SIZE,
        "-nostdin",
        "-trace_screen",
        "-screen_file",
        str(stepdir / "screen.log"),
        "-timeout",
        f"{math.ceil(limit)}s",
    ]


def sipp_trace_options(stepdir: Path, name: str = "") -> list[str]:
    """sipp's options for a run whose counters go to stepdir/NAMEstat.csv (read_sipp_stat) and
    errors to stepdir/NAMEerrors.log (read_sipp_errors), going on after an unexpected message."""
    return [
        "-default_behaviors",
        "all,-abortunexp",
        "-trace_stat",
        "-stf",
        str(stepdir / f"{name}stat.csv"),
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        str(stepdir / f"{name}errors.log"),
    ]


def wait_bound(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    """Until sipp's media socket is bound (it echoes from then on)."""
    deadline = time.monotonic() + 10
    while udp_sockets(LOOPBACK, port, port).sockets == 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"sipp did not bind its media port {port}:\n{tail(log_path)}")
        time.sleep(0.02)


def sleep_until(deadline: float, proc: subprocess.Popen[bytes], what: str, log_path: Path) -> None:
    """Sleep until `deadline` (monotonic); BenchError if `proc` exits meanwhile."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode} during the step:\n{tail(log_path)}")
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def echo_packets(received: int, expected: float, calls: int, drops: int) -> dict[str, Any]:
    """What came back of the packets due in the window. Each call's packet of a 20 ms period
    may fall either side of each end of the window (sipp counts when its main loop gets the
    signal): up to one packet per call is not a loss."""
    lost = max(0.0, expected - received - calls)
    return {
        "expected": round(expected),
        "received": received,
        "lost": round(lost),
        "loss_pct": round(100.0 * lost / expected, 3) if expected else 0.0,
        "dropped_at_sipp": drops,
    }


def echo_step_problems(step: dict[str, Any], calls: int, loss_limit: float) -> list[str]:
    """What makes any step of calls with echoed media unclean: calls not all up in the window,
    more than loss_limit % of the packets lost, (rtpengine's) calls that could not be set up."""
    problems = []
    if step["calls_up"] != calls:
        problems.append(f"{step['calls_up']} of {calls} calls up in the window")
    if step["packets"]["loss_pct"] > loss_limit:
        problems.append(f"{step['packets']['loss_pct']}% of the packets due did not arrive")
    if step.get("setup_failures"):
        problems.append(f"call set-up failed: {step['setup_failures'][0]}")
    return problems


def give_verdict(step: dict[str, Any], calls: int, problems: list[str]) -> dict[str, Any]:
    """The step with its verdict: clean (no problem), the problems, inconclusive (unclean while
    the machine was full and the server not saturated: the machine was the limit) and the
    server's CPU ms per call-second."""
    cpu = step["cpu"]
    full = cpu["machine_pct"] >= MACHINE_FULL_FRACTION * 100 * (os.cpu_count() or 1)
    step["clean"] = not problems
    step["problems"] = problems
    step["inconclusive"] = bool(problems) and full and cpu["server_pct"] < CPU_SATURATED_PCT
    step["cpu_ms_per_call_second"] = round(1000 * cpu["server_cpu_s"] / cpu["seconds"] / calls, 4)
    return step


def alternating_ramp(
    steps: list[dict[str, Any]],
    notes: list[str],
    *,
    counts: list[int],
    servers: list[str],
    what: str,
    run_step: Callable[[str, int, Path], dict[str, Any]],
    estimate: Callable[[int], float],
    describe: Callable[[dict[str, Any]], str],
    deadline: float,
    retries: int,
    workdir: Path,
    quiet_below: float,
    quiet_wait: float,
) -> None:
    """For each count of `counts` (of `what`: "calls"), a step of each server in turn, so that
    other work on the machine falls on all alike: run_step(server, count, stepdir), run again
    up to `retries` times while it is unclean and the server did not use a whole core, after
    waiting for the machine to be quiet. A server's ramp stops at its first step that stays
    unclean; a step that would end past `deadline` (`estimate(count)` seconds) is skipped. The
    steps go to `steps` as they end (each with its earlier attempts), the reasons to `notes`."""
    stopped: set[str] = set()
    for count in counts:
        for server in servers:
            if server in stopped:
                continue
            attempts: list[dict[str, Any]] = []
            while len(attempts) <= retries and not (
                attempts and (attempts[-1]["clean"] or attempts[-1]["cpu"]["server_pct"] >= CPU_SATURATED_PCT)
            ):
                if time.monotonic() + estimate(count) > deadline:
                    notes.append(f"{server} {count} {what}: skipped, past --max-seconds")
                    log(notes[-1])
                    break
                stepdir = workdir / f"{server}-{count}-{len(attempts) + 1}"
                stepdir.mkdir()
                other = wait_quiet(
                    below_pct=quiet_below, wait_seconds=quiet_wait, exclude=process_tree(os.getpid())
                )
                log(f"{server}: {count} {what} (other work {other}% of a core)")
                step = run_step(server, count, stepdir)
                step["other_before_pct"] = other
                attempts.append(step)
                log(describe(step))
            if not attempts:
                stopped.add(server)
                continue
            step = attempts[-1]
            step["earlier_attempts"] = attempts[:-1]
            steps.append(step)
            if not step["clean"]:
                stopped.add(server)
                notes.append(f"{server}: ramp stopped at {count} {what}: {'; '.join(step['problems'])}")


def rtpengine_sdp(port: int, session: int) -> str:
    return (
        f"v=0\r\no=- {session} 1 IN IP4 {LOOPBACK}\r\ns=-\r\nc=IN IP4 {LOOPBACK}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def ng(rtpengine: RtpengineServer, command: dict[str, Any]) -> str | None:
    """One NG request (retried twice when no reply comes); None when it succeeded, else why not."""
    for _ in range(3):
        reply = ng_request(LOOPBACK, rtpengine.ng_port, command, timeout=1.0)
        if reply is not None:
            if reply.get("result") == "ok":
                return None
            return str(reply.get("error-reason") or reply)
    return "no reply"


def rtpengine_playback(
    procs: Processes,
    rtpengine: RtpengineServer,
    *,
    sipp_bin: str,
    calls: int,
    call_rate: float,
    settle: float,
    window: float,
    limit: float,
    stepdir: Path,
    media_file: Path,
) -> dict[str, Any]:
    """rtpengine playing `media_file` to `calls` calls set up over NG at `call_rate`: offer
    (party A at the media port of a sipp that only echoes, -rtp_echo), answer (party B at a
    socket of this script that is never read), `block media` of A (what A sends is received and
    dropped, as an application server consumes the caller's audio) and `play media` to A. Over
    a window of `window` seconds from `settle` seconds after the last call, rtpengine's CPU and
    the packets that came back to sipp (of calls x 50/s due); then the calls are deleted. The
    step's figures, not judged: calls_up, setup_failures, packets, cpu."""
    media_port = free_sipp_media_port()
    cmd = [sipp_bin, "-sn", "uas", *sipp_echo_options(stepdir, media_port, limit)]
    log_path = stepdir / "sipp.out"
    sipp = procs.start("sipp (echo)", cmd, log_path=log_path, cwd=stepdir)
    wait_bound(media_port, sipp, log_path)
    failures: list[str] = []
    calls_up: list[str] = []
    prefix = uuid.uuid4().hex[:8]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # party B's address: never read
        sink.bind((LOOPBACK, 0))
        started = time.monotonic()
        for i in range(calls):
            sleep_until(started + i / call_rate, sipp, "sipp", log_path)
            call_id = f"{prefix}-{i}"
            for command in (
                {
                    "command": "offer",
                    "call-id": call_id,
                    "from-tag": "a",
                    "sdp": rtpengine_sdp(media_port, i),
                    "replace": ["origin", "session-connection"],
                },
                {
                    "command": "answer",
                    "call-id": call_id,
                    "from-tag": "a",
                    "to-tag": "b",
                    "sdp": rtpengine_sdp(sink.getsockname()[1], i),
                    "replace": ["origin", "session-connection"],
                },
                {"command": "block media", "call-id": call_id, "from-tag": "a"},
                {"command": "play media", "call-id": call_id, "from-tag": "a", "file": str(media_file)},
            ):
                error = ng(rtpengine, command)
                if error is not None:
                    failures.append(f"{command['command']} {call_id}: {error}")
                    break
            else:
                calls_up.append(call_id)
        sleep_until(max(started + calls / call_rate, time.monotonic()) + settle, sipp, "sipp", log_path)
        screen = stepdir / "screen.log"
        echoed0 = echoed_now(sipp, screen)
        cpu = CpuWindow(process_tree(rtpengine.proc.pid), process_tree(sipp.pid))
        sleep_until(cpu.start[0] + window, sipp, "sipp", log_path)
        echoed1 = echoed_now(sipp, screen)
        usage = cpu.end()
        drops = udp_sockets(LOOPBACK, media_port, media_port).drops
        for call_id in calls_up:
            ng(rtpengine, {"command": "delete", "call-id": call_id})
    procs.stop(sipp)
    expected = calls * PACKETS_PER_SECOND * (echoed1[1] - echoed0[1])
    return {
        "server": "rtpengine",
        "calls": calls,
        "calls_up": len(calls_up),
        "setup_failures": failures[:5] + ([f"... {len(failures)} in all"] if len(failures) > 5 else []),
        "packets": echo_packets(echoed1[0] - echoed0[0], expected, calls, drops),
        "cpu": usage,
    }

"""What the benchmarks in bench/ share: logging, their errors, the child processes they
start and stop by pid, the signals that stop a run, the CPU and UDP sockets read from
/proc, free ports, sipp's statistics and error files, the PBX's /metrics, and the
reference servers they start (rtpengine with its NG protocol, Redis).

The benchmarks are run as `python3 bench/NAME.py`, so this directory is on sys.path
and they import it as `benchlib`. Python 3.11 stdlib only.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
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


def worker_health(http_port: int, host: str = "127.0.0.1") -> dict[str, Any] | None:
    """Worker 0 of an application server (IVR, meeting) in its /health, None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}/health", timeout=5) as response:
            workers = json.loads(response.read()).get("workers") or []
    except (OSError, ValueError):
        return None
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

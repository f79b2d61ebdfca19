#!/usr/bin/env python3
"""Media relay benchmark: one worker of our media server side by side with rtpengine.

Measures the G.711 relay capacity of ONE media worker: how many concurrent calls
(20 ms packetisation: 50 packets/s per direction per call, 172-byte RTP packets)
it relays with under 0.1% loss, the packets/s that makes, and the server's CPU
(user+sys of all its processes from /proc/PID/stat over the sending window, as
% of one core). The reference is rtpengine (Debian's rtpengine-daemon, userspace
forwarding, one worker thread), driven through its NG protocol (bencode over
UDP); ours is `pbx media` with one worker, driven through our control protocol
(JSON over UDP, docs/media-control.md). Both get exactly the same load from the
same generator, bench/rtp_load.c (C, epoll, one process), compiled here at run
time with the machine's gcc.

Both servers run for the whole run and their steps alternate (rtpengine N,
ours N, rtpengine N', ...), so that other work on the machine falls on both
alike. For each step (N calls) and server: the generator binds two sockets per
call (phone A, phone B), the script sets the N calls up (offer with A's SDP ->
the server's port for leg b; answer with B's SDP -> its port for leg a), the
generator sends A -> server and B -> server for --seconds with the calls' send
times spread evenly over the 20 ms, drains, and counts what arrived at each
phone; then the calls are deleted. A step is clean when under 0.1% of the
packets were lost or arrived later than 200 ms (useless to a listener). An
unclean step is run again once (the machine is shared); the ramp stops at the
first step that stays unclean (or a failed call set-up), or after a step in
which the server's CPU was saturated. The result is the highest clean step.
Before each step the script waits (a while) for other work on the machine to
calm down, and it records how much CPU other work took during the step.

It prints a table (ours/rtpengine ratios) and writes JSON to --output.
Everything it starts is stopped by pid on exit, Ctrl-C or error. Python 3.11
stdlib only; needs gcc and rtpengine (scripts/install-test-deps.sh).
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import secrets
import select
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    CLK_TCK,
    BenchError,
    Processes,
    Terminated,
    bdecode,
    bencode,
    cpu_ticks,
    ignore_stop_signals,
    log,
    machine_busy_ticks,
    process_tree,
    raise_on_stop_signals,
    require_tools,
    tail,
    thread_ticks,
    udp_sockets,
    wait_quiet,
)
from benchlib import (
    start_rtpengine as start_rtpengine_server,
)

BENCH_DIR = Path(__file__).resolve().parent
GENERATOR_SRC = BENCH_DIR / "rtp_load.c"

HOST = "127.0.0.1"
SERVERS = ("rtpengine", "ours")

DEFAULT_STEPS = "100,250,500,750,1000,1250,1500,1750,2000,2250"
QUICK_STEPS = "100,250,500"
QUICK_SECONDS = 3.0

PTIME_MS = 20
# RTP ports: each server's relay ports (both run at once, the steps alternating: a
# range each, of the same size, below the kernel's ephemeral ports; 10,000 ports =
# 2,500 calls of 2 legs x RTP+RTCP), the phones' (even ports only; the generator skips
# ports in use), and where the control sockets go (above the ephemeral ports).
SERVER_PORTS = {"rtpengine": (10000, 19999), "ours": (20000, 29999)}
MAX_CALLS = 2500
PHONE_PORT_MIN, PHONE_PORT_MAX = 40000, 59999
CONTROL_PORT_MIN, CONTROL_PORT_MAX = 61000, 64999

# The generator wakes every TICK_US to send what is due and read what arrived: the
# calls' send times are spread over the 20 ms at this resolution (40 slots).
TICK_US = 500
PACKET_SIZE = 172  # 12-byte RTP header + 160 bytes of PCMU
LOSS_LIMIT_PCT = 0.1
# Above this the server is saturated: the ramp stops after the step.
CPU_SATURATED_PCT = 95.0
# The generator kept to the load asked when it sent >= 99% of the nominal rate and
# its sends were late by at most this much for 99% of packets; otherwise the step
# measures the generator, not the server, and the ramp stops there.
GEN_MIN_SEND_FRACTION = 0.99
GEN_MAX_LATENESS_P99_US = PTIME_MS * 1000
GEN_BUSY_PCT = 90.0
# A step is inconclusive, rather than a failure of the server, when it was unclean while
# the server, the generator and other work together used this much of all the cores
# and the server itself was not saturated.
MACHINE_FULL_FRACTION = 0.9
# A packet that arrives later than this is lost to the listener (beyond any jitter
# buffer): it counts with the lost ones. A server that queues more than this is
# overloaded even when a short step ends before its queues overflow.
LATE_MS = 200

# ---------------------------------------------------------------- processes


def bind_control_port(sock: socket.socket) -> int:
    """Bind sock to a free port of HOST between CONTROL_PORT_MIN and CONTROL_PORT_MAX,
    apart from the RTP ports; return it."""
    for port in random.sample(range(CONTROL_PORT_MIN, CONTROL_PORT_MAX + 1), 200):
        try:
            sock.bind((HOST, port))
        except OSError:
            continue
        return port
    raise BenchError(f"no free UDP port between {CONTROL_PORT_MIN} and {CONTROL_PORT_MAX}")


def free_control_port() -> int:
    """A free control port for a server to listen on."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return bind_control_port(s)


def raise_nofile() -> None:
    """Children inherit the limit: rtpengine holds 4 sockets per call, the generator 2."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- control clients


class ControlClient:
    """Requests over UDP, `COOKIE SP BODY`, pipelined: up to `window` outstanding,
    each retransmitted with the same cookie after 0.25, 0.5, 1 s (both servers answer
    a retransmission from their reply cache) and given up after `timeout`."""

    RETRANSMIT = (0.25, 0.5, 1.0, 1.0, 1.0, 1.0)

    def __init__(
        self,
        port: int,
        encode: Callable[[dict[str, Any]], bytes],
        decode: Callable[[bytes], Any],
        *,
        window: int = 32,
        timeout: float = 5.0,
    ) -> None:
        self.dest = (HOST, port)
        self.encode, self.decode = encode, decode
        self.window, self.timeout = window, timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        bind_control_port(self.sock)
        self.sock.setblocking(False)
        self.prefix = secrets.token_hex(4)
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One request; its reply, or {"result": "error", "error": ...} after the timeout."""
        return self.request_many([body], timeout=timeout)[0]

    def request_many(
        self, bodies: list[dict[str, Any]], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        timeout = self.timeout if timeout is None else timeout
        replies: list[dict[str, Any] | None] = [None] * len(bodies)
        pending: dict[bytes, tuple[int, bytes, float, float, int]] = {}  # cookie: i, data, first, next, tries
        todo = 0
        while todo < len(bodies) or pending:
            now = time.monotonic()
            while todo < len(bodies) and len(pending) < self.window:
                self.seq += 1
                cookie = f"{self.prefix}{self.seq}".encode()
                data = cookie + b" " + self.encode(bodies[todo])
                self._send(data)
                pending[cookie] = (todo, data, now, now + self.RETRANSMIT[0], 0)
                todo += 1
            for cookie, (i, data, first, due, tries) in list(pending.items()):
                if now - first >= timeout:
                    replies[i] = {"result": "error", "error": f"no reply within {timeout:.0f} s"}
                    del pending[cookie]
                elif now >= due:
                    self._send(data)
                    step = self.RETRANSMIT[min(tries + 1, len(self.RETRANSMIT) - 1)]
                    pending[cookie] = (i, data, first, now + step, tries + 1)
            if not pending:
                continue
            wake = min(due for _, _, _, due, _ in pending.values())
            readable, _, _ = select.select([self.sock], [], [], max(0.0, min(wake - now, 0.05)))
            if not readable:
                continue
            while True:
                try:
                    packet = self.sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue
                cookie, _, payload = packet.partition(b" ")
                entry = pending.pop(cookie, None)
                if entry is None:
                    continue  # a late reply to a retransmission, or a notification
                try:
                    reply = self.decode(payload)
                    if not isinstance(reply, dict):
                        raise ValueError("reply is not a dictionary")
                except ValueError as exc:
                    reply = {"result": "error", "error": f"undecodable reply: {exc}"}
                replies[entry[0]] = reply
        return [r if r is not None else {"result": "error", "error": "no reply"} for r in replies]

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.dest)
        except (BlockingIOError, ConnectionRefusedError):
            pass  # retransmitted on schedule


def json_decode(data: bytes) -> Any:
    return json.loads(data)


def json_encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


# ---------------------------------------------------------------- SDP


def phone_sdp(port: int, session: int) -> str:
    return (
        "v=0\r\n"
        f"o=- {session} 1 IN IP4 {HOST}\r\n"
        "s=-\r\n"
        f"c=IN IP4 {HOST}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        f"a=ptime:{PTIME_MS}\r\n"
        "a=sendrecv\r\n"
    )


def sdp_target(sdp: str) -> tuple[str, int]:
    """The address and port of the first audio stream of an SDP (media-level c= wins)."""
    address, port, in_audio = None, None, False
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            if port is not None:
                break
            in_audio = line.startswith("m=audio ")
            if in_audio:
                port = int(line.split()[1])
        elif line.startswith("c=") and (in_audio or port is None):
            match = re.match(r"c=IN IP4 (\S+)", line)
            if match:
                address = match.group(1)
    if address is None or port is None:
        raise ValueError("no audio address/port in the SDP")
    return address, port


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    control: ControlClient
    info: dict[str, Any] = field(default_factory=dict)

    # The bodies of the server's control protocol.
    def ping(self) -> dict[str, Any]:
        raise NotImplementedError

    def offer(self, call_id: str, sdp: str) -> dict[str, Any]:
        raise NotImplementedError

    def answer(self, call_id: str, sdp: str) -> dict[str, Any]:
        raise NotImplementedError

    def delete(self, call_id: str) -> dict[str, Any]:
        raise NotImplementedError

    def error_of(self, reply: dict[str, Any]) -> str | None:
        """None when the reply is a success, else its reason."""
        if reply.get("result") == "ok":
            return None
        return str(reply.get("error") or reply.get("error-reason") or reply.get("error_reason") or reply)

    def alive(self) -> bool:
        return self.proc.poll() is None


class Rtpengine(Server):
    """NG protocol: bencoded dictionaries, the call named by call-id and tags."""

    def ping(self) -> dict[str, Any]:
        return {"command": "ping"}

    def offer(self, call_id: str, sdp: str) -> dict[str, Any]:
        return {
            "command": "offer",
            "call-id": call_id,
            "from-tag": "a-" + call_id,
            "sdp": sdp,
            "replace": ["origin", "session-connection"],
        }

    def answer(self, call_id: str, sdp: str) -> dict[str, Any]:
        return {
            "command": "answer",
            "call-id": call_id,
            "from-tag": "a-" + call_id,
            "to-tag": "b-" + call_id,
            "sdp": sdp,
            "replace": ["origin", "session-connection"],
        }

    def delete(self, call_id: str) -> dict[str, Any]:
        return {"command": "delete", "call-id": call_id}


class Ours(Server):
    """Our control protocol (docs/media-control.md): JSON, the call named by call_id,
    the leg whose SDP it is named by leg."""

    def ping(self) -> dict[str, Any]:
        return {"command": "ping"}

    def offer(self, call_id: str, sdp: str) -> dict[str, Any]:
        return {"command": "offer", "call_id": call_id, "leg": "a", "sdp": sdp}

    def answer(self, call_id: str, sdp: str) -> dict[str, Any]:
        return {"command": "answer", "call_id": call_id, "leg": "b", "sdp": sdp}

    def delete(self, call_id: str) -> dict[str, Any]:
        return {"command": "delete", "call_id": call_id}


def wait_pong(server: Server, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(
                f"{server.name} exited with {server.proc.returncode} before answering ping:\n"
                f"{tail(server.log_path)}"
            )
        last = server.control.request(server.ping(), timeout=1.0)
        if last.get("result") == "pong":
            return last
        time.sleep(0.2)
    raise BenchError(
        f"{server.name} did not answer ping within {timeout:.0f} s ({last}):\n{tail(server.log_path)}"
    )


def start_rtpengine(procs: Processes, args: argparse.Namespace, workdir: Path) -> Server:
    rtpengine = start_rtpengine_server(
        procs,
        args.rtpengine_bin,
        HOST,
        workdir,
        ng_port=free_control_port(),
        port_min=SERVER_PORTS["rtpengine"][0],
        port_max=SERVER_PORTS["rtpengine"][1],
        threads=1,
    )
    server = Rtpengine(
        "rtpengine", rtpengine.proc, rtpengine.log_path, ControlClient(rtpengine.ng_port, bencode, bdecode)
    )
    pong = wait_pong(server, 15.0)
    server.info = {
        "cmd": rtpengine.cmd,
        "version": rtpengine.version,
        "control_port": rtpengine.ng_port,
        "ping": pong,
    }
    log(f"rtpengine answers ping ({server.info['version']})")
    return server


OURS_CONFIG = """\
auth: {{secret: "{secret}"}}
media:
  control_host: {host}
  control_port: {port}
  rtp_host: {host}
  port_min: {port_min}
  port_max: {port_max}
  workers: 1
  recording_dir: {recordings}
http: {{port: 0}}
database: {{url: "sqlite:///{database}"}}
log: {{level: {log_level}}}
"""


def start_ours(procs: Processes, args: argparse.Namespace, workdir: Path) -> Server:
    port = free_control_port()
    rundir = workdir / "ours"
    rundir.mkdir()
    config = rundir / "pbx.yml"
    config.write_text(
        OURS_CONFIG.format(
            secret=secrets.token_hex(32),
            host=HOST,
            port=port,
            port_min=SERVER_PORTS["ours"][0],
            port_max=SERVER_PORTS["ours"][1],
            recordings=rundir / "recordings",
            database=rundir / "pbx.sqlite3",
            log_level=args.ours_log_level,
        )
    )
    cmd = [*shlex.split(args.ours_cmd), "media", "--config", str(config)]
    log_path = rundir / "media.log"
    log(f"starting our media server: {shlex.join(cmd)}")
    proc = procs.start("pbx media", cmd, log_path=log_path, cwd=rundir)
    server = Ours("ours", proc, log_path, ControlClient(port, json_encode, json_decode))
    pong = wait_pong(server, args.ours_start_timeout)
    server.info = {"cmd": cmd, "config": config.read_text(), "control_port": port, "ping": pong}
    log(f"our media server answers ping: {pong}")
    return server


# ---------------------------------------------------------------- the load generator


def build_generator(workdir: Path, cc: str) -> Path:
    binary = workdir / "rtp_load"
    cmd = [cc, "-O2", "-Wall", "-o", str(binary), str(GENERATOR_SRC)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise BenchError(f"`{shlex.join(cmd)}` failed:\n{result.stderr}")
    log(f"built the load generator: {shlex.join(cmd)}")
    return binary


class LineReader:
    """Lines from a pipe, with a timeout (select on the raw descriptor, own buffer)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.buf = b""

    def readline(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the generator in time")
            readable, _, _ = select.select([self.fd], [], [], left)
            if readable:
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    raise EOFError("the generator closed its output")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def expect(self, prefix: str, timeout: float) -> str:
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise BenchError(f"the generator said {line[:200]!r}, expected {prefix!r}")
        return line[len(prefix) :].strip()


# ---------------------------------------------------------------- a step


@dataclass
class Step:
    calls: int
    clean: bool = False
    reason: str = ""
    setup_failures: int = 0
    setup_seconds: float = 0.0
    delete_failures: int = 0
    window_seconds: float = 0.0
    server_cpu_pct: float | None = None
    busiest_thread: str = ""
    busiest_thread_cpu_pct: float | None = None
    server_socket_drops: int | None = None
    other_load_before_pct: float | None = None
    other_load_pct: float | None = None
    generator: dict[str, Any] = field(default_factory=dict)
    generator_kept_up: bool = True
    inconclusive: str = ""
    """Why an unclean step does not measure the server (the generator, the machine)."""
    saturated: bool = False
    errors: list[str] = field(default_factory=list)
    earlier_attempts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def loss_pct(self) -> float | None:
        value = self.generator.get("loss_pct")
        return float(value) if value is not None else None

    @property
    def relayed_pps(self) -> float | None:
        value = self.generator.get("relayed_pps")
        return float(value) if value is not None else None

    def cpu_per_kpps(self) -> float | None:
        pps = self.relayed_pps
        if self.server_cpu_pct is None or not pps:
            return None
        return self.server_cpu_pct / (pps / 1000)

    def as_dict(self) -> dict[str, Any]:
        out = dict(vars(self))
        out["cpu_pct_per_1000_pps"] = _round(self.cpu_per_kpps(), 3)
        return out


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run_step(
    server: Server, generator: Path, procs: Processes, args: argparse.Namespace, workdir: Path, n: int
) -> Step:
    step = Step(n)
    step.other_load_before_pct = wait_quiet(
        below_pct=args.quiet_below, wait_seconds=args.quiet_wait, exclude=process_tree(server.proc.pid)
    )
    gen_log = workdir / f"rtp_load-{server.name}-{n}.log"
    cmd = [
        str(generator),
        "--calls",
        str(n),
        "--seconds",
        str(args.seconds),
        "--drain",
        str(args.drain),
        "--ptime",
        str(PTIME_MS),
        "--size",
        str(PACKET_SIZE),
        "--host",
        HOST,
        "--port-min",
        str(PHONE_PORT_MIN),
        "--port-max",
        str(PHONE_PORT_MAX),
        "--tick-us",
        str(args.tick_us),
        "--late-ms",
        str(args.late_ms or LATE_MS),
    ]
    gen = procs.start(f"rtp_load {n}", cmd, log_path=gen_log, pipes=True)
    reader = LineReader(gen)
    call_ids = [f"bench-{secrets.token_hex(4)}-{i}" for i in range(n)]
    try:
        phone_ports = [int(p) for p in reader.expect("ports", 60).split()]
        if len(phone_ports) != 2 * n:
            raise BenchError(f"the generator gave {len(phone_ports)} ports for {n} calls")

        # Offer with phone A's SDP: the reply, for phone B, has the server's port of leg b.
        # Answer with phone B's SDP: the reply, for phone A, has the server's port of leg a.
        started = time.monotonic()
        offers = server.control.request_many(
            [server.offer(cid, phone_sdp(phone_ports[2 * i], i + 1)) for i, cid in enumerate(call_ids)]
        )
        answers = server.control.request_many(
            [server.answer(cid, phone_sdp(phone_ports[2 * i + 1], i + 1)) for i, cid in enumerate(call_ids)]
        )
        step.setup_seconds = round(time.monotonic() - started, 3)
        targets: list[str] = []
        for offer, answer in zip(offers, answers, strict=True):
            error = server.error_of(offer) or server.error_of(answer)
            if error is None:
                try:
                    leg_b = sdp_target(str(offer.get("sdp", "")))
                    leg_a = sdp_target(str(answer.get("sdp", "")))
                except ValueError as exc:
                    error = str(exc)
            if error is not None:
                step.setup_failures += 1
                if len(step.errors) < 5:
                    step.errors.append(f"set-up: {error}")
                continue
            targets.append(f"{leg_a[0]} {leg_a[1]} {leg_b[0]} {leg_b[1]}\n")
        log(
            f"{server.name} {n} calls: set up in {step.setup_seconds:.2f} s"
            + (f", {step.setup_failures} failed ({step.errors[0]})" if step.setup_failures else "")
        )
        if step.setup_failures:
            step.reason = f"{step.setup_failures} of {n} call set-ups failed"
            return step

        assert gen.stdin is not None
        gen.stdin.write("".join(targets).encode() + b"go\n")
        gen.stdin.flush()
        reader.expect("sending", 30)
        pids = process_tree(server.proc.pid)
        busy0 = machine_busy_ticks()
        threads0, ticks0, t0 = thread_ticks(pids), cpu_ticks(pids), time.monotonic()
        drops0 = udp_sockets(HOST, *SERVER_PORTS[server.name]).drops
        reader.expect("draining", args.seconds + 30)
        ticks1, t1, threads1 = cpu_ticks(pids), time.monotonic(), thread_ticks(pids)
        busy1 = machine_busy_ticks()
        step.window_seconds = round(t1 - t0, 3)
        step.server_cpu_pct = round(100.0 * (ticks1 - ticks0) / CLK_TCK / (t1 - t0), 1)
        busiest = max(threads1, key=lambda k: threads1[k] - threads0.get(k, 0), default="")
        if busiest:
            step.busiest_thread = busiest
            step.busiest_thread_cpu_pct = round(
                100.0 * (threads1[busiest] - threads0.get(busiest, 0)) / CLK_TCK / (t1 - t0), 1
            )
        step.generator = json.loads(reader.expect("result", args.drain + 30))
        # What the rest of the machine used meanwhile (the generator's own CPU as it measured it).
        others = (busy1 - busy0) / CLK_TCK - (ticks1 - ticks0) / CLK_TCK - float(step.generator["cpu_s"])
        step.other_load_pct = round(max(0.0, 100.0 * others / (t1 - t0)), 1)
        step.server_socket_drops = udp_sockets(HOST, *SERVER_PORTS[server.name]).drops - drops0
    except (BenchError, TimeoutError, EOFError, ValueError, OSError) as exc:  # OSError: a broken pipe
        step.reason = f"generator: {exc}"
        step.errors.append(f"{exc}; generator log: {tail(gen_log, 5)}")
        return step
    finally:
        procs.stop(gen)
        deletes = server.control.request_many([server.delete(cid) for cid in call_ids])
        delete_errors = [e for e in (server.error_of(r) for r in deletes) if e is not None]
        step.delete_failures = len(delete_errors)
        if delete_errors:
            step.errors.append(f"delete: {delete_errors[0]}")
    judge(step, args)
    return step


def judge(step: Step, args: argparse.Namespace) -> None:
    g = step.generator
    nominal = float(g.get("nominal_pps") or 0)
    send_pps = float(g.get("send_pps") or 0)
    late_p99 = float(g.get("send_lateness_us", {}).get("p99") or 0)
    phone_drops = int(g.get("phone_socket_drops") or 0)
    step.generator_kept_up = (
        send_pps >= GEN_MIN_SEND_FRACTION * nominal
        and late_p99 <= GEN_MAX_LATENESS_P99_US
        and phone_drops == 0
    )
    step.saturated = step.server_cpu_pct is not None and step.server_cpu_pct >= args.cpu_saturated
    loss = step.loss_pct or 0.0
    # A late generator sends the same packets in bursts, a harder load: a step without
    # loss is clean all the same. Only a step with loss is then inconclusive.
    problems = []
    if send_pps < GEN_MIN_SEND_FRACTION * nominal:
        problems.append(f"the load was not delivered (sent {send_pps:.0f}/{nominal:.0f} packets/s)")
    if g.get("send_errors"):
        problems.append(f"{g['send_errors']} send errors ({g.get('first_send_error')})")
    if g.get("misrouted") or g.get("bad_packets"):
        problems.append(f"{g.get('misrouted')} packets at the wrong phone, {g.get('bad_packets')} malformed")
    late = float(g.get("late_pct") or 0) if args.late_ms else 0.0
    if loss + late >= args.loss_limit:
        problems.append(
            f"loss {loss:.3f}%"
            + (f" + {late:.3f}% later than {args.late_ms} ms" if late else "")
            + f" >= {args.loss_limit}%"
        )
    # The machine was full (server, generator and other work together at >= 90% of all
    # the cores) while the server was not saturated: it was starved, not overloaded.
    machine = (step.server_cpu_pct or 0) + float(g.get("cpu_pct") or 0) + (step.other_load_pct or 0)
    machine_full = machine >= MACHINE_FULL_FRACTION * 100 * (os.cpu_count() or 1)
    step.inconclusive = ""
    if problems and not step.generator_kept_up:
        step.inconclusive = (
            f"the generator did not keep up (p99 lateness {late_p99 / 1000:.1f} ms, "
            f"{phone_drops} dropped at the phones' sockets)"
        )
    elif problems and machine_full and not step.saturated:
        step.inconclusive = (
            f"the machine was full (server {step.server_cpu_pct}%, generator {g.get('cpu_pct')}%, "
            f"other work {step.other_load_pct}% of a core): the server was starved, not saturated"
        )
    if step.inconclusive:
        problems.append(f"inconclusive: {step.inconclusive}")
    step.clean = not problems
    step.reason = "; ".join(problems)


def describe(server: Server, step: Step) -> str:
    g = step.generator
    if not g:
        return f"{server.name} {step.calls} calls: NOT clean ({step.reason})"
    lat = g.get("latency_us", {})
    verdict = "clean" if step.clean else f"NOT clean ({step.reason})"
    return (
        f"{server.name} {step.calls} calls: sent {g['sent']}, received {g['received']}, "
        f"loss {g['loss_pct']:.3f}% ({g['legs_with_loss']} legs with loss; {g['late_pct']:.3f}% later "
        f"than {g['late_ms']} ms; dropped by full "
        f"buffers: {step.server_socket_drops} at the server, {g['phone_socket_drops']} at the phones), "
        f"relayed {g['relayed_pps']:.0f} packets/s, server CPU {step.server_cpu_pct}%, "
        f"generator CPU {g['cpu_pct']}%, other work {step.other_load_pct}%, "
        f"latency p50/p99 {lat.get('p50', 0) / 1000:.2f}/{lat.get('p99', 0) / 1000:.2f} ms -> {verdict}"
        + (" [server CPU saturated]" if step.saturated else "")
    )


def settle(server: Server, args: argparse.Namespace) -> bool:
    """Let the server settle (freed sockets, its reply cache) before the next step."""
    time.sleep(args.pause)
    try:
        wait_pong(server, 30.0)
    except BenchError as exc:
        log(str(exc))
        return False
    return True


def calls_at_one_core(cpu_per_kpps: float | None) -> int | None:
    """The calls that would take 100% of one core at that CPU per 1,000 packets/s: an
    extrapolation, for when the machine (2 cores for the server, the generator and
    whatever else runs) runs out before the server does."""
    if not cpu_per_kpps:
        return None
    return round(100.0 / cpu_per_kpps * 1000 / (2 * 1000 / PTIME_MS))


class Ramp:
    """One server's ramp, a step at a time (the servers' steps alternate, so that other
    work on the machine falls on both alike)."""

    def __init__(
        self, server: Server, generator: Path, procs: Processes, args: argparse.Namespace, workdir: Path
    ) -> None:
        self.server = server
        self.generator = generator
        self.procs = procs
        self.args = args
        self.workdir = workdir
        self.steps: list[Step] = []
        self.stopped: str | None = None

    def step(self, n: int) -> None:
        """Run step n (and again, up to --retries times, when it is not clean); stop the
        ramp at its first unclean step or when the server's CPU is saturated."""
        server, args = self.server, self.args
        earlier: list[dict[str, Any]] = []
        for attempt in range(args.retries + 1):
            if not server.alive():
                break
            step = run_step(server, self.generator, self.procs, args, self.workdir, n)
            log(describe(server, step) + (f" [attempt {attempt + 1}]" if attempt else ""))
            # A failed set-up (no free ports, errors) would fail again; loss or a late
            # generator may be noise from other work on the machine: run the step again.
            if step.clean or step.setup_failures or attempt == args.retries:
                break
            earlier.append(step.as_dict())
            log(f"{server.name} {n} calls: not clean, running the step again (--retries {args.retries})")
            if not settle(server, args):
                break
        if not server.alive():
            self.stopped = f"{server.name} exited with {server.proc.returncode}"
            log(f"{self.stopped}:\n{tail(server.log_path)}")
            return
        step.earlier_attempts = earlier
        self.steps.append(step)
        if step.generator and step.generator.get("cpu_pct", 0) >= GEN_BUSY_PCT:
            log(f"warning: the generator used {step.generator['cpu_pct']}% of a core")
        if step.delete_failures:
            log(f"warning: {server.name}: {step.delete_failures} deletes failed")
        if not step.clean and step.inconclusive:
            self.stopped = f"inconclusive at {n} calls: {step.inconclusive}"
        elif not step.clean:
            self.stopped = f"first unclean step at {n} calls"
        elif step.saturated:
            self.stopped = f"server CPU saturated at {n} calls"
        elif not settle(server, args):
            self.stopped = f"{server.name} stopped answering ping"

    def result(self) -> dict[str, Any]:
        steps = self.steps
        clean = [s for s in steps if s.clean]
        best = clean[-1] if clean else None
        # Clean at the top of the ramp, or stopped by the generator: the limit is above.
        above = bool(steps) and (
            (steps[-1].clean and not steps[-1].saturated and steps[-1].calls == self.args.steps[-1])
            or (not steps[-1].clean and bool(steps[-1].inconclusive))
        )
        return {
            # 0 when no step was clean; None when none ran (interrupted).
            "max_clean_calls": best.calls if best else (0 if steps else None),
            "max_clean_pps": _round(best.relayed_pps, 1) if best else (0 if steps else None),
            "server_cpu_pct": best.server_cpu_pct if best else None,
            "cpu_pct_per_1000_pps": _round(best.cpu_per_kpps(), 3) if best else None,
            "calls_at_one_core": calls_at_one_core(best.cpu_per_kpps()) if best else None,
            "generator_cpu_pct": best.generator.get("cpu_pct") if best else None,
            "latency_p99_ms": _round(best.generator["latency_us"]["p99"] / 1000, 2) if best else None,
            "limit_above_ramp": above,
            "stopped": self.stopped,
            "steps": [s.as_dict() for s in steps],
        }


# ---------------------------------------------------------------- report


ROWS = (
    ("highest clean step (concurrent calls)", "max_clean_calls", "{:.0f}", True),
    ("relayed packets/s at that step", "max_clean_pps", "{:.0f}", True),
    ("server CPU at that step (% of one core)", "server_cpu_pct", "{:.1f}", False),
    ("server CPU per 1,000 packets/s (% of a core)", "cpu_pct_per_1000_pps", "{:.3f}", True),
    ("calls at 100% of one core (extrapolated)", "calls_at_one_core", "{:.0f}", True),
    ("generator CPU at that step (% of one core)", "generator_cpu_pct", "{:.1f}", False),
    ("relay latency p99 at that step (ms)", "latency_p99_ms", "{:.2f}", False),
)


def common_cpu(results: dict[str, Any]) -> dict[str, Any] | None:
    """CPU per 1,000 packets/s of both servers at the highest step clean on both (same load)."""
    if not all(isinstance(results.get(s), dict) and "steps" in results[s] for s in SERVERS):
        return None
    clean = [{s["calls"]: s for s in results[name]["steps"] if s["clean"]} for name in SERVERS]
    both = sorted(set(clean[0]) & set(clean[1]))
    if not both:
        return None
    n = both[-1]
    values = {name: clean[i][n]["cpu_pct_per_1000_pps"] for i, name in enumerate(SERVERS)}
    ratio = (
        round(values["ours"] / values["rtpengine"], 3)
        if values["ours"] is not None and values["rtpengine"]
        else None
    )
    return {"calls": n, **values, "ratio": ratio}


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for _, key, _, with_ratio in ROWS:
        if not with_ratio:
            continue
        ours = results.get("ours", {}).get(key)
        ref = results.get("rtpengine", {}).get(key)
        out[key] = round(ours / ref, 3) if isinstance(ours, int | float) and ref else None
    common = common_cpu(results)
    out["cpu_pct_per_1000_pps_same_load"] = common["ratio"] if common else None
    return out


def print_table(results: dict[str, Any], ratio: dict[str, float | None], args: argparse.Namespace) -> None:
    def cell(name: str, key: str, fmt: str) -> str:
        value = results.get(name, {}).get(key)
        if not isinstance(value, int | float):
            return "-"
        above = key in ("max_clean_calls", "max_clean_pps") and results[name].get("limit_above_ramp")
        return (">=" if above else "") + fmt.format(value)

    common = common_cpu(results)
    width = max(len(label) for label, *_ in ROWS) + 2
    # A limit above the ramp makes its ratio a bound (as in sip_rates.py).
    tops = tuple(bool(results.get(n, {}).get("limit_above_ramp")) for n in SERVERS)
    bound = {(True, False): "<=", (False, True): ">=", (True, True): "~"}.get(tops, "")
    print()
    print(f"{'':{width}}  {'rtpengine':>10}  {'ours':>10}  {'ours/rtpengine':>14}")
    for label, key, fmt, with_ratio in ROWS:
        r = ratio.get(key) if with_ratio else None
        prefix = bound if key in ("max_clean_calls", "max_clean_pps") else ""
        print(
            f"{label:{width}}  {cell('rtpengine', key, fmt):>10}  {cell('ours', key, fmt):>10}  "
            f"{'-' if r is None else f'{prefix}{r:.2f}':>14}"
        )
    if common:
        label = f"CPU per 1,000 packets/s at {common['calls']} calls (both)"
        r = common["ratio"]
        print(
            f"{label:{width}}  {common['rtpengine']:>10.3f}  {common['ours']:>10.3f}  "
            f"{'-' if r is None else f'{r:.2f}':>14}"
        )
    for name in SERVERS:
        if name in results and isinstance(results[name], dict):
            if results[name].get("stopped"):
                print(f"{name}: ramp stopped: {results[name]['stopped']}")
            if results[name].get("error"):
                print(f"{name}: {results[name]['error']}")
    if results.get("error"):
        print(f"run: {results['error']}")
    if any(results.get(n, {}).get("limit_above_ramp") for n in SERVERS):
        print(">=: clean at the top of the ramp (or the generator was the limit): the limit is higher")
    late = f" or later than {args.late_ms} ms" if args.late_ms else ""
    print(
        f"clean: < {args.loss_limit}% of the packets lost{late}; "
        "CPU: user+sys of the server's processes over the sending window"
    )
    print()


# ---------------------------------------------------------------- main


def parse_steps(text: str) -> list[int]:
    steps = sorted({int(s) for s in text.split(",") if s.strip()})
    if not steps or steps[0] <= 0:
        raise argparse.ArgumentTypeError("steps must be positive integers, comma-separated")
    if steps[-1] > MAX_CALLS:
        raise argparse.ArgumentTypeError(f"at most {MAX_CALLS} calls (the servers' RTP port ranges)")
    return steps


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="G.711 relay capacity of one media worker, ours side by side with rtpengine "
        "(see bench/README.md)",
    )
    p.add_argument(
        "--only",
        choices=("both", *SERVERS),
        default="both",
        help="which servers to run (default: both)",
    )
    p.add_argument(
        "--steps",
        type=parse_steps,
        default=None,
        help=f"the ramp, concurrent calls (default: {DEFAULT_STEPS}; --quick: {QUICK_STEPS})",
    )
    p.add_argument(
        "--seconds", type=float, default=None, help="sending time per step (default: 10; --quick: 3)"
    )
    p.add_argument(
        "--drain", type=float, default=1.0, help="wait for late packets after sending (default: 1)"
    )
    p.add_argument(
        "--tick-us",
        type=int,
        default=TICK_US,
        help=f"the generator's pacing tick: sends and receives are batched per tick (default: {TICK_US})",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        help="run an unclean step again this many times before the ramp stops (default: 1)",
    )
    p.add_argument(
        "--quiet-below",
        type=float,
        default=25.0,
        help="before a step, wait until other work on the machine uses under this %% of a core (25)",
    )
    p.add_argument(
        "--quiet-wait", type=float, default=60.0, help="but at most this many seconds (default: 60)"
    )
    p.add_argument("--pause", type=float, default=1.0, help="pause between steps (default: 1)")
    p.add_argument("--quick", action="store_true", help=f"a CI-sized run: steps {QUICK_STEPS}, 3 s each")
    p.add_argument(
        "--loss-limit", type=float, default=LOSS_LIMIT_PCT, help="a step is clean under this loss, %% (0.1)"
    )
    p.add_argument(
        "--late-ms",
        type=int,
        default=LATE_MS,
        help="packets later than this count as lost; 0: judge on loss only (default: 200)",
    )
    p.add_argument(
        "--cpu-saturated",
        type=float,
        default=CPU_SATURATED_PCT,
        help="server CPU, %% of one core, at which the ramp stops after the step (default: 95)",
    )
    p.add_argument("--output", type=Path, default=Path("media_relay.json"), help="JSON results file")
    p.add_argument("--rtpengine-bin", default="rtpengine")
    p.add_argument(
        "--ours-cmd",
        default="pbx",
        help="how to run the pbx command line, e.g. 'python -m pbx_services.cli' (default: pbx)",
    )
    p.add_argument(
        "--ours-log-level", default="WARNING", help="our media server's log level (default: WARNING)"
    )
    p.add_argument(
        "--ours-start-timeout", type=float, default=30.0, help="seconds for `pbx media` to answer ping"
    )
    p.add_argument("--cc", default="gcc", help="C compiler for bench/rtp_load.c (default: gcc)")
    p.add_argument("--keep-workdir", action="store_true", help="keep the temporary directory (logs, binary)")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = parse_steps(QUICK_STEPS if args.quick else DEFAULT_STEPS)
    if args.seconds is None:
        args.seconds = QUICK_SECONDS if args.quick else 10.0
    if args.seconds <= 0 or args.drain < 0:
        p.error("--seconds must be positive and --drain not negative")
    return args


def check_tools(args: argparse.Namespace) -> None:
    needed = [args.cc]
    if args.only in ("both", "rtpengine"):
        needed.append(args.rtpengine_bin)
    if args.only in ("both", "ours"):
        needed.append(shlex.split(args.ours_cmd)[0])
    require_tools(needed)


STARTERS = {"rtpengine": start_rtpengine, "ours": start_ours}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()
    raise_nofile()

    workdir = Path(tempfile.mkdtemp(prefix="media-relay-"))
    procs = Processes()
    results: dict[str, Any] = {}
    exit_code = 0
    try:
        check_tools(args)
        generator = build_generator(workdir, args.cc)
        ramps: dict[str, Ramp] = {}
        for name in SERVERS:
            if args.only not in ("both", name):
                continue
            try:
                server = STARTERS[name](procs, args, workdir)
            except BenchError as exc:
                # One server failing to start does not spoil the other's measurement.
                log(f"error: {exc}")
                results[name] = {"error": str(exc)}
                exit_code = 2
                continue
            ramps[name] = Ramp(server, generator, procs, args, workdir)
            results[name] = {"server": server.info}
        try:
            for n in args.steps:
                for name, r in ramps.items():
                    if r.stopped is None:
                        r.step(n)
                        results[name].update(r.result())
                if all(r.stopped is not None for r in ramps.values()):
                    break
        finally:
            for name, r in ramps.items():
                results[name].update(r.result())
                r.server.control.close()
                procs.stop(r.server.proc)
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
            "benchmark": "media_relay",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {
                **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                "ptime_ms": PTIME_MS,
                "packet_size": PACKET_SIZE,
                "server_ports": SERVER_PORTS,
            },
            "results": results,
            "ratios_ours_over_rtpengine": ratio,
            "cpu_same_load": common_cpu(results),
            "workdir": str(workdir) if args.keep_workdir else None,
        }
        args.output.write_text(json.dumps(report, indent=2) + "\n")
        print_table(results, ratio, args)
        log(f"results written to {args.output}")
        if args.keep_workdir:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

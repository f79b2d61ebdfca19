#!/usr/bin/env python3
"""Meeting benchmark: the participants ONE meeting worker mixes in real time, and its CPU per
participant, for rooms of 3, 10 and 50, side by side with rtpengine relaying as many streams.

Ours: `pbx meeting --config FILE` with one worker (`meeting.workers: 1`) and 1,000 rooms
(numbers 7000-7999 of the default tenant, no PIN, entry tones on, up to 50 participants),
written into the database `pbx init` made. The load generator is this script run with
`--generator` (one process, or --generators of them, each with whole rooms): it calls the
worker's SIP port over UDP (INVITE to sip:ROOM@pbx.local with a PCMU/telephone-event offer on
a socket of the participant's own, the 200's SDP port, ACK; BYE at the end) at --call-rate,
and from each call's 200 on sends 20 ms PCMU frames on its socket, paced on absolute times
(the calls' send times spread over the 20 ms): in each room --talkers participants talk (a
speech-like signal, harmonics of a gliding pitch in syllables with short pauses, mean
absolute sample about 1,500, above the meeting's voice-activity level 200) and the others
send a noise floor (mean absolute sample about 20), as in a meeting. It reads what the
meeting sends back on every socket with the kernel's receive time (SO_TIMESTAMPNS): per
stream the packets, sequence gaps, the gaps between arrivals longer than 40 ms (a frame came
late: a listener hears it) and the RFC 3550 interarrival jitter. It counts its own sends
that left a whole frame (20 ms) or more after their time: a step in which it did is not a
measurement of the server.

A step (R rooms of S participants) places the calls, waits --settle seconds with all up,
then measures a window: the worker's CPU (utime + stime of its process from /proc/PID/stat,
its pid from /health) and /metrics' pbx_meeting_late_ticks (the worker's 20 ms tick ran a
whole frame late), the generators' CPU and the machine's. A step is clean when every call
was answered and is in the room (/health's participants), the worker saw the talkers talk
(/health's talking), no tick was late (/metrics, read at the window's ends: the worker
reports once a second, so this covers the window and up to a second either side), every
stream got its packets (the window's due less one a stream, no sequence gap) with no gap
over 40 ms, and the generators kept up. The worker is *at its limit* when its CPU reaches
--cpu-limit (90%) of a core.

The search for each room size: a probe at about --first-probe participants (a short window,
--probe-seconds), then one at the count its CPU per participant predicts for --cpu-limit, then
probes bisecting between the largest that passed and the smallest that did not (whole rooms;
up by 15% while none failed, down by 15% while none passed); the largest that passed runs a
full --window (20 s), stepping down 8% while not clean (--max-confirms). A step that failed
while the generator fell behind or other work took --quiet-below % of a core is run again once.
The result is the largest count clean over a full window. A mixed run follows: one room of 50
and rooms of 10 and 3 (half the rest each) totalling the smallest of the sizes' results,
stepping down 8% while not clean. The time is shared out so that the whole run stays within
--max-seconds (600).

Reference: no conference server is packaged for Debian 12 here (`apt-cache policy asterisk
freeswitch`: asterisk has no candidate, freeswitch is unknown), so the baseline is rtpengine
(Debian's rtpengine-daemon, userspace, one thread) relaying the same number of streams: N
participants are N/2 calls set up over its NG protocol, each socket of a pair sending the
same 20 ms frames to rtpengine and receiving the other's, measured the same way. Packets in
and out per second are the meeting's; a mixer does strictly more than a relay (decode,
level, sum, encode), so the ratio of CPU says what mixing costs over forwarding.

It prints a table and writes JSON to --output. Every run is bounded (--max-seconds, each
step's own timeouts) and everything it starts is stopped by pid on exit, Ctrl-C or error.
Python 3.11 stdlib only; needs rtpengine and the `pbx` command. See bench/README.md.

Measured (commit c829509 from an export, 2-core development VM, 2026-12-03, load average
0.04-0.94 during the run, default run, 7.5 minutes; bench/README.md has the details):

    rooms                  clean for 20 s  worker CPU  ms per participant-s  rtpengine*  ratio
    3                      255 (85 rooms)  56.1%       2.20                  12.9%       4.35
    10                     520 (52 rooms)  69.4%       1.34                  23.2%       2.99
    50                     600 (12 rooms)  87.7%       1.46                  26.1%       3.36
    1x50 + 10x10 + 35x3    255             48.9%       1.92                  12.9%       3.79
    * rtpengine's CPU relaying as many streams; ratio: ours/rtpengine

Runs earlier the same night (other work on the machine at times): 405 in rooms of 3 (67.8%),
370-400 in rooms of 10 (63%), 650 in rooms of 50 (81.5%), 369 mixed (59%). Ticks start to
run late from 55-70% of a core on this shared machine; by CPU one worker mixes 450-750
participants per core.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import math
import os
import platform
import random
import re
import resource
import secrets
import select
import shlex
import socket
import sqlite3
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchlib import (
    CLK_TCK,
    AppServer,
    BenchError,
    Processes,
    RtpengineServer,
    add_run_options,
    cpu_ticks,
    end_run,
    free_udp_port,
    log,
    machine_busy_ticks,
    ng_request,
    pbx_metrics,
    process_tree,
    raise_on_stop_signals,
    require_tools,
    run_guarded,
    run_pbx,
    start_app_server,
    start_rtpengine,
    tail,
    wait_quiet,
    worker_health,
)

HOST = "127.0.0.1"
DOMAIN = "pbx.local"  # the tenant `pbx init` creates
FIRST_ROOM = 7000
ROOMS = 1000
ROOM_SIZES = (3, 10, 50)
MAX_PARTICIPANTS = 3000
# RTP ports: ours 2 per call (RTP, RTCP), rtpengine 2 per stream; below the kernel's
# ephemeral ports (where the generator's sockets are) and apart from the integration tests'.
OURS_PORTS = (4000, 11999)
RTPENGINE_PORTS = (12000, 19999)

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
FRAME_SECONDS = 0.02
SEND_PHASES = 10
"""The calls' send times are spread over the 20 ms in this many phases, as phones' are."""
LATE_GAP_SECONDS = 0.040
"""An arrival more than this after the stream's previous one: a frame came late."""
TALK_LEVEL = 1500.0
NOISE_LEVEL = 20.0
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the socket module has no name for it
SIP_TIMEOUT = 8.0
BYE_RATE = 800.0

# ---------------------------------------------------------------- audio


def ulaw_encode(sample: int) -> int:
    """One 16-bit sample as a G.711 mu-law byte (ITU-T G.711, with the usual bias and clip)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sign else sample, 32635) + 0x84
    exponent = min(7, (magnitude >> 7).bit_length() - 1)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def frames_of(samples: list[int]) -> list[bytes]:
    """PCMU payloads of 20 ms."""
    encoded = bytes(ulaw_encode(s) for s in samples)
    return [encoded[i : i + FRAME_SAMPLES] for i in range(0, len(encoded) - FRAME_SAMPLES + 1, FRAME_SAMPLES)]


def talk_frames(rng: random.Random) -> list[bytes]:
    """About 2 s of speech-like audio: voiced syllables (6 harmonics of a gliding pitch of
    110-200 Hz, falling off as 1/k) of 180-320 ms with 60 ms pauses, scaled to a mean
    absolute sample of about TALK_LEVEL. The pauses are shorter than the meeting's
    voice-activity hangover (10 frames): a talker stays in the mix, as one does mid-sentence."""
    samples: list[float] = []
    while len(samples) < 2 * SAMPLE_RATE:
        count = int(rng.uniform(0.18, 0.32) * SAMPLE_RATE)
        pitch_from, pitch_to = rng.uniform(110, 200), rng.uniform(110, 200)
        phase = 0.0
        for i in range(count):
            position = i / count
            phase += 2 * math.pi * (pitch_from + (pitch_to - pitch_from) * position) / SAMPLE_RATE
            envelope = 0.35 + 0.65 * math.sin(math.pi * position)
            samples.append(envelope * sum(math.sin(k * phase) / k for k in range(1, 7)))
        samples.extend([0.0] * int(0.06 * SAMPLE_RATE))
    samples = samples[: 2 * SAMPLE_RATE]
    scale = TALK_LEVEL / (sum(abs(s) for s in samples) / len(samples))
    return frames_of([int(s * scale) for s in samples])


def noise_frames(rng: random.Random) -> list[bytes]:
    """1 s of a noise floor: uniform noise of mean absolute sample NOISE_LEVEL."""
    return frames_of([rng.randint(-2 * int(NOISE_LEVEL), 2 * int(NOISE_LEVEL)) for _ in range(SAMPLE_RATE)])


# ---------------------------------------------------------------- the load generator (--generator)

RTP_HEADER = struct.Struct("!BBHII")
TIMESPEC = struct.Struct("@qq")
COMPACT = {b"i": b"call-id", b"m": b"contact", b"t": b"to", b"f": b"from", b"v": b"via"}


class Stream:
    """One participant (a call to the meeting, or one side of an rtpengine call): its socket,
    what it sends, and what it measured of what arrived."""

    __slots__ = (
        "index",
        "room",
        "talker",
        "sock",
        "remote",
        "frames",
        "position",
        "seq",
        "timestamp",
        "ssrc",
        "sending",
        "call_id",
        "from_tag",
        "to_tag",
        "request_uri",
        "state",
        "attempts",
        "sent_at",
        "received",
        "in_window",
        "last_arrival",
        "last_seq",
        "last_ts",
        "jitter",
        "gaps",
        "max_gap",
        "lost",
    )

    def __init__(self, index: int, room: str, talker: bool, frames: list[bytes], rng: random.Random) -> None:
        self.index, self.room, self.talker = index, room, talker
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.remote: tuple[str, int] = (HOST, 0)  # where to send, once known
        self.frames = frames
        self.position = rng.randrange(len(frames))
        self.seq, self.timestamp, self.ssrc = rng.getrandbits(16), rng.getrandbits(32), rng.getrandbits(32)
        self.sending = False
        self.call_id = f"{secrets.token_hex(8)}-{index}@bench"
        self.from_tag, self.to_tag = secrets.token_hex(4), ""
        self.request_uri = ""
        self.state = "new"  # new, inviting, up, failed, bye, ended
        self.attempts, self.sent_at = 0, 0.0
        self.received = self.in_window = self.gaps = self.lost = 0
        self.last_arrival = self.jitter = self.max_gap = 0.0
        self.last_seq = self.last_ts = -1

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def sdp_offer(port: int, session: int) -> str:
    return (
        f"v=0\r\no=- {session} 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    )


def sdp_target(sdp: str) -> tuple[str, int]:
    """The address and port of an SDP's first audio stream."""
    address = re.search(r"^c=IN IP4 (\S+)", sdp, re.MULTILINE)
    media = re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE)
    if address is None or media is None:
        raise ValueError("no audio address/port in the SDP")
    return address.group(1), int(media.group(1))


def parse_sip(data: bytes) -> tuple[str, dict[bytes, bytes], bytes]:
    """(start line, the first value of each header by lower-case name, body)."""
    head, _, body = data.partition(b"\r\n\r\n")
    start, *lines = head.split(b"\r\n")
    headers: dict[bytes, bytes] = {}
    for line in lines:
        name, colon, value = line.partition(b":")
        if colon:
            name = name.strip().lower()
            headers.setdefault(COMPACT.get(name, name), value.strip())
    return start.decode(errors="replace"), headers, body


def tag_of(value: bytes) -> str:
    found = re.search(rb";\s*tag=([^;>\s]+)", value)
    return found.group(1).decode() if found else ""


class Generator:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.mode = spec["mode"]
        rng = random.Random(spec.get("seed", 1))
        talk = [talk_frames(rng) for _ in range(4)]
        noise = [noise_frames(rng) for _ in range(4)]
        self.streams: list[Stream] = []
        for number, size, talkers in spec["rooms"]:
            for seat in range(size):
                index = len(self.streams)
                frames = talk[index % 4] if seat < talkers else noise[index % 4]
                self.streams.append(Stream(index, str(number), seat < talkers, frames, rng))
        self.phases: list[list[Stream]] = [self.streams[p::SEND_PHASES] for p in range(SEND_PHASES)]
        self.by_fd = {s.sock.fileno(): s for s in self.streams}
        self.by_call_id = {s.call_id.encode(): s for s in self.streams}
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((HOST, 0))
        self.sip.setblocking(False)
        self.sip_port = self.sip.getsockname()[1]
        self.server = (spec["sip_host"], spec["sip_port"]) if self.mode == "meeting" else None
        self.poll = select.epoll()
        for fd in self.by_fd:
            self.poll.register(fd, select.EPOLLIN)
        self.poll.register(self.sip.fileno(), select.EPOLLIN)
        self.poll.register(sys.stdin.fileno(), select.EPOLLIN)
        self.stdin_buf = b""
        self.timers: list[tuple[float, int, str, Stream]] = []
        self.timer_seq = 0
        self.window = (math.inf, math.inf)
        self.clock_offset = time.time() - time.monotonic()
        self.errors: list[str] = []
        self.counts = {
            "answered": 0,
            "failed": 0,
            "server_byes": 0,
            "bye_answered": 0,
            "bye_unanswered": 0,
            "send_errors": 0,
            "invite_retransmissions": 0,
        }
        # Sends: all of them, and in the window how many left a whole frame late, the latest.
        self.sends = {
            "frames": 0,
            "window_frames": 0,
            "late_frames": 0,
            "late_10ms_frames": 0,
            "max_late_ms": 0.0,
        }
        self.stopping = False
        self.bye_queue: list[Stream] = []
        self.bye_at = 0.0
        self.byes_pending = 0

    # -- output

    @staticmethod
    def say(event: str, **fields: Any) -> None:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()

    def error(self, text: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(text)

    # -- timers

    def schedule(self, at: float, kind: str, stream: Stream) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (at, self.timer_seq, kind, stream))

    def run_timers(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, kind, stream = heapq.heappop(self.timers)
            if kind == "invite" and stream.state == "inviting":
                if now - stream.sent_at >= SIP_TIMEOUT:
                    stream.state = "failed"
                    self.counts["failed"] += 1
                    self.error(f"{stream.call_id}: no final answer to the INVITE in {SIP_TIMEOUT:g} s")
                else:
                    self.counts["invite_retransmissions"] += 1
                    self.send_invite(stream, now, first=False)
            elif kind == "bye" and stream.state == "bye":
                if now - stream.sent_at >= SIP_TIMEOUT:
                    stream.state = "ended"
                    self.byes_pending -= 1
                    self.counts["bye_unanswered"] += 1
                else:
                    self.send_bye(stream, now, first=False)

    # -- SIP

    def via(self) -> str:
        return f"SIP/2.0/UDP {HOST}:{self.sip_port};branch=z9hG4bK{secrets.token_hex(8)};rport"

    def send_sip(self, text: str, body: str = "") -> None:
        data = (text + f"Content-Length: {len(body.encode())}\r\n\r\n" + body).encode()
        assert self.server is not None
        try:
            self.sip.sendto(data, self.server)
        except OSError as exc:
            self.error(f"SIP send: {exc}")

    def send_invite(self, stream: Stream, now: float, *, first: bool = True) -> None:
        if first:
            stream.state, stream.sent_at = "inviting", now
        stream.attempts += 1
        body = sdp_offer(stream.port, stream.index + 1)
        self.send_sip(
            f"INVITE sip:{stream.room}@{DOMAIN} SIP/2.0\r\nVia: {self.via()}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:bench{stream.index}@{DOMAIN}>;tag={stream.from_tag}\r\n"
            f"To: <sip:{stream.room}@{DOMAIN}>\r\nCall-ID: {stream.call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:bench{stream.index}@{HOST}:{self.sip_port}>\r\nContent-Type: application/sdp\r\n",
            body,
        )
        self.schedule(now + min(0.5 * 2 ** (stream.attempts - 1), 4.0), "invite", stream)

    def dialog_headers(self, stream: Stream, cseq: str) -> str:
        return (
            f"Via: {self.via()}\r\nMax-Forwards: 70\r\n"
            f"From: <sip:bench{stream.index}@{DOMAIN}>;tag={stream.from_tag}\r\n"
            f"To: <sip:{stream.room}@{DOMAIN}>;tag={stream.to_tag}\r\n"
            f"Call-ID: {stream.call_id}\r\nCSeq: {cseq}\r\n"
        )

    def send_ack(self, stream: Stream) -> None:
        self.send_sip(f"ACK {stream.request_uri} SIP/2.0\r\n" + self.dialog_headers(stream, "1 ACK"))

    def send_bye(self, stream: Stream, now: float, *, first: bool = True) -> None:
        if first:
            stream.state, stream.sent_at, stream.attempts, stream.sending = "bye", now, 0, False
            self.byes_pending += 1
        stream.attempts += 1
        self.send_sip(f"BYE {stream.request_uri} SIP/2.0\r\n" + self.dialog_headers(stream, "2 BYE"))
        self.schedule(now + min(0.5 * 2 ** (stream.attempts - 1), 4.0), "bye", stream)

    def on_sip(self, data: bytes, source: tuple[str, int], now: float) -> None:
        start, headers, body = parse_sip(data)
        stream = self.by_call_id.get(headers.get(b"call-id", b""))
        if not start.startswith("SIP/2.0 "):
            # A request of the server's (a BYE: the call timed out there): answer it.
            lines = [
                f"{name.decode().title()}: {headers[name].decode()}"
                for name in (b"via", b"from", b"to", b"call-id", b"cseq")
                if name in headers
            ]
            self.sip.sendto(
                ("SIP/2.0 200 OK\r\n" + "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode(), source
            )
            if stream is not None and start.startswith("BYE ") and stream.state == "up":
                stream.state, stream.sending = "ended", False
                self.counts["server_byes"] += 1
                self.error(f"{stream.call_id}: the server hung up")
            return
        if stream is None:
            return
        status = int(start.split()[1])
        method = headers.get(b"cseq", b"").split()[-1:]
        if method == [b"INVITE"]:
            if status < 200:
                return
            if status >= 300:
                if stream.state == "inviting":
                    stream.state = "failed"
                    self.counts["failed"] += 1
                    self.error(f"{stream.call_id}: {start}")
                return
            if stream.state == "inviting":
                stream.to_tag = tag_of(headers.get(b"to", b""))
                contact = re.search(rb"<([^>]+)>", headers.get(b"contact", b""))
                stream.request_uri = (
                    contact.group(1).decode() if contact else f"sip:{stream.room}@{source[0]}:{source[1]}"
                )
                try:
                    stream.remote = sdp_target(body.decode(errors="replace"))
                except ValueError as exc:
                    stream.state = "failed"
                    self.counts["failed"] += 1
                    self.error(f"{stream.call_id}: {exc}")
                    return
                stream.state, stream.sending = "up", True
                self.counts["answered"] += 1
            self.send_ack(stream)  # the 200 or its retransmission
        elif method == [b"BYE"] and stream.state == "bye" and status >= 200:
            stream.state = "ended"
            self.byes_pending -= 1
            self.counts["bye_answered"] += 1

    # -- rtpengine's calls (NG protocol)

    def ng(self, command: dict[str, Any]) -> dict[str, Any]:
        for _ in range(3):
            reply = ng_request(HOST, self.spec["ng_port"], command, timeout=1.0)
            if reply is not None:
                if reply.get("result") != "ok":
                    raise BenchError(str(reply.get("error-reason") or reply))
                return reply
        raise BenchError("no reply")

    def rtpengine_calls(self) -> None:
        """Pairs of streams as rtpengine calls: A's offer gives where B sends, B's answer where A sends."""
        for a, b in zip(self.streams[0::2], self.streams[1::2], strict=False):
            ids = {"call-id": a.call_id, "from-tag": "a", "replace": ["origin", "session-connection"]}
            try:
                offer = self.ng({"command": "offer", **ids, "sdp": sdp_offer(a.port, a.index + 1)})
                answer = self.ng(
                    {"command": "answer", **ids, "to-tag": "b", "sdp": sdp_offer(b.port, b.index + 1)}
                )
                b.remote, a.remote = sdp_target(str(offer.get("sdp"))), sdp_target(str(answer.get("sdp")))
            except (BenchError, ValueError) as exc:
                for s in (a, b):
                    s.state = "failed"
                    self.counts["failed"] += 1
                self.error(f"rtpengine call {a.call_id}: {exc}")
                continue
            for s in (a, b):
                s.state, s.sending = "up", True
                self.counts["answered"] += 1

    # -- RTP

    def send_phase(self, phase: int, due: float, now: float) -> None:
        late = now - due
        in_window = self.window[0] <= due < self.window[1]
        pack = RTP_HEADER.pack
        sent = 0
        for stream in self.phases[phase]:
            if not stream.sending:
                continue
            stream.seq = (stream.seq + 1) & 0xFFFF
            stream.timestamp = (stream.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
            position = stream.position + 1
            if position == len(stream.frames):
                position = 0
            stream.position = position
            try:
                stream.sock.sendto(
                    pack(0x80, 0, stream.seq, stream.timestamp, stream.ssrc) + stream.frames[position],
                    stream.remote,
                )
            except OSError:
                self.counts["send_errors"] += 1
            sent += 1
        self.sends["frames"] += sent
        if in_window:
            self.sends["window_frames"] += sent
            if late >= FRAME_SECONDS:
                self.sends["late_frames"] += sent
            if late >= FRAME_SECONDS / 2:
                self.sends["late_10ms_frames"] += sent
            self.sends["max_late_ms"] = max(self.sends["max_late_ms"], 1000 * late)

    def on_rtp(self, stream: Stream) -> None:
        try:
            data, ancillary, _, _ = stream.sock.recvmsg(512, 64)
        except (BlockingIOError, InterruptedError):
            return
        if len(data) < 12:
            return
        if ancillary:
            sec, nsec = TIMESPEC.unpack(ancillary[0][2])
            arrival = sec + nsec * 1e-9 - self.clock_offset  # the kernel's receive time, on our clock
        else:
            arrival = time.monotonic()
        seq = (data[2] << 8) | data[3]
        timestamp = int.from_bytes(data[4:8], "big")
        stream.received += 1
        in_window = self.window[0] <= arrival < self.window[1]
        if stream.last_seq >= 0:
            gap = arrival - stream.last_arrival
            transit = (
                gap - (((timestamp - stream.last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000) / SAMPLE_RATE
            )
            stream.jitter += (abs(transit) - stream.jitter) / 16
            if in_window:
                if gap > LATE_GAP_SECONDS:
                    stream.gaps += 1
                if gap > stream.max_gap:
                    stream.max_gap = gap
                skipped = ((seq - stream.last_seq) & 0xFFFF) - 1
                if 0 < skipped < 1000:
                    stream.lost += skipped
        if in_window:
            stream.in_window += 1
        stream.last_seq, stream.last_ts, stream.last_arrival = seq, timestamp, arrival

    # -- commands from the orchestrator (stdin): "window T0 T1" (monotonic), "stop"

    def on_stdin(self, now: float) -> None:
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            self.stop(now)
            return
        self.stdin_buf += chunk
        while b"\n" in self.stdin_buf:
            line, self.stdin_buf = self.stdin_buf.split(b"\n", 1)
            words = line.decode().split()
            if words[:1] == ["window"]:
                self.window = (float(words[1]), float(words[2]))
            elif words[:1] == ["stop"]:
                self.stop(now)

    def stop(self, now: float) -> None:
        if not self.stopping:
            self.stopping = True
            self.poll.unregister(sys.stdin.fileno())
            if self.mode == "meeting":
                self.bye_queue = [s for s in self.streams if s.state == "up"]
            else:
                for stream in self.streams:
                    stream.sending = False
            self.bye_at = now

    # -- the loop

    def run(self) -> None:
        start = time.monotonic()
        if self.mode == "rtpengine":
            self.rtpengine_calls()
            to_invite: list[Stream] = []
        else:
            to_invite = list(self.streams)
        invite_at, invite_gap = start, 1.0 / float(self.spec["call_rate"])
        announced = False
        frame, phase = 0, 0
        base = start + 0.001
        deadline = start + float(self.spec["max_seconds"])
        while True:
            now = time.monotonic()
            if now > deadline and not self.stopping:
                self.error("the generator's time limit was reached")
                self.stop(now)
            # Sends due, in order (a late generator sends late: counted).
            due = base + frame * FRAME_SECONDS + phase * FRAME_SECONDS / SEND_PHASES
            while due <= now:
                self.send_phase(phase, due, now)
                phase += 1
                if phase == SEND_PHASES:
                    phase, frame = 0, frame + 1
                due = base + frame * FRAME_SECONDS + phase * FRAME_SECONDS / SEND_PHASES
            while to_invite and invite_at <= now:
                self.send_invite(to_invite.pop(), now)
                invite_at += invite_gap
            while self.bye_queue and self.bye_at <= now:
                self.send_bye(self.bye_queue.pop(), now)
                self.bye_at += 1.0 / BYE_RATE
            self.run_timers(now)
            if (
                not announced
                and not to_invite
                and self.counts["answered"] + self.counts["failed"] >= len(self.streams)
            ):
                announced = True
                self.say("up", seconds=round(now - start, 3), **self.counts, errors=self.errors)
            if self.stopping and not self.bye_queue and not self.byes_pending:
                if self.mode == "rtpengine":
                    for a in self.streams[0::2]:
                        try:
                            self.ng({"command": "delete", "call-id": a.call_id})
                        except BenchError:
                            pass
                break
            wait = due - time.monotonic()
            if to_invite:
                wait = min(wait, invite_at - time.monotonic())
            for fd, _ in self.poll.poll(max(0.0, wait)):
                stream = self.by_fd.get(fd)
                if stream is not None:
                    self.on_rtp(stream)
                elif fd == self.sip.fileno():
                    try:
                        data, source = self.sip.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        continue
                    self.on_sip(data, source, time.monotonic())
                else:
                    self.on_stdin(time.monotonic())
        self.say("result", **self.result())

    def result(self) -> dict[str, Any]:
        window = self.window[1] - self.window[0] if math.isfinite(self.window[0]) else 0.0
        measured = [s for s in self.streams if s.state != "failed"]
        jitters = [1000 * s.jitter for s in measured]
        return {
            "streams": len(self.streams),
            "talkers": sum(s.talker for s in self.streams),
            **self.counts,
            "errors": self.errors,
            "window_seconds": round(window, 3),
            "expected": round(len(measured) * window / FRAME_SECONDS),
            "received": sum(s.in_window for s in measured),
            "short_streams": sum(1 for s in measured if s.in_window < window / FRAME_SECONDS - 1),
            "silent_streams": sum(1 for s in measured if s.in_window == 0),
            "sequence_gaps": sum(s.lost for s in measured),
            "late_gaps": sum(s.gaps for s in measured),
            "streams_with_late_gaps": sum(1 for s in measured if s.gaps),
            "max_gap_ms": round(1000 * max((s.max_gap for s in measured), default=0.0), 1),
            "jitter_ms_mean": round(sum(jitters) / len(jitters), 3) if jitters else None,
            "jitter_ms_max": round(max(jitters), 3) if jitters else None,
            "sends": {**self.sends, "max_late_ms": round(self.sends["max_late_ms"], 2)},
        }


def generator_main() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(sys.stdin.buffer.readline())
    gc.disable()  # no cycles are made in the loop, and a collection would delay the sends
    Generator(spec).run()
    return 0


# ---------------------------------------------------------------- the orchestrator: servers




def add_rooms(database: Path) -> None:
    """Rooms FIRST_ROOM.. of the default tenant, straight into the database `pbx init` made
    (a `pbx meeting add` per room would take minutes): no PIN, entry tones on, 50 at most."""
    created = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
    with sqlite3.connect(database) as db:
        row = db.execute("SELECT id FROM tenants WHERE domain = ?", (DOMAIN,)).fetchone()
        if row is None:
            raise BenchError(f"no tenant {DOMAIN} in {database}")
        db.executemany(
            "INSERT INTO meeting_rooms (tenant_id, number, name, max_participants, pin_tries,"
            " wait_for_moderator, end_with_moderator, mute_on_entry, entry_tones, record, created_at)"
            " VALUES (?, ?, ?, 50, 3, 0, 0, 0, 1, 0, ?)",
            [(row[0], str(FIRST_ROOM + i), f"bench {i}", created) for i in range(ROOMS)],
        )
    # sqlite3's context manager commits; the connection is closed by garbage collection.


def start_meeting(procs: Processes, args: argparse.Namespace, workdir: Path) -> AppServer:
    data = workdir / "meeting-data"
    run_pbx(args.pbx_cmd, "init", "--data-dir", str(data))
    add_rooms(data / "pbx.sqlite3")
    return start_app_server(
        procs,
        role="meeting",
        what="meeting",
        command=lambda config: shlex.split(args.meeting_cmd.format(config=shlex.quote(str(config)))),
        data=data,
        ports=OURS_PORTS,
        workdir=workdir,
        timeout=args.start_timeout,
        settings={"rtp_timeout": 30, "recording_dir": str(workdir / "recordings")},
    )


def late_ticks(meeting: AppServer) -> float:
    metrics = pbx_metrics(HOST, meeting.http_port)
    if not metrics:
        raise BenchError(f"the meeting server's /metrics (port {meeting.http_port}) did not answer")
    return sum(
        v
        for k, v in metrics.items()
        if k.startswith(("pbx_meeting_late_ticks_total{", "pbx_meeting_late_ticks{"))
    )


# ---------------------------------------------------------------- the orchestrator: steps


class GeneratorProc:
    """A generator child: its spec in on stdin, JSON lines out on stdout."""

    def __init__(self, procs: Processes, spec: dict[str, Any], log_path: Path) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--generator"]
        self.proc = procs.start("generator", cmd, log_path=log_path, pipes=True)
        self.procs, self.log_path, self.buf = procs, log_path, b""
        self.send(json.dumps(spec))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd, deadline = self.proc.stdout.fileno(), time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"the generator (pid {self.proc.pid}) said no {event!r} in {timeout:.0f} s")
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise BenchError(f"the generator exited ({self.proc.poll()}):\n{tail(self.log_path)}")
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        message = json.loads(line)
        if message.get("event") != event:
            raise BenchError(f"the generator said {line[:200]!r}, expected {event!r}")
        return dict(message)


def split_rooms(rooms: list[tuple[int, int, int]], parts: int) -> list[list[tuple[int, int, int]]]:
    """Whole rooms shared out among `parts` generators, the participants balanced."""
    shares: list[list[tuple[int, int, int]]] = [[] for _ in range(parts)]
    for room in sorted(rooms, key=lambda r: -r[1]):
        min(shares, key=lambda share: sum(r[1] for r in share)).append(room)
    return [share for share in shares if share]


def room_plan(sizes: list[int], talkers: dict[int, int]) -> list[tuple[int, int, int]]:
    """(number, participants, talkers) for rooms of these sizes."""
    if len(sizes) > ROOMS:
        raise BenchError(f"{len(sizes)} rooms asked, {ROOMS} exist")
    return [
        (FIRST_ROOM + i, size, min(size, talkers.get(size, 1 if size <= 3 else 2)))
        for i, size in enumerate(sizes)
    ]


def describe_rooms(rooms: list[tuple[int, int, int]]) -> str:
    if rooms and rooms[0][0] == 0:  # rtpengine's streams, in pairs
        return f"{rooms[0][1] // 2} calls"
    counts: dict[int, int] = {}
    for _, size, _ in rooms:
        counts[size] = counts.get(size, 0) + 1
    return " + ".join(f"{n}x{size}" for size, n in sorted(counts.items(), reverse=True))


def run_step(
    procs: Processes,
    server: str,
    rooms: list[tuple[int, int, int]],
    window: float,
    args: argparse.Namespace,
    workdir: Path,
    *,
    meeting: AppServer | None = None,
    rtpengine: RtpengineServer | None = None,
) -> dict[str, Any]:
    participants = sum(r[1] for r in rooms)
    talkers_sent = sum(r[2] for r in rooms)
    other_before = wait_quiet(
        below_pct=args.quiet_below, wait_seconds=args.quiet_wait, exclude=process_tree(os.getpid())
    )
    label = f"{server} {describe_rooms(rooms)} = {participants} participants, {window:g} s"
    log(f"{label} (other work {other_before}% of a core)")
    if meeting is not None:
        server_pids = [meeting.worker_pid]
        base = {"mode": "meeting", "sip_host": HOST, "sip_port": meeting.sip_port}
    else:
        assert rtpengine is not None
        server_pids = process_tree(rtpengine.proc.pid)
        base = {"mode": "rtpengine", "ng_port": rtpengine.ng_port}
    setup = participants / args.call_rate + SIP_TIMEOUT + 5
    limit = setup + args.settle + window + 30
    generators = [
        GeneratorProc(
            procs,
            {
                **base,
                "rooms": share,
                "call_rate": args.call_rate / args.generators,
                "seed": index + 1,
                "max_seconds": limit,
            },
            workdir / f"generator-{server}-{participants}-{index}.log",
        )
        for index, share in enumerate(split_rooms(rooms, args.generators))
    ]
    try:
        ups = [g.expect("up", setup + 10) for g in generators]
        t0 = time.monotonic() + args.settle
        t1 = t0 + window
        for g in generators:
            g.send(f"window {t0!r} {t1!r}")
        time.sleep(max(0.0, t0 - time.monotonic()))
        health0 = worker_health(meeting.http_port) if meeting else None
        late0 = late_ticks(meeting) if meeting else 0.0
        gen_pids = [g.proc.pid for g in generators]
        c0 = (
            time.monotonic(),
            cpu_ticks(server_pids),
            cpu_ticks(gen_pids),
            cpu_ticks([os.getpid()]),
            machine_busy_ticks(),
        )
        time.sleep(max(0.0, t1 - time.monotonic()))
        c1 = (
            time.monotonic(),
            cpu_ticks(server_pids),
            cpu_ticks(gen_pids),
            cpu_ticks([os.getpid()]),
            machine_busy_ticks(),
        )
        if meeting is not None:
            time.sleep(1.2)  # the worker reports once a second
            late1 = late_ticks(meeting)
            health1 = worker_health(meeting.http_port) or {}
        for g in generators:
            g.send("stop")
        results = [g.expect("result", participants / BYE_RATE + SIP_TIMEOUT + 10) for g in generators]
    finally:
        for g in generators:
            procs.stop(g.proc)
    seconds = c1[0] - c0[0]

    def pct(ticks: float) -> float:
        return round(100.0 * ticks / CLK_TCK / seconds, 1)

    server_t, gen_t, me_t, busy_t = (c1[i] - c0[i] for i in range(1, 5))
    gen = {
        key: sum(r[key] for r in results)
        for key in (
            "streams",
            "talkers",
            "answered",
            "failed",
            "server_byes",
            "bye_answered",
            "bye_unanswered",
            "send_errors",
            "invite_retransmissions",
            "expected",
            "received",
            "short_streams",
            "silent_streams",
            "sequence_gaps",
            "late_gaps",
            "streams_with_late_gaps",
        )
    }
    gen["max_gap_ms"] = max(r["max_gap_ms"] for r in results)
    jitter_means = [r["jitter_ms_mean"] for r in results if r["jitter_ms_mean"] is not None]
    gen["jitter_ms_mean"] = round(sum(jitter_means) / len(jitter_means), 3) if jitter_means else None
    gen["jitter_ms_max"] = max((r["jitter_ms_max"] or 0.0) for r in results)
    gen["sends"] = {
        key: sum(r["sends"][key] for r in results)
        for key in ("frames", "window_frames", "late_frames", "late_10ms_frames")
    }
    gen["sends"]["max_late_ms"] = max(r["sends"]["max_late_ms"] for r in results)
    gen["setup_seconds"] = max(u["seconds"] for u in ups)
    gen["errors"] = [e for r in results for e in r["errors"]][:10]
    step: dict[str, Any] = {
        "server": server,
        "rooms": describe_rooms(rooms),
        "room_sizes": sorted({r[1] for r in rooms}),
        "participants": participants,
        "talkers_sent": talkers_sent,
        "window": window,
        "cpu": {
            "seconds": round(seconds, 3),
            "server_pct": pct(server_t),
            "generator_pct": pct(gen_t),
            "other_pct": pct(max(0, busy_t - server_t - gen_t - me_t)),
            "machine_pct": pct(busy_t),
        },
        "cpu_ms_per_participant_second": round(1000 * server_t / CLK_TCK / seconds / participants, 4),
        "generator": gen,
        "other_before_pct": other_before,
    }
    if meeting is not None:
        step["worker"] = {
            "late_ticks": int(late1 - late0),
            "participants": (health0 or {}).get("participants"),
            "rooms": (health0 or {}).get("rooms"),
            "talking": (health0 or {}).get("talking"),
            "restarted": health1.get("pid") not in (None, meeting.worker_pid),
        }
        if step["worker"]["restarted"]:
            log(f"the meeting worker was restarted (pid {meeting.worker_pid}, now {health1['pid']})")
            meeting.worker_pid = int(health1["pid"])
        wait_calls_gone(meeting)
    judge(step, args)
    log(describe(step))
    return step


def wait_calls_gone(meeting: AppServer, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ((worker_health(meeting.http_port) or {}).get("calls") or 0) == 0:
            return
        time.sleep(0.2)
    log("the meeting worker still has calls after the step")


def judge(step: dict[str, Any], args: argparse.Namespace) -> None:
    """clean: the server did its job (every call up, every stream's packets, no late frame);
    within_limit: and under --cpu-limit; generator_ok: the generator kept up."""
    gen, n = step["generator"], step["participants"]
    problems = []
    if gen["answered"] != n or gen["failed"]:
        problems.append(f"{gen['answered']} of {n} calls up, {gen['failed']} failed")
    if gen["server_byes"]:
        problems.append(f"the server hung up {gen['server_byes']} calls")
    if gen["late_gaps"]:
        problems.append(
            f"{gen['late_gaps']} gaps over 40 ms in {gen['streams_with_late_gaps']} streams "
            f"(longest {gen['max_gap_ms']} ms)"
        )
    if gen["short_streams"] or gen["sequence_gaps"]:
        problems.append(
            f"{gen['short_streams']} streams short of packets, {gen['sequence_gaps']} lost "
            f"({gen['received']} of {gen['expected']} received)"
        )
    worker = step.get("worker")
    if worker is not None:
        if worker["late_ticks"]:
            problems.append(f"{worker['late_ticks']} ticks a frame late")
        if worker["participants"] != n:
            problems.append(f"{worker['participants']} participants in the rooms, {n} called")
        if worker["talking"] != step["talkers_sent"]:
            problems.append(f"{worker['talking']} talking, {step['talkers_sent']} talked")
        if worker["restarted"]:
            problems.append("the worker died and was restarted")
    step["problems"] = problems
    step["clean"] = not problems
    step["within_limit"] = step["cpu"]["server_pct"] < args.cpu_limit
    sends = gen["sends"]
    step["generator_ok"] = sends["late_frames"] == 0 and gen["send_errors"] == 0
    step["passed"] = step["clean"] and step["within_limit"] and step["generator_ok"]


def describe(step: dict[str, Any]) -> str:
    cpu, gen, sends = step["cpu"], step["generator"], step["generator"]["sends"]
    verdict = "passed" if step["passed"] else ("clean, over the CPU limit" if step["clean"] else "NOT clean")
    if not step["generator_ok"]:
        verdict += " (the generator fell behind: not a measurement of the server)"
    text = (
        f"{step['server']} {step['rooms']} = {step['participants']}: {verdict}; server {cpu['server_pct']}% "
        f"of a core ({step['cpu_ms_per_participant_second']} ms per participant-second), generator "
        f"{cpu['generator_pct']}% (late sends {sends['late_frames']}, latest {sends['max_late_ms']} ms), "
        f"other work {cpu['other_pct']}%; {gen['received']}/{gen['expected']} packets, gaps>40ms "
        f"{gen['late_gaps']}, longest {gen['max_gap_ms']} ms, jitter {gen['jitter_ms_mean']} ms "
        f"(max {gen['jitter_ms_max']})"
    )
    if "worker" in step:
        w = step["worker"]
        text += f"; late ticks {w['late_ticks']}, participants {w['participants']}, talking {w['talking']}"
    if step["problems"]:
        text += " -- " + "; ".join(step["problems"])
    return text


# ---------------------------------------------------------------- the search


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, participants: int, window: float, args: argparse.Namespace) -> bool:
        estimate = participants / args.call_rate + args.settle + window + participants / BYE_RATE + 8
        return bool(estimate < self.left())


def disturbed(step: dict[str, Any], args: argparse.Namespace) -> bool:
    """Unclean while the generator fell behind or other work took a share of the machine, and the
    server was under its CPU limit: worth running again."""
    return (
        not step["passed"]
        and step["cpu"]["server_pct"] < args.cpu_limit
        and (not step["generator_ok"] or step["cpu"]["other_pct"] >= args.quiet_below)
    )


def search_size(
    procs: Processes,
    meeting: AppServer,
    size: int,
    args: argparse.Namespace,
    workdir: Path,
    budget: Budget,
    idle_pct: float,
    notes: list[str],
) -> dict[str, Any]:
    """Probe, predict, bisect with probes, confirm over a full window stepping down: the largest
    count clean for a whole window."""
    steps: list[dict[str, Any]] = []
    max_rooms = min(ROOMS, MAX_PARTICIPANTS // size)

    def step(rooms: int, window: float) -> dict[str, Any] | None:
        for attempt in range(2):
            if not budget.fits(rooms * size, window, args):
                notes.append(
                    f"rooms of {size}: {rooms} rooms over {window:g} s skipped, past its time budget"
                )
                log(notes[-1])
                return None
            result = run_step(
                procs, "ours", room_plan([size] * rooms, args.talkers), window, args, workdir, meeting=meeting
            )
            result["kind"] = "probe" if window < args.window else "full"
            steps.append(result)
            if attempt or not disturbed(result, args):
                return result
            log("disturbed (the generator fell behind, or other work): once more")
        return result

    rooms = max(1, round(args.first_probe / size))
    first = step(rooms, args.probe_seconds)
    if first is None:
        return {"size": size, "steps": steps, "best": None}
    lo: int | None = rooms if first["passed"] else None
    hi: int | None = None if first["passed"] else rooms
    if first["passed"]:
        per_room_pct = (first["cpu"]["server_pct"] - idle_pct) / rooms
        predicted = int((args.cpu_limit - idle_pct) / per_room_pct) if per_room_pct > 0 else max_rooms
        rooms = max(rooms + 1, min(max_rooms, predicted))
    else:
        rooms = max(1, rooms // 2)
    tried = {lo, hi}
    for _ in range(args.max_probes):
        if rooms in tried or not 1 <= rooms <= max_rooms:
            break
        tried.add(rooms)
        result = step(rooms, args.probe_seconds)
        if result is None:
            break
        if result["passed"]:
            lo = max(lo or 0, rooms)
        else:
            hi = min(hi or rooms, rooms)
        if hi is None:
            rooms += max(1, round(rooms * 0.15))
        elif lo is None:
            rooms -= max(1, round(rooms * 0.15))
        elif hi - lo <= max(1, round(lo * 0.06)):
            break
        else:
            rooms = (lo + hi) // 2
    best: dict[str, Any] | None = None
    rooms = lo or 0
    for _ in range(args.max_confirms):
        if rooms < 1:
            break
        result = step(rooms, args.window)
        if result is None:
            break
        if result["passed"]:
            best = result
            break
        rooms -= max(1, round(rooms * 0.08))
    if best is None:
        notes.append(f"rooms of {size}: no count passed over a full window")
    return {"size": size, "steps": steps, "best": best}


def run_mixed(
    procs: Processes,
    meeting: AppServer,
    total: int,
    args: argparse.Namespace,
    workdir: Path,
    budget: Budget,
    notes: list[str],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A room of 50 with rooms of 10 and 3 totalling `total`, stepping down while not clean."""
    steps: list[dict[str, Any]] = []
    for _ in range(args.max_confirms):
        if total < 50 or not budget.fits(total, args.window, args):
            notes.append(f"mixed {total}: skipped, past its time budget or under 50")
            break
        result = run_step(
            procs, "ours", mixed_rooms(total, args.talkers), args.window, args, workdir, meeting=meeting
        )
        result["kind"] = "mixed"
        steps.append(result)
        if result["passed"]:
            return result, steps
        if not disturbed(result, args):
            total -= max(3, round(total * 0.08))
    notes.append("mixed: no count passed over a full window")
    return None, steps


def mixed_rooms(total: int, talkers: dict[int, int]) -> list[tuple[int, int, int]]:
    """One room of 50, then half the rest in rooms of 10 and the other half in rooms of 3."""
    rest = max(0, total - 50)
    tens = rest // 2 // 10
    threes = (rest - 10 * tens) // 3
    return room_plan([50] + [10] * tens + [3] * threes, talkers)


# ---------------------------------------------------------------- summary and table


def summarize(
    searches: list[dict[str, Any]], mixed: dict[str, Any] | None, references: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for label, best in [(f"rooms of {s['size']}", s["best"]) for s in searches] + [("mixed", mixed)]:
        if best is None:
            rows.append({"rooms": label, "best": None})
            continue
        ref = references.get(best["participants"])
        ms = best["cpu_ms_per_participant_second"]
        row = {
            "rooms": label,
            "layout": best["rooms"],
            "participants": best["participants"],
            "clean": best["passed"],
            "cpu_pct": best["cpu"]["server_pct"],
            "ms_per_participant_second": ms,
            "participants_per_core": round(1000 / ms) if ms else None,
            "late_ticks": best["worker"]["late_ticks"],
            "gaps": best["generator"]["late_gaps"],
            "max_gap_ms": best["generator"]["max_gap_ms"],
            "jitter_ms_mean": best["generator"]["jitter_ms_mean"],
            "generator_pct": best["cpu"]["generator_pct"],
            "generator_late": best["generator"]["sends"]["late_frames"],
            "rtpengine_pct": ref["cpu"]["server_pct"] if ref else None,
            "rtpengine_clean": ref["clean"] if ref else None,
            "ratio": round(best["cpu"]["server_pct"] / ref["cpu"]["server_pct"], 2)
            if ref and ref["cpu"]["server_pct"]
            else None,
        }
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], steps: list[dict[str, Any]], idle: dict[str, float]) -> None:
    print()
    print("every step:")
    print(
        f"{'server':<9} {'rooms':<22} {'part.':>5} {'window':>6} {'verdict':<12} {'CPU %':>6} {'ms/p-s':>7} "
        f"{'late':>4} {'gaps':>4} {'maxgap':>6} {'jitter':>6} {'gen %':>5} {'genlate':>7} {'other %':>7}"
    )
    for s in steps:
        verdict = "passed" if s["passed"] else ("over limit" if s["clean"] else "NOT clean")
        if not s["generator_ok"]:
            verdict = "gen. behind"
        late = str(s["worker"]["late_ticks"]) if "worker" in s else "-"
        print(
            f"{s['server']:<9} {s['rooms']:<22} {s['participants']:>5} {s['window']:>6g} {verdict:<12} "
            f"{s['cpu']['server_pct']:>6.1f} {s['cpu_ms_per_participant_second']:>7.3f} {late:>4} "
            f"{s['generator']['late_gaps']:>4} {s['generator']['max_gap_ms']:>6.1f} "
            f"{s['generator']['jitter_ms_mean'] or 0:>6.2f} {s['cpu']['generator_pct']:>5.1f} "
            f"{s['generator']['sends']['late_frames']:>7} {s['cpu']['other_pct']:>7.1f}"
        )
    print()
    print(f"idle: worker {idle.get('ours')}% of a core, rtpengine {idle.get('rtpengine')}%")
    print(
        f"{'rooms':<12} {'layout':<22} {'part.':>5} {'CPU %':>6} {'ms/p-s':>7} {'p/core':>6} {'late':>4} "
        f"{'gaps':>4} {'jitter':>6} {'gen %':>5} {'rtpengine %':>11} {'ours/rtpe':>9}"
    )
    for r in rows:
        ref = (
            "-"
            if r.get("rtpengine_pct") is None
            else f"{r['rtpengine_pct']}{'' if r['rtpengine_clean'] else '*'}"
        )
        if r.get("best", True) is None:
            print(f"{r['rooms']:<12} (no count passed over a full window)")
            continue
        print(
            f"{r['rooms']:<12} {r['layout']:<22} {r['participants']:>5} {r['cpu_pct']:>6.1f} "
            f"{r['ms_per_participant_second']:>7.3f} {r['participants_per_core'] or 0:>6} "
            f"{r['late_ticks']:>4} "
            f"{r['gaps']:>4} {r['jitter_ms_mean'] or 0:>6.2f} {r['generator_pct']:>5.1f} "
            f"{ref:>11} "
            f"{r['ratio'] if r['ratio'] is not None else '-':>9}"
        )
    print(
        "part.: participants; CPU %: the worker's, of one core, over the window; ms/p-s: its CPU ms per "
        "participant-second;\np/core: participants at 100% of a core at that cost; late: ticks a frame late; "
        "gaps: arrivals > 40 ms apart;\njitter: mean RFC 3550 interarrival jitter (ms); gen %: the load "
        "generator's CPU; rtpengine %: rtpengine relaying\nas many streams (N/2 calls; *: that step was not "
        "clean, its CPU counts all the same); ours/rtpe: CPU ratio"
    )
    print()


# ---------------------------------------------------------------- main


def parse_talkers(text: str) -> dict[int, int]:
    try:
        return {int(k): int(v) for k, v in (item.split(":") for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE:TALKERS,..., got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Participants one meeting worker mixes in real time, and its CPU, "
        "for rooms of 3, 10 and 50, with rtpengine relaying as many streams (see "
        "bench/README.md)"
    )
    p.add_argument("--sizes", default="3,10,50", help="room sizes to search (default: 3,10,50)")
    p.add_argument(
        "--at",
        metavar="SIZE:ROOMS",
        help="run only one step of ROOMS rooms of SIZE over --window "
        "(for profiling), no search, no reference",
    )
    p.add_argument(
        "--talkers",
        type=parse_talkers,
        default=parse_talkers("3:1,10:2,50:2"),
        help="participants who talk in a room of each size (default: 3:1,10:2,50:2)",
    )
    p.add_argument("--window", type=float, default=20.0, help="seconds of a full measurement (default: 20)")
    p.add_argument("--probe-seconds", type=float, default=5.0, help="seconds of a probe (default: 5)")
    p.add_argument(
        "--first-probe", type=int, default=150, help="participants of the first probe (default: 150)"
    )
    p.add_argument("--max-probes", type=int, default=4, help="probes after the first, per size (default: 4)")
    p.add_argument(
        "--max-confirms", type=int, default=3, help="full windows per size, stepping down (default: 3)"
    )
    p.add_argument(
        "--cpu-limit",
        type=float,
        default=90.0,
        help="%% of a core at which the worker is at its limit (default: 90)",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds between the last call up and the window (default: 3)",
    )
    p.add_argument(
        "--ref-seconds", type=float, default=10.0, help="window of the rtpengine steps (default: 10)"
    )
    p.add_argument("--no-reference", action="store_true", help="do not run rtpengine")
    p.add_argument("--call-rate", type=float, default=400.0, help="calls placed per second (default: 400)")
    p.add_argument("--generators", type=int, default=1, help="generator processes (default: 1)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="time budget (default: 600)")
    add_run_options(p, output="meeting_mix.json", tools={"rtpengine": "rtpengine"})
    p.add_argument(
        "--meeting-cmd",
        default="pbx meeting --config {config}",
        help="how to run the meeting server; {config} is its config file "
        "(default: 'pbx meeting --config {config}')",
    )
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if any(s < 2 or s > 50 for s in args.sizes):
        p.error("room sizes are 2 to 50 (a room holds 50)")
    if args.generators < 1 or args.call_rate <= 0:
        p.error("--generators and --call-rate must be positive")
    return args


def idle_cpu(pids: list[int], seconds: float = 3.0) -> float:
    t0, c0 = time.monotonic(), cpu_ticks(pids)
    time.sleep(seconds)
    return round(100.0 * (cpu_ticks(pids) - c0) / CLK_TCK / (time.monotonic() - t0), 1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_stop_signals()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    budget = Budget(args.max_seconds)
    workdir = Path(tempfile.mkdtemp(prefix="meeting-mix-"))
    procs = Processes()
    searches: list[dict[str, Any]] = []
    all_steps: list[dict[str, Any]] = []
    mixed: dict[str, Any] | None = None
    references: dict[int, dict[str, Any]] = {}
    idle: dict[str, float] = {}
    info: dict[str, Any] = {}
    notes: list[str] = []

    def body() -> None:
        nonlocal mixed
        if not args.no_reference and not args.at:
            require_tools([args.rtpengine_bin])
        meeting = start_meeting(procs, args, workdir)
        info["ours"] = meeting.info
        idle["ours"] = idle_cpu([meeting.worker_pid])
        if args.at:
            size, rooms = (int(v) for v in args.at.split(":"))
            all_steps.append(
                run_step(
                    procs,
                    "ours",
                    room_plan([size] * rooms, args.talkers),
                    args.window,
                    args,
                    workdir,
                    meeting=meeting,
                )
            )
        else:
            # Kept for the mixed run and the references; the rest shared out among the sizes.
            reserve = 2 * (args.window + 10) + (len(args.sizes) + 1) * (args.ref_seconds + 6)
            for index, size in enumerate(args.sizes):
                share = (budget.left() - reserve) / (len(args.sizes) - index)
                search = search_size(procs, meeting, size, args, workdir, Budget(share), idle["ours"], notes)
                searches.append(search)
                all_steps.extend(search["steps"])
            bests = [s["best"]["participants"] for s in searches if s["best"] is not None]
            if bests:
                mixed, mixed_steps = run_mixed(procs, meeting, min(bests), args, workdir, budget, notes)
                all_steps.extend(mixed_steps)
            procs.stop(meeting.proc)
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
                    options=("--log-level=5",),
                )
                info["rtpengine"] = {"cmd": rtpengine.cmd, "version": rtpengine.version}
                idle["rtpengine"] = idle_cpu(process_tree(rtpengine.proc.pid))
                # Each count of the results once, in streams (pairs: an odd count gets one more).
                counts = sorted({s["participants"] for s in [*(x["best"] for x in searches), mixed] if s})
                for streams in sorted({n + n % 2 for n in counts}):
                    if not budget.fits(streams, args.ref_seconds, args):
                        notes.append(f"rtpengine {streams} streams: skipped, past --max-seconds")
                        continue
                    ref = run_step(
                        procs,
                        "rtpengine",
                        [(0, streams, 0)],
                        args.ref_seconds,
                        args,
                        workdir,
                        rtpengine=rtpengine,
                    )
                    for n in counts:
                        if n + n % 2 == streams:
                            references[n] = ref
                    all_steps.append(ref)

    try:
        exit_code = run_guarded(body, procs=procs, notes=notes)
    finally:
        rows = summarize(searches, mixed, references) if searches else []
        report = {
            "benchmark": "meeting_mix",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()},
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "servers": info,
            "idle_pct": idle,
            "summary": rows,
            "steps": all_steps,
            "notes": notes,
        }
        end_run(
            report,
            output=args.output,
            print_results=partial(print_table, rows, all_steps, idle) if all_steps else None,
            notes=notes,
            workdir=workdir,
            keep=args.keep_workdir,
        )
    return exit_code


if __name__ == "__main__":
    if sys.argv[1:] == ["--generator"]:
        sys.exit(generator_main())
    sys.exit(main())

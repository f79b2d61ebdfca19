#!/usr/bin/env python3
"""Ask a SIP address every few milliseconds whether it answers, and say when it did not.

    vip_probe.py HOST[:PORT] [--interval 0.1] [--timeout 0.2] [--duration 60] [--until-file F]
    vip_probe.py HOST[:PORT] --status [--timeout 2]

Sends SIP OPTIONS over UDP (a new transaction each time) and prints one JSON line per
change between answering and silent, with the time since the start; on exit (after
--duration, or once --until-file exists), a JSON summary: the probes, the answered ones,
each outage's start and length, and the longest. The lab's failover tests run it in the
controller namespace against the VIP, with nothing but the Python standard library.
With --status it sends one OPTIONS and prints the answer's status line ("SIP/2.0 200 OK"),
nothing when none came within --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import sys
import time


def options_request(host: str, port: int, local: tuple[str, int], call_id: str) -> bytes:
    return (f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{secrets.token_hex(8)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:vip-probe@{local[0]}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n").encode()


def status_line(sock: socket.socket, host: str, port: int, timeout: float) -> str | None:
    """The status line of the answer to one OPTIONS, None when none came within `timeout`."""
    call_id = secrets.token_hex(12)
    sock.sendto(options_request(host, port, sock.getsockname(), call_id), (host, port))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65535)
        except (TimeoutError, OSError):
            return None
        if data.startswith(b"SIP/2.0 ") and call_id.encode() in data:
            return data.split(b"\r\n", 1)[0].decode(errors="replace")
    return None


def answered(sock: socket.socket, host: str, port: int, timeout: float) -> bool:
    return status_line(sock, host, port, timeout) is not None


def main() -> int:
    parser = argparse.ArgumentParser(prog="vip_probe.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="HOST[:PORT] (port 5060 if absent)")
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--timeout", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--until-file", help="stop once this file exists")
    parser.add_argument("--status", action="store_true", help="one probe: print the answer's status line")
    args = parser.parse_args()
    host, _, port_text = args.target.partition(":")
    port = int(port_text or 5060)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((host, port))  # the source address the route gives, for Via
        local = sock.getsockname()
    if args.status:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((local[0], 0))
            print(status_line(sock, host, port, args.timeout) or "", flush=True)
        return 0
    started = time.monotonic()
    probes = ok = 0
    outages: list[dict[str, float]] = []
    down_since: float | None = None
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((local[0], 0))
        while (now := time.monotonic() - started) < args.duration:
            if args.until_file and os.path.exists(args.until_file):
                break
            probes += 1
            if answered(sock, host, port, args.timeout):
                ok += 1
                if down_since is not None:
                    outages.append({"at": round(down_since, 2), "seconds": round(now - down_since, 2)})
                    print(json.dumps({"t": round(now, 2), "answering": True}), flush=True)
                    down_since = None
            elif down_since is None:
                down_since = now
                print(json.dumps({"t": round(now, 2), "answering": False}), flush=True)
            time.sleep(max(0.0, args.interval - (time.monotonic() - started - now)))
    end = time.monotonic() - started
    if down_since is not None:
        outages.append({"at": round(down_since, 2), "seconds": round(end - down_since, 2), "open": True})
    print(json.dumps({"summary": True, "probes": probes, "answered": ok, "outages": outages,
                      "longest": max((o["seconds"] for o in outages), default=0.0),
                      "answering_at_end": down_since is None}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

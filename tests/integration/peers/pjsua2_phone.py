"""Test-side handle of a pjsua2 softphone process (see pjsua2_agent.py)."""

from __future__ import annotations

import collections
import contextlib
import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AGENT = Path(__file__).with_name("pjsua2_agent.py")


class Pjsua2Phone:
    def __init__(self, *, user: str, password: str, server: str, port: int, domain: str | None = None,
                 transport: str = "udp", codecs: str | None = "PCMU,PCMA", auto_answer: bool = False,
                 play: Path | None = None, record: Path | None = None, bind: str = "127.0.0.1",
                 launcher: tuple[str, ...] = (), mwi: bool = False) -> None:
        """`codecs`: the codecs offered, by name ("G722"); None keeps pjsua2's default list and
        priorities (a phone out of the box). `play`: an 8 kHz mono 16-bit WAV sent, looped, into
        the call; `record`: a WAV of what the phone receives, complete once `close()` has returned.
        `bind`: the phone's address; `launcher`: what the agent runs under (the lab's
        `ip netns exec NS`); `mwi`: subscribe to its message summary (`mwi` events)."""
        self.user = user
        self.port = port
        command = [*launcher, sys.executable, str(AGENT), "--user", user, f"--password={password}",
                   "--domain", domain or server, "--server", server, "--port", str(port),
                   "--transport", transport, "--bind", bind]
        if codecs is not None:
            command += ["--codecs", codecs]
        if auto_answer:
            command.append("--auto-answer")
        if play is not None:
            command += ["--play", str(play)]
        if record is not None:
            command += ["--record", str(record)]
        if mwi:
            command.append("--mwi")
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        """The agent's last lines of pjsua log (errors at the default log level)."""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # Read stderr too, so that a chatty pjsua never blocks on a full pipe.
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_reader.start()
        self.codecs: list[str] = self.wait_for("ready", timeout=10)["codecs"]
        """The codec ids the phone offers ("PCMU/8000/1", ...)."""

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self.stderr.append(line)

    def send(self, cmd: str, **params: Any) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"cmd": cmd, **params}) + "\n")
        self._process.stdin.flush()

    def wait_for(self, event: str, predicate: Callable[[dict[str, Any]], bool] = lambda e: True,
                 timeout: float = 10.0) -> dict[str, Any]:
        """The next event of that name matching `predicate`; earlier unmatched ones are kept in history."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"phone {self.user}: no {event} event in {timeout} s; saw {self.history}")
            try:
                item = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            self.history.append(item)
            if item.get("event") == event and predicate(item):
                return item

    def seen(self) -> list[dict[str, Any]]:
        """Every event the phone reported so far, those no `wait_for` has looked at included."""
        while True:
            try:
                self.history.append(self.events.get_nowait())
            except queue.Empty:
                return self.history

    def register(self, timeout: float = 10.0) -> dict[str, Any]:
        self.send("register")
        return self.wait_for("reg", timeout=timeout)

    def stats(self) -> dict[str, Any]:
        self.send("stats")
        return self.wait_for("stats")

    def media_info(self) -> dict[str, Any]:
        """Where the phone sends RTP (`remote_rtp`, "ip:port") and its `codec`, from its stream."""
        self.send("media_info")
        return self.wait_for("media_info")

    def gap(self) -> dict[str, Any]:
        """`longest_gap_ms` without a received RTP packet since the call was confirmed (or
        `reset_gap`), and `rx_packets` received in all."""
        self.send("gap")
        return self.wait_for("gap")

    def reset_gap(self) -> None:
        self.send("reset_gap")

    def dtmf(self, digits: str) -> None:
        """Send `digits` as RFC 4733 telephone-events."""
        self.send("dtmf", digits=digits)

    def inband_dtmf(self, digits: str) -> None:
        """Send `digits` as tones in the call's audio (in-band), not as RFC 4733 events."""
        self.send("inband", digits=digits)

    def received_digits(self, count: int, timeout: float = 10.0) -> str:
        """The next `count` digits received (as `dtmf` events)."""
        return "".join(self.wait_for("dtmf", timeout=timeout)["digit"] for _ in range(count))

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(BrokenPipeError):  # it may be exiting already
                self.send("quit")
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

"""Test-side handle of a pjsua2 softphone process (see pjsua2_agent.py)."""

from __future__ import annotations

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
                 transport: str = "udp", codecs: str = "PCMU,PCMA", auto_answer: bool = False) -> None:
        self.user = user
        self.port = port
        command = [sys.executable, str(AGENT), "--user", user, f"--password={password}",
                   "--domain", domain or server, "--server", server, "--port", str(port),
                   "--transport", transport, "--codecs", codecs]
        if auto_answer:
            command.append("--auto-answer")
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for("ready", timeout=10)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith("{"):
                self.events.put(json.loads(line))

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

    def register(self, timeout: float = 10.0) -> dict[str, Any]:
        self.send("register")
        return self.wait_for("reg", timeout=timeout)

    def stats(self) -> dict[str, Any]:
        self.send("stats")
        return self.wait_for("stats")

    def close(self) -> None:
        if self._process.poll() is None:
            self.send("quit")
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

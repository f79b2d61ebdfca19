"""What the benchmarks in bench/ share: logging, their errors, the child processes they
start and stop by pid, and the signals that stop a run.

The benchmarks are run as `python3 bench/NAME.py`, so this directory is on sys.path
and they import it as `benchlib`. Python 3.11 stdlib only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


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

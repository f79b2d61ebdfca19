"""Running sipp (Debian's sip-tester) scenarios from tests/data/sipp/ and reading its statistics."""

from __future__ import annotations

import csv
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import free_port

SCENARIOS = Path(__file__).parents[2] / "data" / "sipp"
COMMON = ["-trace_err", "-i", "127.0.0.1", "-buff_size", "4194304", "-nostdin", "-trace_stat",
          "-timeout", "120s", "-recv_timeout", "10000", "-default_behaviors", "all,-abortunexp"]


@dataclass(frozen=True)
class SippResult:
    returncode: int
    successful: int
    failed: int
    retransmissions: int
    output: str


def write_users(path: Path, users: dict[str, str]) -> Path:
    """The `-inf` file: the extension, then the whole authentication keyword."""
    lines = ["SEQUENTIAL"]
    lines += [f"{ext};[authentication username={ext} password={pw}]" for ext, pw in users.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def start(scenario: str, work_dir: Path, *args: str, remote: str | None = None, port: int | None = None
          ) -> tuple[subprocess.Popen[str], Path]:
    stat = work_dir / f"{scenario}-{free_port()}.csv"
    command = ["sipp", *([remote] if remote else []), "-sf", str(SCENARIOS / f"{scenario}.xml"),
               "-p", str(port or free_port()), "-stf", str(stat), *COMMON, *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               cwd=work_dir)
    return process, stat


def finish(process: subprocess.Popen[str], stat: Path, timeout: float = 180) -> SippResult:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    rows = list(csv.DictReader(stat.open(), delimiter=";")) if stat.exists() else []
    last = rows[-1] if rows else {}
    return SippResult(returncode=process.returncode, successful=int(last.get("SuccessfulCall(C)", 0)),
                      failed=int(last.get("FailedCall(C)", 0)),
                      retransmissions=int(last.get("Retransmissions(C)", 0)), output=output[-3000:])


def run(scenario: str, work_dir: Path, *args: str, remote: str | None = None, port: int | None = None,
        timeout: float = 180) -> SippResult:
    process, stat = start(scenario, work_dir, *args, remote=remote, port=port)
    return finish(process, stat, timeout)

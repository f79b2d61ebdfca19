#!/usr/bin/env python3
"""Smoke test of a deployed lab: two phones register through the VIP and one calls the other.

    smoke_call.py [--vip 198.18.0.10] [--admin 198.18.0.11] [--hold SECONDS]

The phones are sipp (Debian's sip-tester) in the controller namespace, with the scenarios
of tests/data/sipp/: extension 1002 registers and answers, 1001 calls it, holds the call
for --hold seconds and hangs up. Both users are added first (when absent) by `pbx user add`
on the --admin host (a Call Manager), over ssh. Exit 0 when the call was
set up and torn down cleanly. The lab tests drive the same functions.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(LAB_DIR))

import lab  # noqa: E402  (the lab's own module, next to this file)

SCENARIOS = LAB_DIR.parents[1] / "tests" / "data" / "sipp"
DEFAULT_VIP = "198.18.0.10"
DEFAULT_ADMIN = "198.18.0.11"
CALLER, CALLEE = "1001", "1002"
CALLER_PORT, CALLEE_PORT = 5071, 5072
PASSWORDS = {CALLER: "lab-phone-1001-pw", CALLEE: "lab-phone-1002-pw"}
SIPP_COMMON = ["-buff_size", "4194304", "-nostdin", "-trace_err", "-trace_stat", "-timeout", "600s",
               "-default_behaviors", "all,-abortunexp"]
RECV_TIMEOUT_MS = 15000


@dataclass(frozen=True)
class Phones:
    """The sipp side of a call: where it runs and with which credentials."""

    lab: lab.Lab
    vip: str
    controller_address: str
    passwords: dict[str, str]
    work_dir: Path


@dataclass(frozen=True)
class CallResult:
    returncode: int
    successful: int
    failed: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.successful == 1 and self.failed == 0


def admin(the_lab: lab.Lab, address: str, *argv: str) -> str:
    """Run `pbx ...` on a Call Manager host (its administration config is /var/lib/pbx/pbx.yml)."""
    return lab.in_ns(the_lab.controller_ns, *lab.ssh_argv(address), "pbx", *argv, capture=True).stdout


def create_users(the_lab: lab.Lab, admin_address: str) -> dict[str, str]:
    """The two phones' users, added when absent. Their passwords are fixed (lab only): a user
    deleted and added again with a new one would be refused until the Call Managers'
    directory cache (10 s) forgets the old one."""
    existing = admin(the_lab, admin_address, "user", "list")
    for extension, password in PASSWORDS.items():
        if not any(line.split()[:1] == [extension] for line in existing.splitlines()):
            admin(the_lab, admin_address, "user", "add", extension, f"--password={password}")
    return dict(PASSWORDS)


def sipp(phones: Phones, scenario: str, port: int, *args: str, remote: bool = True,
         recv_timeout_ms: int = RECV_TIMEOUT_MS) -> subprocess.Popen[str]:
    argv = ["sipp", *([f"{phones.vip}:5060"] if remote else []), "-sf", str(SCENARIOS / f"{scenario}.xml"),
            "-i", phones.controller_address, "-p", str(port), "-stf", f"{scenario}.csv", *SIPP_COMMON,
            "-recv_timeout", str(recv_timeout_ms), *args]
    return subprocess.Popen(["ip", "netns", "exec", phones.lab.controller_ns, *argv], cwd=phones.work_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def result(phones: Phones, process: subprocess.Popen[str], scenario: str, timeout: float) -> CallResult:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    stat = phones.work_dir / f"{scenario}.csv"
    rows = list(csv.DictReader(stat.open(), delimiter=";")) if stat.exists() else []
    last = rows[-1] if rows else {}
    return CallResult(returncode=process.returncode, successful=int(last.get("SuccessfulCall(C)", 0)),
                      failed=int(last.get("FailedCall(C)", 0)), output=output[-3000:])


@dataclass
class Call:
    """A call in progress: the callee's and the caller's sipp."""

    phones: Phones
    callee: subprocess.Popen[str]
    caller: subprocess.Popen[str]

    def finish(self, timeout: float) -> CallResult:
        caller = result(self.phones, self.caller, "uac_auth", timeout)
        callee = result(self.phones, self.callee, "uas_answer", 30)
        if caller.ok and not callee.ok:
            return callee
        return caller


def start_call(phones: Phones, hold: float) -> Call:
    """Register the callee, have it wait for the call, and start the caller's call (held `hold` s)."""
    registered = result(phones, sipp(phones, "register_callee", CALLEE_PORT, "-s", CALLEE,
                                     "-ap", phones.passwords[CALLEE], "-m", "1"), "register_callee", 60)
    if not registered.ok:
        raise RuntimeError(f"{CALLEE} could not register through {phones.vip}:\n{registered.output}")
    # The callee waits for the BYE as long as the call is held.
    callee = sipp(phones, "uas_answer", CALLEE_PORT, "-m", "1", remote=False,
                  recv_timeout_ms=int(hold * 1000) + RECV_TIMEOUT_MS)
    time.sleep(0.5)
    users = phones.work_dir / "callers.csv"
    users.write_text(f"SEQUENTIAL\n{CALLER};[authentication username={CALLER} "
                     f"password={phones.passwords[CALLER]}]\n")
    caller = sipp(phones, "uac_auth", CALLER_PORT, "-inf", str(users), "-s", CALLEE, "-m", "1",
                  "-d", str(int(hold * 1000)))
    return Call(phones=phones, callee=callee, caller=caller)


def phones_for(work_dir: Path, vip: str = DEFAULT_VIP, admin_address: str = DEFAULT_ADMIN,
               lab_name: str = lab.DEFAULT_LAB) -> Phones:
    the_lab = lab.Lab(lab_name)
    return Phones(lab=the_lab, vip=vip, controller_address=the_lab.controller.split("/")[0],
                  passwords=create_users(the_lab, admin_address), work_dir=work_dir)


def main() -> int:
    parser = argparse.ArgumentParser(prog="smoke_call.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vip", default=DEFAULT_VIP)
    parser.add_argument("--admin", default=DEFAULT_ADMIN, help="a Call Manager's address, for `pbx user add`")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds the call stays up")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pbx-smoke-") as work_dir:
        phones = phones_for(Path(work_dir), args.vip, args.admin)
        outcome = start_call(phones, args.hold).finish(timeout=args.hold + 120)
    took = time.monotonic() - started
    if outcome.ok:
        print(f"smoke call: {CALLER} called {CALLEE} through {args.vip}: answered, held {args.hold:.0f} s, "
              f"hung up ({took:.1f} s)")
        return 0
    print(f"smoke call FAILED (sipp exit {outcome.returncode}, {outcome.successful} successful, "
          f"{outcome.failed} failed):\n{outcome.output}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

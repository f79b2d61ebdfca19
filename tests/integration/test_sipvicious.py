"""SIPVicious against the PBX: extensions are not revealed and passwords are not cracked.

svcrack is run twice: once with the policy on (it must find nothing) and once with its
source trusted, so the policy is off (it must find the password): the second run shows
the first could have failed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.conftest import (
    allinone_ports_env,
    distinct_ports,
    free_port,
    pbx,
    start_allinone,
    stop,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("svcrack") is None, reason="sipvicious is not installed"),
]

PASSWORD = "Correct-Horse-42"


def _run_until(command: list[str], seconds: float) -> str:
    """Run a SIPVicious tool for at most `seconds`, then interrupt it as a user would. Unbuffered:
    what it printed before the interruption is kept even if it must be killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:  # svcrack, blocked, waits for answers before it reports (about 8 s here, more under load)
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    return output


def _pbx(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int, int]:
    """The all-in-one attacked: its process, SIP port and HTTP port."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    for extension in ("1001", "1002", "1003"):
        pbx("user", "add", extension, "--password", PASSWORD if extension == "1001" else "x-" + PASSWORD,
            "--data-dir", str(data_dir))
    port, http_port = distinct_ports(2)
    # svcrack only knows MD5 and reads the first challenge: offer MD5 first so it can really try.
    process = start_allinone(data_dir, port, env={**allinone_ports_env(http_port, sip_port=port),
                                                  "PBX_AUTH__ALGORITHMS": "MD5,SHA-256", **env})
    return process, port, http_port


def _svcrack(port: int, tmp_path: Path) -> str:
    dictionary = tmp_path / "passwords.txt"
    dictionary.write_text("\n".join([f"guess{i:03d}" for i in range(40)] + [PASSWORD]) + "\n")
    return _run_until(["svcrack", "-u", "1001", "-d", str(dictionary), "-b", "127.0.0.1",
                       "-P", str(free_port()), f"udp://127.0.0.1:{port}"], seconds=20)


def test_svcrack_finds_nothing_when_brute_force_is_blocked(tmp_path: Path) -> None:
    process, port, http_port = _pbx(tmp_path, {})
    try:
        output = _svcrack(port, tmp_path)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
    finally:
        assert stop(process) == 0
    assert PASSWORD not in output
    # The attack met the policy: its source is blocked. (svcrack says "found nothing" when it
    # reports at all; blocked and killed under load, it may say nothing.)
    assert "pbx_auth_blocked_sources 1.0" in metrics.splitlines()
    assert "found nothing" in output or not output.strip(), output


def test_svcrack_finds_the_password_without_the_policy(tmp_path: Path) -> None:
    process, port, _ = _pbx(tmp_path, {"PBX_POLICY__TRUSTED_NETWORKS": "127.0.0.0/8"})
    try:
        output = _svcrack(port, tmp_path)
    finally:
        assert stop(process) == 0
    assert PASSWORD in output


@pytest.mark.parametrize("method", ["REGISTER", "INVITE"])
def test_svwar_cannot_tell_which_extensions_exist(tmp_path: Path, method: str) -> None:
    process, port, _ = _pbx(tmp_path, {})
    try:
        output = _run_until(["svwar", "--force", "-e995-1010", "-m", method, "-b", "127.0.0.1",
                             "-P", str(free_port()), f"udp://127.0.0.1:{port}"], seconds=30)
    finally:
        assert stop(process) == 0
    for extension in ("1001", "1002", "1003"):
        assert f"| {extension} " not in output

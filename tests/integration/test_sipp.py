"""sipp scenarios against the Call Manager: mass registration, calls, CANCEL, wrong password."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx
from tests.integration.peers import sipp

# sipp 3.6 only knows MD5 and reads only the first challenge.
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is not installed"),
    pytest.mark.pbx_env(PBX_AUTH__ALGORITHMS="MD5,SHA-256"),
]


def _import_users(pbx_server: PbxServer, tmp_path: Path, count: int, first: int = 100000) -> dict[str, str]:
    # A letter first: sipp reads a password such as "0x3f..." as a number and sends a wrong digest.
    users = {str(first + n): "pw" + secrets.token_urlsafe(9) for n in range(count)}
    csv_file = tmp_path / "users.csv"
    csv_file.write_text("extension,password\n" + "".join(f"{e},{p}\n" for e, p in users.items()))
    pbx("user", "import", str(csv_file), "--data-dir", str(pbx_server.data_dir))
    pbx_server.passwords.update(users)
    return users


def test_register_10000_distinct_users_with_digest(pbx_server: PbxServer, tmp_path: Path) -> None:
    users = _import_users(pbx_server, tmp_path, 10_000)
    result = sipp.run("register_auth", tmp_path, "-inf", str(sipp.write_users(tmp_path / "in.csv", users)),
                      "-m", "10000", "-r", "500", "-l", "2000", remote=pbx_server.address)
    assert (result.successful, result.failed) == (10_000, 0), result.output
    # One contact per user, so 10,000 distinct AoRs.
    assert pbx_server.metrics()["pbx_registered_contacts"] == 10_000


def _registered_callee(pbx_server: PbxServer, tmp_path: Path) -> tuple[str, int]:
    callee, password = "2000", pbx_server.add_user("2000")
    port = free_port()
    result = sipp.run("register_callee", tmp_path, "-s", callee, "-ap", password, "-m", "1",
                      remote=pbx_server.address, port=port)
    assert result.successful == 1, result.output
    return callee, port


def test_calls_between_a_sipp_caller_and_a_sipp_callee(pbx_server: PbxServer, tmp_path: Path) -> None:
    callee, callee_port = _registered_callee(pbx_server, tmp_path)
    callers = _import_users(pbx_server, tmp_path, 10)
    uas, uas_stat = sipp.start("uas_answer", tmp_path, "-m", "10", port=callee_port)
    uac = sipp.run("uac_auth", tmp_path, "-inf", str(sipp.write_users(tmp_path / "callers.csv", callers)),
                   "-s", callee, "-d", "500", "-m", "10", "-r", "5", remote=pbx_server.address)
    served = sipp.finish(uas, uas_stat)
    assert (uac.successful, uac.failed) == (10, 0), uac.output
    assert (served.successful, served.failed) == (10, 0), served.output
    cdrs = pbx_server.wait_for_cdrs(10)
    assert [c["disposition"] for c in cdrs] == ["ANSWERED"] * 10
    assert {c["caller"] for c in cdrs} == set(callers)


def test_cancel_while_ringing(pbx_server: PbxServer, tmp_path: Path) -> None:
    callee, callee_port = _registered_callee(pbx_server, tmp_path)
    callers = _import_users(pbx_server, tmp_path, 5)
    uas, uas_stat = sipp.start("uas_ring", tmp_path, "-m", "5", port=callee_port)
    callers_file = sipp.write_users(tmp_path / "callers.csv", callers)
    uac = sipp.run("uac_auth_cancel", tmp_path, "-inf", str(callers_file), "-s", callee, "-m", "5", "-r", "5",
                   remote=pbx_server.address)
    served = sipp.finish(uas, uas_stat)
    assert (uac.successful, uac.failed) == (5, 0), uac.output
    assert (served.successful, served.failed) == (5, 0), served.output
    cdrs = pbx_server.wait_for_cdrs(5)
    assert [(c["disposition"], c["sip_code"]) for c in cdrs] == [("CANCELLED", 487)] * 5


def test_wrong_password_gets_401_then_403(pbx_server: PbxServer, tmp_path: Path) -> None:
    pbx_server.add_user("3000", "the-right-one")
    result = sipp.run("register_wrong_password", tmp_path, "-inf",
                      str(sipp.write_users(tmp_path / "wrong.csv", {"3000": "not-the-right-one"})), "-m", "1",
                      remote=pbx_server.address)
    assert (result.successful, result.failed) == (1, 0), result.output
    assert pbx_server.metrics()["pbx_auth_blocked_sources"] == 1

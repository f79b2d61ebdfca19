"""`pbx admin` and the first start of `pbx portal` (no default password)."""

from pathlib import Path

import pytest

from pbx_services.cli.portal import first_admin_notice
from pbx_services.cluster.admins import AdminService, Lockout, LoginOutcome
from pbx_services.cluster.config import load_config
from pbx_services.cluster.database import create_engine_for, session_factory

from .conftest import run


def admin_service(data_dir: Path) -> AdminService:
    config = load_config(data_dir / "pbx.yml", data_dir=data_dir, env={})
    return AdminService(sessions=session_factory(create_engine_for(config.database.url)))


def test_admin_add_list_passwd_del(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))
    assert run(capsys, "tenant", "add", "a.example", *directory)[0] == 0

    assert run(capsys, "admin", "add", "root", "--password", "root-password-1", *directory) == (
        0, "added system administrator root\n", "")
    assert run(capsys, "admin", "add", "alice", "--password=alice-password", "--role", "tenant", "--tenant",
               "a.example", *directory) == (0, "added tenant administrator alice of a.example\n", "")
    assert run(capsys, "admin", "list", *directory)[1].splitlines() == [
        "NAME   ROLE    TENANT     ONE-TIME PASSWORD  LOCKED UNTIL",
        "alice  tenant  a.example  no                 -",
        "root   system  -          no                 -",
    ]
    assert run(capsys, "admin", "passwd", "alice", "--password", "new-alice-password", "--temporary",
               *directory) == (0, "password of alice set (to be changed at the next login)\n", "")
    service = admin_service(initialized)
    lockout = Lockout(failures=5, minutes=15)
    assert service.authenticate("alice", "alice-password", lockout=lockout).outcome is LoginOutcome.WRONG
    result = service.authenticate("alice", "new-alice-password", lockout=lockout)
    assert result.outcome is LoginOutcome.OK and result.admin and result.admin.must_change_password
    assert run(capsys, "admin", "del", "alice", *directory) == (0, "deleted administrator alice\n", "")
    assert [e.action for e in service.audit_log()[1]] == ["admin.del", "admin.passwd", "admin.add",
                                                          "admin.add"]
    assert service.audit_log()[1][0].actor.startswith("cli:")


def test_admin_mistakes_are_one_line_naming_what_is_wrong(initialized: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))

    assert run(capsys, "admin", "add", "root", "--password", "short", *directory) == (
        1, "", "pbx: password is shorter than 10 characters\n")
    tenant_admin = ("admin", "add", "alice", "--password", "alice-password", "--role", "tenant")
    assert run(capsys, *tenant_admin, *directory) == (
        1, "", "pbx: tenant: a tenant administrator needs --tenant DOMAIN, and only one does\n")
    assert run(capsys, *tenant_admin, "--tenant", "nowhere.example", *directory) == (
        1, "", "pbx: Tenant not found: domain='nowhere.example'\n")
    assert run(capsys, "admin", "add", "-x", "--password", "alice-password", *directory)[0] == 2
    assert run(capsys, "admin", "del", "nobody", *directory) == (
        1, "", "pbx: Administrator not found: name='nobody'\n")


def test_admin_unlock(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = ("--data-dir", str(initialized))
    run(capsys, "admin", "add", "ops", "--password", "ops-password-1", "--role", "operator", *directory)
    service = admin_service(initialized)
    lockout = Lockout(failures=2, minutes=60)
    for _ in range(2):
        service.authenticate("ops", "wrong-password", lockout=lockout)
    assert service.authenticate("ops", "ops-password-1", lockout=lockout).outcome is LoginOutcome.LOCKED
    assert "ops" in run(capsys, "admin", "list", *directory)[1].splitlines()[1]

    assert run(capsys, "admin", "unlock", "ops", *directory) == (0, "unlocked ops\n", "")
    assert service.authenticate("ops", "ops-password-1", lockout=lockout).outcome is LoginOutcome.OK


def test_the_first_portal_start_makes_admin_with_a_one_time_password_once(initialized: Path) -> None:
    config = load_config(initialized / "pbx.yml", data_dir=initialized, env={})

    notice = first_admin_notice(config)
    again = first_admin_notice(config)

    assert notice is not None and again is None
    password = notice.split("one-time password ")[1].split(" ")[0]
    lockout = Lockout(failures=5, minutes=1)
    result = admin_service(initialized).authenticate("admin", password, lockout=lockout)
    assert result.outcome is LoginOutcome.OK and result.admin and result.admin.must_change_password
    assert result.admin.role.value == "system"


def test_the_portal_makes_no_administrator_when_there_is_one(initialized: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "admin", "add", "root", "--password", "root-password-1", "--data-dir", str(initialized))
    config = load_config(initialized / "pbx.yml", data_dir=initialized, env={})

    assert first_admin_notice(config) is None
    assert [a.name for a in admin_service(initialized).list_admins()] == ["root"]

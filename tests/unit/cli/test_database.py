import re
import stat
from pathlib import Path

import pytest
import yaml
from alembic import command

from pbx_services.cli import main
from pbx_services.cluster.database import alembic_config, head_revision

from .conftest import run


def test_init_creates_config_database_and_default_tenant(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "init", "--data-dir", str(data_dir))

    assert (status, err) == (0, "")
    config_path = data_dir / "pbx.yml"
    assert out.splitlines() == [
        f"wrote {config_path}",
        f"database schema at revision {head_revision()}",
        "default tenant pbx.local: created",
    ]
    config = yaml.safe_load(config_path.read_text())
    assert config["database"]["url"] == f"sqlite:///{data_dir / 'pbx.sqlite3'}"
    assert config["callmanager"]["default_domain"] == "pbx.local"
    assert re.fullmatch(r"[0-9a-f]{64}", config["auth"]["secret"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert (data_dir / "pbx.sqlite3").exists()


def test_init_leaves_nothing_readable_by_other_users(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "var" / "lib" / "pbx"

    assert run(capsys, "init", "--data-dir", str(data_dir), "--demo")[0] == 0

    made = [tmp_path / "var", tmp_path / "var" / "lib", data_dir, *data_dir.iterdir()]
    assert data_dir / "pbx.sqlite3" in made
    assert {path: oct(stat.S_IMODE(path.stat().st_mode) & 0o077) for path in made} == {
        path: "0o0" for path in made}


def test_init_makes_an_open_data_dir_private_and_says_so(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)

    status, _, err = run(capsys, "init", "--data-dir", str(data_dir))

    assert (status, err) == (
        0, f"pbx: {data_dir} was open to other users (mode 0755): made it 0700 (chmod 700 {data_dir})\n")
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_each_init_makes_its_own_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b"):
        assert main(["init", "--data-dir", str(tmp_path / name)]) == 0
    secrets = {yaml.safe_load((tmp_path / name / "pbx.yml").read_text())["auth"]["secret"] for name in "ab"}

    assert len(secrets) == 2


def test_init_with_domain(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--domain", "Voice.Example.org")

    assert status == 0
    assert "default tenant voice.example.org: created" in out
    assert (
        yaml.safe_load((data_dir / "pbx.yml").read_text())["callmanager"]["default_domain"]
        == "voice.example.org"
    )


def test_init_with_a_bad_domain_writes_nothing(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "init", "--data-dir", str(data_dir), "--domain", "bad_domain!")

    assert (status, out) == (1, "")
    assert err == (
        "pbx: config error: callmanager.default_domain: domain 'bad_domain!' is not a valid DNS name"
        " (got 'bad_domain!')\n"
    )
    assert not (data_dir / "pbx.yml").exists()


def test_init_again_upgrades_and_keeps_the_config(
    initialized: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (initialized / "pbx.yml").read_text()

    status, out, err = run(capsys, "init", "--data-dir", str(initialized))

    assert (status, err) == (0, "")
    assert out.splitlines() == [
        f"{initialized / 'pbx.yml'} exists: left unchanged",
        f"database schema at revision {head_revision()}",
        "default tenant pbx.local: exists",
    ]
    assert (initialized / "pbx.yml").read_text() == before


def test_init_refuses_to_overwrite_the_config(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (initialized / "pbx.yml").read_text()

    status, out, err = run(capsys, "init", "--data-dir", str(initialized), "--domain", "other.example")

    assert (status, out) == (1, "")
    assert err == (
        f"pbx: {initialized / 'pbx.yml'} exists with default domain pbx.local; refusing to overwrite it "
        "(edit it by hand, or choose another --data-dir)\n"
    )
    assert (initialized / "pbx.yml").read_text() == before


def test_init_demo_is_idempotent(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert status == 0
    table = out.split("demo users of pbx.local:\n")[1].splitlines()
    assert table[0].split() == ["EXTENSION", "PASSWORD"]
    passwords = dict(line.split() for line in table[1:])
    assert sorted(passwords) == ["1001", "1002", "1003", "1004"]
    assert all(len(password) >= 16 for password in passwords.values())
    assert len(set(passwords.values())) == 4

    assert "demo queue 700 of pbx.local: created (ring-all: 1003, 1004)" in out.splitlines()

    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert status == 0
    assert out.count("(exists already: left unchanged)") == 4
    assert "demo queue 700 of pbx.local: exists" in out.splitlines()
    assert not any(password in out for password in passwords.values())


def test_db_upgrade_applies_the_migrations(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command.downgrade(alembic_config(f"sqlite:///{initialized / 'pbx.sqlite3'}"), "base")

    status, out, err = run(capsys, "db", "upgrade", "--config", str(initialized / "pbx.yml"))

    assert (status, out, err) == (0, f"database schema at revision {head_revision()}\n", "")
    assert run(capsys, "user", "list", "--data-dir", str(initialized))[0] == 0

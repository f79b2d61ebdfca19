"""The `pbx` command, called as `main([...])` on a temporary data directory."""

import re
import stat
from pathlib import Path

import pytest
import yaml

from pbx_services.cli import main

ENV_DATA_DIR = "PBX_DATA_DIR"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PBX_* variable of the machine running the tests may change the outcome."""
    import os

    for name in list(os.environ):
        if name.startswith("PBX_"):
            monkeypatch.delenv(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "pbx"


@pytest.fixture
def initialized(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["init", "--data-dir", str(data_dir)]) == 0
    capsys.readouterr()
    return data_dir


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_init_creates_config_database_and_default_tenant(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "init", "--data-dir", str(data_dir))

    assert (status, err) == (0, "")
    config_path = data_dir / "pbx.yml"
    assert out.splitlines() == [
        f"wrote {config_path}",
        "database schema at revision 0002",
        "default tenant pbx.local: created",
    ]
    config = yaml.safe_load(config_path.read_text())
    assert config["database"]["url"] == f"sqlite:///{data_dir / 'pbx.sqlite3'}"
    assert config["callmanager"]["default_domain"] == "pbx.local"
    assert re.fullmatch(r"[0-9a-f]{64}", config["auth"]["secret"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert (data_dir / "pbx.sqlite3").exists()


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
        "database schema at revision 0002",
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

    status, out, _ = run(capsys, "init", "--data-dir", str(data_dir), "--demo")

    assert status == 0
    assert out.count("(exists already: left unchanged)") == 4
    assert not any(password in out for password in passwords.values())


def test_user_add_list_del(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)

    assert run(
        capsys,
        "user",
        "add",
        "1001",
        "--password",
        "s3cret!",
        "--name",
        "Alice Smith",
        "--email",
        "alice@example.org",
        "--data-dir",
        directory,
    ) == (0, "added user 1001@pbx.local\n", "")
    assert run(capsys, "user", "add", "1002", "--password", "s3cret!", "--data-dir", directory)[0] == 0

    status, out, _ = run(capsys, "user", "list", "--data-dir", directory)
    assert status == 0
    assert out.splitlines() == [
        "EXTENSION  DOMAIN     NAME         EMAIL              ENABLED",
        "1001       pbx.local  Alice Smith  alice@example.org  yes",
        "1002       pbx.local                                  yes",
    ]

    assert run(capsys, "user", "del", "1001", "--data-dir", directory) == (
        0,
        "deleted user 1001@pbx.local\n",
        "",
    )
    assert [
        line.split()[0] for line in run(capsys, "user", "list", "--data-dir", directory)[1].splitlines()
    ] == [
        "EXTENSION",
        "1002",
    ]


def test_user_list_when_empty(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "user", "list", "--data-dir", str(initialized)) == (0, "no users\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "add", "1001", "--password", "abc"], "pbx: password is shorter than 4 characters\n"),
        (
            ["user", "add", "a b", "--password", "abcd"],
            "pbx: extension 'a b' may only contain letters, digits, '.', '_' and '-'\n",
        ),
        (
            ["user", "add", "1001", "--password", "abcd", "--tenant", "nowhere.example"],
            "pbx: Tenant not found: domain='nowhere.example'\n",
        ),
        (["user", "del", "1999"], "pbx: User not found: extension='1999', tenant='pbx.local'\n"),
        (
            ["user", "list", "--tenant", "nowhere.example"],
            "pbx: Tenant not found: domain='nowhere.example'\n",
        ),
    ],
)
def test_user_mistakes_are_one_line(
    initialized: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(capsys, *argv, "--data-dir", str(initialized)) == (1, "", message)


def test_user_add_twice(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(initialized))

    assert run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(initialized)) == (
        1,
        "",
        "pbx: user 1001@pbx.local already exists\n",
    )


def test_user_import(initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "users.csv"
    csv_path.write_text(
        "extension,password,name\n" + "".join(f"{n},pass{n},User {n}\n" for n in range(2000, 2050))
    )

    assert run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized)) == (
        0,
        "imported 50 users\n",
        "",
    )
    assert len(run(capsys, "user", "list", "--data-dir", str(initialized))[1].splitlines()) == 51


def test_user_import_reports_bad_rows(
    initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "users.csv"
    csv_path.write_text("extension,password\n2000,pass2000\n2001,abc\n2000,pass2000\n")

    status, out, err = run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized))

    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"pbx: {csv_path}: line 3: password is shorter than 4 characters",
        f"pbx: {csv_path}: line 4: extension 2000 of pbx.local is already on line 2",
        f"pbx: {csv_path}: 2 problems, nothing imported",
    ]
    assert run(capsys, "user", "list", "--data-dir", str(initialized))[1] == "no users\n"


def test_user_import_missing_file(
    initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.csv"

    assert run(capsys, "user", "import", str(missing), "--data-dir", str(initialized)) == (
        1,
        "",
        f"pbx: {missing}: No such file or directory\n",
    )


def test_data_dir_from_the_environment(
    initialized: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_DATA_DIR, str(initialized))

    assert run(capsys, "user", "add", "1001", "--password", "abcd") == (0, "added user 1001@pbx.local\n", "")


def test_commands_need_an_initialized_data_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"

    assert run(capsys, "user", "list", "--data-dir", str(empty)) == (
        1,
        "",
        f"pbx: no configuration at {empty / 'pbx.yml'}: run 'pbx init --data-dir {empty}' first\n",
    )


def test_config_errors_are_one_line(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = initialized / "pbx.yml"
    config_path.write_text(config_path.read_text() + "sip:\n  port: 70000\n")

    assert run(capsys, "user", "list", "--data-dir", str(initialized)) == (
        1,
        "",
        "pbx: config error: sip.port: Input should be less than or equal to 65535 (got 70000)\n",
    )


def test_environment_overrides_the_config_file(
    initialized: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBX_REGISTRAR__MIN_EXPIRES", "soon")

    status, _, err = run(capsys, "user", "list", "--data-dir", str(initialized))

    assert status == 1
    assert err.startswith("pbx: config error: registrar.min_expires: Input should be a valid integer")
    assert err.endswith("(got 'soon' from PBX_REGISTRAR__MIN_EXPIRES)\n")


def test_outdated_schema_is_reported(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from alembic import command

    from pbx_services.cluster.database import alembic_config

    command.downgrade(alembic_config(f"sqlite:///{initialized / 'pbx.sqlite3'}"), "base")

    status, _, err = run(capsys, "user", "list", "--data-dir", str(initialized))

    assert status == 1
    assert err == (
        f"pbx: the database schema is at revision none, this pbx needs 0002: "
        f"run 'pbx init --data-dir {initialized}' to upgrade it\n"
    )
    assert run(capsys, "init", "--data-dir", str(initialized))[0] == 0
    assert run(capsys, "user", "list", "--data-dir", str(initialized))[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "pbx: the following arguments are required: COMMAND (see 'pbx --help')\n"),
        (
            ["user", "add", "1001"],
            "pbx user add: the following arguments are required: --password (see 'pbx user add --help')\n",
        ),
        (["frobnicate"], "pbx: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_usage_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)

    assert (status, out) == (2, "")
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")

    assert status == 0
    assert "init" in out and "user" in out

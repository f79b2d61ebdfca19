"""What every command working on a data directory shares: finding it, its config, its schema."""

from pathlib import Path

import pytest
from alembic import command

from pbx_services.cli import common, daemons, main
from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.database import alembic_config, head_revision

from .conftest import run

ENV_DATA_DIR = "PBX_DATA_DIR"
SOURCE_TREE = common.SOURCE_TREE
"""The real one, read before the autouse fixture replaces it."""


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


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A source tree like an editable install's: pyproject.toml next to the package."""
    tree = tmp_path / "checkout"
    tree.mkdir()
    (tree / "pyproject.toml").write_text("[project]\n")
    monkeypatch.setattr(common, "SOURCE_TREE", tree)
    return tree


def init(capsys: pytest.CaptureFixture[str], data_dir: Path) -> None:
    assert run(capsys, "init", "--data-dir", str(data_dir))[0] == 0


def test_the_package_is_found_in_its_source_tree() -> None:
    assert (SOURCE_TREE / "pbx_services" / "cli" / "common.py").is_file()


def test_without_a_data_dir_the_checkouts_data_is_used_and_named(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(capsys, checkout / "data")
    run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(checkout / "data"))

    status, out, err = run(capsys, "user", "list")

    assert (status, out.splitlines()[1].split()) == (0, ["1001", "pbx.local", "yes", "national", "-", "no"])
    assert err == (
        f"pbx: using {checkout / 'data'}, this checkout's data dir "
        f"({common.DEFAULT_DATA_DIR} has no pbx.yml; --data-dir or PBX_DATA_DIR choose another)\n"
    )


def test_the_default_data_dir_comes_before_the_checkouts(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(capsys, checkout / "data")
    init(capsys, common.DEFAULT_DATA_DIR)
    run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(common.DEFAULT_DATA_DIR))

    status, out, err = run(capsys, "user", "list")

    assert (status, len(out.splitlines()), err) == (0, 2, "")


def test_the_environment_comes_before_the_checkout(
    checkout: Path, initialized: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    init(capsys, checkout / "data")
    monkeypatch.setenv(ENV_DATA_DIR, str(initialized))

    assert run(capsys, "user", "add", "1001", "--password", "abcd")[::2] == (0, "")
    assert run(capsys, "user", "list", "--data-dir", str(checkout / "data"))[1] == "no users\n"


def test_no_data_anywhere_names_where_it_looked_and_the_export_line(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "user", "list") == (
        1,
        "",
        f"pbx: no configuration at {common.DEFAULT_DATA_DIR / 'pbx.yml'} "
        f"nor at {checkout / 'data' / 'pbx.yml'}: "
        "run 'pbx init --data-dir DIR' to create one, or 'export PBX_DATA_DIR=DIR' to use the one in DIR\n",
    )


def test_installed_from_a_wheel_there_is_no_checkout_to_look_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "server", "list") == (
        1,
        "",
        f"pbx: no configuration at {common.DEFAULT_DATA_DIR / 'pbx.yml'}: "
        "run 'pbx init --data-dir DIR' to create one, or 'export PBX_DATA_DIR=DIR' to use the one in DIR\n",
    )


def test_init_never_guesses_the_checkout(checkout: Path, capsys: pytest.CaptureFixture[str]) -> None:
    init(capsys, checkout / "data")

    status, out, _ = run(capsys, "init")

    assert (status, out.splitlines()[0]) == (0, f"wrote {common.DEFAULT_DATA_DIR / 'pbx.yml'}")


def test_allinone_runs_on_the_checkouts_data(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    init(capsys, checkout / "data")
    started: list[PbxConfig] = []

    def run_daemon(config: PbxConfig) -> int:
        started.append(config)
        return 0

    monkeypatch.setattr(daemons.allinone, "run", run_daemon)

    assert main(["allinone"]) == 0
    assert started[0].database.url == f"sqlite:///{checkout / 'data' / 'pbx.sqlite3'}"
    assert f"pbx: using {checkout / 'data'}" in capsys.readouterr().err


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
    command.downgrade(alembic_config(f"sqlite:///{initialized / 'pbx.sqlite3'}"), "base")

    status, _, err = run(capsys, "user", "list", "--data-dir", str(initialized))

    assert status == 1
    assert err == (
        f"pbx: the database schema is at revision none, this pbx needs {head_revision()}: "
        f"run 'pbx init --data-dir {initialized}' to upgrade it\n"
    )
    assert run(capsys, "init", "--data-dir", str(initialized))[0] == 0
    assert run(capsys, "user", "list", "--data-dir", str(initialized))[0] == 0

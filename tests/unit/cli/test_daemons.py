"""`pbx ivr` and `pbx meeting` without a COMMAND: the application servers, run with --config."""

from pathlib import Path
from types import ModuleType

import pytest

from pbx_services.cluster.config import PbxConfig
from pbx_services.ivr import main as ivr_server
from pbx_services.meeting import main as meeting_server

from .conftest import run

APPLICATION_SERVERS = pytest.mark.parametrize(
    ("role", "server", "module"),
    [("ivr", "IVR server", ivr_server), ("meeting", "meeting server", meeting_server)],
)


@APPLICATION_SERVERS
def test_without_command_nor_config(capsys: pytest.CaptureFixture[str], role: str, server: str,
                                    module: ModuleType) -> None:
    assert run(capsys, role) == (
        1, "", f"pbx: {role}: give a COMMAND (add, list, del), or --config FILE to run the {server} "
               f"(see 'pbx {role} --help')\n")


@APPLICATION_SERVERS
def test_config_runs_the_server(initialized: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch, role: str, server: str,
                                module: ModuleType) -> None:
    started: list[PbxConfig] = []
    monkeypatch.setattr(module, "run", lambda config: started.append(config) or 0)

    assert run(capsys, role, "--config", str(initialized / "pbx.yml")) == (0, "", "")
    assert started[0].database.url == f"sqlite:///{initialized / 'pbx.sqlite3'}"


@APPLICATION_SERVERS
def test_server_wants_an_up_to_date_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, role: str, server: str,
                                           module: ModuleType) -> None:
    monkeypatch.setattr(module, "run", lambda config: pytest.fail("started on an empty database"))
    config = tmp_path / f"{role}.yml"
    config.write_text(f"database:\n  url: sqlite:///{tmp_path / 'empty.sqlite3'}\n")

    status, out, err = run(capsys, role, "--config", str(config))

    assert (status, out) == (1, "")
    assert err.startswith("pbx: the database schema is at revision none, this pbx needs ")
    assert err.endswith(f": run 'pbx db upgrade --config {config}' to upgrade it\n")

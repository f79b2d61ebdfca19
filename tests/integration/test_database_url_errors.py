"""A database.url pbx cannot use stops the daemons and the commands with one line naming the key
and the fix, and a non-zero status: never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import pbx

pytestmark = pytest.mark.integration

SECRET = "0123456789abcdef" * 4
MISSING_DRIVER_URL = "postgresql+pg8000://pbx:s3cr3t@127.0.0.1/pbx"
"""pg8000 is no dependency of pbx, nor of its tests."""
EXPECTED = ("pbx: config error: database.url: the driver for postgresql+pg8000 is not installed (No module "
            "named 'pg8000'): use postgresql+psycopg://, whose driver pip install 'pbx-services[postgresql]' "
            "installs")


def assert_one_clear_line(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [expected]
    assert "s3cr3t" not in result.stderr


def test_callmanager_with_a_missing_driver(tmp_path: Path) -> None:
    config = tmp_path / "callmanager.yml"
    config.write_text(f"database:\n  url: {MISSING_DRIVER_URL}\nauth:\n  secret: {SECRET}\n")

    assert_one_clear_line(pbx("callmanager", "--config", str(config), check=False), EXPECTED)


@pytest.mark.parametrize("command", [("allinone",), ("user", "list")])
def test_allinone_and_commands_with_a_missing_driver_from_the_environment(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          command: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    monkeypatch.setenv("PBX_DATABASE__URL", MISSING_DRIVER_URL)

    result = pbx(*command, "--data-dir", str(data_dir), check=False)

    assert_one_clear_line(result, f"{EXPECTED} (from PBX_DATABASE__URL)")


def test_media_with_an_unknown_database(tmp_path: Path) -> None:
    config = tmp_path / "media.yml"
    config.write_text("database:\n  url: foo://somewhere/pbx\n")

    assert_one_clear_line(pbx("media", "--config", str(config), check=False),
                          "pbx: config error: database.url: unsupported database 'foo'; use "
                          "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/NAME")

"""The `pbx` command, called as `main([...])` on a temporary data directory."""

import os
from pathlib import Path

import pytest

from pbx_services.cli import common, main


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PBX_* variable, /var/lib/pbx or data/ of the checkout running the tests may change
    the outcome: the default data dir and the source tree are empty temporary directories."""
    for name in list(os.environ):
        if name.startswith("PBX_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(common, "DEFAULT_DATA_DIR", tmp_path / "var-lib-pbx")
    monkeypatch.setattr(common, "SOURCE_TREE", tmp_path / "site-packages")


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

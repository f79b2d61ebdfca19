"""Private files: the start-up check of the paths a daemon keeps data in, the umask, directories."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client.registry import Collector

from pbx_services.cluster.config import HttpConfig
from pbx_services.runtime import daemon
from pbx_services.runtime.daemon import StartError
from pbx_services.runtime.file_modes import (
    check_private,
    database_paths,
    make_private_dir,
    private_umask,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_path_gives_no_warning(tmp_path: Path) -> None:
    directory, file = tmp_path / "data", tmp_path / "data" / "pbx.sqlite3"
    directory.mkdir(mode=0o700)
    file.touch(mode=0o600)

    assert check_private([directory, file]) == []


def test_an_open_directory_and_file_of_ours_are_made_private_and_named(tmp_path: Path) -> None:
    directory, file = tmp_path / "data", tmp_path / "data" / "pbx.sqlite3"
    directory.mkdir()
    file.touch()
    directory.chmod(0o755)
    file.chmod(0o644)

    warnings = check_private([directory, file])

    assert warnings == [
        f"{directory} was open to other users (mode 0755): made it 0700 (chmod 700 {directory})",
        f"{file} was open to other users (mode 0644): made it 0600 (chmod 600 {file})",
    ]
    assert (mode(directory), mode(file)) == (0o700, 0o600)


def test_an_open_path_of_another_user_is_named_with_the_fix(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    recordings.chmod(0o750)
    monkeypatch.setattr(os, "geteuid", lambda: recordings.stat().st_uid + 1)

    assert check_private([recordings]) == [
        f"{recordings} is open to other users (mode 0750) and is not this process's to change: "
        f"run 'chmod 700 {recordings}' as its owner",
    ]
    assert mode(recordings) == 0o750


def test_a_shared_sticky_directory_is_never_changed(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)

    [warning] = check_private([shared])

    assert "is not this process's to change" in warning
    assert mode(shared) == 0o1777


def test_absent_paths_are_skipped(tmp_path: Path) -> None:
    assert check_private([tmp_path / "absent", tmp_path / "pbx.sqlite3-wal"]) == []


def test_database_paths_of_sqlite_are_its_directory_and_files(tmp_path: Path) -> None:
    database = tmp_path / "pbx.sqlite3"

    assert database_paths(f"sqlite:///{database}") == [
        tmp_path, database, *(tmp_path / f"pbx.sqlite3{suffix}" for suffix in ("-wal", "-shm", "-journal"))]
    assert database_paths("sqlite://") == []
    assert database_paths("postgresql+psycopg://pbx:secret@db/pbx") == []


def test_private_umask_makes_new_files_private_then_restores_the_umask(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        with private_umask():
            (tmp_path / "file").write_text("secret")
            (tmp_path / "directory").mkdir()
        (tmp_path / "after").write_text("public")
        assert os.umask(before) == 0o022
    finally:
        os.umask(before)

    assert (mode(tmp_path / "file"), mode(tmp_path / "directory")) == (0o600, 0o700)
    assert mode(tmp_path / "after") == 0o644


def test_make_private_dir_makes_every_missing_parent_0700(tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        make_private_dir(tmp_path / "a" / "b" / "recordings")
    finally:
        os.umask(before)

    for directory in ("a", "a/b", "a/b/recordings"):
        assert mode(tmp_path / directory) == 0o700, directory


class _FailsToStart:
    name = "test part"
    role = "test"

    async def start(self) -> None:
        raise StartError("not today")

    async def stop(self) -> None:
        pass

    def listening_on(self) -> str:
        return "nowhere"

    def health(self) -> dict[str, object]:
        return {"status": "ok"}

    def collectors(self) -> Sequence[Collector]:
        return ()


def test_a_daemon_starting_on_an_open_data_directory_logs_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)

    with caplog.at_level(logging.WARNING):
        daemon.run(role="test", log_level="INFO", http=HttpConfig(port=0), auth=None,
                   components=lambda: [_FailsToStart()], private_paths=[data_dir, *database_paths(f"sqlite:///{data_dir}/pbx.sqlite3")])

    assert [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING] == [
        f"{data_dir} was open to other users (mode 0755): made it 0700 (chmod 700 {data_dir})"]
    assert mode(data_dir) == 0o700

"""Nothing the PBX keeps on disk is readable by another user: a fresh `pbx init`, the all-in-one
running, a recorded call, then every directory and file under the data directory checked by its
mode bits and by trying to read it as `nobody`.

pytest's tmp_path sits under a 0700 directory, where `nobody` could read nothing anyway: the
data directory lives under a directory of its own that others may traverse (0711), and each
file is read as `nobody` with the directories above it made traversable for the attempt, so
that only the file's own mode can refuse it. A control file of mode 0644 in the same place is
read, which shows that the attempt can succeed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone
from tests.integration.test_media_calls import connect, hang_up, write_tone

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="reads files as the user nobody: needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]

AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
TRAVERSABLE = 0o711
"""Others may enter the directory (and reach a file whose name they know), not list it."""


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="pbx-file-modes-", dir="/tmp"))
    base.chmod(TRAVERSABLE)
    try:
        yield base
    finally:
        shutil.rmtree(base)


def as_nobody(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AS_NOBODY, *command], capture_output=True, text=True, timeout=10)


def open_bits(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode) & 0o077


def recorded_call(server: PbxServer, tmp_path: Path) -> None:
    phones = []
    try:
        for extension, hz, answers in (("3001", 1000.0, False), ("3002", 600.0, True)):
            phone = Pjsua2Phone(user=extension, password=server.add_user(extension), server=server.address,
                                port=free_port(), play=write_tone(tmp_path / f"{extension}.wav", hz),
                                auto_answer=answers)
            phones.append(phone)
            assert phone.register()["code"] == 200
        caller, callee = phones
        connect(caller, callee, server)
        time.sleep(2)
        hang_up(caller, callee)
    finally:
        for phone in phones:
            phone.close()
    [cdr] = server.wait_for_cdrs(1)
    assert cdr["recording"], cdr


def everything_under(data_dir: Path) -> list[Path]:
    return [data_dir, *sorted(data_dir.rglob("*"))]


def read_refused_by_its_own_mode(path: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`cat path` as nobody, with every directory from the data directory down to the file's
    made traversable meanwhile (and restored after)."""
    directories = [directory for directory in (path.parent, *path.parent.parents)
                   if directory.is_relative_to(data_dir)]
    modes = {directory: stat.S_IMODE(directory.stat().st_mode) for directory in directories}
    try:
        for directory in directories:
            directory.chmod(modes[directory] | TRAVERSABLE)
        return as_nobody("cat", str(path))
    finally:
        for directory, mode in modes.items():
            directory.chmod(mode)


def test_nothing_under_the_data_directory_is_readable_by_another_user(traversable_dir: Path,
                                                                      tmp_path: Path) -> None:
    data_dir = traversable_dir / "data"
    control = traversable_dir / "control"
    control.write_text("anyone may read this\n")
    control.chmod(0o644)
    assert as_nobody("cat", str(control)).stdout == "anyone may read this\n", "nobody cannot read at all"

    with running_pbx(data_dir, {"PBX_CALLMANAGER__RECORD_CALLS": "true"}) as server:
        recorded_call(server, tmp_path)
        # While the daemon runs: the SQLite database has its -wal and -shm next to it.
        paths = everything_under(data_dir)
        names = {path.name for path in paths}
        assert {"pbx.yml", "pbx.sqlite3", "pbx.sqlite3-wal", "pbx.sqlite3-shm", "recordings"} <= names, names
        recordings = [path for path in paths if path.suffix == ".wav"]
        assert len(recordings) == 1, names

        assert {str(path): oct(open_bits(path)) for path in paths} == {str(path): "0o0" for path in paths}
        for path in (data_dir, data_dir / "recordings"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
        for path in paths:
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

        listing = as_nobody("ls", str(data_dir))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr, listing
        for path in paths:
            if path.is_file():
                attempt = read_refused_by_its_own_mode(path, data_dir)
                assert attempt.returncode != 0 and "Permission denied" in attempt.stderr, (path, attempt)
                assert attempt.stdout == "", path

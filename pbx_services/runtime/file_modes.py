"""Private files: what the PBX keeps on disk is readable by the service user only.

The database holds every user's HA1 hashes (each as good as the password for SIP digest),
recordings hold people's calls. Every process the `pbx` command runs (`pbx init`, the
daemons and their workers) does so under umask 077 (`private_umask`), so whatever it creates
is 0600 (files: the SQLite database, its -wal and -shm, recordings) or 0700 (directories)
from the start; directories it creates are made 0700 explicitly too (`make_private_dir`).

At start-up each daemon checks the paths it keeps data in (`check_private`). One that other
users may read, write or enter (an installation made before this rule, a directory made by
hand) is made private when this process owns it, and reported either way: a warning, not a
refusal, so that upgrading an installation tightens it instead of stopping its calls. What
this process does not own (or cannot change) is reported with the command that fixes it.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
OPEN_TO_OTHERS = 0o077
"""Permission bits of the group and of other users."""
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
"""Files SQLite keeps next to a database, holding its pages too."""


@contextmanager
def private_umask() -> Iterator[None]:
    """Files and directories created meanwhile (by this process and the processes it starts)
    are its user's only; the previous umask is restored afterwards."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def make_private_dir(path: Path) -> None:
    """Create the directory `path`, and each missing parent, with mode 0700; what exists is left
    as it is (pathlib's `mkdir(parents=True)` would make the parents with the umask's mode)."""
    missing = [directory for directory in (path, *path.parents) if not directory.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)


def database_paths(url: str) -> list[Path]:
    """The directory and files of a SQLite database on disk; [] for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return []
    database = Path(parsed.database).absolute()
    return [database.parent, database,
            *(database.with_name(database.name + suffix) for suffix in SQLITE_COMPANIONS)]


def check_private(paths: Iterable[Path]) -> list[str]:
    """One warning per path (those that exist) that users other than its owner may read, write
    or enter; a path this process owns is made private first, and the warning says so."""
    warnings = []
    for path in dict.fromkeys(paths):
        try:
            status = path.stat()
        except OSError:
            continue  # absent (a database's -wal between connections), or not ours to see
        mode = stat.S_IMODE(status.st_mode)
        if not mode & OPEN_TO_OTHERS:
            continue
        private = PRIVATE_DIR_MODE if stat.S_ISDIR(status.st_mode) else PRIVATE_FILE_MODE
        fix = f"chmod {private:o} {shlex.quote(str(path))}"
        # Never a shared directory such as /tmp (sticky): only a path that is this process's own.
        if status.st_uid == os.geteuid() and not mode & stat.S_ISVTX:
            try:
                os.chmod(path, mode & ~OPEN_TO_OTHERS)
            except OSError as exc:
                warnings.append(f"{path} is open to other users (mode {mode:04o}) and could not be "
                                f"made private ({exc.strerror}): run '{fix}'")
                continue
            warnings.append(f"{path} was open to other users (mode {mode:04o}): made it "
                            f"{mode & ~OPEN_TO_OTHERS:04o} ({fix})")
        else:
            warnings.append(f"{path} is open to other users (mode {mode:04o}) and is not this "
                            f"process's to change: run '{fix}' as its owner")
    return warnings

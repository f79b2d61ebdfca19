"""A real PostgreSQL for tests: Debian's server binaries, a fresh cluster in a directory of
its own, on a free port of loopback, trust authentication, no fsync.

`PostgresqlServer.start()` waits until it accepts connections; `stop()` (a fast shutdown,
which drops the clients' connections as a restart does) and `start()` again on the same
port simulate the database going away and coming back. `PostgresqlServer(primary=server)`
is a streaming replica of a running server (`pg_basebackup -R`, hot standby) and
`promote()` makes it the primary. Run as root, the servers run as the `postgres` user
(PostgreSQL refuses root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.redis_server import _free_port

POSTGRESQL_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                             key=lambda path: int(path.parent.name))
SUPERUSER = "pbx"


class PostgresqlServer:
    def __init__(self, *, port: int | None = None, primary: PostgresqlServer | None = None) -> None:
        if not POSTGRESQL_BIN_DIRS:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bin_dir = POSTGRESQL_BIN_DIRS[-1]
        self.port = port or _free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: as root, that is private to root and `postgres` can't enter it.
        self.workdir = Path(tempfile.mkdtemp(prefix="pbx-postgresql-"))
        self.data_dir = self.workdir / "data"
        if self.user is not None:
            account = pwd.getpwnam(self.user)
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        if primary is None:
            self._run([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                       "--auth=trust", "-E", "UTF8", "--no-sync"])
        else:
            self._run([str(self.bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                       "-U", SUPERUSER, "-D", str(self.data_dir), "-R", "-X", "stream", "-c", "fast",
                       "--no-sync"])
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, argv: list[str]) -> None:
        subprocess.run(argv, check=True, capture_output=True, user=self.user)

    def start(self) -> None:
        settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.workdir),
                    "fsync": "off", "hot_standby": "on"}
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        self.process = subprocess.Popen(argv, stdout=(self.workdir / "postgresql.log").open("ab"),
                                        stderr=subprocess.STDOUT, user=self.user)
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"PostgreSQL did not start on port {self.port}: see "
                                       f"{self.workdir / 'postgresql.log'}") from None
                time.sleep(0.05)

    def promote(self) -> None:
        """The replica becomes a primary (`pg_ctl promote` waits until it accepts writes)."""
        self._run([str(self.bin_dir / "pg_ctl"), "promote", "-w", "-D", str(self.data_dir)])

    def stop(self) -> None:
        """A fast shutdown: open connections are dropped, as when the server is restarted."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(20)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

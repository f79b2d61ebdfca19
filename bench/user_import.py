#!/usr/bin/env python3
"""The portal's CSV import of users (issue 15's 100,000 rows) on PostgreSQL and SQLite, beside
the database's own floor: PostgreSQL's COPY of the same rows into the same table.

    .venv/bin/python bench/user_import.py [--users 100000] [--output user_import.json]

Each run is a fresh database at the current schema with one tenant; the file has the columns
`extension,password,name,email,permission,max_calls,withhold_number` (a file from another
PBX). The import is `UserImporter.run` as the portal's background job runs it (rows checked one
by one, batches of 1,000, existence checks, digest credentials, progress in the job). The
reference inserts the same rows, credentials computed beforehand, with one COPY: what
PostgreSQL itself needs. Prints seconds, rows per second and the ratio. Runs with the venv's
Python (it imports pbx_services), as root on Debian 12 with the PostgreSQL server packages
(scripts/install-test-deps.sh).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from pbx_services.cluster.database import create_engine_for, session_factory, upgrade  # noqa: E402
from pbx_services.cluster.models.base import utcnow  # noqa: E402
from pbx_services.cluster.tenants import TenantService  # noqa: E402
from pbx_services.cluster.users import _credentials as digest_credentials  # noqa: E402
from pbx_services.portal.user_import import UserImporter  # noqa: E402
from tests.postgresql_server import PostgresqlServer  # noqa: E402

DOMAIN = "bench.example"
FIRST_EXTENSION = 100_000


def csv_text(users: int) -> str:
    rows = (f"{FIRST_EXTENSION + i},Pass-{i:07d}x,User {i},user{i}@example.com,international,2,{i % 2}\n"
            for i in range(users))
    return "extension,password,name,email,permission,max_calls,withhold_number\n" + "".join(rows)


def fresh(url: str) -> tuple[Engine, sessionmaker[Session]]:
    upgrade(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    TenantService(sessions=sessions).add_tenant(DOMAIN)
    return engine, sessions


def timed_import(url: str, text_: str) -> tuple[float, int]:
    engine, sessions = fresh(url)
    importer = UserImporter(sessions=sessions, default_domain=DOMAIN)
    started = time.perf_counter()
    job, decoded = importer.create(text_.encode(), file_name="users.csv")
    done = importer.run(job.id, decoded)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed, done.imported


def timed_copy(url: str, users: int) -> float:
    """The same rows by COPY, credentials computed before the clock starts."""
    engine, sessions = fresh(url)
    with sessions() as session:
        tenant_id = session.execute(text("SELECT id FROM tenants WHERE domain = :domain"),
                                    {"domain": DOMAIN}).scalar_one()
    now = utcnow().replace(tzinfo=None)
    rows = []
    for i in range(users):
        extension = str(FIRST_EXTENSION + i)
        credentials = digest_credentials(extension, DOMAIN, f"Pass-{i:07d}x")
        rows.append((tenant_id, extension, f"User {i}", f"user{i}@example.com", credentials["ha1_md5"],
                     credentials["ha1_sha256"], True, now, "international", 2, bool(i % 2)))
    raw = engine.raw_connection()
    connection = raw.driver_connection  # psycopg's own, for its COPY
    assert isinstance(connection, psycopg.Connection)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        with cursor.copy("COPY users (tenant_id, extension, display_name, email, ha1_md5, ha1_sha256, "
                         "enabled, created_at, permission, max_calls, withhold_number) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    connection.commit()
    elapsed = time.perf_counter() - started
    raw.close()
    engine.dispose()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=Path("user_import.json"))
    args = parser.parse_args()
    text_ = csv_text(args.users)
    report: dict[str, object] = {"users": args.users}
    postgresql = PostgresqlServer()
    postgresql.start()
    try:
        import_s, imported = timed_import(postgresql.url("postgres"), text_)
        assert imported == args.users, imported
        postgresql.remove()
        postgresql = PostgresqlServer()
        postgresql.start()
        copy_s = timed_copy(postgresql.url("postgres"), args.users)
    finally:
        postgresql.remove()
    with tempfile.TemporaryDirectory() as directory:
        sqlite_s, imported = timed_import(f"sqlite:///{directory}/pbx.sqlite3", text_)
        assert imported == args.users, imported
    report |= {"postgresql_import_s": round(import_s, 2), "postgresql_copy_s": round(copy_s, 2),
               "sqlite_import_s": round(sqlite_s, 2)}
    report["ratio_import_to_copy"] = round(import_s / copy_s, 1)
    print(f"{args.users} users: PostgreSQL import {import_s:.1f} s ({args.users / import_s:,.0f} rows/s), "
          f"COPY of the same rows {copy_s:.1f} s: ratio {report['ratio_import_to_copy']}; "
          f"SQLite import {sqlite_s:.1f} s")
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

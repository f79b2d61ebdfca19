import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pbx_services.cli.cdrs import RECORD_FIELDS, parse_since
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.events import Disposition, HangupBy
from pbx_services.cluster.models import Cdr
from pbx_services.cluster.tenants import TenantService

from .conftest import run

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
OTHER_DOMAIN = "other.example"


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC (POSIX TZ strings need no time zone database); a test may move it."""
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def use_zone(monkeypatch: pytest.MonkeyPatch, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()


def cdr(start: datetime, caller: str = "1001", callee: str = "1002", *, answered: bool = True,
        tenant_id: int | None = None, dialed: str | None = None) -> Cdr:
    return Cdr(
        call_id=f"{caller}-{callee}-{start.isoformat()}@192.0.2.1",
        tenant_id=tenant_id,
        caller=caller,
        callee=callee,
        caller_ip="192.0.2.1",
        start_time=start,
        answer_time=start + timedelta(seconds=5) if answered else None,
        end_time=start + timedelta(seconds=65),
        disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
        sip_code=200 if answered else 480,
        hangup_by=HangupBy.CALLEE if answered else None,
        duration=60 if answered else 0,
        dialed=dialed,
    )


def write(data_dir: Path, *cdrs: Cdr) -> None:
    engine = create_engine_for(f"sqlite:///{data_dir / 'pbx.sqlite3'}")
    try:
        with session_factory(engine).begin() as session:
            session.add_all(cdrs)
    finally:
        engine.dispose()


def tenant_ids(data_dir: Path) -> dict[str, int]:
    """The default tenant and one other, by domain."""
    engine = create_engine_for(f"sqlite:///{data_dir / 'pbx.sqlite3'}")
    try:
        service = TenantService(sessions=session_factory(engine))
        return {domain: service.ensure_tenant(domain)[0].id for domain in ("pbx.local", OTHER_DOMAIN)}
    finally:
        engine.dispose()


@pytest.fixture
def calls(initialized: Path, local_zone: None) -> Path:
    """Three calls an hour apart: 1001 -> 1002 answered (pbx.local), 1003 -> 1001 unanswered
    (other.example), 1002 -> 1003 answered (no tenant), dialled to 1004 and forwarded; the data
    dir."""
    tenants = tenant_ids(initialized)
    write(
        initialized,
        cdr(START, "1001", "1002", tenant_id=tenants["pbx.local"]),
        cdr(START + timedelta(hours=1), "1003", "1001", answered=False, tenant_id=tenants[OTHER_DOMAIN]),
        cdr(START + timedelta(hours=2), "1002", "1003", dialed="1004"),
    )
    return initialized


def cdr_list(capsys: pytest.CaptureFixture[str], data_dir: Path, *options: str) -> str:
    status, out, err = run(capsys, "cdr", "list", "--data-dir", str(data_dir), *options)
    assert (status, err) == (0, "")
    return out


def callers(capsys: pytest.CaptureFixture[str], data_dir: Path, *options: str) -> list[str]:
    out = cdr_list(capsys, data_dir, "--format", "json", *options)
    return [f"{record['caller']}>{record['callee']}" for record in json.loads(out)]


def test_table_newest_first(calls: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cdr_list(capsys, calls).splitlines() == [
        "START                CALLER  CALLEE  DOMAIN         DISPOSITION  CODE  TALK     HANGUP  DIALLED",
        "2026-03-01 11:00:00  1002    1003                   ANSWERED     200   0:01:00  callee  1004",
        "2026-03-01 10:00:00  1003    1001    other.example  NO_ANSWER    480   0:00:00",
        "2026-03-01 09:00:00  1001    1002    pbx.local      ANSWERED     200   0:01:00  callee",
    ]


def test_csv_has_a_header_row(calls: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(csv.reader(io.StringIO(cdr_list(capsys, calls, "--format", "csv"))))

    assert rows[0] == list(RECORD_FIELDS)
    assert [dict(zip(rows[0], row, strict=True)) for row in rows[1:]][1] == {
        "start_time": "2026-03-01T10:00:00+00:00",
        "answer_time": "",
        "end_time": "2026-03-01T10:01:05+00:00",
        "caller": "1003",
        "callee": "1001",
        "domain": OTHER_DOMAIN,
        "disposition": "NO_ANSWER",
        "sip_code": "480",
        "hangup_by": "",
        "duration": "0",
        "caller_ip": "192.0.2.1",
        "call_id": "1003-1001-2026-03-01T10:00:00+00:00@192.0.2.1",
        "recording": "",
        "end_reason": "",
        "dialed": "",
    }
    assert len(rows) == 4


def test_json_is_a_list_of_objects_with_iso_local_times(
    calls: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_zone(monkeypatch, "CET-1")

    records = json.loads(cdr_list(capsys, calls, "--format", "json"))

    assert [list(record) for record in records] == [list(RECORD_FIELDS)] * 3
    assert records[2] == {
        "start_time": "2026-03-01T10:00:00+01:00",
        "answer_time": "2026-03-01T10:00:05+01:00",
        "end_time": "2026-03-01T10:01:05+01:00",
        "caller": "1001",
        "callee": "1002",
        "domain": "pbx.local",
        "disposition": "ANSWERED",
        "sip_code": 200,
        "hangup_by": "callee",
        "duration": 60,
        "caller_ip": "192.0.2.1",
        "call_id": "1001-1002-2026-03-01T09:00:00+00:00@192.0.2.1",
        "recording": None,
        "end_reason": None,
        "dialed": None,
    }
    assert (records[0]["domain"], records[0]["dialed"]) == (None, "1004")


@pytest.mark.parametrize(("output_format", "out"), [("table", "no calls\n"), ("json", "[]\n"),
                                                    ("csv", ",".join(RECORD_FIELDS) + "\n")])
def test_no_calls(
    initialized: Path, capsys: pytest.CaptureFixture[str], output_format: str, out: str
) -> None:
    assert cdr_list(capsys, initialized, "--format", output_format) == out


def test_extension_is_caller_or_callee_or_dialled(calls: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert callers(capsys, calls, "--extension", "1001") == ["1003>1001", "1001>1002"]
    assert callers(capsys, calls, "--extension", "1004") == ["1002>1003"]  # dialled, then forwarded
    assert callers(capsys, calls, "--extension", "1005") == []


def test_tenant(calls: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert callers(capsys, calls, "--tenant", OTHER_DOMAIN) == ["1003>1001"]
    assert callers(capsys, calls, "--tenant", "PBX.local", "--extension", "1001") == ["1001>1002"]


def test_since_a_local_date_time(
    calls: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert callers(capsys, calls, "--since", "2026-03-01T10:00") == ["1002>1003", "1003>1001"]
    assert callers(capsys, calls, "--since", "2026-03-01T10:00:01") == ["1002>1003"]
    assert callers(capsys, calls, "--since", "2026-03-02") == []
    assert len(callers(capsys, calls, "--since", "2026-03-01")) == 3

    use_zone(monkeypatch, "CET-1")  # 10:00 local is 09:00 UTC

    assert len(callers(capsys, calls, "--since", "2026-03-01T10:00")) == 3
    assert len(callers(capsys, calls, "--since", "2026-03-01T10:00Z")) == 2


def test_since_a_time_ago(initialized: Path, capsys: pytest.CaptureFixture[str], local_zone: None) -> None:
    now = datetime.now(UTC)
    write(initialized, *(cdr(now - timedelta(minutes=minutes), "1001", str(minutes))
                         for minutes in (5, 50, 150, 60 * 24 * 3)))

    assert callers(capsys, initialized, "--since", "30m") == ["1001>5"]
    assert callers(capsys, initialized, "--since", "2h") == ["1001>5", "1001>50"]
    assert len(callers(capsys, initialized, "--since", "7d")) == 4


def test_limit(initialized: Path, capsys: pytest.CaptureFixture[str], local_zone: None) -> None:
    write(initialized, *(cdr(START + timedelta(minutes=n), "1001", str(n)) for n in range(105)))

    assert callers(capsys, initialized, "--limit", "2") == ["1001>104", "1001>103"]
    assert len(callers(capsys, initialized)) == 100


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--since", "yesterday"], "argument --since: 'yesterday' is neither a date/time "
                                   "(2026-12-01, 2026-12-01T10:00) nor a time ago (30m, 2h, 7d)"),
        (["--since", "2h30"], "argument --since: '2h30' is neither"),
        (["--since", "-2h"], "argument --since: expected one argument"),  # an option, to argparse
        (["--since", "2026-13-01"], "argument --since: '2026-13-01' is neither"),
        (["--since", ""], "argument --since: '' is neither"),
        (["--since", "99999999999d"], "argument --since: '99999999999d' is too long ago"),
        (["--limit", "0"], "argument --limit: '0' is not a whole number of 1 or more"),
        (["--limit", "-5"], "argument --limit: '-5' is not a whole number of 1 or more"),
        (["--limit", "ten"], "argument --limit: 'ten' is not a whole number of 1 or more"),
        (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    ],
)
def test_bad_options_are_usage_mistakes(
    calls: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    status, out, err = run(capsys, "cdr", "list", "--data-dir", str(calls), *options)

    assert (status, out) == (2, "")
    assert err.startswith(f"pbx cdr list: {message}")
    assert err.endswith(" (see 'pbx cdr list --help')\n")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("tenant", "message"),
    [
        ("nowhere.example", "pbx: Tenant not found: domain='nowhere.example'\n"),
        ("bad_domain!", "pbx: domain 'bad_domain!' is not a valid DNS name\n"),
    ],
)
def test_unknown_tenant(calls: Path, capsys: pytest.CaptureFixture[str], tenant: str, message: str) -> None:
    assert run(capsys, "cdr", "list", "--data-dir", str(calls), "--tenant", tenant) == (1, "", message)


def test_parse_since() -> None:
    now = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)

    assert parse_since("45s", now=now) == now - timedelta(seconds=45)
    assert parse_since("30m", now=now) == datetime(2026, 12, 8, 11, 30, tzinfo=UTC)
    assert parse_since("2h", now=now) == datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    assert parse_since("7d", now=now) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("1w", now=now) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2026-12-01T10:00+02:00", now=now) == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

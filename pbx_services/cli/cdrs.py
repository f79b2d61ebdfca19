"""`pbx cdr list`: the call detail records, newest first, as a table, CSV or JSON.

Times are shown in the machine's local time zone (with their UTC offset in CSV and JSON);
a `--since` date/time without an offset is local time too, as in `date` and `journalctl`.
"""

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pbx_services.cli.common import EXIT_OK, Subparsers, data_dir_option, open_data_dir, print_table
from pbx_services.cluster.dao import CdrDao, TenantDao
from pbx_services.cluster.models import Cdr
from pbx_services.cluster.validation import validate_domain

DEFAULT_LIMIT = 100
DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(rf"(\d+)([{''.join(DURATION_UNITS)}])")

Record = dict[str, Any]
RECORD_FIELDS = (
    "start_time", "answer_time", "end_time", "caller", "callee", "domain", "disposition", "sip_code",
    "hangup_by", "duration", "caller_ip", "call_id", "recording", "end_reason", "dialed",
)
"""The columns of a CSV row and the keys of a JSON object, in this order; `domain` is the
tenant's, `duration` the talk time in seconds, `dialed` the number dialled when the call went
elsewhere (forwarded, picked up; `callee` took it)."""
TABLE_HEADERS = ("START", "CALLER", "CALLEE", "DOMAIN", "DISPOSITION", "CODE", "TALK", "HANGUP", "DIALLED")


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("cdr", help="list call detail records")
    commands = parser.add_subparsers(dest="cdr_command", required=True, metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        parents=[data_dir_option()],
        help="list calls, newest first",
        description="List call detail records, newest first. Times are local; a date/time without "
        "a UTC offset is local time.",
    )
    listing.add_argument(
        "--since", type=_since_option, metavar="T",
        help="only calls started since T: a date or date/time (2026-12-01, 2026-12-01T10:00) "
        "or a time ago (30m, 2h, 7d; units s, m, h, d, w)",
    )
    listing.add_argument("--extension", metavar="E",
                         help="only calls with E as caller, callee or number dialled (forwarded, picked up)")
    listing.add_argument("--tenant", metavar="DOMAIN",
                         help="only this tenant's calls (default: every tenant)")
    listing.add_argument("--limit", type=_positive_int, default=DEFAULT_LIMIT, metavar="N",
                         help=f"at most N calls (default {DEFAULT_LIMIT})")
    listing.add_argument("--format", choices=tuple(WRITERS), default="table", help="default: table")
    listing.set_defaults(run=_cdr_list)


def parse_since(text: str, *, now: datetime) -> datetime:
    """The UTC instant `text` names: an ISO date or date/time (local time unless it has an
    offset) or a duration before `now` (`30m`, `2h`, `7d`). Raises ValueError."""
    duration = _DURATION.fullmatch(text)
    try:
        if duration is not None:
            count, unit = duration.groups()
            return now - timedelta(**{DURATION_UNITS[unit]: int(count)})
        return datetime.fromisoformat(text).astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is too long ago") from None
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date/time (2026-12-01, 2026-12-01T10:00) nor a time ago (30m, 2h, 7d)"
        ) from None


def _since_option(text: str) -> datetime:
    try:
        return parse_since(text, now=datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def _cdr_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened, opened.sessions() as session:
        tenants = TenantDao(session=session)
        criteria = {}
        if args.tenant is not None:
            criteria["tenant_id"] = tenants.get_by(domain=validate_domain(args.tenant)).id
        cdrs = CdrDao(session=session).find_newest(
            limit=args.limit, since=args.since, party=args.extension, **criteria
        )
        domains = {tenant.id: tenant.domain for tenant in tenants.find_all_by()}
        records = [_record(cdr, domains) for cdr in cdrs]
    WRITERS[args.format](records)
    return EXIT_OK


def _record(cdr: Cdr, domains: dict[int, str]) -> Record:
    return {
        "start_time": cdr.start_time.astimezone(),
        "answer_time": cdr.answer_time.astimezone() if cdr.answer_time is not None else None,
        "end_time": cdr.end_time.astimezone(),
        "caller": cdr.caller,
        "callee": cdr.callee,
        "domain": domains.get(cdr.tenant_id) if cdr.tenant_id is not None else None,
        "disposition": cdr.disposition.value,
        "sip_code": cdr.sip_code,
        "hangup_by": cdr.hangup_by.value if cdr.hangup_by is not None else None,
        "duration": cdr.duration,
        "caller_ip": cdr.caller_ip,
        "call_id": cdr.call_id,
        "recording": cdr.recording,
        "end_reason": cdr.end_reason,
        "dialed": cdr.dialed,
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _write_table(records: Sequence[Record]) -> None:
    if not records:
        print("no calls")
        return
    print_table(TABLE_HEADERS, [
        (
            record["start_time"].strftime("%Y-%m-%d %H:%M:%S"),
            record["caller"],
            record["callee"],
            record["domain"] or "",
            record["disposition"],
            str(record["sip_code"]),
            str(timedelta(seconds=record["duration"])),
            _hangup(record),
            record["dialed"] or "",
        )
        for record in records
    ])


def _hangup(record: Record) -> str:
    """Who hung up, and why when it was the PBX: "system (media_lost)"."""
    reason = f"({record['end_reason']})" if record["end_reason"] else None
    return " ".join(filter(None, (record["hangup_by"], reason)))


def _write_csv(records: Sequence[Record]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(RECORD_FIELDS)
    writer.writerows([_iso(record[field]) for field in RECORD_FIELDS] for record in records)


def _write_json(records: Sequence[Record]) -> None:
    json.dump([{field: _iso(record[field]) for field in RECORD_FIELDS} for record in records],
              sys.stdout, indent=2)
    print()


WRITERS: dict[str, Callable[[Sequence[Record]], None]] = {
    "table": _write_table,
    "csv": _write_csv,
    "json": _write_json,
}

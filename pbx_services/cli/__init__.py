"""The `pbx` command: set up a data directory, administer its users and servers, run daemons.

    pbx init --data-dir DIR [--domain DOMAIN] [--demo]
    pbx db upgrade --config FILE
    pbx tenant add DOMAIN [--name TEXT]
    pbx tenant list [--json] | del DOMAIN [--everything]
    pbx ring-group add NUMBER --member EXT [--member ...] [--strategy simultaneous|sequential]
            [--ring-seconds S] [--final DEST] [--name TEXT] [--replace] [--tenant DOMAIN]
    pbx ring-group list [--json] | del NUMBER [--tenant DOMAIN]
    pbx user add EXT --password PW [--name NAME] [--email E] [--tenant DOMAIN]
    pbx user list [--tenant DOMAIN]
    pbx user del EXT [--tenant DOMAIN]
    pbx user import FILE
    pbx prompt say TEXT NAME [--voice V] [--tenant DOMAIN] [--replace]
    pbx prompt add NAME FILE [--tenant DOMAIN] [--replace]
    pbx prompt list [--tenant DOMAIN] | del NAME [--tenant DOMAIN]
    pbx ivr add NUMBER --greeting PROMPT --option DIGITS=DEST [--option ...] [--timeout S]
            [--inter-digit-timeout S] [--retries N] [--invalid-prompt P] [--timeout-prompt P]
            [--final DEST] [--dial-by-extension] [--schedule NAME --closed DEST] [--name TEXT]
            [--replace] [--tenant DOMAIN]
    pbx ivr list [--tenant DOMAIN] | del NUMBER [--tenant DOMAIN]
    pbx schedule add NAME --hours TEXT [--timezone ZONE] [--holiday DATE ...] [--tenant DOMAIN]
    pbx schedule list [--tenant DOMAIN] | del NAME [--tenant DOMAIN]
    pbx meeting add NUMBER [--pin P] [--moderator-pin P] [--max N] [--pin-tries N]
            [--wait-for-moderator] [--end-with-moderator] [--mute-on-entry] [--no-entry-tones]
            [--record] [--name TEXT] [--replace] [--tenant DOMAIN]
    pbx meeting list [--tenant DOMAIN] [--json] | del NUMBER [--tenant DOMAIN]
    pbx server add NAME --role media|ivr|meeting --host ADDR --port PORT [--workers N] [--weight W]
            [--disabled]
    pbx server list | enable NAME | disable NAME | del NAME
    pbx voicemail enable EXT --pin P [--email E] [--greeting PROMPT] [--max-messages N] [--max-seconds S]
            [--tenant DOMAIN]
    pbx voicemail list [--tenant DOMAIN] | messages EXT | disable EXT [--tenant DOMAIN]
    pbx cdr list [--since T] [--extension E] [--tenant DOMAIN] [--limit N] [--format table|csv|json]
    pbx allinone [--host ADDR] [--sip-port PORT]
    pbx callmanager --config FILE
    pbx media --config FILE
    pbx ivr --config FILE
    pbx meeting --config FILE
    pbx inventory from-terraform FILE [--output FILE]
    pbx event publish-server-state --server NAME --role ROLE --state STATE [--reason TEXT] --config FILE
    pbx event tail [--from ID] [--once] --config FILE
    pbx admin add NAME --password PW [--role system|operator|tenant] [--tenant DOMAIN] [--temporary]
    pbx admin list | del NAME | passwd NAME --password PW | unlock NAME
    pbx portal --config FILE

Every command working on a data directory takes `--data-dir` (see `common`), whose
`pbx.yml` is the configuration. Each group of commands is a module whose
`add_commands(subparsers)` adds its subparsers, listed in `COMMAND_GROUPS`; each command
sets `run`, the handler that takes the parsed arguments and returns the exit status.
Administrator mistakes end with a one-line message on stderr and a non-zero status,
never a traceback. Every command runs under umask 077: what it creates (a data directory,
the database, recordings, by the daemons it runs too) is readable by its user only.
"""

import argparse
import sys
from collections.abc import Callable, Sequence

from sqlalchemy.exc import OperationalError

from pbx_services.cli import (
    admins,
    cdrs,
    daemons,
    database,
    events,
    inventory,
    ivr,
    meeting,
    portal,
    prompts,
    queue,
    ring_groups,
    servers,
    tenants,
    trunks,
    users,
    voicemail,
)
from pbx_services.cli.common import EXIT_FAILURE, EXIT_USAGE, CommandError, Parser, Subparsers
from pbx_services.cluster.config import ConfigError
from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.users import CsvImportError
from pbx_services.cluster.validation import InvalidValue
from pbx_services.runtime.file_modes import private_umask

COMMAND_GROUPS: tuple[Callable[[Subparsers], None], ...] = (
    database.add_commands,
    tenants.add_commands,
    users.add_commands,
    prompts.add_commands,
    ivr.add_commands,
    meeting.add_commands,
    queue.add_commands,
    ring_groups.add_commands,
    trunks.add_commands,
    voicemail.add_commands,
    servers.add_commands,
    cdrs.add_commands,
    daemons.add_commands,
    inventory.add_commands,
    events.add_commands,
    admins.add_commands,
    portal.add_commands,
)
"""One function per group of commands, each adding its subparsers; add new groups here."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage mistake argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with private_umask():
            status: int = args.run(args)
    except CsvImportError as exc:
        for problem in exc.problems:
            print(f"pbx: {exc.path}: {problem}", file=sys.stderr)
        print(f"pbx: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (CommandError, ConfigError, InvalidValue, NotFound, AlreadyExists) as exc:
        print(f"pbx: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"pbx: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILURE
    except OperationalError as exc:
        print(f"pbx: database error: {exc.orig}", file=sys.stderr)
        return EXIT_FAILURE
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="pbx", description="Administer a PBX: its data directory, users and servers.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_GROUPS:
        add_commands(subparsers)
    return parser

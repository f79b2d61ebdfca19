"""What several command groups share: usage errors, the data directory, tables.

The data directory a command works on is `--data-dir`, else `$PBX_DATA_DIR`, else
/var/lib/pbx; when neither option nor variable is given and /var/lib/pbx holds no
pbx.yml, a command that needs an initialized directory uses the `data/` directory of the
checkout it runs from (where `scripts/setup.sh` puts it), and says so on stderr.
"""

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.config import CONFIG_FILE_NAME, DEFAULT_DATA_DIR, PbxConfig, load_config
from pbx_services.cluster.database import create_engine_for, head_revision, schema_revision, session_factory

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DATA_DIR_ENV = "PBX_DATA_DIR"
SOURCE_TREE = Path(__file__).resolve().parents[2]
"""The directory holding the `pbx_services` package: a checkout when installed editable."""
CHECKOUT_MARKER = "pyproject.toml"
"""A file only a checkout (not site-packages) has next to the package."""
CHECKOUT_DATA_DIR_NAME = "data"
"""The data directory `scripts/setup.sh` initializes in the checkout."""

Subparsers = Any  # argparse's _SubParsersAction, which it does not export
RowT = TypeVar("RowT")


class CommandError(Exception):
    """The command cannot do what was asked; the message tells the administrator why."""


class Parser(argparse.ArgumentParser):
    """Reports a usage mistake in one line, pointing to --help, instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def data_dir_option() -> argparse.ArgumentParser:
    """A parent parser giving a command the --data-dir option."""
    parent = Parser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where pbx.yml and the database live (default: ${DATA_DIR_ENV}, then {DEFAULT_DATA_DIR}, "
        f"then the {CHECKOUT_DATA_DIR_NAME}/ of the checkout pbx runs from)",
    )
    return parent


def data_dir_to_create(args: argparse.Namespace) -> Path:
    """Where `pbx init` makes a data directory: never guessed from a checkout."""
    return _given_data_dir(args) or DEFAULT_DATA_DIR


def initialized_data_dir(args: argparse.Namespace) -> Path:
    """The data directory a command works on, which must hold a pbx.yml (see the module's doc)."""
    given = _given_data_dir(args)
    if given is not None:
        if not (given / CONFIG_FILE_NAME).exists():
            raise CommandError(
                f"no configuration at {given / CONFIG_FILE_NAME}: run 'pbx init --data-dir {given}' first"
            )
        return given
    if (DEFAULT_DATA_DIR / CONFIG_FILE_NAME).exists():
        return DEFAULT_DATA_DIR
    checkout = checkout_data_dir()
    if checkout is not None and (checkout / CONFIG_FILE_NAME).exists():
        print(
            f"pbx: using {checkout}, this checkout's data dir ({DEFAULT_DATA_DIR} has no {CONFIG_FILE_NAME}; "
            f"--data-dir or {DATA_DIR_ENV} choose another)",
            file=sys.stderr,
        )
        return checkout
    looked_in = " nor at ".join(
        str(directory / CONFIG_FILE_NAME) for directory in (DEFAULT_DATA_DIR, checkout) if directory
    )
    raise CommandError(
        f"no configuration at {looked_in}: run 'pbx init --data-dir DIR' to create one, "
        f"or 'export {DATA_DIR_ENV}=DIR' to use the one in DIR"
    )


def checkout_data_dir() -> Path | None:
    """The `data/` directory of the checkout this pbx runs from; None when installed from a wheel."""
    if not (SOURCE_TREE / CHECKOUT_MARKER).is_file():
        return None
    return SOURCE_TREE / CHECKOUT_DATA_DIR_NAME


def _given_data_dir(args: argparse.Namespace) -> Path | None:
    if args.data_dir is not None:
        return Path(args.data_dir)
    from_env = os.environ.get(DATA_DIR_ENV)
    return Path(from_env) if from_env else None


ServiceT = TypeVar("ServiceT")


@dataclass(frozen=True)
class OpenedDataDir:
    data_dir: Path
    config: PbxConfig
    sessions: sessionmaker[Session]

    def service(self, factory: Callable[..., ServiceT]) -> ServiceT:
        """A tenants' service (users, IVR menus, rooms, queues) on this data dir, whose tenant is the
        default one when a command names none."""
        return factory(sessions=self.sessions, default_domain=self.config.callmanager.default_domain)


def print_json(rows: Sequence[Any]) -> None:
    """`--json` of a listing: a list of objects, one per dataclass row (dates in ISO 8601)."""
    json.dump([dataclasses.asdict(row) for row in rows], sys.stdout, indent=2, default=_json_value)
    print()


def _json_value(value: object) -> str:
    if isinstance(value, date):  # a datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@contextmanager
def open_data_dir(args: argparse.Namespace) -> Iterator[OpenedDataDir]:
    """The configuration and database of an initialized data directory, schema up to date."""
    data_dir = initialized_data_dir(args)
    config = load_config(data_dir / CONFIG_FILE_NAME, data_dir=data_dir)
    engine = create_engine_for(config.database.url)
    try:
        check_schema(engine, f"pbx init --data-dir {data_dir}")
        yield OpenedDataDir(data_dir=data_dir, config=config, sessions=session_factory(engine))
    finally:
        engine.dispose()


def load_daemon_config(config_path: Path, *, data_dir: Path | None = None,
                       overrides: dict[str, str] | None = None, needs_auth: bool = True) -> PbxConfig:
    """The config file, then the environment, then command-line `overrides` ({"sip.port": "5070"}).

    Overrides go through the same validation as the environment, so a bad value is
    reported with its key like any other.
    """
    env = dict(os.environ)
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        env[f"PBX_{section.upper()}__{key.upper()}"] = value
    return load_config(config_path, env=env, data_dir=data_dir, needs_auth=needs_auth)


def check_schema(engine: Engine, upgrade_command: str) -> None:
    current, expected = schema_revision(engine), head_revision()
    if current != expected:
        raise CommandError(
            f"the database schema is at revision {current or 'none'}, this pbx needs {expected}: "
            f"run '{upgrade_command}' to upgrade it"
        )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def yes_no(value: bool) -> str:
    return "yes" if value else "no"


def list_command(commands: Subparsers, parents: list[argparse.ArgumentParser],
                 service: Callable[..., ServiceT], items: Callable[[ServiceT, str | None], Sequence[RowT]],
                 *, help: str, none: str, show: Callable[[Sequence[RowT]], None]) -> None:
    """`list [--json]` of a tenant's things: `items(service, tenant)` (`QueueService.list_queues`)
    shown by `show` (a table), or `none` when there are none, or as a JSON list of objects."""
    parser = commands.add_parser("list", parents=parents, help=help)
    parser.add_argument("--json", action="store_true", help="a JSON list of objects, one per row")

    def run(args: argparse.Namespace) -> int:
        with open_data_dir(args) as opened:
            rows = items(opened.service(service), args.tenant)
        if args.json:
            print_json(rows)
        elif not rows:
            print(none)
        else:
            show(rows)
        return EXIT_OK

    parser.set_defaults(run=run)


def delete_command(commands: Subparsers, parents: list[argparse.ArgumentParser],
                   service: Callable[..., ServiceT], delete: Callable[[ServiceT, str, str | None], object],
                   *, help: str, what: str, key: str = "number") -> None:
    """`del KEY` of a tenant's thing: `delete(service, key, tenant)` (`QueueService.delete_queue`),
    then "deleted WHAT KEY"."""
    parser = commands.add_parser("del", parents=parents, help=help)
    parser.add_argument(key, metavar=key.upper())

    def run(args: argparse.Namespace) -> int:
        name = getattr(args, key)
        with open_data_dir(args) as opened:
            delete(opened.service(service), name, args.tenant)
        print(f"deleted {what} {name}")
        return EXIT_OK

    parser.set_defaults(run=run)

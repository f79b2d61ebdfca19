"""The `pbx` command: set up a data directory and administer its users.

    pbx init --data-dir DIR [--domain DOMAIN] [--demo]
    pbx user add EXT --password PW [--name NAME] [--email E] [--tenant DOMAIN]
    pbx user list [--tenant DOMAIN]
    pbx user del EXT [--tenant DOMAIN]
    pbx user import FILE
    pbx server add NAME --role media --host ADDR --port PORT [--workers N] [--weight W] [--disabled]
    pbx server list | enable NAME | disable NAME | del NAME
    pbx allinone [--host ADDR] [--sip-port PORT]
    pbx callmanager --config FILE
    pbx media --config FILE
    pbx db upgrade --config FILE
    pbx inventory from-terraform FILE [--output FILE]

Every command takes `--data-dir` (default: $PBX_DATA_DIR, then /var/lib/pbx), whose
`pbx.yml` is the configuration. Each command is added by one `_add_<name>_command`
function listed in `COMMANDS`; it sets `run`, the handler that takes the parsed
arguments and returns the exit status. Administrator mistakes end with a one-line
message on stderr and a non-zero status, never a traceback.
"""

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.main import load as load_daemon_config
from pbx_services.callmanager.main import run as run_callmanager
from pbx_services.cluster.config import (
    CONFIG_FILE_NAME,
    DEFAULT_DATA_DIR,
    DEFAULT_DOMAIN,
    ConfigError,
    PbxConfig,
    build_config,
    load_config,
    sqlite_url_for,
)
from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.database import (
    create_engine_for,
    head_revision,
    schema_revision,
    session_factory,
    upgrade,
)
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerService
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import CsvImportError, UserService
from pbx_services.cluster.validation import InvalidValue, validate_domain
from pbx_services.media.main import run as run_media
from pbx_services.provisioning.inventory import InventoryError, inventory_from_terraform

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

DATA_DIR_ENV = "PBX_DATA_DIR"
EMBEDDED_MEDIA_SERVER = "allinone-media"
"""Name of the all-in-one's in-process media server in the servers table."""
DEMO_EXTENSIONS = ("1001", "1002", "1003", "1004")
AUTH_SECRET_BYTES = 32

Subparsers = Any  # argparse's _SubParsersAction, which it does not export


class CommandError(Exception):
    """The command cannot do what was asked; the message tells the administrator why."""


class _Parser(argparse.ArgumentParser):
    """Reports a usage mistake in one line, pointing to --help, instead of the whole usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage mistake argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
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
    parser = _Parser(prog="pbx", description="Administer a PBX: its data directory and its users.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def _data_dir_option() -> argparse.ArgumentParser:
    """A parent parser giving a command the --data-dir option."""
    parent = _Parser(add_help=False)
    parent.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help=f"where pbx.yml and the database live (default: ${DATA_DIR_ENV}, then {DEFAULT_DATA_DIR})",
    )
    return parent


def _data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir is not None:
        return Path(args.data_dir)
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class _Opened:
    data_dir: Path
    config: PbxConfig
    sessions: sessionmaker[Session]


@contextmanager
def _open_data_dir(args: argparse.Namespace) -> Iterator[_Opened]:
    """The configuration and database of an initialized data directory, schema up to date."""
    data_dir = _data_dir(args)
    config_path = data_dir / CONFIG_FILE_NAME
    if not config_path.exists():
        raise CommandError(f"no configuration at {config_path}: run 'pbx init --data-dir {data_dir}' first")
    config = load_config(config_path, data_dir=data_dir)
    engine = create_engine_for(config.database.url)
    try:
        _check_schema(engine, f"pbx init --data-dir {data_dir}")
        yield _Opened(data_dir=data_dir, config=config, sessions=session_factory(engine))
    finally:
        engine.dispose()


def _check_schema(engine: Engine, upgrade_command: str) -> None:
    current, expected = schema_revision(engine), head_revision()
    if current != expected:
        raise CommandError(
            f"the database schema is at revision {current or 'none'}, this pbx needs {expected}: "
            f"run '{upgrade_command}' to upgrade it"
        )


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    for row in (headers, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


# pbx init


def _add_init_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "init",
        parents=[_data_dir_option()],
        help="create a data directory (config, database, default tenant) or upgrade its schema",
        description=(
            "Create DIR/pbx.yml with a new auth secret, create or upgrade the database schema and "
            "the default tenant. Safe to run again: an existing pbx.yml is never overwritten."
        ),
    )
    parser.add_argument(
        "--domain",
        help=f"SIP domain of the default tenant (default: {DEFAULT_DOMAIN}; kept from pbx.yml if it exists)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"add demo users {', '.join(DEMO_EXTENSIONS)} with random passwords",
    )
    parser.set_defaults(run=_init)


def _init(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    config_path = data_dir / CONFIG_FILE_NAME
    if config_path.exists():
        existing = load_config(config_path, data_dir=data_dir)
        domain = existing.callmanager.default_domain
        if args.domain is not None and validate_domain(args.domain) != domain:
            raise CommandError(
                f"{config_path} exists with default domain {domain}; refusing to overwrite it "
                "(edit it by hand, or choose another --data-dir)"
            )
        print(f"{config_path} exists: left unchanged")
    else:
        _write_initial_config(config_path, data_dir, domain=args.domain or DEFAULT_DOMAIN)
        print(f"wrote {config_path}")
    config = load_config(config_path, data_dir=data_dir)
    upgrade(config.database.url)
    print(f"database schema at revision {head_revision()}")
    engine = create_engine_for(config.database.url)
    try:
        sessions = session_factory(engine)
        domain = config.callmanager.default_domain
        _, created = TenantService(sessions=sessions).ensure_tenant(domain)
        print(f"default tenant {domain}: {'created' if created else 'exists'}")
        if args.demo:
            _add_demo_users(UserService(sessions=sessions, default_domain=domain), domain)
    finally:
        engine.dispose()
    return EXIT_OK


def _write_initial_config(config_path: Path, data_dir: Path, *, domain: str) -> None:
    document = {
        "database": {"url": sqlite_url_for(data_dir)},
        "callmanager": {"default_domain": domain},
        "auth": {"secret": secrets.token_hex(AUTH_SECRET_BYTES)},
    }
    # A bad --domain stops here, before any file is written; the domain is written normalized.
    config = build_config(document, env={}, data_dir=data_dir)
    document["callmanager"]["default_domain"] = config.callmanager.default_domain
    text = (
        "# PBX configuration written by `pbx init`. Keys left out take their defaults;\n"
        "# environment variables PBX_<SECTION>__<KEY> override this file (PBX_SIP__PORT=5070).\n"
        "# auth.secret signs digest nonces: keep it private, the same on every Call Manager.\n"
        + yaml.safe_dump(document, sort_keys=False)
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a config that appeared meanwhile; 0600: it holds the secret.
    descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _add_demo_users(users: UserService, domain: str) -> None:
    rows = []
    for extension in DEMO_EXTENSIONS:
        password = secrets.token_urlsafe(12)
        try:
            users.add_user(extension, password, name=f"Demo {extension}")
        except AlreadyExists:
            password = "(exists already: left unchanged)"
        rows.append((extension, password))
    print(f"demo users of {domain}:")
    _print_table(("EXTENSION", "PASSWORD"), rows)


# pbx user add|list|del|import


def _add_user_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("user", help="add, list, delete and import users")
    commands = parser.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    data_dir = _data_dir_option()
    tenant = _Parser(add_help=False)
    tenant.add_argument(
        "--tenant", metavar="DOMAIN", help="the tenant's SIP domain (default: the default tenant)"
    )

    add = commands.add_parser("add", parents=[data_dir, tenant], help="add a user")
    add.add_argument("extension", metavar="EXT")
    add.add_argument("--password", required=True, metavar="PW")
    add.add_argument("--name", help="display name")
    add.add_argument("--email")
    add.set_defaults(run=_user_add)

    listing = commands.add_parser("list", parents=[data_dir], help="list users")
    listing.add_argument(
        "--tenant", metavar="DOMAIN", help="only this tenant's users (default: every tenant)"
    )
    listing.set_defaults(run=_user_list)

    delete = commands.add_parser("del", parents=[data_dir, tenant], help="delete a user")
    delete.add_argument("extension", metavar="EXT")
    delete.set_defaults(run=_user_del)

    load = commands.add_parser(
        "import",
        parents=[data_dir],
        help="import users from a CSV file",
        description=(
            "Import users from a CSV file whose header names the columns: extension and password, "
            "optionally name, email and tenant (a tenant's domain). Nothing is imported if any row is bad."
        ),
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.set_defaults(run=_user_import)


def _user_service(opened: _Opened) -> UserService:
    return UserService(sessions=opened.sessions, default_domain=opened.config.callmanager.default_domain)


def _user_add(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        user = _user_service(opened).add_user(
            args.extension, args.password, name=args.name, email=args.email, tenant=args.tenant
        )
        print(f"added user {user.extension}@{user.tenant.domain}")
    return EXIT_OK


def _user_list(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        users = _user_service(opened).list_users(tenant=args.tenant)
    if not users:
        print("no users")
        return EXIT_OK
    _print_table(
        ("EXTENSION", "DOMAIN", "NAME", "EMAIL", "ENABLED"),
        [
            (
                user.extension,
                user.tenant.domain,
                user.display_name or "",
                user.email or "",
                _yes_no(user.enabled),
            )
            for user in users
        ],
    )
    return EXIT_OK


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _user_del(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        _user_service(opened).delete_user(args.extension, tenant=args.tenant)
        print(f"deleted user {args.extension}@{args.tenant or opened.config.callmanager.default_domain}")
    return EXIT_OK


def _user_import(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        count = _user_service(opened).import_csv(args.file)
    print(f"imported {count} user{'s' if count != 1 else ''}")
    return EXIT_OK


# pbx server add|list|enable|disable|del


def _add_server_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "server", help="add, list, enable, disable and delete backend servers (media)",
        description="The backend servers the Call Managers send calls to. Changes take effect "
        "within seconds, without a restart; a disabled server takes no new calls, its calls go on.")
    commands = parser.add_subparsers(dest="server_command", required=True, metavar="COMMAND")
    data_dir = _data_dir_option()

    add = commands.add_parser("add", parents=[data_dir], help="add a server")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=[role.value for role in ServerRole])
    add.add_argument("--host", required=True, metavar="ADDR", help="its control address")
    add.add_argument("--port", required=True, type=int, metavar="PORT",
                     help="its control port (a media server's first worker)")
    add.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes, answering on PORT, PORT+1, ... (default 1)")
    add.add_argument("--weight", type=int, default=1, metavar="W",
                     help="share of new calls relative to the others (default 1)")
    add.add_argument("--disabled", action="store_true", help="add it without giving it calls yet")
    add.set_defaults(run=_server_add)

    commands.add_parser("list", parents=[data_dir], help="list servers").set_defaults(run=_server_list)
    for name, enabled in (("enable", True), ("disable", False)):
        toggle = commands.add_parser(name, parents=[data_dir], help=f"{name} a server")
        toggle.add_argument("name", metavar="NAME")
        toggle.set_defaults(run=_server_set_enabled, enabled=enabled)
    delete = commands.add_parser("del", parents=[data_dir], help="delete a server")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=_server_del)


def _server_add(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        server = ServerService(sessions=opened.sessions).add_server(
            args.name, role=ServerRole(args.role), host=args.host, port=args.port, workers=args.workers,
            weight=args.weight, enabled=not args.disabled)
    print(f"added {server.role} server {server.name} at {server.host}:{server.port}")
    return EXIT_OK


def _server_list(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        servers = ServerService(sessions=opened.sessions).list_servers()
    if not servers:
        print("no servers")
        return EXIT_OK
    _print_table(("NAME", "ROLE", "ADDRESS", "WORKERS", "WEIGHT", "ENABLED"),
                 [(s.name, s.role, f"{s.host}:{s.port}", str(s.workers), str(s.weight), _yes_no(s.enabled))
                  for s in servers])
    return EXIT_OK


def _server_set_enabled(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        server = ServerService(sessions=opened.sessions).set_enabled(args.name, args.enabled)
    print(f"{'enabled' if server.enabled else 'disabled'} server {server.name}")
    return EXIT_OK


def _server_del(args: argparse.Namespace) -> int:
    with _open_data_dir(args) as opened:
        ServerService(sessions=opened.sessions).delete_server(args.name)
    print(f"deleted server {args.name}")
    return EXIT_OK


# pbx allinone, pbx callmanager


def _add_allinone_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "allinone",
        parents=[_data_dir_option()],
        help="run every role in one process, in the foreground",
        description="Run every PBX role in one process (the Call Manager and a media server) on the data "
        "directory's configuration, until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", help="address to listen on (overrides sip.host)")
    parser.add_argument("--sip-port", type=int, metavar="PORT", help="SIP port (overrides sip.port)")
    parser.set_defaults(run=_allinone)


def _allinone(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    config_path = data_dir / CONFIG_FILE_NAME
    if not config_path.exists():
        raise CommandError(f"no configuration at {config_path}: run 'pbx init --data-dir {data_dir}' first")
    overrides = {}
    if args.host is not None:
        overrides["sip.host"] = args.host
    if args.sip_port is not None:
        overrides["sip.port"] = str(args.sip_port)
    config = load_daemon_config(config_path, data_dir=data_dir, overrides=overrides)
    return _run_daemon(config, role="allinone", upgrade_command=f"pbx init --data-dir {data_dir}",
                       with_media=config.media.embedded)


def _add_callmanager_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "callmanager",
        help="run the Call Manager alone, in the foreground (what pbx-callmanager.service runs)",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the role's YAML config")
    parser.set_defaults(run=_callmanager)


def _callmanager(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config)
    return _run_daemon(config, role="callmanager", upgrade_command=f"pbx db upgrade --config {args.config}")


def _add_media_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "media",
        help="run the media server (RTP relay) in the foreground (what pbx-media.service runs)",
        description="Run the media server: media.workers worker processes (0: one per CPU), worker i "
        "answering the control protocol on media.control_port + i with an equal share of the RTP ports, "
        "and /health and /metrics on http.port.",
    )
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the role's YAML config")
    parser.set_defaults(run=_media)


def _media(args: argparse.Namespace) -> int:
    return run_media(load_daemon_config(args.config, needs_auth=False))


def _add_db_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("db", help="manage the database schema")
    commands = parser.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade_parser = commands.add_parser("upgrade", help="apply the migrations the schema lacks")
    upgrade_parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                                help="a role's YAML config")
    upgrade_parser.set_defaults(run=_db_upgrade)


def _db_upgrade(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config)
    upgrade(config.database.url)
    print(f"database schema at revision {head_revision()}")
    return EXIT_OK


def _run_daemon(config: PbxConfig, *, role: str, upgrade_command: str, with_media: bool = False) -> int:
    engine = create_engine_for(config.database.url)
    try:
        _check_schema(engine, upgrade_command)
        if role == "allinone":
            _list_embedded_media_server(session_factory(engine), config, with_media)
    finally:
        engine.dispose()
    return run_callmanager(config, role=role, with_media=with_media)


def _list_embedded_media_server(sessions: sessionmaker[Session], config: PbxConfig, embedded: bool) -> None:
    """The all-in-one's own media server is a row like any other (so it can be watched and
    disabled), kept at its configured address; without it, the row goes."""
    servers = ServerService(sessions=sessions)
    if embedded:
        servers.ensure_server(EMBEDDED_MEDIA_SERVER, role=ServerRole.MEDIA, host=config.media.control_host,
                              port=config.media.control_port)
    elif any(server.name == EMBEDDED_MEDIA_SERVER for server in servers.list_servers()):
        servers.delete_server(EMBEDDED_MEDIA_SERVER)


def _add_inventory_command(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("inventory", help="write an Ansible inventory of a site")
    commands = parser.add_subparsers(dest="inventory_command", required=True, metavar="COMMAND")
    convert = commands.add_parser(
        "from-terraform", help="the inventory of the hosts Terraform made (terraform/modules/pbx_site)",
        description="Turn `terraform output -json` of a site using terraform/modules/pbx_site into the "
        "hosts.yml of an Ansible inventory for ansible/site.yml (see terraform/README.md).")
    convert.add_argument("file", metavar="FILE", help="the saved `terraform output -json` ('-': stdin)")
    convert.add_argument("--output", type=Path, metavar="FILE", help="write it there (default: stdout)")
    convert.set_defaults(run=_inventory_from_terraform)


def _inventory_from_terraform(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    try:
        inventory = inventory_from_terraform(text)
    except InventoryError as exc:
        raise CommandError(f"{args.file}: {exc}") from None
    if args.output is None:
        sys.stdout.write(inventory)
    else:
        args.output.write_text(inventory, encoding="utf-8")
    return EXIT_OK


COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _add_init_command,
    _add_user_command,
    _add_server_command,
    _add_allinone_command,
    _add_callmanager_command,
    _add_media_command,
    _add_db_command,
    _add_inventory_command,
)
"""One function per top-level command, each adding its subparser; add new commands here."""


if __name__ == "__main__":
    sys.exit(main())

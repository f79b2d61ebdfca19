"""`pbx init` and `pbx db upgrade`: create a data directory, bring a database schema up to date."""

import argparse
import os
import secrets
from pathlib import Path

import yaml

from pbx_services.cli.common import (
    EXIT_OK,
    CommandError,
    Subparsers,
    data_dir_option,
    data_dir_to_create,
    load_daemon_config,
    print_table,
)
from pbx_services.cluster.config import (
    CONFIG_FILE_NAME,
    DEFAULT_DOMAIN,
    build_config,
    load_config,
    sqlite_url_for,
)
from pbx_services.cluster.dao import AlreadyExists
from pbx_services.cluster.database import create_engine_for, head_revision, session_factory, upgrade
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import validate_domain

DEMO_EXTENSIONS = ("1001", "1002", "1003", "1004")
AUTH_SECRET_BYTES = 32


def add_commands(subparsers: Subparsers) -> None:
    init = subparsers.add_parser(
        "init",
        parents=[data_dir_option()],
        help="create a data directory (config, database, default tenant) or upgrade its schema",
        description=(
            "Create DIR/pbx.yml with a new auth secret, create or upgrade the database schema and "
            "the default tenant. Safe to run again: an existing pbx.yml is never overwritten."
        ),
    )
    init.add_argument(
        "--domain",
        help=f"SIP domain of the default tenant (default: {DEFAULT_DOMAIN}; kept from pbx.yml if it exists)",
    )
    init.add_argument(
        "--demo",
        action="store_true",
        help=f"add demo users {', '.join(DEMO_EXTENSIONS)} with random passwords",
    )
    init.set_defaults(run=_init)

    db = subparsers.add_parser("db", help="manage the database schema")
    commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    upgrade_parser = commands.add_parser("upgrade", help="apply the migrations the schema lacks")
    upgrade_parser.add_argument("--config", type=Path, required=True, metavar="FILE",
                                help="a role's YAML config")
    upgrade_parser.set_defaults(run=_db_upgrade)


def _init(args: argparse.Namespace) -> int:
    data_dir = data_dir_to_create(args)
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
    print_table(("EXTENSION", "PASSWORD"), rows)


def _db_upgrade(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config)
    upgrade(config.database.url)
    print(f"database schema at revision {head_revision()}")
    return EXIT_OK

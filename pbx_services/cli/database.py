"""`pbx init` and `pbx db upgrade`: create a data directory, bring a database schema up to date."""

import argparse
import os
import secrets
import sys
from pathlib import Path

import yaml

from pbx_services.cli import meeting
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
from pbx_services.cluster.ivr import IvrService
from pbx_services.cluster.meetings import MeetingService
from pbx_services.cluster.prompts import PromptService, SynthesizerMissing
from pbx_services.cluster.queues import QueueService
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue, validate_domain
from pbx_services.runtime.file_modes import check_private, database_paths, make_private_dir

DEMO_EXTENSIONS = ("1001", "1002", "1003", "1004")
DEMO_IVR_NUMBER = "800"
DEMO_GREETING, DEMO_INVALID, DEMO_TIMEOUT = "demo-greeting", "demo-invalid", "demo-timeout"
DEMO_PROMPTS = {
    DEMO_GREETING: f"Welcome. For extension {DEMO_EXTENSIONS[0]} press 1, for extension {DEMO_EXTENSIONS[1]} "
    "press 2, to hear this again press 9.",
    DEMO_INVALID: "Sorry, that is not a valid choice.",
    DEMO_TIMEOUT: "Sorry, I did not hear your choice.",
}
"""Name -> text of the prompts of the demo IVR menu, spoken by espeak-ng."""
DEMO_ROOM_NUMBER, DEMO_ROOM_PIN, DEMO_ROOM_MODERATOR_PIN = "850", "1234", "4321"
DEMO_QUEUE_NUMBER = "700"
DEMO_QUEUE_AGENTS = DEMO_EXTENSIONS[2:]
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
        help=f"add demo users {', '.join(DEMO_EXTENSIONS)} with random passwords, IVR menu "
        f"{DEMO_IVR_NUMBER} calling the first two of them (its prompts spoken by espeak-ng), and meeting "
        f"room {DEMO_ROOM_NUMBER} (PIN {DEMO_ROOM_PIN}, moderator PIN {DEMO_ROOM_MODERATOR_PIN}), and call "
        f"queue {DEMO_QUEUE_NUMBER} ringing {' and '.join(DEMO_QUEUE_AGENTS)}",
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
    for warning in check_private([data_dir, *database_paths(config.database.url)]):
        print(f"pbx: {warning}", file=sys.stderr)
    engine = create_engine_for(config.database.url)
    try:
        sessions = session_factory(engine)
        domain = config.callmanager.default_domain
        _, created = TenantService(sessions=sessions).ensure_tenant(domain)
        print(f"default tenant {domain}: {'created' if created else 'exists'}")
        if args.demo:
            passwords = _add_demo_users(UserService(sessions=sessions, default_domain=domain))
            _add_demo_ivr(PromptService(sessions=sessions, default_domain=domain),
                          IvrService(sessions=sessions, default_domain=domain), domain)
            _add_demo_room(MeetingService(sessions=sessions, default_domain=domain), domain)
            _add_demo_queue(QueueService(sessions=sessions, default_domain=domain), domain)
            # Last: the passwords are what the administrator needs next.
            print(f"demo users of {domain}:")
            print_table(("EXTENSION", "PASSWORD"), passwords)
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
    make_private_dir(data_dir)
    # O_EXCL: never overwrite a config that appeared meanwhile; 0600: it holds the secret.
    descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _add_demo_users(users: UserService) -> list[tuple[str, str]]:
    """(extension, password) of each demo user, the password saying so if the user existed."""
    rows = []
    for extension in DEMO_EXTENSIONS:
        password = secrets.token_urlsafe(12)
        try:
            users.add_user(extension, password, name=f"Demo {extension}")
        except AlreadyExists:
            password = "(exists already: left unchanged)"
        rows.append((extension, password))
    return rows


def _add_demo_ivr(prompts: PromptService, menus: IvrService, domain: str) -> None:
    """The demo prompts and IVR menu, those that exist left unchanged; without espeak-ng, neither."""
    existing = {prompt.name for prompt in prompts.list()}
    for name, text in DEMO_PROMPTS.items():
        if name in existing:
            print(f"demo prompt {name}: exists")
            continue
        try:
            prompts.say(text, name)
        except SynthesizerMissing as exc:
            print(f"demo IVR menu {DEMO_IVR_NUMBER} skipped: {exc}")
            return
        print(f"demo prompt {name}: created")
    if any(menu.number == DEMO_IVR_NUMBER for menu in menus.list_menus()):
        print(f"demo IVR menu {DEMO_IVR_NUMBER} of {domain}: exists")
        return
    first, second = DEMO_EXTENSIONS[:2]
    try:
        menus.add_menu(DEMO_IVR_NUMBER, greeting=DEMO_GREETING,
                       options={"1": first, "2": second, "9": "repeat"}, invalid_prompt=DEMO_INVALID,
                       timeout_prompt=DEMO_TIMEOUT, dial_by_extension=True, name="Demo menu")
    except InvalidValue as exc:  # the administrator gave the number or removed an extension meanwhile
        print(f"demo IVR menu {DEMO_IVR_NUMBER} skipped: {exc}")
        return
    print(f"demo IVR menu {DEMO_IVR_NUMBER} of {domain}: created (1 calls {first}, 2 calls {second}, "
          "9 repeats, or dial an extension)")


def _add_demo_room(rooms: MeetingService, domain: str) -> None:
    """The demo meeting room, left unchanged if it exists."""
    if any(room.number == DEMO_ROOM_NUMBER for room in rooms.list_rooms()):
        print(f"demo meeting room {DEMO_ROOM_NUMBER} of {domain}: exists")
        return
    try:
        room = rooms.add_room(DEMO_ROOM_NUMBER, pin=DEMO_ROOM_PIN, moderator_pin=DEMO_ROOM_MODERATOR_PIN,
                              name="Demo room")
    except InvalidValue as exc:  # the administrator gave the number to something else
        print(f"demo meeting room {DEMO_ROOM_NUMBER} skipped: {exc}")
        return
    print(f"demo meeting room {DEMO_ROOM_NUMBER} of {domain}: created ({meeting.describe(room)})")


def _add_demo_queue(queues: QueueService, domain: str) -> None:
    """The demo call queue, left unchanged if it exists."""
    if any(queue.number == DEMO_QUEUE_NUMBER for queue in queues.list_queues()):
        print(f"demo queue {DEMO_QUEUE_NUMBER} of {domain}: exists")
        return
    try:
        queues.add_queue(DEMO_QUEUE_NUMBER, strategy="ring-all",
                         members=[(agent, 0) for agent in DEMO_QUEUE_AGENTS], name="Demo queue")
    except InvalidValue as exc:  # the administrator gave the number to something else
        print(f"demo queue {DEMO_QUEUE_NUMBER} skipped: {exc}")
        return
    print(f"demo queue {DEMO_QUEUE_NUMBER} of {domain}: created (ring-all: {', '.join(DEMO_QUEUE_AGENTS)})")


def _db_upgrade(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config)
    upgrade(config.database.url)
    print(f"database schema at revision {head_revision()}")
    return EXIT_OK

"""`pbx admin add|list|del|passwd|unlock`: the web portal's administrators.

They work on a data directory (`--data-dir`, as the other commands) or on a node's role
config (`--config /etc/pbx/portal.yml`, where the portal runs). What they change is written
to the portal's audit log as done by `cli:USER`.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cli.common import (
    EXIT_OK,
    Subparsers,
    check_schema,
    data_dir_option,
    load_daemon_config,
    open_data_dir,
    print_table,
    yes_no,
)
from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.models import AdminRole

PASSWORD_ENV = "PBX_ADMIN_PASSWORD"


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "admin", help="add, list and delete the web portal's administrators, set their passwords",
        description="The web portal's administrators: system (everything), operator (operations and servers, "
        "not administrators) and tenant (one tenant's data only).")
    commands = parser.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    where = _where_option()

    add = commands.add_parser("add", parents=[where], help="add an administrator")
    add.add_argument("name", metavar="NAME")
    _password_argument(add)
    add.add_argument("--role", choices=[role.value for role in AdminRole], default=AdminRole.SYSTEM.value,
                     help="system (default), operator or tenant")
    add.add_argument("--tenant", metavar="DOMAIN", help="the tenant of a tenant administrator")
    add.add_argument("--temporary", action="store_true",
                     help="a one-time password: it must be changed at the first login")
    add.set_defaults(run=_add)

    commands.add_parser("list", parents=[where], help="list administrators").set_defaults(run=_list)

    delete = commands.add_parser("del", parents=[where], help="delete an administrator")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=_delete)

    passwd = commands.add_parser("passwd", parents=[where],
                                 help="set an administrator's password (unlocks it)")
    passwd.add_argument("name", metavar="NAME")
    _password_argument(passwd)
    passwd.add_argument("--temporary", action="store_true",
                        help="a one-time password: it must be changed at the next login")
    passwd.set_defaults(run=_passwd)

    unlock = commands.add_parser("unlock", parents=[where],
                                 help="unlock an account locked after wrong passwords")
    unlock.add_argument("name", metavar="NAME")
    unlock.set_defaults(run=_unlock)


def _where_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[data_dir_option()])
    parent.add_argument("--config", type=Path, metavar="FILE",
                        help="a role's YAML config naming the database (instead of --data-dir)")
    return parent


def _password_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password", metavar="PW",
                        help=f"the password, 10 characters at least (default: ${PASSWORD_ENV}, else asked)")


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    return getpass.getpass("password: ")


@contextmanager
def _admins(args: argparse.Namespace) -> Iterator[AdminService]:
    if args.config is None:
        with open_data_dir(args) as opened:
            yield AdminService(sessions=opened.sessions)
        return
    config = load_daemon_config(args.config, needs_auth=False)
    engine = create_engine_for(config.database.url)
    try:
        check_schema(engine, f"pbx db upgrade --config {args.config}")
        sessions: sessionmaker[Session] = session_factory(engine)
        yield AdminService(sessions=sessions)
    finally:
        engine.dispose()


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid {os.getuid()}"


def _add(args: argparse.Namespace) -> int:
    password = _password(args)
    with _admins(args) as admins:
        admin = admins.add_admin(args.name, password=password, role=AdminRole(args.role), tenant=args.tenant,
                                 must_change_password=args.temporary)
        admins.record(actor=cli_actor(), action="admin.add", target=admin.name,
                      detail=f"role {admin.role}" + (f", tenant {admin.tenant}" if admin.tenant else ""),
                      tenant_id=admin.tenant_id)
    print(f"added {admin.role} administrator {admin.name}" + (f" of {admin.tenant}" if admin.tenant else ""))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with _admins(args) as admins:
        found = admins.list_admins()
    if not found:
        print("no administrators (the first 'pbx portal' makes one with a one-time password)")
        return EXIT_OK
    print_table(("NAME", "ROLE", "TENANT", "ONE-TIME PASSWORD", "LOCKED UNTIL"),
                [(a.name, a.role.value, a.tenant or "-", yes_no(a.must_change_password),
                  f"{a.locked_until:%Y-%m-%d %H:%M} UTC" if a.locked_until else "-") for a in found])
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with _admins(args) as admins:
        admins.delete_admin(args.name)
        admins.record(actor=cli_actor(), action="admin.del", target=args.name)
    print(f"deleted administrator {args.name}")
    return EXIT_OK


def _passwd(args: argparse.Namespace) -> int:
    password = _password(args)
    with _admins(args) as admins:
        admin = admins.set_password(args.name, password, must_change=args.temporary)
        admins.record(actor=cli_actor(), action="admin.passwd", target=admin.name, tenant_id=admin.tenant_id)
    print(f"password of {admin.name} set" + (" (to be changed at the next login)" if args.temporary else ""))
    return EXIT_OK


def _unlock(args: argparse.Namespace) -> int:
    with _admins(args) as admins:
        admins.unlock(args.name)
        admins.record(actor=cli_actor(), action="admin.unlock", target=args.name)
    print(f"unlocked {args.name}")
    return EXIT_OK

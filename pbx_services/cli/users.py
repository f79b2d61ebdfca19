"""`pbx user add|list|del|import`: the SIP users of the tenants."""

import argparse
from pathlib import Path

from pbx_services.cli.common import (
    EXIT_OK,
    Parser,
    Subparsers,
    data_dir_option,
    open_data_dir,
    print_table,
    yes_no,
)
from pbx_services.cluster.users import UserService


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("user", help="add, list, delete and import users")
    commands = parser.add_subparsers(dest="user_command", required=True, metavar="COMMAND")
    data_dir = data_dir_option()
    tenant = Parser(add_help=False)
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
            "optionally name, email and tenant (a tenant's domain). Users that exist already are skipped "
            "(left unchanged). Nothing is imported if any row is bad."
        ),
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.set_defaults(run=_user_import)



def _user_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        user = opened.service(UserService).add_user(
            args.extension, args.password, name=args.name, email=args.email, tenant=args.tenant
        )
        print(f"added user {user.extension}@{user.tenant.domain}")
    return EXIT_OK


def _user_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        users = opened.service(UserService).list_users(tenant=args.tenant)
    if not users:
        print("no users")
        return EXIT_OK
    print_table(
        ("EXTENSION", "DOMAIN", "NAME", "EMAIL", "ENABLED"),
        [
            (
                user.extension,
                user.tenant.domain,
                user.display_name or "",
                user.email or "",
                yes_no(user.enabled),
            )
            for user in users
        ],
    )
    return EXIT_OK


def _user_del(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        opened.service(UserService).delete_user(args.extension, tenant=args.tenant)
        print(f"deleted user {args.extension}@{args.tenant or opened.config.callmanager.default_domain}")
    return EXIT_OK


def _user_import(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        result = opened.service(UserService).import_csv(args.file)
    print(f"imported {result.imported:,} user{'s' if result.imported != 1 else ''}")
    existing = result.existing_summary()
    if existing is not None:
        print(existing)
    return EXIT_OK

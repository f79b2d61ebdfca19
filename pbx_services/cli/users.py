"""`pbx user add|set|list|del|import`: the SIP users of the tenants."""

import argparse
from pathlib import Path

from pbx_services.cli.common import (
    EXIT_OK,
    CommandError,
    Parser,
    Subparsers,
    data_dir_option,
    open_data_dir,
    print_table,
    yes_no,
)
from pbx_services.cluster.forwarding import ForwardingService, ForwardKind
from pbx_services.cluster.models.user import DEFAULT_PERMISSION, USER_PERMISSIONS
from pbx_services.cluster.users import UserService

_PERMISSION_HELP = (f"the widest class of outbound route the user may dial: "
                    f"{' < '.join(p.value for p in USER_PERMISSIONS)} (emergency numbers are always allowed)")
_MAX_CALLS_HELP = "how many calls the user may have at once (0: no limit; emergency calls always go out)"
_WITHHOLD_HELP = ("withhold the user's number on its calls out through a trunk (anonymous From; the "
                  "number only asserted to the provider, with Privacy: id), as when its phone asks for it")


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("user", help="add, change, list, delete and import users")
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
    add.add_argument("--permission", default=DEFAULT_PERMISSION.value, metavar="CLASS",
                     help=f"{_PERMISSION_HELP} (default: {DEFAULT_PERMISSION.value})")
    add.add_argument("--max-calls", type=int, default=0, metavar="N", help=_MAX_CALLS_HELP)
    add.add_argument("--withhold-number", action="store_true", help=_WITHHOLD_HELP)
    add.set_defaults(run=_user_add)

    change = commands.add_parser("set", parents=[data_dir, tenant],
                                 help="change a user's outbound permission, call limit, pickup group and "
                                      "withheld number")
    change.add_argument("extension", metavar="EXT")
    change.add_argument("--permission", metavar="CLASS", help=_PERMISSION_HELP)
    change.add_argument("--max-calls", type=int, metavar="N", help=_MAX_CALLS_HELP)
    change.add_argument("--pickup-group", metavar="NAME",
                        help="whose ringing calls the user picks up with the pickup code (*8): the users "
                             "of group NAME; 'default': the tenant's group, every user without one")
    change.add_argument("--withhold-number", action=argparse.BooleanOptionalAction, help=_WITHHOLD_HELP)
    change.set_defaults(run=_user_set)

    forward = commands.add_parser(
        "forward", parents=[data_dir, tenant], help="forward a user's calls, or stop forwarding them",
        description="Where EXT's calls go instead of ringing it: --always, when --busy (or on do not "
                    "disturb), on --no-answer after --after seconds, when --unreachable (no device "
                    "registered). DEST is a number of the tenant (an extension, ring group, menu, queue or "
                    "room), one an outbound route takes, or voicemail (the user's own mailbox: pbx "
                    "voicemail enable). Without options: show what is set.")
    forward.add_argument("extension", metavar="EXT")
    for kind in ForwardKind:
        forward.add_argument(f"--{kind.value.replace('_', '-')}", dest=kind.value, metavar="DEST")
    forward.add_argument("--after", type=int, metavar="S",
                         help="seconds a call rings before the no-answer forward (5-300, default 20)")
    forward.add_argument("--off", action="append", default=[], metavar="KIND",
                         choices=[*(kind.value.replace("_", "-") for kind in ForwardKind), "all"],
                         help="stop a forward: always, busy, no-answer, unreachable or all (repeatable)")
    forward.set_defaults(run=_user_forward)

    dnd = commands.add_parser("dnd", parents=[data_dir, tenant],
                              help="do not disturb: the user's calls are busy (or go to its busy forward)")
    dnd.add_argument("extension", metavar="EXT")
    dnd.add_argument("state", choices=("on", "off"))
    dnd.set_defaults(run=_user_dnd)

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
            "optionally name, email, tenant (a tenant's domain), permission, max_calls, pickup_group and "
            "withhold_number (yes or no); an empty one takes the default, as 'pbx user add' without the "
            "option. Users that exist already are skipped (left unchanged). Nothing is imported if any "
            "row is bad."
        ),
    )
    load.add_argument("file", type=Path, metavar="FILE")
    load.set_defaults(run=_user_import)



def _user_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        user = opened.service(UserService).add_user(
            args.extension, args.password, name=args.name, email=args.email, tenant=args.tenant,
            permission=args.permission, max_calls=args.max_calls, withhold_number=args.withhold_number,
        )
        print(f"added user {user.extension}@{user.tenant.domain}")
    return EXIT_OK


def _user_set(args: argparse.Namespace) -> int:
    if args.permission is None and args.max_calls is None and args.pickup_group is None \
            and args.withhold_number is None:
        raise SystemExit("pbx user set: nothing to change (--permission CLASS, --max-calls N, "
                         "--pickup-group NAME, --[no-]withhold-number)")
    with open_data_dir(args) as opened:
        user = opened.service(UserService).set_user(args.extension, tenant=args.tenant,
                                                    permission=args.permission, max_calls=args.max_calls,
                                                    pickup_group=args.pickup_group,
                                                    withhold_number=args.withhold_number)
        print(f"user {user.extension}@{user.tenant.domain}: permission {user.permission.value}, "
              f"max calls {user.max_calls or 'no limit'}, pickup group {user.pickup_group or 'default'}, "
              f"number {'withheld' if user.withhold_number else 'shown'} toward trunks")
    return EXIT_OK


def _user_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        users = opened.service(UserService).list_users(tenant=args.tenant)
    if not users:
        print("no users")
        return EXIT_OK
    print_table(
        ("EXTENSION", "DOMAIN", "NAME", "EMAIL", "ENABLED", "PERMISSION", "MAX CALLS", "WITHHELD"),
        [
            (
                user.extension,
                user.tenant.domain,
                user.display_name or "",
                user.email or "",
                yes_no(user.enabled),
                user.permission.value,
                str(user.max_calls or "-"),
                yes_no(user.withhold_number),
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


def _user_forward(args: argparse.Namespace) -> int:
    off = {kind for kind in ForwardKind if kind.value.replace("_", "-") in args.off or "all" in args.off}
    if args.after is not None and args.no_answer is None:
        raise CommandError("--after goes with --no-answer DEST")
    with open_data_dir(args) as opened:
        service = opened.service(ForwardingService)
        info = service.get(args.extension, tenant_domain=args.tenant)
        for kind in ForwardKind:
            destination = getattr(args, kind.value)
            if destination is not None and kind in off:
                raise CommandError(f"--{kind.value.replace('_', '-')} and --off of it together")
            if destination is not None or kind in off:
                info = service.forward(args.extension, kind, destination, tenant_domain=args.tenant,
                                       seconds=args.after if kind is ForwardKind.NO_ANSWER else None)
    print(info.describe())
    return EXIT_OK


def _user_dnd(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        info = opened.service(ForwardingService).set_dnd(args.extension, args.state == "on",
                                                         tenant_domain=args.tenant)
    print(info.describe())
    return EXIT_OK

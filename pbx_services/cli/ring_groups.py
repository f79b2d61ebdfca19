"""`pbx ring-group add|list|del`: numbers that ring several users, at once or in turn."""

import argparse

from pbx_services.cli.common import (
    EXIT_OK,
    Subparsers,
    data_dir_option,
    open_data_dir,
    print_json,
    print_table,
)
from pbx_services.cli.prompts import tenant_option
from pbx_services.cluster.ring_groups import RING_SECONDS, RingGroupService, RingStrategy


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("ring-group", help="add, list and delete ring groups")
    commands = parser.add_subparsers(dest="ring_group_command", required=True, metavar="COMMAND")
    common = [data_dir_option(), tenant_option()]

    add = commands.add_parser(
        "add", parents=common, help="add a ring group",
        description="Dialling NUMBER rings the members: all at once (simultaneous, the first to answer "
                    "takes the call) or one after another (sequential: each for the ring seconds; one "
                    "without a registered device, busy or on do-not-disturb is passed over). When nobody "
                    "answered, the call goes to --final, or is refused 480.")
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--member", action="append", required=True, metavar="EXT",
                     help="a user of the tenant; repeat for each, in the order they ring")
    add.add_argument("--strategy", default=RingStrategy.SIMULTANEOUS.value,
                     help=f"{' or '.join(RingStrategy)} (default {RingStrategy.SIMULTANEOUS.value})")
    add.add_argument("--ring-seconds", type=int, default=20, metavar="S",
                     help=f"how long the members ring, each in turn when sequential "
                          f"({RING_SECONDS.start}-{RING_SECONDS.stop - 1}, default 20)")
    add.add_argument("--final", metavar="DEST", help="where calls nobody answered go: a number of the tenant")
    add.add_argument("--name", metavar="TEXT")
    add.add_argument("--replace", action="store_true", help="change the group of NUMBER if it exists")
    add.set_defaults(run=_add)

    listing = commands.add_parser("list", parents=common, help="list the ring groups")
    listing.add_argument("--json", action="store_true", help="a JSON list of objects")
    listing.set_defaults(run=_list)

    delete = commands.add_parser("del", parents=common, help="delete a ring group")
    delete.add_argument("number", metavar="NUMBER")
    delete.set_defaults(run=_delete)


def _add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        group = opened.service(RingGroupService).add_group(
            args.number, members=args.member, strategy=args.strategy, ring_seconds=args.ring_seconds,
            final_destination=args.final, name=args.name, tenant_domain=args.tenant, replace=args.replace)
    print(f"ring group {group.number} of {group.tenant_domain}: {group.strategy}, "
          f"{' '.join(group.members)}, {group.ring_seconds} s"
          + (f", then {group.final_destination}" if group.final_destination else ""))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        groups = opened.service(RingGroupService).list_groups(args.tenant)
    if args.json:
        print_json(groups)
        return EXIT_OK
    if not groups:
        print("no ring groups")
        return EXIT_OK
    print_table(("NUMBER", "STRATEGY", "MEMBERS", "SECONDS", "FINAL", "NAME"),
                [(g.number, g.strategy, " ".join(g.members), str(g.ring_seconds), g.final_destination or "-",
                  g.name or "") for g in groups])
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        opened.service(RingGroupService).delete_group(args.number, args.tenant)
    print(f"deleted ring group {args.number}")
    return EXIT_OK

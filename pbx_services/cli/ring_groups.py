"""`pbx ring-group add|list|del`: numbers that ring several users, at once or in turn."""

import argparse
from collections.abc import Sequence

from pbx_services.cli.common import (
    EXIT_OK,
    Subparsers,
    data_dir_option,
    delete_command,
    list_command,
    open_data_dir,
    print_table,
)
from pbx_services.cli.prompts import tenant_option
from pbx_services.cluster.ring_groups import RING_SECONDS, RingGroupInfo, RingGroupService, RingStrategy


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

    list_command(commands, common, RingGroupService, RingGroupService.list_groups,
                 help="list the ring groups", none="no ring groups", show=_show)
    delete_command(commands, common, RingGroupService, RingGroupService.delete_group,
                   help="delete a ring group", what="ring group")


def _add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        group = opened.service(RingGroupService).add_group(
            args.number, members=args.member, strategy=args.strategy, ring_seconds=args.ring_seconds,
            final_destination=args.final, name=args.name, tenant_domain=args.tenant, replace=args.replace)
    print(f"ring group {group.number} of {group.tenant_domain}: {group.strategy}, "
          f"{' '.join(group.members)}, {group.ring_seconds} s"
          + (f", then {group.final_destination}" if group.final_destination else ""))
    return EXIT_OK


def _show(groups: Sequence[RingGroupInfo]) -> None:
    print_table(("NUMBER", "STRATEGY", "MEMBERS", "SECONDS", "FINAL", "NAME"),
                [(g.number, g.strategy, " ".join(g.members), str(g.ring_seconds), g.final_destination or "-",
                  g.name or "") for g in groups])

"""`pbx tenant add|set|list|del`: the tenants, each an organization with its own SIP domain."""

import argparse

from pbx_services.cli.common import (
    EXIT_OK,
    Subparsers,
    data_dir_option,
    open_data_dir,
    print_json,
    print_table,
    yes_no,
)
from pbx_services.cluster.feature_codes import DEFAULT_CODES, FeatureCodeService
from pbx_services.cluster.tenants import TenantService

_MAX_CALLS_HELP = ("how many calls the tenant's users may have at once (0: no limit; emergency calls "
                   "always go out)")


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("tenant", help="add, list and delete tenants (each with its SIP domain)")
    commands = parser.add_subparsers(dest="tenant_command", required=True, metavar="COMMAND")
    data_dir = data_dir_option()

    add = commands.add_parser(
        "add", parents=[data_dir], help="add a tenant",
        description="Add a tenant whose phones register to SIP domain DOMAIN. Its users, menus, queues "
                    "and rooms are its own (the same extensions may exist in other tenants), and its "
                    "calls never reach another tenant's.")
    add.add_argument("domain", metavar="DOMAIN")
    add.add_argument("--name", help="the organization's name (default: the domain)")
    add.add_argument("--max-calls", type=int, default=0, metavar="N", help=_MAX_CALLS_HELP)
    add.set_defaults(run=_tenant_add)

    change = commands.add_parser("set", parents=[data_dir],
                                 help="change a tenant's name, call limit or feature codes")
    change.add_argument("domain", metavar="DOMAIN")
    change.add_argument("--name", help="the organization's name")
    change.add_argument("--max-calls", type=int, metavar="N", help=_MAX_CALLS_HELP)
    change.add_argument("--feature-code", action="append", default=[], metavar="NAME=CODE",
                        help="the code the tenant's users dial for feature NAME (CODE 'default': its "
                             "default); repeatable. Features and defaults: "
                             + ", ".join(f"{f.value} {code}" for f, code in DEFAULT_CODES.items()))
    change.set_defaults(run=_tenant_set)

    codes = commands.add_parser("feature-codes", parents=[data_dir], help="list a tenant's feature codes")
    codes.add_argument("domain", metavar="DOMAIN")
    codes.add_argument("--json", action="store_true", help="a JSON list of objects")
    codes.set_defaults(run=_tenant_feature_codes)

    listing = commands.add_parser("list", parents=[data_dir], help="list the tenants and what they hold")
    listing.add_argument("--json", action="store_true", help="a JSON list of objects")
    listing.set_defaults(run=_tenant_list)

    delete = commands.add_parser(
        "del", parents=[data_dir], help="delete a tenant",
        description="Delete the tenant of DOMAIN. A tenant that still has users, menus, queues, rooms "
                    "or prompts is refused unless --everything is given. The default tenant cannot be "
                    "deleted.")
    delete.add_argument("domain", metavar="DOMAIN")
    delete.add_argument("--everything", action="store_true",
                        help="delete its users, menus, queues, rooms and prompts with it (CDRs stay)")
    delete.set_defaults(run=_tenant_del)


def _tenant_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        tenant = opened.service(TenantService).add_tenant(args.domain, name=args.name,
                                                          max_calls=args.max_calls)
    print(f"added tenant {tenant.domain}")
    return EXIT_OK


def _tenant_set(args: argparse.Namespace) -> int:
    if args.name is None and args.max_calls is None and not args.feature_code:
        raise SystemExit("pbx tenant set: nothing to change (--name NAME, --max-calls N, --feature-code "
                         "NAME=CODE)")
    with open_data_dir(args) as opened:
        if args.name is not None or args.max_calls is not None:
            tenant = opened.service(TenantService).set_tenant(args.domain, name=args.name,
                                                              max_calls=args.max_calls)
            print(f"tenant {tenant.domain}: name {tenant.name}, max calls {tenant.max_calls or 'no limit'}")
        if args.feature_code:
            codes = opened.service(FeatureCodeService).set_codes(args.domain, args.feature_code)
            changed = {text.partition("=")[0].strip().lower() for text in args.feature_code}
            print(f"tenant {args.domain}: " + ", ".join(f"{info.feature} {info.code}" for info in codes
                                                         if info.feature in changed))
    return EXIT_OK


def _tenant_feature_codes(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        codes = opened.service(FeatureCodeService).describe(args.domain)
    if args.json:
        print_json(codes)
        return EXIT_OK
    print_table(("FEATURE", "CODE", "DEFAULT"), [(c.feature, c.code, yes_no(c.default)) for c in codes])
    return EXIT_OK


def _tenant_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        tenants = opened.service(TenantService).describe_tenants()
    if args.json:
        print_json(tenants)
        return EXIT_OK
    print_table(("DOMAIN", "NAME", "DEFAULT", "MAX CALLS", "USERS", "MENUS", "QUEUES", "ROOMS", "PROMPTS"),
                [(t.domain, t.name, yes_no(t.default), str(t.max_calls or "-"), str(t.users),
                  str(t.ivr_menus), str(t.queues), str(t.meeting_rooms), str(t.prompts)) for t in tenants])
    return EXIT_OK


def _tenant_del(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        opened.service(TenantService).delete_tenant(args.domain, everything=args.everything)
    print(f"deleted tenant {args.domain}")
    return EXIT_OK

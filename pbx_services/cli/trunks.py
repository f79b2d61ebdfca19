"""`pbx trunk|route|did`: the PBX's ways to the outside world.

    pbx trunk add NAME --host H [--port P] [--transport udp|tcp] [--username U --password PW
                  [--register]] [--max-calls N] [--caller-id NUM] [--probe-interval S]
                  [--down-after N] [--up-after N] [--codecs PCMA,PCMU]
                  [--number-format e164|national|as-dialled] [--country-code CC] [--national-prefix P]
                  [--international-prefix P]
    pbx trunk list | del NAME
    pbx route add NAME --pattern P --trunk T [--trunk T2] [--strip N] [--prepend D] [--permission CLASS]
    pbx route list | del NAME
    pbx did add NUMBER --destination DEST [--hours H --closed-destination DEST [--timezone Z]
                [--holiday DATE ...]]
    pbx did list | del NUMBER

`pbx trunk list` shows each registration's state as the Call Manager that holds it reports
it, and whether the trunk answers its OPTIONS probes, through the control API
(`GET /api/trunks` on its HTTP port, the token from `auth.secret`).
Changes take effect within seconds, without a restart. See docs/trunks.md.
"""

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from pbx_services.cli.common import (
    EXIT_OK,
    Subparsers,
    data_dir_option,
    delete_command,
    list_command,
    open_data_dir,
    print_table,
    yes_no,
)
from pbx_services.cli.ivr import _iso_date
from pbx_services.cli.prompts import tenant_option
from pbx_services.cluster.dids import DidInfo, DidService
from pbx_services.cluster.models import NumberFormat, PermissionClass, TrunkTransport
from pbx_services.cluster.models.trunk import (
    DEFAULT_DOWN_AFTER,
    DEFAULT_INTERNATIONAL_PREFIX,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_UP_AFTER,
)
from pbx_services.cluster.outbound_routes import RouteInfo, RouteService
from pbx_services.cluster.trunk_states import numbers_text, with_states
from pbx_services.cluster.trunks import TRUNK_CODECS, TrunkService


def add_commands(subparsers: Subparsers) -> None:
    common = [data_dir_option(), tenant_option()]
    _trunk_commands(subparsers, common)
    _route_commands(subparsers, common)
    _did_commands(subparsers, common)


def _group(subparsers: Subparsers, name: str, help_text: str, description: str) -> Any:
    parser = subparsers.add_parser(name, help=help_text, description=description)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _trunk_commands(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    commands = _group(subparsers, "trunk", "add, list and delete SIP trunks to providers",
                      "SIP trunks: where calls leave for a provider and come in from it.")
    add = commands.add_parser(
        "add", parents=common, help="add a trunk",
        description="Add the trunk NAME to a provider's SIP server. Calls from its host are accepted "
        "without digest (IP authentication) when they are to a DID; with --register the Call Manager "
        "registers the username there and keeps it registered.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--host", required=True, help="the provider's SIP server (address or DNS name)")
    add.add_argument("--port", type=int, default=5060, help="its port (default 5060)")
    add.add_argument("--transport", default=TrunkTransport.UDP.value,
                     help="udp or tcp (default udp)")
    add.add_argument("--username", help="the account at the provider (answers its challenges)")
    add.add_argument("--password", help="its password (kept in the database: a digest answer needs it)")
    add.add_argument("--register", action="store_true", help="register the account at the provider")
    add.add_argument("--max-calls", type=int, default=0, metavar="N",
                     help="calls through it at once at most (default 0: no limit)")
    add.add_argument("--caller-id", metavar="NUMBER", help="the number presented to the provider (From)")
    add.add_argument("--probe-interval", type=int, default=DEFAULT_PROBE_INTERVAL, metavar="SECONDS",
                     help="seconds between SIP OPTIONS probes; a trunk failing --down-after in a row is "
                     "passed over by its routes until it answers --up-after in a row "
                     f"(default {DEFAULT_PROBE_INTERVAL}, 0: off)")
    add.add_argument("--down-after", type=int, default=DEFAULT_DOWN_AFTER, metavar="N",
                     help=f"failed probes in a row that take it down, 1 to 10 (default {DEFAULT_DOWN_AFTER})")
    add.add_argument("--up-after", type=int, default=DEFAULT_UP_AFTER, metavar="N",
                     help=f"answered probes in a row that bring it up again, 1 to 10 "
                     f"(default {DEFAULT_UP_AFTER})")
    add.add_argument("--codecs", metavar="LIST",
                     help="the only codecs offered to it and accepted from it, in order, comma-separated "
                     f"({', '.join(TRUNK_CODECS)}; default: any)")
    add.add_argument("--number-format", default=NumberFormat.AS_DIALLED.value,
                     help="how the called number and caller ID are sent, and callers from it shown: e164 "
                     "(+33612345678), national (0612345678) or as-dialled (default)")
    add.add_argument("--country-code", metavar="CC", help="the trunk's country calling code, like 33 "
                     "(needed by e164 and national)")
    add.add_argument("--national-prefix", metavar="DIGITS", help="what precedes national numbers, like 0")
    add.add_argument("--international-prefix", default=DEFAULT_INTERNATIONAL_PREFIX, metavar="DIGITS",
                     help="what precedes a country code, like 00 or 011 "
                     f"(default {DEFAULT_INTERNATIONAL_PREFIX})")
    add.add_argument("--disabled", action="store_true", help="add it, but carry no calls through it")
    add.add_argument("--replace", action="store_true", help="replace the trunk of that name")
    add.set_defaults(run=_trunk_add)

    listing = commands.add_parser("list", parents=common,
                                  help="list the trunks, their registrations and their probes' state")
    listing.add_argument("--json", action="store_true", help="a JSON list of objects, one per trunk")
    listing.set_defaults(run=_trunk_list)

    delete_command(commands, common, TrunkService, TrunkService.delete_trunk,
                   help="delete a trunk no route uses", what="trunk", key="name")


def _route_commands(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    commands = _group(subparsers, "route", "add, list and delete outbound routes",
                      "Outbound routes: a dialled number that no extension or service has goes out "
                      "through the first route whose pattern matches it.")
    add = commands.add_parser(
        "add", parents=common, help="add an outbound route",
        description="Add the route NAME. PATTERN is Asterisk-style (_9NXXNXXXXXX: X any digit, Z 1-9, "
        "N 2-9, [1-5] a set, . one or more, ! zero or more), a regular expression after re:, or a "
        "plain number. The trunks are tried in the order given.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--pattern", required=True)
    add.add_argument("--trunk", action="append", required=True, dest="trunks", metavar="TRUNK",
                     help="a trunk to send the calls to (repeat for the next ones to try)")
    add.add_argument("--strip", type=int, default=0, metavar="N", help="leading characters to remove")
    add.add_argument("--prepend", default="", metavar="DIGITS", help="what to put in front after stripping")
    add.add_argument("--permission", default=PermissionClass.NATIONAL.value, metavar="CLASS",
                     help=f"the kind of call: {', '.join(p.value for p in PermissionClass)} "
                     "(default national)")
    add.add_argument("--priority", type=int, default=100, help="routes are tried by priority, lowest first")
    add.add_argument("--replace", action="store_true", help="replace the route of that name")
    add.set_defaults(run=_route_add)

    list_command(commands, common, RouteService, RouteService.list_routes,
                 help="list the routes in the order they are tried", none="no outbound routes",
                 show=_show_routes)
    delete_command(commands, common, RouteService, RouteService.delete_route, help="delete a route",
                   what="route", key="name")


def _did_commands(subparsers: Subparsers, common: list[argparse.ArgumentParser]) -> None:
    commands = _group(subparsers, "did", "add, list and delete inbound numbers (DIDs)",
                      "DIDs: the provider's numbers, each sent to a destination of the tenant.")
    add = commands.add_parser("add", parents=common, help="add a DID")
    add.add_argument("number", metavar="NUMBER")
    add.add_argument("--destination", required=True, metavar="DEST",
                     help="an extension, queue:N, meeting:N or ivr:N")
    add.add_argument("--hours", metavar="HOURS",
                     help="when calls go to DEST, like 'mon-fri 09:00-17:00; sat 10:00-12:00'; outside "
                     "them they go to --closed-destination")
    add.add_argument("--timezone", metavar="ZONE",
                     help="the hours' time zone, like Europe/Paris (default UTC)")
    add.add_argument("--holiday", type=_iso_date, action="extend", nargs="+", default=[], metavar="DATE",
                     dest="holidays", help="a day closed all day, like 2026-12-25; several may follow")
    add.add_argument("--closed-destination", metavar="DEST", help="where calls go outside the hours")
    add.add_argument("--replace", action="store_true", help="change the DID")
    add.set_defaults(run=_did_add)

    list_command(commands, common, DidService, DidService.list_dids, help="list the DIDs", none="no DIDs",
                 show=_show_dids)
    delete_command(commands, common, DidService, DidService.delete_did, help="delete a DID", what="DID")


def _trunk_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        trunk = opened.service(TrunkService).add_trunk(
            args.name, host=args.host, port=args.port, transport=args.transport, username=args.username,
            password=args.password, register=args.register, max_calls=args.max_calls,
            caller_id=args.caller_id, enabled=not args.disabled, probe_interval=args.probe_interval,
            down_after=args.down_after, up_after=args.up_after,
            codecs=args.codecs, number_format=args.number_format, country_code=args.country_code,
            national_prefix=args.national_prefix, international_prefix=args.international_prefix,
            tenant_domain=args.tenant, replace=args.replace)
    print(f"added trunk {trunk.name} of {trunk.tenant_domain}: {trunk.transport} {trunk.host}:{trunk.port}"
          f"{', registers ' + str(trunk.username) if trunk.register else ''}")
    return EXIT_OK


def _trunk_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        trunks = opened.service(TrunkService).list_trunks(args.tenant)
        rows, problem = with_states(trunks, opened.config)
    if problem is not None:
        print(f"pbx: {problem}", file=sys.stderr)
    if args.json:
        json.dump([dataclasses.asdict(t) | {"registration": registration, "probe": probe}
                   for t, registration, probe in rows], sys.stdout, indent=2)
        print()
        return EXIT_OK
    if not trunks:
        print("no trunks")
        return EXIT_OK
    print_table(("NAME", "HOST", "PORT", "TRANSPORT", "USERNAME", "MAX CALLS", "CALLER ID", "CODECS",
                 "NUMBERS", "ENABLED", "REGISTRATION", "PROBE"),
                [(t.name, t.host, str(t.port), t.transport, t.username or "", str(t.max_calls or "-"),
                  t.caller_id or "", t.codecs or "any", numbers_text(t), yes_no(t.enabled), registration,
                  probe) for t, registration, probe in rows])
    return EXIT_OK


def _route_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        route = opened.service(RouteService).add_route(
            args.name, pattern=args.pattern, trunks=args.trunks, strip=args.strip, prepend=args.prepend,
            permission=args.permission, priority=args.priority, tenant_domain=args.tenant,
            replace=args.replace)
    print(f"added route {route.name} of {route.tenant_domain}: {route.pattern} -> {', '.join(route.trunks)}")
    return EXIT_OK


def _show_routes(routes: Sequence[RouteInfo]) -> None:
    print_table(("NAME", "PATTERN", "STRIP", "PREPEND", "TRUNKS", "PERMISSION", "PRIORITY"),
                [(r.name, r.pattern, str(r.strip), r.prepend, ", ".join(r.trunks), r.permission,
                  str(r.priority)) for r in routes])


def _did_add(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        did = opened.service(DidService).add_did(
            args.number, destination=args.destination, hours=args.hours, timezone=args.timezone,
            holidays=args.holidays, closed_destination=args.closed_destination, tenant_domain=args.tenant,
            replace=args.replace)
    closed = (f" ({did.hours}, {did.timezone}; else to {did.closed_destination})"
              if did.closed_destination else "")
    print(f"added DID {did.number} of {did.tenant_domain}: goes to {did.destination}{closed}")
    return EXIT_OK


def _show_dids(dids: Sequence[DidInfo]) -> None:
    print_table(("NUMBER", "DESTINATION", "HOURS", "TIME ZONE", "HOLIDAYS", "CLOSED DESTINATION"),
                [(d.number, d.destination, d.hours or "always", d.timezone or "",
                  " ".join(map(str, d.holidays)), d.closed_destination or "") for d in dids])

"""`pbx server add|list|enable|disable|del`: the servers of the cluster: those the Call Managers
send calls to (media servers, and application servers: IVR, queue, meeting) and the Call
Managers themselves (watched, shown by the portal, never disabled)."""

import argparse

from pbx_services.cli.common import EXIT_OK, Subparsers, data_dir_option, open_data_dir, print_table, yes_no
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerService


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "server", help="add, list, enable, disable and delete the cluster's servers",
        description="The servers the Call Managers send calls to (media, ivr, queue, meeting), and "
        "the Call Managers (callmanager, at their own address, not the VIP). Changes take effect "
        "within seconds, without a restart; a disabled server takes no new calls, its calls go on.")
    commands = parser.add_subparsers(dest="server_command", required=True, metavar="COMMAND")
    data_dir = data_dir_option()

    add = commands.add_parser("add", parents=[data_dir], help="add a server")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=[role.value for role in ServerRole])
    add.add_argument("--host", required=True, metavar="ADDR",
                     help="its address: a media server's control address, an application server's or "
                     "a Call Manager's SIP address (a Call Manager's own, sip.node_host)")
    add.add_argument("--port", required=True, type=int, metavar="PORT",
                     help="the port of its first worker: control port (media) or SIP port (the others)")
    add.add_argument("--workers", type=int, default=1, metavar="N",
                     help="worker processes, answering on PORT, PORT+1, ... (default 1)")
    add.add_argument("--weight", type=int, default=1, metavar="W",
                     help="share of new calls relative to the others (default 1)")
    add.add_argument("--http-port", type=int, metavar="PORT",
                     help="where its /health, /metrics and control API answer, on ADDR (its http.port)")
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
    with open_data_dir(args) as opened:
        server = ServerService(sessions=opened.sessions).add_server(
            args.name, role=ServerRole(args.role), host=args.host, port=args.port, workers=args.workers,
            weight=args.weight, enabled=not args.disabled, http_port=args.http_port)
    print(f"added {server.role} server {server.name} at {server.host}:{server.port}")
    return EXIT_OK


def _server_list(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        servers = ServerService(sessions=opened.sessions).list_servers()
    if not servers:
        print("no servers")
        return EXIT_OK
    print_table(("NAME", "ROLE", "ADDRESS", "WORKERS", "WEIGHT", "ENABLED", "HTTP"),
                [(s.name, s.role, f"{s.host}:{s.port}", str(s.workers), str(s.weight), yes_no(s.enabled),
                  str(s.http_port or "-")) for s in servers])
    return EXIT_OK


def _server_set_enabled(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        server = ServerService(sessions=opened.sessions).set_enabled(args.name, args.enabled)
    print(f"{'enabled' if server.enabled else 'disabled'} server {server.name}")
    return EXIT_OK


def _server_del(args: argparse.Namespace) -> int:
    with open_data_dir(args) as opened:
        ServerService(sessions=opened.sessions).delete_server(args.name)
    print(f"deleted server {args.name}")
    return EXIT_OK

"""`pbx allinone`, `pbx callmanager` and `pbx media`: the commands that run daemons, in the
foreground; and what `pbx ivr --config` and `pbx meeting --config` share to run theirs."""

import argparse
import functools
import importlib
from pathlib import Path

from pbx_services import allinone
from pbx_services.callmanager import main as callmanager
from pbx_services.cli.common import (
    CommandError,
    Subparsers,
    check_schema,
    data_dir_option,
    initialized_data_dir,
    load_daemon_config,
)
from pbx_services.cluster.config import CONFIG_FILE_NAME, PbxConfig
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.media import main as media


def add_commands(subparsers: Subparsers) -> None:
    allinone = subparsers.add_parser(
        "allinone",
        parents=[data_dir_option()],
        help="run every role in one process, in the foreground",
        description="Run every PBX role in one process (the Call Manager, a media server and an IVR server) "
        "on the data directory's configuration, until SIGINT or SIGTERM.",
    )
    allinone.add_argument("--host", help="address to listen on (overrides sip.host)")
    allinone.add_argument("--sip-port", type=int, metavar="PORT", help="SIP port (overrides sip.port)")
    allinone.set_defaults(run=_allinone)

    callmanager = subparsers.add_parser(
        "callmanager",
        help="run the Call Manager alone, in the foreground (what pbx-callmanager.service runs)",
    )
    callmanager.add_argument("--config", type=Path, required=True, metavar="FILE",
                             help="the role's YAML config")
    callmanager.set_defaults(run=_callmanager)

    media = subparsers.add_parser(
        "media",
        help="run the media server (RTP relay) in the foreground (what pbx-media.service runs)",
        description="Run the media server: media.workers worker processes (0: one per CPU), worker i "
        "answering the control protocol on media.control_port + i with an equal share of the RTP ports, "
        "and /health and /metrics on http.port.",
    )
    media.add_argument("--config", type=Path, required=True, metavar="FILE", help="the role's YAML config")
    media.set_defaults(run=_media)


def add_application_server_commands(subparsers: Subparsers, *, role: str, server: str, things: str,
                                    what_they_are: str) -> Subparsers:
    """`pbx ROLE`, which administers `things` (IVR menus) with a COMMAND, or runs the role's
    application server (`server`: IVR server) with --config FILE; the subparsers to add its
    commands to. The server is `pbx_services.ROLE.main`'s `run(config)`."""
    parser = subparsers.add_parser(
        role, help=f"add, list and delete {things}; with --config, run the {server}",
        description=f"Administer the {things} ({what_they_are}) with a COMMAND, or run the {server} in the "
        f"foreground with --config FILE and no COMMAND (what pbx-{role}.service runs).",
    )
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help=f"run the {server} with this role's YAML config")
    parser.set_defaults(run=functools.partial(_application_server, role=role, server=server))
    return parser.add_subparsers(dest=f"{role}_command", required=False, metavar="COMMAND")


def _application_server(args: argparse.Namespace, *, role: str, server: str) -> int:
    if args.config is None:
        raise CommandError(f"{role}: give a COMMAND (add, list, del), or --config FILE to run the {server} "
                           f"(see 'pbx {role} --help')")
    config = load_daemon_config(args.config, needs_auth=False)
    _check_database(config, upgrade_command=f"pbx db upgrade --config {args.config}")
    # Imported here: the server and what it imports load only when it runs.
    status: int = importlib.import_module(f"pbx_services.{role}.main").run(config)
    return status


def _allinone(args: argparse.Namespace) -> int:
    data_dir = initialized_data_dir(args)
    overrides = {}
    if args.host is not None:
        overrides["sip.host"] = args.host
    if args.sip_port is not None:
        overrides["sip.port"] = str(args.sip_port)
    config = load_daemon_config(data_dir / CONFIG_FILE_NAME, data_dir=data_dir, overrides=overrides)
    _check_database(config, upgrade_command=f"pbx init --data-dir {data_dir}", all_in_one=True)
    return allinone.run(config)


def _callmanager(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config)
    _check_database(config, upgrade_command=f"pbx db upgrade --config {args.config}")
    return callmanager.run(config)


def _media(args: argparse.Namespace) -> int:
    return media.run(load_daemon_config(args.config, needs_auth=False))


def _check_database(config: PbxConfig, *, upgrade_command: str, all_in_one: bool = False) -> None:
    engine = create_engine_for(config.database.url)
    try:
        check_schema(engine, upgrade_command)
        if all_in_one:
            allinone.list_embedded_servers(session_factory(engine), config)
    finally:
        engine.dispose()

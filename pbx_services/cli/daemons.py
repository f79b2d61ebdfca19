"""`pbx allinone`, `pbx callmanager` and `pbx media`: the commands that run daemons, in the foreground."""

import argparse
from pathlib import Path

from pbx_services import allinone
from pbx_services.callmanager import main as callmanager
from pbx_services.cli.common import (
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

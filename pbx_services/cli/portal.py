"""`pbx portal --config FILE`: the web portal and its REST API under gunicorn (what
pbx-portal.service runs).

No administrator has a default password: when the database has none, the first start creates
`admin` with a random one-time password, printed once on stdout (the journal), which must be
changed at the first login. With `alerts.recipients`, the portal also sends the alert e-mails
(`portal.alerting`).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from pbx_services.cli.common import EXIT_OK, CommandError, Subparsers, check_schema, load_daemon_config
from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.runtime.daemon import configure_logging


def add_commands(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "portal", help="run the web portal and REST API under gunicorn, in the foreground",
        description="Run the web portal (pages and /api/v1/, described by /api/v1/openapi.json) on "
        "portal.host:portal.port with portal.workers gunicorn workers, over HTTPS when portal.tls_cert and "
        "portal.tls_key are set. The first start on a database without administrators creates 'admin' "
        "with a one-time password it prints.")
    parser.add_argument("--config", type=Path, required=True, metavar="FILE", help="the role's YAML config")
    parser.set_defaults(run=_portal)


def first_admin_notice(config: PbxConfig) -> str | None:
    """Create `admin` with a one-time password when there is no administrator; the line saying so."""
    engine = create_engine_for(config.database.url)
    try:
        return AdminService(sessions=session_factory(engine)).first_admin_notice()
    finally:
        engine.dispose()


def _portal(args: argparse.Namespace) -> int:
    config = load_daemon_config(args.config, needs_auth=False)
    configure_logging("portal", config.log.level)  # the alert runner's log, beside gunicorn's
    engine = create_engine_for(config.database.url)
    try:
        check_schema(engine, f"pbx db upgrade --config {args.config}")
    finally:
        engine.dispose()
    from pbx_services.portal import session_secret

    session_secret(config)  # refuses (ConfigError) before anything starts when there is none
    for path in (config.portal.tls_cert, config.portal.tls_key):
        if path is not None and not path.is_file():
            raise CommandError(f"portal.tls_cert/tls_key: {path}: no such file")
    notice = first_admin_notice(config)
    if notice is not None:
        print(f"pbx portal: {notice}", flush=True)
    alerts = None
    if config.alerts.recipients:
        alerts = importlib.import_module("pbx_services.portal.alerting").AlertRunner(config)
        alerts.start()
    from pbx_services.portal import server

    scheme = "https" if config.portal.tls_cert is not None else "http"
    print(f"pbx portal: serving {scheme}://{config.portal.host}:{config.portal.port}/", flush=True)
    try:
        server.serve(config)
    finally:
        if alerts is not None:
            alerts.stop()
    return EXIT_OK

"""`pbx portal`: the portal under gunicorn, over HTTPS when `portal.tls_cert`/`tls_key` are set.

gunicorn is driven from Python (its `BaseApplication`), so the unit runs `pbx portal --config
FILE` like every other role and the settings come from the typed config, not a gunicorn file.
Workers are threaded (`gthread`): the cluster page polls its JSON every two seconds and a CSV
import posts a large file, neither of which should hold a whole process.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from pbx_services.cluster.config import PbxConfig

THREADS_PER_WORKER = 4
GRACEFUL_TIMEOUT = 10
"""Seconds a stopping worker has to finish its requests."""


class PortalApplication(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: PbxConfig, app: Flask | None = None) -> None:
        self._config = config
        self._app = app
        super().__init__()

    def load_config(self) -> None:
        portal = self._config.portal
        host = f"[{portal.host}]" if ":" in portal.host else portal.host
        settings: dict[str, Any] = {
            "bind": [f"{host}:{portal.port}"],
            "workers": portal.workers,
            "worker_class": "gthread",
            "threads": THREADS_PER_WORKER,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "accesslog": "-",
            "errorlog": "-",
            "loglevel": self._config.log.level.lower(),
            "proc_name": "pbx-portal",
            # The portal is behind keepalived's VIP, not a proxy: the client address is the peer's.
            "forwarded_allow_ips": "",
        }
        if portal.tls_cert is not None and portal.tls_key is not None:
            settings["certfile"] = str(portal.tls_cert)
            settings["keyfile"] = str(portal.tls_key)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn 25.1+ opens a control socket in $HOME by default: two portals on one host (or a
            # hardened unit without a writable home) would trip over it, and nothing here uses it.
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        if self._app is None:
            from pbx_services.portal import create_app

            # Built in each worker after the fork: its database pool and probing thread are its own.
            self._app = create_app(self._config)
        return self._app


def serve(config: PbxConfig) -> int:
    """Run the portal in the foreground until SIGINT/SIGTERM; the exit status."""
    PortalApplication(config).run()
    return 0

"""The portal as a part of `pbx allinone`: the same app, served by a threaded WSGI server in a
thread of the all-in-one's process (a laptop or a demo needs no gunicorn).

Like `pbx portal`, its first start on a database without administrators creates `admin` with
a one-time password and prints it once, and with `alerts.recipients` (which need `state.url`:
the bus and the sender's lease are in Redis) it sends the alert e-mails.
"""

from __future__ import annotations

import errno
import ssl
import threading
from collections.abc import Sequence

from prometheus_client.registry import Collector
from werkzeug.serving import BaseWSGIServer, make_server

from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.portal.alerting import AlertRunner
from pbx_services.transport.ports import PortInUseError


class PortalComponent:
    name = "portal"
    role = "portal"

    def __init__(self, *, config: PbxConfig) -> None:
        self._config = config
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._engine = create_engine_for(config.database.url)
        self._alerts: AlertRunner | None = None

    async def start(self) -> None:
        from pbx_services.portal import create_app

        portal = self._config.portal
        sessions = session_factory(self._engine)
        notice = AdminService(sessions=sessions).first_admin_notice()
        if notice is not None:
            print(f"pbx allinone: portal: {notice}", flush=True)
        app = create_app(self._config, sessions=sessions)
        context = None
        if portal.tls_cert is not None and portal.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(portal.tls_cert, portal.tls_key)
        try:
            self._server = make_server(portal.host, portal.port, app, threaded=True, ssl_context=context)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE or "in use" in str(exc):
                raise PortInUseError(errno.EADDRINUSE,
                                     f"portal port {portal.host}:{portal.port} is already in use "
                                     "(portal.port; 0 serves no portal)") from None
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, name="pbx-portal", daemon=True)
        self._thread.start()
        if self._config.alerts.recipients:
            self._alerts = AlertRunner(self._config)
            self._alerts.start()

    async def stop(self) -> None:
        if self._alerts is not None:
            self._alerts.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._engine.dispose()

    def listening_on(self) -> str:
        portal = self._config.portal
        scheme = "https" if portal.tls_cert is not None else "http"
        return f"{scheme}://{portal.host}:{portal.port}/"

    def health(self) -> dict[str, object]:
        running = self._thread is not None and self._thread.is_alive()
        return {"status": "ok" if running else "degraded", "portal": self.listening_on(),
                "alerts": "on" if self._alerts is not None else "off (no alerts.recipients)"}

    def collectors(self) -> Sequence[Collector]:
        return ()

"""Alert e-mails end to end (issue 15): an IVR server killed and started again, seen by a real Call
Manager, told by e-mail to a real SMTP server (aiosmtpd) by two `pbx portal` processes, of which
exactly one sends; and the all-in-one's own portal sending them when it runs alone.

The Call Manager is `pbx allinone` without its embedded IVR, on a real Redis (its state store and
the cluster's bus). The IVR server is `pbx ivr --config` in a process group of its own, killed
with SIGKILL. Both portals read the bus; the one holding the alerts lease sends. Short group
times (group_wait 1 s, group_interval 2 s) keep the test short; the rules are the same.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import PBX, free_port, pbx, running_pbx
from tests.integration.test_ivr_failover import AppServerDaemon, endpoint_up
from tests.redis_server import RedisServer
from tests.smtp_server import Inbox, SmtpServer

pytestmark = pytest.mark.integration

RECIPIENTS = ["ops@example.com", "noc@example.com"]
GROUP_WAIT = 1.0
GROUP_INTERVAL = 2.0
ADMIN, ADMIN_PASSWORD = "ops", "ops-password-1"


class PortalProcess:
    """`pbx portal --config FILE` on the PBX's database and Redis, sending alerts through `smtp_port`."""

    def __init__(self, name: str, data_dir: Path, redis_url: str, smtp_port: int) -> None:
        self.name = name
        self.port = free_port()
        self.config = data_dir.parent / f"{name}.yml"
        self.config.write_text(yaml.safe_dump({
            "database": {"url": f"sqlite:///{data_dir / 'pbx.sqlite3'}"},
            "state": {"url": redis_url},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "from_address": "pbx@example.com"},
            "alerts": {"recipients": RECIPIENTS, "group_wait": GROUP_WAIT, "group_interval": GROUP_INTERVAL,
                       "repeat_interval": 3600},
            "portal": {"host": "127.0.0.1", "port": self.port, "workers": 1, "session_secret": "s" * 40},
            "log": {"level": "INFO"},
        }))
        self.log = self.config.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([*PBX, "portal", "--config", str(self.config)],
                                        stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + 30
        while self.get("/health") is None:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "pbx portal did not start:\n" + self.log.read_text()[-3000:]
            time.sleep(0.2)

    def get(self, path: str) -> Any:
        """The JSON of GET `path` as the operator (HTTP Basic), None when the portal does not answer."""
        token = base64.b64encode(f"{ADMIN}:{ADMIN_PASSWORD}".encode()).decode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return json.loads(reply.read())
        except (urllib.error.URLError, ConnectionError):
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def alert_emails(data_dir: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "pbx.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM alert_emails ORDER BY id")]


@dataclass
class AlertingCluster:
    data_dir: Path
    ivr: AppServerDaemon
    portals: list[PortalProcess]
    inbox: Inbox

    def sender(self) -> PortalProcess:
        """The portal that sent the e-mails so far (their `sent_by` is `host:pid`)."""
        [sent_by] = {email["sent_by"] for email in alert_emails(self.data_dir)}
        return next(portal for portal in self.portals
                    if portal.process is not None and sent_by.endswith(f":{portal.process.pid}"))


@contextmanager
def alerting_cluster(tmp_path: Path, redis_server: RedisServer) -> Iterator[AlertingCluster]:
    """A Call Manager on Redis, the IVR server ivr1 it probes, up, and two portals sending alerts to
    aiosmtpd, one of which holds the lease."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    pbx("admin", "add", ADMIN, f"--password={ADMIN_PASSWORD}", "--role", "operator",
        "--data-dir", str(data_dir))
    ivr = AppServerDaemon("ivr1", data_dir, tmp_path / "ivr1.yml")
    pbx("server", "add", ivr.name, "--role", "ivr", "--host", "127.0.0.1", "--port", str(ivr.sip_port),
        "--data-dir", str(data_dir))
    smtp = SmtpServer()
    env = {"PBX_IVR__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url}
    with ExitStack() as stack:
        stack.callback(smtp.stop)
        stack.callback(ivr.stop)
        ivr.start()  # up before the Call Manager probes it: no down event at start-up
        server = stack.enter_context(running_pbx(data_dir, env))
        portals = [PortalProcess(name, data_dir, redis_server.url, smtp.port)
                   for name in ("portal1", "portal2")]
        for portal in portals:
            stack.callback(portal.stop)
            portal.start()
        deadline = time.monotonic() + 15
        while not endpoint_up(server, ivr.name):
            assert time.monotonic() < deadline, "the Call Manager never saw the IVR server up"
            time.sleep(0.2)
        time.sleep(3)
        logs = [portal.log.read_text() for portal in portals]
        assert all("alerts: " in log and " started (e-mails to ops@example.com" in log for log in logs), logs
        assert [" holds the lease" in log for log in logs].count(True) == 1, logs
        yield AlertingCluster(data_dir=data_dir, ivr=ivr, portals=portals, inbox=smtp.inbox)


def subjects(inbox: Inbox) -> list[str]:
    return [message["Subject"] for _, message in inbox.messages]


FIRING = "[FIRING:1] ivr server down: ivr1"
RESOLVED = "[RESOLVED] ivr server back up: ivr1"


def test_one_email_when_an_ivr_server_dies_and_one_when_it_is_back_from_one_of_two_portals(
        tmp_path: Path, redis_server: RedisServer) -> None:
    with alerting_cluster(tmp_path, redis_server) as cluster:
        inbox, ivr, portals = cluster.inbox, cluster.ivr, cluster.portals
        ivr.kill()
        killed_at = time.monotonic()
        [(recipients, firing)] = inbox.wait(1, timeout=20)
        firing_after = time.monotonic() - killed_at
        assert sorted(recipients) == sorted(RECIPIENTS)
        assert firing["Subject"] == FIRING
        assert firing["From"] == "pbx@example.com"
        body = firing.get_content()
        assert "ivr1 (ivr): down since" in body and "OPTIONS" in body, body

        time.sleep(5 * GROUP_INTERVAL)  # it stays down: no second e-mail
        assert subjects(inbox) == [FIRING]
        [down] = portals[0].get("/api/v1/alerts?firing=true")["alerts"]
        assert (down["role"], down["server"], down["state"]) == ("ivr", "ivr1", "down")

        ivr.start()
        started_at = time.monotonic()
        messages = inbox.wait(2, timeout=20)
        resolved_after = time.monotonic() - started_at
        assert subjects(inbox) == [FIRING, RESOLVED]
        assert "ivr1 (ivr): up since" in messages[1][1].get_content()
        time.sleep(3 * GROUP_INTERVAL)
        assert len(inbox.messages) == 2, subjects(inbox)

        history = portals[1].get("/api/v1/alerts")["alerts"]
        assert [(a["server"], a["firing"]) for a in history] == [("ivr1", False)]
        emails = alert_emails(cluster.data_dir)
        assert [(e["status"], e["delivery"], e["attempts"]) for e in emails] == [
            ("firing", "sent", 1), ("resolved", "sent", 1)]
        sender = cluster.sender()
    print(f"\nfiring e-mail {firing_after:.1f} s after SIGKILL, resolved e-mail {resolved_after:.1f} s after "
          f"the restart, both sent by {sender.name} of two portals")


def test_the_other_portal_takes_on_when_the_sending_one_is_killed(tmp_path: Path,
                                                                  redis_server: RedisServer) -> None:
    with alerting_cluster(tmp_path, redis_server) as cluster:
        inbox, ivr = cluster.inbox, cluster.ivr
        ivr.kill()
        inbox.wait(1, timeout=20)
        first = cluster.sender()
        [other] = [portal for portal in cluster.portals if portal is not first]
        assert first.process is not None
        os.killpg(first.process.pid, signal.SIGKILL)  # the sending portal's host dies
        first.process.wait()
        ivr.start()  # while no portal holds the lease: the other must not miss it
        started_at = time.monotonic()
        inbox.wait(2, timeout=30)
        resolved_after = time.monotonic() - started_at
        time.sleep(3 * GROUP_INTERVAL)
        assert subjects(inbox) == [FIRING, RESOLVED]  # the firing one not sent again
        emails = alert_emails(cluster.data_dir)
        assert other.process is not None
        assert [e["sent_by"].rsplit(":", 1)[1] for e in emails] == [str(first.process.pid),
                                                                    str(other.process.pid)]
        assert " holds the lease" in other.log.read_text()
    print(f"\nthe sending portal killed: the other sent the resolved e-mail {resolved_after:.1f} s after the "
          "IVR server's restart, and nothing twice")


def test_the_all_in_ones_own_portal_sends_the_alerts(tmp_path: Path, redis_server: RedisServer) -> None:
    """No `pbx portal` at all: the all-in-one on Redis with alert recipients mails them itself."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    ivr = AppServerDaemon("ivr1", data_dir, tmp_path / "ivr1.yml")
    pbx("server", "add", ivr.name, "--role", "ivr", "--host", "127.0.0.1", "--port", str(ivr.sip_port),
        "--data-dir", str(data_dir))
    smtp = SmtpServer()
    env = {"PBX_IVR__EMBEDDED": "false", "PBX_STATE__URL": redis_server.url,
           "PBX_SMTP__HOST": "127.0.0.1", "PBX_SMTP__PORT": str(smtp.port),
           "PBX_SMTP__FROM_ADDRESS": "pbx@example.com", "PBX_ALERTS__RECIPIENTS": ",".join(RECIPIENTS),
           "PBX_ALERTS__GROUP_WAIT": str(GROUP_WAIT), "PBX_ALERTS__GROUP_INTERVAL": str(GROUP_INTERVAL)}
    with ExitStack() as stack:
        stack.callback(smtp.stop)
        stack.callback(ivr.stop)
        ivr.start()
        server = stack.enter_context(running_pbx(data_dir, env))
        assert server.health()["roles"]["portal"]["alerts"] == "on"
        deadline = time.monotonic() + 15
        while not endpoint_up(server, ivr.name):
            assert time.monotonic() < deadline, "the Call Manager never saw the IVR server up"
            time.sleep(0.2)
        ivr.kill()
        smtp.inbox.wait(1, timeout=20)
        ivr.start()
        smtp.inbox.wait(2, timeout=20)
        time.sleep(3 * GROUP_INTERVAL)
        assert subjects(smtp.inbox) == [FIRING, RESOLVED]
        assert {e["sent_by"].rsplit(":", 1)[1] for e in alert_emails(data_dir)} == {str(server.process.pid)}

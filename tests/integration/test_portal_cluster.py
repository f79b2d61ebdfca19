"""The operator's story in a real browser: log in to the portal, see the cluster with two IVR
servers up, disable one while it has calls (draining, then disabled), calls placed with sipp
all go to the other, enable it again; the audit log says who did it.

The portal is the all-in-one's (`pbx allinone` without its embedded IVR, as test_ivr_failover
does), the two IVR servers are `pbx ivr --config` daemons with their /health on an HTTP port
the servers table names, and the browser is Debian's headless chromium driven by Playwright.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from pbx_services.runtime.daemon import package_version
from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx, wait_for
from tests.integration.peers import sipp
from tests.integration.peers.chromium import TIMEOUT_MS, headless_chromium, log_in
from tests.integration.test_ivr_calls import add_menu
from tests.integration.test_ivr_failover import AppServerDaemon

pytestmark = pytest.mark.integration

ADMIN = "operator1"
ADMIN_PASSWORD = "operator-password-1"
CALLS = 10
LONG_CALLS = 4


def app_endpoint(server: PbxServer, name: str) -> dict[str, Any] | None:
    """What the Call Manager's /health says of the first worker of server `name`."""
    for endpoint in server.health()["application_endpoints"]:
        if endpoint["server"] == name:
            return dict(endpoint)
    return None


def state_badge(name: str, state: str) -> str:
    return f'tr[data-server="{name}"] .badge.state-{state}'


def callers(work_dir: Path, password: str) -> Path:
    path = work_dir / "callers.csv"
    path.write_text(f"SEQUENTIAL\n1001;[authentication username=1001 password={password}];800\n")
    return path


def test_an_operator_disables_an_ivr_server_in_the_browser_and_calls_go_to_the_other(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    # A menu that waits long for digits: the long calls last until sipp hangs up.
    add_menu(data_dir, options={"2": "1002"}, timeout=20, retries=1)
    ivrs = [AppServerDaemon(name, data_dir, tmp_path / f"{name}.yml") for name in ("ivr1", "ivr2")]
    for ivr in ivrs:
        pbx("server", "add", ivr.name, "--role", "ivr", "--host", "127.0.0.1", "--port", str(ivr.sip_port),
            "--http-port", str(ivr.http_port), "--data-dir", str(data_dir))
    pbx("admin", "add", ADMIN, f"--password={ADMIN_PASSWORD}", "--role", "operator",
        "--data-dir", str(data_dir))
    portal_port = free_port()
    portal = f"http://127.0.0.1:{portal_port}"
    env = {"PBX_IVR__EMBEDDED": "false", "PBX_AUTH__ALGORITHMS": "MD5", "PBX_PORTAL__PORT": str(portal_port)}
    first, second = ivrs
    with ExitStack() as stack:
        for ivr in ivrs:
            stack.callback(ivr.stop)
            ivr.start()
        server = stack.enter_context(running_pbx(data_dir, env))
        password = server.add_user("1001")
        assert any(f"portal listening on {portal}/" in line for line in server.log_lines)
        browser = stack.enter_context(headless_chromium())
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        log_in(page, portal, ADMIN, ADMIN_PASSWORD)
        assert page.url == f"{portal}/cluster"
        page.wait_for_selector(state_badge("ivr1", "up"))
        page.wait_for_selector(state_badge("ivr2", "up"))
        assert page.locator("tr[data-server]").count() >= 2
        assert page.locator('tr[data-server="ivr2"] td.version').inner_text() == package_version()
        assert page.locator('tr[data-server="ivr2"] td.load').inner_text() == "calls 0"
        # The Call Manager is on the page too: holding the SIP address, and not to be disabled.
        page.wait_for_selector(state_badge("allinone-callmanager", "up"))
        manager = page.locator('tr[data-server="allinone-callmanager"]')
        assert manager.locator("td.role").inner_text() == "callmanager VIP"
        assert manager.locator("button").count() == 0
        assert "registered contacts" in manager.locator("td.load").inner_text()

        # Calls on both servers, then ivr1 disabled under them: it drains.
        long_calls, stat = sipp.start("uac_auth_sdp", tmp_path, "-inf", str(callers(tmp_path, password)),
                                      "-m", str(LONG_CALLS), "-r", "10", "-l", str(LONG_CALLS), "-d", "8000",
                                      remote=server.address)
        stack.callback(long_calls.kill)
        wait_for("calls on both IVR servers", lambda: all(int(ivr.health().get("calls") or 0) > 0
                                                          for ivr in ivrs))
        # Every long call answered before the counts are taken: a fourth answered after it
        # (or reported by a worker late) would count as one of the calls after the disable.
        wait_for("every long call answered", lambda: sum(ivr.answered() for ivr in ivrs) == LONG_CALLS)
        answered_before = [ivr.answered() for ivr in ivrs]
        page.click('tr[data-server="ivr1"] button:has-text("Disable")')
        clicked = time.monotonic()
        page.wait_for_selector("p.flash:has-text('ivr server ivr1 disabled')")
        taken_out = wait_for("the Call Manager leaving ivr1 out",
                             lambda: app_endpoint(server, "ivr1") == {**(app_endpoint(server, "ivr1") or {}),
                                                                       "enabled": False})
        page.wait_for_selector(state_badge("ivr1", "draining"))
        drained = sipp.finish(long_calls, stat)
        assert (drained.successful, drained.failed) == (LONG_CALLS, 0), drained.output
        page.wait_for_selector(state_badge("ivr1", "disabled"))

        result = sipp.run("uac_auth_sdp", tmp_path, "-inf", str(callers(tmp_path, password)),
                          "-m", str(CALLS), "-r", "10", "-l", str(CALLS), "-d", "1000", remote=server.address,
                          timeout=120)
        assert (result.successful, result.failed) == (CALLS, 0), result.output
        # The workers report once a second: wait for the count, bounded.
        wait_for("the calls' reports", lambda: sum(ivr.answered() for ivr in ivrs) >= LONG_CALLS + CALLS,
                 timeout=5)
        answered_after = [ivr.answered() for ivr in ivrs]
        assert answered_after[0] == answered_before[0], "a call reached the disabled IVR server"
        assert answered_after[1] - answered_before[1] == CALLS

        page.click('tr[data-server="ivr1"] button:has-text("Enable")')
        page.wait_for_selector("p.flash:has-text('ivr server ivr1 enabled')")
        page.wait_for_selector(state_badge("ivr1", "up"))
        wait_for("the Call Manager taking ivr1 again",
                 lambda: (app_endpoint(server, "ivr1") or {}).get("enabled"))

        page.goto(f"{portal}/audit")
        rows = [row.inner_text().split("\t") for row in page.locator("#audit tbody tr").all()]
        done = [(row[1], row[2], row[3]) for row in rows]
        assert done[:2] == [(ADMIN, "server.enable", "ivr1"), (ADMIN, "server.disable", "ivr1")]
        assert second.health().get("status") == "ok" and first.health().get("status") == "ok"
    print(f"\nthe Call Manager left ivr1 out {taken_out:.2f} s after the page said it was disabled "
          f"({time.monotonic() - clicked:.1f} s from the click to the end); {LONG_CALLS} calls drained, "
          f"{CALLS} new calls all on ivr2")

"""The administration pages in a real browser: an administrator creates a user and a queue through
the forms, a wrong value is shown next to its field, the user's phone (sipp) registers and calls,
and the registrations and calls pages show it; a CSV of 50,000 users is imported with a progress
bar that moves, then the result and the rows that were not imported.

The portal is the all-in-one's; the browser is Debian's headless chromium driven by Playwright.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers import sipp
from tests.integration.peers.chromium import TIMEOUT_MS, headless_chromium, log_in
from tests.integration.test_ivr_calls import add_menu

pytestmark = pytest.mark.integration

ADMIN = "root1"
ADMIN_PASSWORD = "root-password-1"
IMPORT_ROWS = 50_000
BAD_ROWS = {17: "1x y", 4_321: "", 33_333: "x" * 40}
"""Line -> a bad extension in the CSV."""


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[tuple[PbxServer, str, Any]]:
    """The all-in-one with its portal, an IVR menu on 800, and a browser page logged in as a
    system administrator."""
    data_dir = tmp_path / "data"
    pbx("init", "--data-dir", str(data_dir))
    add_menu(data_dir, options={"2": "1002"}, timeout=20, retries=1)
    pbx("admin", "add", ADMIN, f"--password={ADMIN_PASSWORD}", "--role", "system",
        "--data-dir", str(data_dir))
    portal_port = free_port()
    base = f"http://127.0.0.1:{portal_port}"
    with ExitStack() as stack:
        server = stack.enter_context(running_pbx(data_dir, {"PBX_PORTAL__PORT": str(portal_port),
                                                            "PBX_AUTH__ALGORITHMS": "MD5"}))
        browser = stack.enter_context(headless_chromium())
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        log_in(page, base, ADMIN, ADMIN_PASSWORD)
        yield server, base, page


def field_error(page: Any, field: str) -> str:
    return str(page.inner_text(f"#error-{field}"))


def test_a_user_and_a_queue_created_through_the_forms_and_the_phone_seen_live(
        portal: tuple[PbxServer, str, Any], tmp_path: Path) -> None:
    server, base, page = portal

    page.goto(f"{base}/users")
    page.fill("#add-user #field-extension", "10 01")
    page.fill("#add-user #field-password", "phone-secret-1")
    page.fill("#add-user #field-name", "Ann Example")
    page.fill("#add-user #field-email", "ann@example.org")
    page.click("#add-user button[type=submit]")
    assert field_error(page, "extension") == \
        "extension '10 01' may only contain letters, digits, '.', '_' and '-'"
    assert page.get_attribute("#add-user #field-extension", "aria-invalid") == "true"
    assert page.input_value("#add-user #field-name") == "Ann Example"  # what was typed is kept
    assert page.locator("#users tbody tr[data-user]").count() == 0
    page.fill("#add-user #field-extension", "1001")
    page.fill("#add-user #field-password", "phone-secret-1")
    page.click("#add-user button[type=submit]")
    page.wait_for_selector("p.flash:has-text('user 1001@pbx.local added')")
    assert "Ann Example" in page.inner_text('#users tr[data-user="1001@pbx.local"]')

    page.goto(f"{base}/queues")
    page.fill("#add-queue #field-number", "500")
    page.fill("#add-queue #field-name", "Sales")
    page.select_option("#add-queue #field-strategy", "longest-idle")
    page.fill("#add-queue #field-members", "1001, 1009")
    page.click("#add-queue button[type=submit]")
    assert field_error(page, "members").startswith("member 1009")
    page.fill("#add-queue #field-members", "")
    page.fill("#add-queue #field-dynamic_members", "1001:2")
    page.click("#add-queue button[type=submit]")
    page.wait_for_selector("p.flash:has-text('queue 500 added')")
    assert page.inner_text('#agents tr[data-agent="1001"] .state') == "logged out"
    page.click('#agents tr[data-agent="1001"] button:has-text("Login")')
    page.wait_for_selector("p.flash:has-text('1001: login in queue 500')")
    assert page.inner_text('#agents tr[data-agent="1001"] .state') == "available"

    # The user's phone registers, then calls the IVR menu for a while: both pages show it.
    users = sipp.write_users(tmp_path / "phone.csv", {"1001": "phone-secret-1"})
    registered = sipp.run("register_auth", tmp_path, "-inf", str(users), "-m", "1", remote=server.address)
    assert (registered.successful, registered.failed) == (1, 0), registered.output
    page.goto(f"{base}/calls/registrations?tenant=pbx.local")
    row = page.inner_text('#registrations tr[data-aor="1001@pbx.local"]')
    assert "sip:1001@127.0.0.1" in row and "UDP" in row and "sipp register_auth" in row

    callers = tmp_path / "callers.csv"
    callers.write_text("SEQUENTIAL\n1001;[authentication username=1001 password=phone-secret-1];800\n")
    call, stat = sipp.start("uac_auth_sdp", tmp_path, "-inf", str(callers), "-m", "1", "-d", "6000",
                            remote=server.address)
    try:
        deadline = time.monotonic() + 10
        while True:
            page.goto(f"{base}/calls")
            rows = page.locator("#calls tbody tr[data-call]")
            if rows.count() or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert rows.count() == 1, page.inner_text("#calls")
        cells = rows.first.inner_text().split("\t")
        assert cells[:4] == ["1001", "800", "pbx.local", "connected"]
    finally:
        result = sipp.finish(call, stat)
    assert (result.successful, result.failed) == (1, 0), result.output


def _bar_value(page: Any) -> int | None:
    """The import's progress bar, or None while the page has none: the page reloads itself when
    the job is done, and a read at that moment finds its document gone."""
    sync_api = pytest.importorskip("playwright.sync_api")
    try:
        return int(page.eval_on_selector("#import-progress", "bar => bar.value"))
    except sync_api.Error:
        return None


def test_the_csv_import_shows_its_progress_then_the_result(portal: tuple[PbxServer, str, Any],
                                                           tmp_path: Path) -> None:
    _, base, page = portal
    lines = ["extension,password,name,email"]
    for line in range(2, IMPORT_ROWS + 2):
        extension = BAD_ROWS.get(line, str(100_000 + line))
        lines.append(f"{extension},secret{line},User {line},user{line}@example.org")
    csv_file = tmp_path / "staff.csv"
    csv_file.write_text("\n".join(lines) + "\n")

    page.goto(f"{base}/users/import")
    page.set_input_files("#import-users #field-file", str(csv_file))
    started = time.monotonic()
    page.click("#import-users button[type=submit]")
    page.wait_for_selector("#import-progress")
    seen = set()
    while not page.locator("#import-errors").count():
        if (value := _bar_value(page)) is not None:
            seen.add(value)
        assert time.monotonic() - started < 120, f"the import did not finish; the bar showed {sorted(seen)}"
        time.sleep(0.2)
    took = time.monotonic() - started

    assert any(0 < value < IMPORT_ROWS for value in seen), f"the bar never moved: {sorted(seen)}"
    status = page.inner_text("#import-status")
    assert f"done: {IMPORT_ROWS} of {IMPORT_ROWS} rows, {IMPORT_ROWS - 3} imported" in status
    assert page.eval_on_selector("#import-progress", "bar => bar.value") == IMPORT_ROWS
    errors = [row.inner_text().split("\t") for row in page.locator("#import-errors tbody tr").all()]
    assert [(int(line), column) for line, column, _ in errors] == [(line, "extension") for line in BAD_ROWS]
    assert errors[1][2] == "extension is empty"

    page.goto(f"{base}/users?q=100002")
    assert page.locator('#users tr[data-user="100002@pbx.local"]').count() == 1
    print(f"\n{IMPORT_ROWS} rows imported in {took:.1f} s from the click; the bar showed {len(seen)} "
          f"values: {sorted(seen)[:8]}...")


def test_a_trunk_added_through_the_form_registers_and_its_state_is_on_the_page(
        portal: tuple[PbxServer, str, Any], tmp_path: Path) -> None:
    """The trunks page: a wrong port is shown next to its field; the trunk saved registers at the
    provider (sipp, which challenges), and the page shows the registration as the Call Manager
    reports it; a route through it is added on the routes page."""
    server, base, page = portal
    provider_port = free_port()
    registrar, stat = sipp.start("trunk_registrar", tmp_path, "-m", "1", "-trace_msg", port=provider_port)

    page.goto(f"{base}/trunks")
    page.fill("#add-trunk #field-name", "provider")
    page.fill("#add-trunk #field-host", "127.0.0.1")
    page.fill("#add-trunk #field-port", "70000")
    page.fill("#add-trunk #field-username", "acme")
    page.fill("#add-trunk #field-password", "s3cret-trunk")
    page.check("#add-trunk input[name=register]")
    page.fill("#add-trunk #field-probe_interval", "0")  # sipp would take an OPTIONS for a registration
    page.click("#add-trunk button[type=submit]")
    assert field_error(page, "port") == "trunk provider: port 70000 is out of range: 1 to 65535"
    assert page.input_value("#add-trunk #field-host") == "127.0.0.1"  # kept as typed
    page.fill("#add-trunk #field-port", str(provider_port))
    page.fill("#add-trunk #field-password", "s3cret-trunk")  # a password field is never filled again
    page.click("#add-trunk button[type=submit]")
    page.wait_for_selector("p.flash:has-text('trunk provider added')")

    result = sipp.finish(registrar, stat, timeout=30)
    assert result.successful == 1, result.output
    trace = "".join(path.read_text(errors="replace")
                    for path in tmp_path.glob("trunk_registrar_*_messages.log"))
    assert 'Authorization: Digest username="acme"' in trace
    registration = page.locator('#trunks tr[data-trunk="provider"] td.registration')
    deadline = time.monotonic() + 15
    while "registered (200" not in registration.inner_text():
        assert time.monotonic() < deadline, f"the page shows {registration.inner_text()!r}"
        time.sleep(0.5)
        page.reload()
    assert page.locator("#states-unknown").count() == 0

    page.goto(f"{base}/routes")
    page.fill("#add-route #field-name", "national")
    page.fill("#add-route #field-pattern", "_0[1-9]XXXXXXXX")
    page.fill("#add-route #field-trunks", "provider")
    page.click("#add-route button[type=submit]")
    page.wait_for_selector("p.flash:has-text('route national added')")
    assert page.inner_text('#routes tr[data-route="national"]').split("\t")[4] == "provider"

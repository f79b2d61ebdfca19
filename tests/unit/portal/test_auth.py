"""Logging in: sessions, CSRF, lockout, one-time passwords, HTTP Basic for scripts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.state.redis import BLOCK_CHECK_CACHE
from pbx_services.portal import create_app
from tests.redis_server import RedisServer
from tests.unit.portal.conftest import PASSWORDS, LoggedIn, csrf_of, log_in, portal_config


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


def test_a_page_without_a_session_redirects_to_the_login_and_back(app: Flask) -> None:
    client = app.test_client()

    reply = client.get("/cluster")

    assert reply.status_code == 302
    assert reply.headers["Location"] == "/login?next=/cluster"
    page = client.get("/login?next=/audit")
    reply = client.post("/login", data={"name": "root", "password": PASSWORDS["root"], "next": "/audit",
                                        "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert reply.headers["Location"] == "/audit"


def test_the_next_page_is_never_another_site(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/login")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        reply = client.post("/login", data={"name": "ops", "password": PASSWORDS["ops"], "next": target,
                                            "csrf_token": csrf_of(page.get_data(as_text=True))})
        assert reply.headers["Location"] == "/cluster", target
        page = client.get("/login")


def test_an_api_call_without_a_session_gets_401_with_a_basic_challenge(app: Flask) -> None:
    reply = app.test_client().get("/api/v1/servers")

    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    assert "log in" in reply.get_json()["error"]


def test_health_answers_without_a_login(app: Flask) -> None:
    reply = app.test_client().get("/health")

    assert reply.status_code == 200
    assert reply.get_json()["status"] == "ok"


def test_the_session_cookie_is_httponly_and_samesite(app: Flask) -> None:
    client = app.test_client()
    reply = log_in(client, "root")

    cookie = reply.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP in this test: the browser would drop a Secure cookie


def test_the_cookie_is_secure_when_the_portal_serves_tls(sessions: sessionmaker[Session],
                                                         admins: AdminService) -> None:
    config = portal_config(sessions, tls_cert="/etc/ssl/portal.pem", tls_key="/etc/ssl/portal.key")
    client = create_app(config, sessions=sessions, monitor=False).test_client()

    reply = log_in(client, "root")

    assert "Secure" in reply.headers["Set-Cookie"]
    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_form_without_its_csrf_token_gets_400(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")

    reply = client.post("/login", data={"name": "root", "password": PASSWORDS["root"]})

    assert reply.status_code == 400
    assert "CSRF" in reply.get_data(as_text=True)


def test_a_logged_in_post_without_the_token_gets_400_and_changes_nothing(logged_in: LoggedIn,
                                                                        admins: AdminService) -> None:
    client, token = logged_in("root")

    assert client.post("/admins/ops/delete").status_code == 400
    assert client.post("/admins/ops/delete", data={"csrf_token": "not-the-token"}).status_code == 400
    assert client.post("/api/v1/admins/ops/unlock").status_code == 400
    assert "ops" in [admin.name for admin in admins.list_admins()]

    assert client.post("/admins/ops/delete", data={"csrf_token": token}).status_code == 302
    assert "ops" not in [admin.name for admin in admins.list_admins()]


def test_the_api_takes_the_token_in_a_header(logged_in: LoggedIn) -> None:
    client, token = logged_in("root")

    reply = client.post("/api/v1/admins/ops/unlock", headers={"X-CSRF-Token": token})

    assert reply.status_code == 200


def test_a_wrong_password_is_shown_next_to_the_password_field(app: Flask) -> None:
    client = app.test_client()

    reply = log_in(client, "root", "not-the-password")

    assert reply.status_code == 401
    html = reply.get_data(as_text=True)
    assert 'id="field-password" name="password" type="password" required autocomplete="current-password" ' \
        'aria-invalid="true" aria-describedby="error-password">' in html
    assert '<p class="field-error" id="error-password" role="alert">wrong name or password</p>' in html
    assert 'value="root"' in html  # the name typed is kept


def test_an_unknown_name_gets_the_same_answer_as_a_wrong_password(app: Flask) -> None:
    reply = log_in(app.test_client(), "nobody", "whatever-password")

    assert reply.status_code == 401
    assert "wrong name or password" in reply.get_data(as_text=True)


def test_five_wrong_passwords_lock_the_account_for_the_configured_time(
        sessions: sessionmaker[Session], admins: AdminService) -> None:
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    app = create_app(portal_config(sessions, lockout_failures=5, lockout_minutes=15), sessions=sessions,
                     monitor=False, clock=lambda: now[0])
    client = app.test_client()

    statuses = [log_in(client, "ops", f"wrong-{i}-password").status_code for i in range(5)]
    locked = log_in(client, "ops")  # the right password, too late

    assert statuses == [401, 401, 401, 401, 403]  # the fifth says it locked the account
    assert locked.status_code == 403
    assert "locked until 12:15 UTC" in locked.get_data(as_text=True)
    assert log_in(app.test_client(), "root").status_code == 302  # only that account
    now[0] += timedelta(minutes=14, seconds=59)
    assert log_in(client, "ops").status_code == 403
    now[0] += timedelta(seconds=2)
    assert log_in(client, "ops").status_code == 302
    actions = [entry.action for entry in admins.audit_log(limit=20)[1]]
    assert actions.count("login.failed") == 4 and "login.locked" in actions


def test_an_address_failing_too_often_is_refused_before_any_password_is_checked(
        sessions: sessionmaker[Session], admins: AdminService, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names no account has lock no account: the address that tries them is refused instead."""
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    app = create_app(portal_config(sessions, source_failures=3, lockout_minutes=15), sessions=sessions,
                     monitor=False, clock=lambda: now[0])
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.8"

    statuses = [log_in(attacker, f"nobody{i}", "some-password").status_code for i in range(3)]
    monkeypatch.setattr(AdminService, "authenticate", lambda *args, **kwargs: pytest.fail("a hash computed"))
    refused = log_in(attacker, "root")  # even the right password: the address is refused
    by_basic = attacker.get("/api/v1/me", headers=basic("root", PASSWORDS["root"]))
    monkeypatch.undo()

    assert statuses == [401, 401, 401]
    assert refused.status_code == 429
    assert '<p class="field-error" id="error-password" role="alert">too many failed logins from your ' \
        'address: try again in 15 minutes</p>' in refused.get_data(as_text=True)
    assert by_basic.status_code == 429 and "too many failed logins" in by_basic.get_json()["error"]
    assert log_in(other, "root").status_code == 302
    assert [e.action for e in admins.audit_log(limit=20)[1]].count("login.source_refused") == 1
    now[0] += timedelta(minutes=15, seconds=1)
    assert log_in(attacker, "root").status_code == 302


def test_with_a_state_store_the_portals_count_an_address_together_and_apart_from_sip(
        sessions: sessionmaker[Session], admins: AdminService, redis_server: RedisServer) -> None:
    """Two portals (two hosts, or two gunicorn workers) share the count in Redis: failures made
    at either refuse the address at both (one asks Redis again after BLOCK_CHECK_CACHE). SIP's
    count of the same address is left alone."""
    redis_server.client().flushall()
    now = [datetime(2026, 1, 1, tzinfo=UTC)]  # far from the wall clock: a block lasts its own seconds
    portals = [create_app(portal_config(sessions, state_url=redis_server.url, source_failures=4,
                                        lockout_minutes=15), sessions=sessions, monitor=False,
                          clock=lambda: now[0])
               for _ in range(2)]
    attackers = [portal.test_client() for portal in portals]
    for attacker in attackers:
        attacker.environ_base["REMOTE_ADDR"] = "198.51.100.7"

    statuses = [log_in(attackers[n % 2], f"nobody{n}", "some-password").status_code for n in range(4)]

    now[0] += timedelta(seconds=BLOCK_CHECK_CACHE)

    assert statuses == [401, 401, 401, 401]
    assert [log_in(attacker, "root").status_code for attacker in attackers] == [429, 429]
    keys = sorted(key.decode() for key in redis_server.client().keys("*198.51.100.7*"))
    assert keys == ["pbx:portal:block:198.51.100.7"]
    assert redis_server.client().zrange("pbx:portal:blocked", 0, -1) == [b"198.51.100.7"]


def test_while_redis_is_away_each_portal_counts_on_its_own_and_logins_go_on(
        sessions: sessionmaker[Session], admins: AdminService, tmp_path: Path) -> None:
    away = RedisServer(tmp_path)  # never started: nothing answers on its port
    app = create_app(portal_config(sessions, state_url=away.url, source_failures=3, lockout_minutes=15),
                     sessions=sessions, monitor=False)
    attacker = app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "198.51.100.7"

    assert log_in(app.test_client(), "root").status_code == 302
    statuses = [log_in(attacker, f"nobody{n}", "some-password").status_code for n in range(3)]

    assert statuses == [401, 401, 401]
    assert log_in(attacker, "root").status_code == 429


def test_a_right_password_resets_the_count_of_wrong_ones(app: Flask) -> None:
    client = app.test_client()
    for _ in range(4):
        log_in(client, "ops", "wrong-password-x")
    assert log_in(client, "ops").status_code == 302
    for _ in range(4):
        assert log_in(app.test_client(), "ops", "wrong-password-x").status_code == 401

    assert log_in(app.test_client(), "ops").status_code == 302


def test_basic_auth_lets_a_script_read_and_counts_toward_the_lockout(app: Flask) -> None:
    client = app.test_client()

    assert client.get("/api/v1/me", headers=basic("ops", PASSWORDS["ops"])).get_json()["role"] == "operator"
    for _ in range(5):
        assert client.get("/api/v1/me", headers=basic("ops", "wrong-password")).status_code == 401
    reply = client.get("/api/v1/me", headers=basic("ops", PASSWORDS["ops"]))

    assert reply.status_code == 401
    assert "locked" in reply.get_json()["error"]


def test_a_basic_auth_change_must_be_json(app: Flask) -> None:
    client = app.test_client()
    credentials = basic("root", PASSWORDS["root"])

    form_post = client.post("/api/v1/admins/ops/unlock", headers=credentials, data={"x": "1"})
    json_post = client.post("/api/v1/admins/ops/unlock", headers=credentials, json={})

    assert form_post.status_code == 400
    assert json_post.status_code == 200


def test_a_one_time_password_must_be_changed_before_anything_else(sessions: sessionmaker[Session]) -> None:
    service = AdminService(sessions=sessions)
    password = service.ensure_first_admin()
    assert password is not None and service.ensure_first_admin() is None
    app = create_app(portal_config(sessions), sessions=sessions, monitor=False)
    client = app.test_client()

    reply = log_in(client, "admin", password)
    assert reply.headers["Location"] == "/account/password"
    assert client.get("/cluster").headers["Location"] == "/account/password"
    assert client.get("/api/v1/servers").status_code == 403
    token = csrf_of(client.get("/account/password").get_data(as_text=True))
    short = client.post("/account/password", data={"current": password, "new": "short", "again": "short",
                                                   "csrf_token": token})
    assert short.status_code == 400
    assert '<p class="field-error" id="error-new" role="alert">password is shorter than 10 characters</p>' \
        in short.get_data(as_text=True)
    done = client.post("/account/password", data={"current": password, "new": "a-new-password",
                                                  "again": "a-new-password", "csrf_token": token})

    assert done.status_code == 302
    assert client.get("/cluster").status_code == 200
    assert log_in(app.test_client(), "admin", password).status_code == 401


def test_a_new_password_logs_out_the_other_sessions(logged_in: LoggedIn, admins: AdminService) -> None:
    other, _ = logged_in("ops")
    assert other.get("/cluster").status_code == 200

    admins.set_password("ops", "another-password-1")

    assert other.get("/cluster").status_code == 302


def test_logging_out_ends_the_session(logged_in: LoggedIn) -> None:
    client, token = logged_in("root")

    client.post("/logout", data={"csrf_token": token})

    assert client.get("/cluster").status_code == 302

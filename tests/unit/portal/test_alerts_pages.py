"""The alert history page and API (`portal/blueprints/alerts.py`) on rows as the alert runner
writes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.models import AlertEmail, AlertRecord, EmailDelivery
from tests.unit.portal.conftest import LoggedIn

DOWN_AT = datetime(2026, 12, 3, 13, 40, 2, tzinfo=UTC)


@pytest.fixture
def history(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        session.add_all([
            AlertRecord(role="ivr", server="ivr1", state="down", reason="2 OPTIONS unanswered", since=DOWN_AT,
                        resolved_at=DOWN_AT + timedelta(minutes=5)),
            AlertRecord(role="ivr", server="ivr2", state="down", reason="2 OPTIONS unanswered",
                        since=DOWN_AT + timedelta(minutes=10)),
            AlertEmail(created_at=DOWN_AT, role="ivr", status="firing", servers_down="ivr1", servers_back="",
                       subject="[FIRING:1] ivr server down: ivr1", body="...", recipients="ops@example.com",
                       delivery=EmailDelivery.SENT, attempts=1, next_attempt_at=DOWN_AT, sent_at=DOWN_AT,
                       sent_by="cm1:123"),
        ])


def test_the_api_lists_the_alerts_newest_first(app: Flask, logged_in: LoggedIn, history: None) -> None:
    client, _ = logged_in("ops")
    reply = client.get("/api/v1/alerts")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["total"] == 2
    assert [(a["server"], a["firing"]) for a in body["alerts"]] == [("ivr2", True), ("ivr1", False)]
    assert body["alerts"][1] == {"id": 1, "role": "ivr", "server": "ivr1", "state": "down",
                                 "reason": "2 OPTIONS unanswered", "since": "2026-12-03T13:40:02+00:00",
                                 "resolved_at": "2026-12-03T13:45:02+00:00", "firing": False}
    firing = client.get("/api/v1/alerts?firing=true").get_json()
    assert [a["server"] for a in firing["alerts"]] == ["ivr2"] and firing["total"] == 1
    page = client.get("/api/v1/alerts?limit=1&offset=1").get_json()
    assert [a["server"] for a in page["alerts"]] == ["ivr1"] and page["total"] == 2


def test_the_api_lists_the_emails_and_their_delivery(app: Flask, logged_in: LoggedIn, history: None) -> None:
    client, _ = logged_in("root")
    [email] = client.get("/api/v1/alerts/emails").get_json()["emails"]
    shown = tuple(email[key] for key in ("subject", "delivery", "servers_down", "recipients", "sent_by"))
    assert shown == ("[FIRING:1] ivr server down: ivr1", "sent", ["ivr1"], ["ops@example.com"], "cm1:123")


@pytest.mark.parametrize(("query", "problem"), [("firing=yes", "firing: only true"),
                                                ("limit=0", "limit: must be at least 1"),
                                                ("offset=x", "offset: not a whole number")])
def test_a_bad_query_gets_400_naming_the_parameter(app: Flask, logged_in: LoggedIn, query: str,
                                                   problem: str) -> None:
    client, _ = logged_in("ops")
    reply = client.get(f"/api/v1/alerts?{query}")
    assert reply.status_code == 400 and problem in reply.get_json()["error"]


def test_the_page_shows_who_is_down_the_history_and_the_emails(app: Flask, logged_in: LoggedIn,
                                                               history: None) -> None:
    client, _ = logged_in("ops")
    html = client.get("/alerts").get_data(as_text=True)
    down_now = html.split('id="firing"')[1].split("</table>")[0]
    assert "ivr2" in down_now and "ivr1" not in down_now
    assert "2026-12-03 13:45:02" in html and "still down" in html
    assert "[FIRING:1] ivr server down: ivr1" in html and "cm1:123" in html
    assert 'href="/alerts"' in html  # in the menu


def test_a_tenant_administrator_may_not_see_the_alerts(app: Flask, logged_in: LoggedIn,
                                                       history: None) -> None:
    client, _ = logged_in("alice")
    assert client.get("/alerts").status_code == 403
    assert client.get("/api/v1/alerts").status_code == 403
    assert 'href="/alerts"' not in client.get("/audit").get_data(as_text=True)


def test_without_a_session_the_api_gets_401_and_the_page_a_redirect(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/alerts").status_code == 401
    reply = client.get("/alerts")
    assert reply.status_code == 302 and "/login" in reply.headers["Location"]

"""The administration pages and their API: tenants, users, queues, IVR, meetings, calls.

Each through the form (errors next to their fields, status 400) and through /api/v1 (JSON), and a
tenant administrator kept to its own tenant."""

from __future__ import annotations

import io
import re
import time
import wave
from html import unescape
from typing import Any

import numpy as np
from flask import Flask
from flask.testing import FlaskClient

from .conftest import TENANT_A, TENANT_B


def field_error(html: str, field: str) -> str | None:
    """The error shown under the form's field, or None."""
    match = re.search(rf'<p class="field-error" id="error-{field}" role="alert">([^<]*)</p>', html)
    return unescape(match.group(1)) if match else None


def post(client: FlaskClient, csrf: str, path: str, **data: Any) -> Any:
    return client.post(path, data={"csrf_token": csrf, **data})


# -- tenants --------------------------------------------------------------------------------------

def test_a_tenant_added_through_the_form_is_listed(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    reply = post(client, csrf, "/tenants", domain="C.Example", name="Tenant C", max_calls="5")
    assert reply.status_code == 302
    page = client.get("/tenants").get_data(as_text=True)
    assert 'data-tenant="c.example"' in page and "Tenant C" in page
    assert client.get("/api/v1/tenants/c.example").get_json()["max_calls"] == 5


def test_a_wrong_tenant_value_is_shown_next_to_its_field(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    reply = post(client, csrf, "/tenants", domain="bad_domain!", max_calls="x")
    assert reply.status_code == 400
    assert field_error(reply.get_data(as_text=True), "max_calls") == "max calls: not a whole number ('x')"
    reply = post(client, csrf, "/tenants", domain="bad_domain!")
    assert field_error(reply.get_data(as_text=True), "domain") == \
        "domain 'bad_domain!' is not a valid DNS name"
    reply = post(client, csrf, "/tenants", domain=TENANT_A)
    assert reply.status_code == 400
    assert field_error(reply.get_data(as_text=True), "domain") is None
    assert f"tenant {TENANT_A} exists already" in reply.get_data(as_text=True)


def test_tenants_api(logged_in: Any) -> None:
    client, csrf = logged_in("ops")
    headers = {"X-CSRF-Token": csrf}
    reply = client.post("/api/v1/tenants", json={"domain": "d.example", "max_calls": 3}, headers=headers)
    assert reply.status_code == 201 and reply.get_json()["domain"] == "d.example"
    reply = client.post("/api/v1/tenants", json={"domain": "d.example"}, headers=headers)
    assert reply.status_code == 409
    reply = client.post("/api/v1/tenants", json={"domain": "e.example", "max_calls": -1}, headers=headers)
    assert reply.status_code == 400 and reply.get_json()["field"] == "max_calls"
    reply = client.patch("/api/v1/tenants/d.example", json={"name": "Dee"}, headers=headers)
    assert reply.get_json()["name"] == "Dee"
    assert client.delete("/api/v1/tenants/d.example", headers=headers).status_code == 200
    assert client.get("/api/v1/tenants/d.example").status_code == 404


def test_a_tenant_administrator_sees_only_its_tenant_and_changes_none(logged_in: Any) -> None:
    client, csrf = logged_in("alice")
    assert [t["domain"] for t in client.get("/api/v1/tenants").get_json()["tenants"]] == [TENANT_A]
    assert client.get(f"/api/v1/tenants/{TENANT_B}").status_code == 403
    assert post(client, csrf, "/tenants", domain="x.example").status_code == 403
    assert client.delete(f"/api/v1/tenants/{TENANT_A}", headers={"X-CSRF-Token": csrf}).status_code == 403
    assert TENANT_B not in client.get("/tenants").get_data(as_text=True)


def test_the_api_is_in_the_openapi_document(app: Flask, logged_in: Any) -> None:
    client, _ = logged_in("root")
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/tenants"])
    assert {"get", "patch", "delete"} <= set(paths["/api/v1/tenants/{domain}"])


# -- users ----------------------------------------------------------------------------------------

def test_a_user_added_through_the_form_is_listed_changed_and_deleted(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    reply = post(client, csrf, "/users", tenant=TENANT_A, extension="1001", password="secret1", name="Ann",
                 email="ann@a.example", permission="local", max_calls="2")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    page = client.get(f"/users?tenant={TENANT_A}").get_data(as_text=True)
    assert f'data-user="1001@{TENANT_A}"' in page and "Ann" in page
    reply = post(client, csrf, f"/users/{TENANT_A}/1001", permission="international", max_calls="")
    assert reply.status_code == 302
    user = client.get(f"/api/v1/users/{TENANT_A}/1001").get_json()
    assert (user["permission"], user["max_calls"], user["email"]) == ("international", 2, "ann@a.example")
    assert post(client, csrf, f"/users/{TENANT_A}/1001/delete").status_code == 302
    assert client.get(f"/api/v1/users/{TENANT_A}/1001").status_code == 404


def test_a_users_number_withheld_through_the_form_and_the_api(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    assert post(client, csrf, "/users", tenant=TENANT_A, extension="1001", password="secret1",
                withhold_number="on").status_code == 302
    api = f"/api/v1/users/{TENANT_A}/1001"
    assert client.get(api).get_json()["withhold_number"] is True
    page = client.get(f"/users/{TENANT_A}/1001").get_data(as_text=True)
    assert '<input type="checkbox" name="withhold_number" checked>' in page
    assert 'data-user="1001@' in client.get(f"/users?tenant={TENANT_A}").get_data(as_text=True)

    # The edit form without the box: unchecked, so shown again.
    reply = post(client, csrf, f"/users/{TENANT_A}/1001", permission="national", max_calls="0")
    assert reply.status_code == 302
    assert client.get(api).get_json()["withhold_number"] is False
    headers = {"X-CSRF-Token": csrf}
    reply = client.patch(api, json={"withhold_number": True}, headers=headers)
    assert reply.get_json()["withhold_number"] is True
    # A PATCH without the key leaves it as it is.
    changed = client.patch(api, json={"max_calls": 3}, headers=headers).get_json()
    assert (changed["max_calls"], changed["withhold_number"]) == (3, True)
    # A value that is not a boolean is refused naming the field, and changes nothing.
    for wrong in ("maybe", 2, 1.0, [True]):
        reply = client.patch(api, json={"withhold_number": wrong, "max_calls": 4}, headers=headers)
        assert reply.status_code == 400, wrong
        assert reply.get_json()["field"] == "withhold_number"
        assert reply.get_json()["error"].startswith("withhold number: ")
    reply = client.patch(api, json={"withhold_number": "no"}, headers=headers)
    assert reply.get_json()["withhold_number"] is False
    assert client.get(api).get_json()["max_calls"] == 3


def test_a_users_pickup_group_and_forwarding_through_its_page_and_the_api(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    headers = {"X-CSRF-Token": csrf}
    for extension in ("1001", "1002"):
        reply = post(client, csrf, "/users", tenant=TENANT_A, extension=extension, password="secret1")
        assert reply.status_code == 302
    page = f"/users/{TENANT_A}/1001"
    reply = post(client, csrf, page, permission="national", max_calls="0", pickup_group="sales")
    assert reply.status_code == 302
    assert client.get(f"/api/v1/users/{TENANT_A}/1001").get_json()["pickup_group"] == "sales"
    reply = post(client, csrf, page, permission="national", max_calls="0", pickup_group="a b")
    assert field_error(reply.get_data(as_text=True), "pickup_group").startswith("pickup group 'a b': 1 to 64")

    forwarding = f"{page}/forwarding"
    assert post(client, csrf, forwarding, always="1002", no_answer_seconds="20").status_code == 302
    # One forward refused: none of the form is saved, and the error is next to its field.
    for values, field, message in (
            ({"busy": "1999"}, "busy",
             f"forward of 1001 (busy): 1999 reaches nothing in {TENANT_A} (no extension, menu, queue or "
             "room has it, and no outbound route takes it)"),
            ({"no_answer": "voicemail"}, "no_answer",
             "forward of 1001 (no_answer) to voicemail: 1001 has no mailbox "
             "(pbx voicemail enable 1001 --pin PIN)"),
            ({"unreachable": "1001"}, "unreachable", "forward of 1001 (unreachable): to itself"),
            ({"always": "10 02"}, "always",
             "forward of 1001 (always): extension '10 02' may only contain letters, digits, '.', '_' "
             "and '-'"),
            ({"no_answer_seconds": "2"}, "no_answer_seconds",
             "no answer seconds 2 is out of range: 5 to 300 s")):
        reply = post(client, csrf, forwarding, **{"always": "", "no_answer_seconds": "20", **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) == message, values
    assert client.get(f"{page.replace('/users', '/api/v1/users')}/forwarding").get_json()["always"] == "1002"
    reply = post(client, csrf, forwarding, busy="1002", no_answer="1002", no_answer_seconds="15", dnd="on")
    assert reply.status_code == 302
    assert "busy -&gt; 1002, no answer -&gt; 1002 after 15 s, do not disturb" in \
        client.get(reply.location).get_data(as_text=True)
    api = f"/api/v1/users/{TENANT_A}/1001/forwarding"
    assert client.get(api).get_json() == {"extension": "1001", "tenant_domain": TENANT_A, "always": None,
                                          "busy": "1002", "no_answer": "1002", "no_answer_seconds": 15,
                                          "unreachable": None, "dnd": True}
    reply = client.put(api, json={"unreachable": "1002", "dnd": False}, headers=headers)
    changed = reply.get_json()
    assert (changed["unreachable"], changed["busy"], changed["dnd"]) == ("1002", None, False)
    reply = client.put(api, json={"no_answer_seconds": "x"}, headers=headers)
    assert (reply.status_code, reply.get_json()["field"]) == (400, "no_answer_seconds")
    bob, bob_csrf = logged_in("bob")
    assert bob.get(api).status_code == 403
    assert bob.put(api, json={"always": "1002"}, headers={"X-CSRF-Token": bob_csrf}).status_code == 403


def test_a_wrong_user_value_is_shown_next_to_its_field(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    for values, field, message in (
            ({"extension": "10 01", "password": "secret1"}, "extension",
             "extension '10 01' may only contain letters, digits, '.', '_' and '-'"),
            ({"extension": "1001", "password": "abc"}, "password", "password is shorter than 4 characters"),
            ({"extension": "1001", "password": "secret1", "email": "nope"}, "email",
             "email 'nope' is not an email address"),
            ({"extension": "1001", "password": "secret1", "max_calls": "many"}, "max_calls",
             "max calls: not a whole number ('many')"),
            ({"extension": "1001", "password": "secret1", "permission": "galactic"}, "permission",
             "permission 'galactic': one of internal, local, national, international, premium "
             "(emergency numbers are allowed to everyone)")):
        reply = post(client, csrf, "/users", tenant=TENANT_A, **values)
        assert reply.status_code == 400
        page = reply.get_data(as_text=True)
        assert field_error(page, field) == message
        assert 'value="1001"' in page or field == "extension"  # what was typed is kept
    assert client.get("/api/v1/users").get_json()["total"] == 0
    reply = post(client, csrf, "/users", extension="1001", password="secret1")  # no default tenant here
    assert field_error(reply.get_data(as_text=True), "tenant") == "tenant pbx.local does not exist"


def test_users_api(logged_in: Any) -> None:
    client, csrf = logged_in("ops")
    headers = {"X-CSRF-Token": csrf}
    user = {"extension": "2001", "password": "secret1", "tenant": TENANT_B}
    reply = client.post("/api/v1/users", json=user, headers=headers)
    assert reply.status_code == 201 and reply.get_json()["tenant"] == TENANT_B
    reply = client.post("/api/v1/users", json=user, headers=headers)
    assert reply.status_code == 409
    reply = client.post("/api/v1/users", json={"extension": "2002", "password": "x", "tenant": TENANT_B},
                        headers=headers)
    assert reply.status_code == 400 and reply.get_json()["field"] == "password"
    reply = client.patch(f"/api/v1/users/{TENANT_B}/2001", json={"max_calls": 100_001}, headers=headers)
    assert reply.status_code == 400 and reply.get_json()["field"] == "max_calls"
    listing = client.get(f"/api/v1/users?tenant={TENANT_B}&q=200").get_json()
    assert listing["total"] == 1 and listing["users"][0]["extension"] == "2001"
    assert client.delete(f"/api/v1/users/{TENANT_B}/2001", headers=headers).status_code == 200


def test_a_tenant_administrator_sees_and_changes_only_its_users(logged_in: Any) -> None:
    root, root_csrf = logged_in("root")
    for tenant in (TENANT_A, TENANT_B):
        reply = post(root, root_csrf, "/users", tenant=tenant, extension="3001", password="secret1")
        assert reply.status_code == 302
    client, csrf = logged_in("alice")
    assert [u["tenant"] for u in client.get("/api/v1/users").get_json()["users"]] == [TENANT_A]
    assert f"3001@{TENANT_B}" not in client.get("/users").get_data(as_text=True)
    assert client.get(f"/users?tenant={TENANT_B}").status_code == 403
    assert client.get(f"/api/v1/users/{TENANT_B}/3001").status_code == 403
    assert post(client, csrf, f"/users/{TENANT_B}/3001/delete").status_code == 403
    reply = post(client, csrf, "/users", tenant=TENANT_B, extension="3002", password="secret1")
    assert reply.status_code == 403
    assert client.post("/api/v1/users", json={"extension": "3002", "password": "secret1", "tenant": TENANT_B},
                       headers={"X-CSRF-Token": csrf}).status_code == 403
    reply = post(client, csrf, "/users", extension="3002", password="secret1")  # no tenant: its own
    assert reply.status_code == 302
    assert client.get(f"/api/v1/users/{TENANT_A}/3002").status_code == 200


# -- CSV import -----------------------------------------------------------------------------------

def wait_for_import(client: FlaskClient, job_id: int) -> dict[str, Any]:
    for _ in range(200):
        job: dict[str, Any] = client.get(f"/api/v1/users/imports/{job_id}").get_json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"import {job_id} did not finish: {job}")


def test_a_csv_uploaded_through_the_form_is_imported_with_its_row_errors(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    csv = (f"extension,password,name,tenant\n4001,secret1,Ann,{TENANT_A}\n4002,x,Bob,{TENANT_A}\n"
           f"4003,secret3,Cy,nowhere.example\n4004,secret4,,{TENANT_B}\n").encode()
    reply = client.post("/users/import", data={"csrf_token": csrf, "file": (io.BytesIO(csv), "staff.csv")},
                        content_type="multipart/form-data")
    assert reply.status_code == 302
    job_id = int(reply.headers["Location"].rsplit("/", 1)[1])
    job = wait_for_import(client, job_id)
    assert (job["state"], job["total"], job["imported"], job["failed"]) == ("done", 4, 2, 2)
    page = client.get(f"/users/import/{job_id}").get_data(as_text=True)
    assert 'id="import-progress"' in page and 'value="4"' in page
    assert "<td>3</td><td>password</td><td>password is shorter than 4 characters</td>" in page
    assert "<td>4</td><td>tenant</td><td>unknown tenant &#39;nowhere.example&#39;</td>" in page
    assert "staff.csv" in client.get("/users/import").get_data(as_text=True)


def test_a_csv_that_cannot_be_imported_is_refused_next_to_the_file_field(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    upload = {"csrf_token": csrf, "file": (io.BytesIO(b"name\nAnn\n"), "a.csv")}
    reply = client.post("/users/import", data=upload, content_type="multipart/form-data")
    assert reply.status_code == 400
    assert field_error(reply.get_data(as_text=True), "file") == \
        "file: missing column 'extension'; missing column 'password'"
    reply = client.post("/users/import", data={"csrf_token": csrf}, content_type="multipart/form-data")
    assert field_error(reply.get_data(as_text=True), "file") == "file: choose a CSV file to import"


def test_a_tenant_administrators_import_stays_in_its_tenant(logged_in: Any) -> None:
    client, csrf = logged_in("alice")
    csv = f"extension,password,tenant\n5001,secret1,\n5002,secret2,{TENANT_B}\n"
    reply = client.post("/api/v1/users/imports", headers={"X-CSRF-Token": csrf},
                        json={"csv": csv, "file_name": "mine.csv"})
    assert reply.status_code == 202
    job = wait_for_import(client, reply.get_json()["id"])
    assert (job["imported"], job["failed"]) == (1, 1)
    assert job["errors"][0]["column"] == "tenant"
    assert client.get(f"/api/v1/users/{TENANT_A}/5001").status_code == 200
    other, _ = logged_in("bob")
    assert other.get(f"/api/v1/users/imports/{job['id']}").status_code == 404
    assert other.get("/api/v1/users/imports").get_json()["imports"] == []


# -- queues ---------------------------------------------------------------------------------------

def add_users(client: FlaskClient, csrf: str, tenant: str, *extensions: str) -> None:
    for extension in extensions:
        reply = post(client, csrf, "/users", tenant=tenant, extension=extension, password="secret1")
        assert reply.status_code == 302, reply.get_data(as_text=True)


def test_a_queue_created_through_the_form_and_its_agents_logged_in_and_paused(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    add_users(client, csrf, TENANT_A, "1001", "1002")
    reply = post(client, csrf, f"/queues?tenant={TENANT_A}", tenant=TENANT_A, number="500", name="Sales",
                 strategy="round-robin", members="1001", dynamic_members="1002:3", max_wait="60",
                 max_length="0", wrap_up="5", ring_timeout="20", leave_empty="on")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    page = client.get(f"/queues?tenant={TENANT_A}").get_data(as_text=True)
    assert 'data-queue="500"' in page and "Sales" in page
    queue = client.get(f"/api/v1/queues/500?tenant={TENANT_A}").get_json()
    assert (queue["strategy"], queue["max_wait"], queue["wrap_up"]) == ("round-robin", 60, 5)
    assert [(m["extension"], m["penalty"], m["dynamic"], m["logged_in"]) for m in queue["members"]] == \
        [("1001", 0, False, True), ("1002", 3, True, False)]

    assert post(client, csrf, f"/queues/500/agents/1002/login?tenant={TENANT_A}").status_code == 302
    reply = post(client, csrf, f"/queues/500/agents/1002/pause?tenant={TENANT_A}", reason="lunch")
    assert reply.status_code == 302
    page = client.get(f"/queues/500?tenant={TENANT_A}").get_data(as_text=True)
    assert "paused (lunch)" in page
    reply = client.post("/api/v1/queues/500/agents/1002/unpause", json={"tenant": TENANT_A},
                        headers={"X-CSRF-Token": csrf})
    assert reply.get_json()["queues"] == ["500"]
    member = client.get(f"/api/v1/queues/500?tenant={TENANT_A}").get_json()["members"][1]
    assert (member["logged_in"], member["paused"]) == (True, False)

    reply = post(client, csrf, f"/queues/500?tenant={TENANT_A}", strategy="ring-all", members="1001, 1002",
                 max_wait="0", max_length="0", wrap_up="10", ring_timeout="15")
    assert reply.status_code == 302
    assert len(client.get(f"/api/v1/queues/500?tenant={TENANT_A}").get_json()["members"]) == 2
    assert post(client, csrf, f"/queues/500/delete?tenant={TENANT_A}").status_code == 302
    assert client.get(f"/api/v1/queues/500?tenant={TENANT_A}").status_code == 404


def test_a_wrong_queue_value_is_shown_next_to_its_field(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    add_users(client, csrf, TENANT_A, "1001")
    base = {"tenant": TENANT_A, "number": "500", "strategy": "ring-all"}
    for values, field, message in (
            ({"number": "5 00"}, "number",
             "queue number: extension '5 00' may only contain letters, digits, '.', '_' and '-'"),
            ({"members": "1001, 1009"}, "members", None),
            ({"members": "1001:x"}, "members", "member '1001:x': the penalty after ':' must be a number"),
            ({"ring_timeout": "1"}, "ring_timeout", None),
            ({"max_wait": "soon"}, "max_wait", "max wait: not a whole number ('soon')"),
            ({"strategy": "roulette"}, "strategy", None),
            ({"skills": "fr:99"}, "skills", None),
            ({"overflow": "queue:999"}, "overflow", None)):
        reply = post(client, csrf, f"/queues?tenant={TENANT_A}", **{**base, **values})
        assert reply.status_code == 400, values
        shown = field_error(reply.get_data(as_text=True), field)
        assert shown is not None, (values, reply.get_data(as_text=True))
        if message is not None:
            assert shown == message
    assert client.get(f"/api/v1/queues?tenant={TENANT_A}").get_json()["queues"] == []


def test_queues_api_and_a_tenant_administrator(logged_in: Any) -> None:
    root, root_csrf = logged_in("root")
    add_users(root, root_csrf, TENANT_B, "2001")
    queue = {"tenant": TENANT_B, "number": "600", "dynamic_members": ["2001:2"]}
    reply = root.post("/api/v1/queues", json=queue, headers={"X-CSRF-Token": root_csrf})
    assert reply.status_code == 201 and reply.get_json()["members"][0]["penalty"] == 2
    reply = root.post("/api/v1/queues", json={"tenant": TENANT_B, "number": "601", "ring_timeout": 1},
                      headers={"X-CSRF-Token": root_csrf})
    assert reply.status_code == 400 and reply.get_json()["field"] == "ring_timeout"
    client, csrf = logged_in("alice")
    assert client.get(f"/api/v1/queues?tenant={TENANT_B}").status_code == 403
    assert client.get("/api/v1/queues").get_json()["queues"] == []  # its own tenant's
    assert client.get(f"/queues/600?tenant={TENANT_B}").status_code == 403
    assert client.post("/api/v1/queues/600/agents/2001/login", json={"tenant": TENANT_B},
                       headers={"X-CSRF-Token": csrf}).status_code == 403
    reply = client.delete(f"/api/v1/queues/600?tenant={TENANT_B}", headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 403


# -- the pages that change one thing -------------------------------------------------------------

def input_value(html: str, field: str) -> str | None:
    """The value the form's input `field` shows, or None."""
    match = re.search(rf'<input id="field-{field}" name="{field}" type="[a-z]+" value="([^"]*)"', html)
    return unescape(match.group(1)) if match else None


def test_each_edit_page_shows_the_current_values_keeps_a_wrong_one_beside_its_error_and_saves(
        logged_in: Any) -> None:
    client, csrf = logged_in("root")
    add_users(client, csrf, TENANT_A, "1001")
    assert post(client, csrf, f"/queues?tenant={TENANT_A}", tenant=TENANT_A, number="500",
                strategy="ring-all", max_wait="60", max_length="0", wrap_up="5",
                ring_timeout="20").status_code == 302
    assert post(client, csrf, f"/meetings?tenant={TENANT_A}", tenant=TENANT_A, number="800",
                max_participants="10", pin_tries="3").status_code == 302
    pages = [  # (page, its form's other fields, a field, its current value, a wrong one, a right one, API)
        (f"/tenants/{TENANT_A}", {}, "max_calls", "0", "-1", "7", f"/api/v1/tenants/{TENANT_A}"),
        (f"/users/{TENANT_A}/1001", {"permission": "local"}, "max_calls", "0", "many", "3",
         f"/api/v1/users/{TENANT_A}/1001"),
        (f"/queues/500?tenant={TENANT_A}", {"strategy": "ring-all", "max_length": "0", "wrap_up": "5",
                                             "ring_timeout": "20"}, "max_wait", "60", "-5", "90",
         f"/api/v1/queues/500?tenant={TENANT_A}"),
        (f"/meetings/800?tenant={TENANT_A}", {"pin_tries": "3"}, "max_participants", "10", "0", "25",
         f"/api/v1/meetings/800?tenant={TENANT_A}"),
    ]
    for page, others, field, current, wrong, right, api in pages:
        assert input_value(client.get(page).get_data(as_text=True), field) == current, page

        refused = post(client, csrf, page, **others, **{field: wrong})
        html = refused.get_data(as_text=True)
        assert refused.status_code == 400, page
        assert input_value(html, field) == wrong and field_error(html, field), (page, html)
        assert str(client.get(api).get_json()[field]) == current, page

        saved = post(client, csrf, page, **others, **{field: right})
        assert saved.status_code == 302, (page, saved.get_data(as_text=True))
        assert "changed" in client.get(saved.location).get_data(as_text=True), page
        assert str(client.get(api).get_json()[field]) == right, page


# -- meeting rooms --------------------------------------------------------------------------------

def test_a_meeting_room_added_changed_and_deleted(logged_in: Any) -> None:
    client, csrf = logged_in("alice")
    reply = post(client, csrf, "/meetings", number="800", name="Board", pin="1234", moderator_pin="9999",
                 max_participants="10", pin_tries="3", wait_for_moderator="on", entry_tones="on")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    room = client.get("/api/v1/meetings/800").get_json()
    assert (room["tenant_domain"], room["pin"], room["wait_for_moderator"], room["mute_on_entry"]) == \
        (TENANT_A, "1234", True, False)
    assert 'data-room="800"' in client.get("/meetings").get_data(as_text=True)
    reply = post(client, csrf, "/meetings/800", pin="", moderator_pin="", max_participants="20",
                 pin_tries="3", mute_on_entry="on")
    assert reply.status_code == 302
    room = client.get("/api/v1/meetings/800").get_json()
    assert (room["pin"], room["max_participants"], room["mute_on_entry"], room["entry_tones"]) == \
        (None, 20, True, False)
    assert post(client, csrf, "/meetings/800/delete").status_code == 302
    assert client.get("/api/v1/meetings/800").status_code == 404


def test_a_wrong_meeting_room_value_is_shown_next_to_its_field(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    for values, field in (({"number": "8 00"}, "number"), ({"pin": "12ab"}, "pin"),
                          ({"pin": "1234", "moderator_pin": "1234"}, "moderator_pin"),
                          ({"max_participants": "1"}, "max_participants"),
                          ({"max_participants": "lots"}, "max_participants"),
                          ({"wait_for_moderator": "on"}, "wait_for_moderator")):
        reply = post(client, csrf, f"/meetings?tenant={TENANT_B}", **{"number": "800", **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) is not None, values
    reply = client.post("/api/v1/meetings", json={"number": "800", "pin_tries": 0, "tenant": TENANT_B},
                        headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 400 and reply.get_json()["field"] == "pin_tries"
    bob, bob_csrf = logged_in("bob")
    assert bob.post("/api/v1/meetings", json={"number": "801", "tenant": TENANT_A},
                    headers={"X-CSRF-Token": bob_csrf}).status_code == 403


# -- IVR menus and prompts ------------------------------------------------------------------------

def wav_bytes(seconds: float = 0.5, rate: int = 8000) -> bytes:
    samples = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def upload_prompt(client: FlaskClient, csrf: str, name: str, data: bytes, tenant: str = TENANT_A) -> Any:
    return client.post(f"/ivr/prompts?tenant={tenant}", content_type="multipart/form-data",
                       data={"csrf_token": csrf, "name": name, "file": (io.BytesIO(data), f"{name}.wav")})


def test_a_prompt_uploaded_and_a_menu_with_its_options(logged_in: Any) -> None:
    client, csrf = logged_in("alice")
    add_users(client, csrf, TENANT_A, "1001")
    assert upload_prompt(client, csrf, "welcome", wav_bytes(0.5, 16000)).status_code == 302
    prompts = client.get("/api/v1/ivr/prompts").get_json()["prompts"]
    assert [(p["name"], p["duration"], p["source"]) for p in prompts] == \
        [("welcome", 0.5, "file: welcome.wav")]
    reply = post(client, csrf, "/ivr", number="700", name="Main", greeting="welcome",
                 options="1=1001\n9=repeat", timeout="5", inter_digit_timeout="3", retries="2",
                 final_destination="hangup")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    menu = client.get("/api/v1/ivr/menus/700").get_json()
    assert (menu["greeting"], menu["options"], menu["retries"]) == \
        ("welcome", {"1": "1001", "9": "repeat"}, 2)
    assert 'data-menu="700"' in client.get("/ivr").get_data(as_text=True)
    reply = post(client, csrf, "/ivr/prompts/welcome/delete")  # played by menu 700
    assert "played by IVR menu 700" in client.get("/ivr/prompts").get_data(as_text=True)
    reply = post(client, csrf, "/ivr/700", greeting="welcome", options="2=1001", timeout="5",
                 inter_digit_timeout="3", retries="3", final_destination="hangup")
    assert reply.status_code == 302
    assert client.get("/api/v1/ivr/menus/700").get_json()["options"] == {"2": "1001"}
    assert post(client, csrf, "/ivr/700/delete").status_code == 302
    assert post(client, csrf, "/ivr/prompts/welcome/delete").status_code == 302
    assert client.get("/api/v1/ivr/prompts").get_json()["prompts"] == []


def test_a_wrong_menu_or_prompt_value_is_shown_next_to_its_field(logged_in: Any) -> None:
    client, csrf = logged_in("alice")
    reply = upload_prompt(client, csrf, "bad", b"RIFF not really")
    assert reply.status_code == 400
    assert field_error(reply.get_data(as_text=True), "file").startswith("file bad.wav: not a WAV file")
    reply = upload_prompt(client, csrf, "no name!", wav_bytes())
    assert field_error(reply.get_data(as_text=True), "name").startswith("prompt name 'no name!' must be")
    assert upload_prompt(client, csrf, "welcome", wav_bytes()).status_code == 302
    base = {"number": "700", "greeting": "welcome", "options": "1=hangup", "timeout": "5",
            "inter_digit_timeout": "3", "retries": "3", "final_destination": "hangup"}
    for values, field in (({"options": "1=queue:999"}, "options"), ({"options": "1"}, "options"),
                          ({"options": "#=1001"}, "options"), ({"timeout": "0"}, "timeout"),
                          ({"retries": "many"}, "retries"), ({"greeting": "missing"}, "greeting"),
                          ({"number": "7 00"}, "number"),
                          ({"final_destination": "queue:999"}, "final_destination")):
        reply = post(client, csrf, "/ivr", **{**base, **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) is not None, values
    assert client.get("/api/v1/ivr/menus").get_json()["menus"] == []


def test_a_prompt_spoken_through_the_api(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    reply = client.post("/api/v1/ivr/prompts", json={"name": "hello", "text": "Hello", "tenant": TENANT_B},
                        headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["source"] == "say: Hello" and reply.get_json()["duration"] > 0.2
    reply = client.post("/api/v1/ivr/prompts", json={"name": "hello2", "tenant": TENANT_B},
                        headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 400 and reply.get_json()["field"] == "file"
    alice, alice_csrf = logged_in("alice")
    assert alice.get(f"/api/v1/ivr/prompts?tenant={TENANT_B}").status_code == 403
    assert alice.delete(f"/api/v1/ivr/prompts/hello?tenant={TENANT_B}",
                        headers={"X-CSRF-Token": alice_csrf}).status_code == 403


# -- calls and registrations ----------------------------------------------------------------------

def test_without_a_call_manager_the_calls_pages_say_so(logged_in: Any) -> None:
    client, _ = logged_in("root")
    assert "the Call Manager does not answer" in client.get("/calls").get_data(as_text=True)
    reply = client.get("/api/v1/calls")
    assert reply.status_code == 503 and "does not answer" in reply.get_json()["error"]
    reply = client.get("/api/v1/registrations?limit=0")
    assert reply.status_code == 400
    assert reply.get_json() == {"error": "limit: 1 to 1000, not 0", "field": "limit"}
    assert client.get(f"/calls/registrations?tenant={TENANT_A}").status_code == 200
    alice, _ = logged_in("alice")
    assert alice.get(f"/api/v1/registrations?tenant={TENANT_B}").status_code == 403


def test_the_tenant_picked_in_a_form_wins_over_the_pages_query(logged_in: Any) -> None:
    client, csrf = logged_in("root")
    reply = post(client, csrf, f"/meetings?tenant={TENANT_A}", tenant=TENANT_B, number="801")
    assert reply.status_code == 302
    assert client.get(f"/api/v1/meetings/801?tenant={TENANT_B}").status_code == 200
    assert client.get(f"/api/v1/meetings/801?tenant={TENANT_A}").status_code == 404

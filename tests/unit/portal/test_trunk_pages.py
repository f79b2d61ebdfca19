"""The trunks, routes, DIDs and ring groups pages and their API: through the form (errors next
to their fields, 400), through /api/v1, a trunk's password kept when a change gives none, and a
tenant administrator kept to its own tenant. No Call Manager answers here: the states say so."""

from __future__ import annotations

from .conftest import TENANT_A, TENANT_B, LoggedIn
from .test_admin_pages import field_error, post

TRUNK = {"name": "provider", "host": "sip.provider.example", "port": "5060", "transport": "udp",
         "username": "acct1", "password": "s3cret-1", "register": "on", "max_calls": "4",
         "codecs": "PCMA,PCMU", "number_format": "e164", "country_code": "33", "national_prefix": "0",
         "international_prefix": "00", "probe_interval": "30", "down_after": "2", "up_after": "2",
         "enabled": "on"}


def test_a_trunk_added_through_the_form_is_listed_with_its_states_and_changed_keeping_its_password(
        logged_in: LoggedIn) -> None:
    client, csrf = logged_in("root")
    reply = post(client, csrf, f"/trunks?tenant={TENANT_A}", tenant=TENANT_A, **TRUNK)
    assert reply.status_code == 302, reply.get_data(as_text=True)
    page = client.get(f"/trunks?tenant={TENANT_A}").get_data(as_text=True)
    assert 'data-trunk="provider"' in page and "udp sip.provider.example:5060" in page
    assert "e164 +33 0/00" in page
    # Nothing answers on the Call Manager's control port in this test: the page says so.
    assert 'id="states-unknown"' in page
    assert "registrations and probes are unknown: the Call Manager does not answer" in page
    listed = client.get(f"/api/v1/trunks?tenant={TENANT_A}").get_json()
    [trunk] = listed["trunks"]
    assert (trunk["registration"], trunk["probe"]) == ("unknown (no Call Manager reports it)",) * 2
    assert trunk["has_password"] is True and "password" not in trunk and listed["problem"]

    edit = client.get(f"/trunks/provider?tenant={TENANT_A}").get_data(as_text=True)
    assert 'name="host" type="text" value="sip.provider.example"' in edit
    assert "s3cret-1" not in edit  # never shown
    changed = {**TRUNK, "password": "", "max_calls": "6"}
    del changed["name"]
    assert post(client, csrf, f"/trunks/provider?tenant={TENANT_A}", **changed).status_code == 302
    [after] = client.get(f"/api/v1/trunks?tenant={TENANT_A}").get_json()["trunks"]
    assert (after["max_calls"], after["has_password"], after["register"]) == (6, True, True)


def test_wrong_trunk_values_are_shown_next_to_their_fields(logged_in: LoggedIn) -> None:
    client, csrf = logged_in("root")
    for values, field, message in (
            ({"port": "70000"}, "port", "trunk provider: port 70000 is out of range: 1 to 65535"),
            ({"port": "x"}, "port", "port: not a whole number ('x')"),
            ({"codecs": "PCMA,G999"}, "codecs", "trunk provider: codec 'G999' is unknown; known: PCMU, PCMA, "
                                                "G722, opus, G729, GSM, iLBC, speex"),
            ({"password": ""}, "password", "trunk provider: a username and a password go together (a "
                                           "provider's challenge needs both)"),
            ({"country_code": "+33"}, "country_code",
             "trunk provider: country code '+33': 1 to 3 digits, not starting with 0, without + (33, 44, 1)"),
            ({"name": "a b"}, "name", "trunk name 'a b': 1 to 64 letters, digits, '.', '_' or '-'"),
            ({"register": "maybe"}, "register", "register: yes or no (true or false, 1 or 0), not 'maybe'")):
        reply = post(client, csrf, f"/trunks?tenant={TENANT_A}", **{**TRUNK, **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) == message, values
    assert client.get(f"/api/v1/trunks?tenant={TENANT_A}").get_json()["trunks"] == []


def test_routes_and_dids_through_the_forms_and_the_api(logged_in: LoggedIn) -> None:
    client, csrf = logged_in("ops")
    headers = {"X-CSRF-Token": csrf}
    assert post(client, csrf, f"/trunks?tenant={TENANT_A}", **TRUNK).status_code == 302
    assert client.post("/api/v1/users", json={"tenant": TENANT_A, "extension": "1001", "password": "secret1"},
                       headers=headers).status_code == 201

    reply = post(client, csrf, f"/routes?tenant={TENANT_A}", name="national", pattern="_0[1-9]XXXXXXXX",
                 trunks="provider", strip="0", prepend="", permission="national", priority="10")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    assert 'data-route="national"' in client.get(f"/routes?tenant={TENANT_A}").get_data(as_text=True)
    for values, field, message in (
            ({"pattern": "_0[1-9"}, "pattern", "dial pattern '_0[1-9' does not compile: '[' at 2 is never "
                                               "closed"),
            ({"trunks": "provider, nowhere"}, "trunks", "route world: trunk 'nowhere' does not exist in "
                                                        f"{TENANT_A}"),
            ({"priority": "soon"}, "priority", "priority: not a whole number ('soon')")):
        reply = post(client, csrf, f"/routes?tenant={TENANT_A}", **{"name": "world", "pattern": "_00Z.",
                                                                    "trunks": "provider", **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) == message, values
    # The trunk a route uses is not deleted; the page says why.
    reply = post(client, csrf, f"/trunks/provider/delete?tenant={TENANT_A}")
    assert reply.status_code == 302 and "/trunks/provider" in reply.location
    assert "used by route(s) national" in client.get(reply.location).get_data(as_text=True)
    route = client.put(f"/api/v1/routes/national?tenant={TENANT_A}",
                       json={"tenant": TENANT_A, "pattern": "_0Z.", "trunks": ["provider"], "strip": 1},
                       headers=headers).get_json()
    assert (route["pattern"], route["strip"], route["trunks"]) == ("_0Z.", 1, ["provider"])

    reply = post(client, csrf, f"/dids?tenant={TENANT_A}", number="+33140000000", destination="1001",
                 hours="mon-fri 09:00-17:00", timezone="Europe/Paris", holidays="2026-12-25 2027-01-01",
                 closed_destination="1001")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    [did] = client.get(f"/api/v1/dids?tenant={TENANT_A}").get_json()["dids"]
    assert (did["number"], did["holidays"], did["timezone"]) == ("+33140000000", ["2026-12-25", "2027-01-01"],
                                                                 "Europe/Paris")
    hours = {"hours": "mon-fri 09:00-17:00", "closed_destination": "1001"}
    for values, field, message in (
            ({"holidays": "25/12/2026", **hours}, "holidays", "holiday '25/12/2026': a date like 2026-12-25"),
            ({"destination": "9999"}, "destination",
             f"DID +33140000001: extension 9999 does not exist in {TENANT_A}"),
            ({**hours, "closed_destination": "9999"}, "closed_destination",
             f"DID +33140000001 closed: extension 9999 does not exist in {TENANT_A}"),
            ({**hours, "timezone": "Mars/Olympus"}, "timezone",
             "DID +33140000001: time zone 'Mars/Olympus' is unknown; an IANA name like 'Europe/Paris'"),
            ({"hours": "mon-fri 09:00-17:00"}, "hours",
             "DID +33140000001: --hours needs --closed-destination (where calls go outside them)"),
            ({"number": "abc"}, "number",
             "DID 'abc': digits with an optional leading +, up to 32 characters")):
        reply = post(client, csrf, f"/dids?tenant={TENANT_A}", **{"number": "+33140000001",
                                                                  "destination": "1001", **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) == message, values
    assert client.delete(f"/api/v1/dids/+33140000000?tenant={TENANT_A}", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/routes/national?tenant={TENANT_A}", headers=headers).status_code == 200
    assert client.delete(f"/api/v1/trunks/provider?tenant={TENANT_A}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/trunks?tenant={TENANT_A}").get_json()["trunks"] == []


def test_a_tenant_administrator_manages_only_its_own_trunks(logged_in: LoggedIn) -> None:
    root, root_csrf = logged_in("root")
    assert post(root, root_csrf, f"/trunks?tenant={TENANT_B}", tenant=TENANT_B, **TRUNK).status_code == 302
    alice, csrf = logged_in("alice")
    assert alice.get(f"/trunks?tenant={TENANT_B}").status_code == 403
    assert alice.get(f"/api/v1/trunks?tenant={TENANT_B}").status_code == 403
    assert alice.delete(f"/api/v1/trunks/provider?tenant={TENANT_B}",
                        headers={"X-CSRF-Token": csrf}).status_code == 403
    assert 'data-trunk="provider"' not in alice.get("/trunks").get_data(as_text=True)  # its own: none
    assert post(alice, csrf, "/trunks", **TRUNK).status_code == 302
    assert [t["tenant_domain"] for t in alice.get("/api/v1/trunks").get_json()["trunks"]] == [TENANT_A]


def test_a_ring_group_through_the_form_and_the_api(logged_in: LoggedIn) -> None:
    client, csrf = logged_in("alice")  # a tenant administrator, in its own tenant
    headers = {"X-CSRF-Token": csrf}
    for extension in ("1001", "1002"):
        assert client.post("/api/v1/users", json={"extension": extension, "password": "secret1"},
                           headers=headers).status_code == 201
    reply = post(client, csrf, "/ring-groups", number="600", members="1001, 1002", strategy="sequential",
                 ring_seconds="15", final_destination="1001", name="Sales")
    assert reply.status_code == 302, reply.get_data(as_text=True)
    assert 'data-group="600"' in client.get("/ring-groups").get_data(as_text=True)
    for values, field, message in (
            ({"members": "1001, 1999"}, "members", f"ring group 601: member 1999 is no user of {TENANT_A}"),
            ({"members": ""}, "members", "ring group 601: no member"),
            ({"ring_seconds": "1"}, "ring_seconds",
             "ring group 601: ring seconds 1 is out of range: 5 to 300 s"),
            ({"strategy": "random"}, "strategy",
             "ring group 601: unknown strategy 'random': simultaneous or sequential"),
            ({"final_destination": "1999"}, "final_destination",
             f"final destination: extension 1999 does not exist in {TENANT_A}")):
        reply = post(client, csrf, "/ring-groups", **{"number": "601", "members": "1001", **values})
        assert reply.status_code == 400, values
        assert field_error(reply.get_data(as_text=True), field) == message, values
    assert post(client, csrf, "/ring-groups/600", members="1002", strategy="simultaneous",
                ring_seconds="20").status_code == 302
    [group] = client.get("/api/v1/ring-groups").get_json()["ring_groups"]
    assert (group["members"], group["strategy"], group["final_destination"], group["tenant_domain"]) == (
        ["1002"], "simultaneous", None, TENANT_A)
    reply = client.put("/api/v1/ring-groups/600", json={"members": ["1001", "1002"]}, headers=headers)
    assert reply.get_json()["members"] == ["1001", "1002"]
    assert client.get(f"/api/v1/ring-groups?tenant={TENANT_B}").status_code == 403
    assert client.delete("/api/v1/ring-groups/600", headers=headers).get_json() == {"deleted": "600"}

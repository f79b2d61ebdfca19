"""Two tenants in `pbx allinone`, each with extensions 1001 and 1002 (issue 13): pjsua2 phones
register to their own tenant's domain; each 1001 reaches its own 1002, never the other
tenant's; naming the other tenant's domain is refused, and so is a phone of a domain no tenant
has. Tenants are made with `pbx tenant add` as an administrator would."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PbxServer, free_port, pbx, running_pbx
from tests.integration.peers.pjsua2_phone import Pjsua2Phone

pytestmark = pytest.mark.integration

TENANTS = ("a.example", "b.example")
EXTENSIONS = ("1001", "1002")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PbxServer]:
    data_dir = tmp_path / "data"
    directory = ("--data-dir", str(data_dir))
    pbx("init", *directory)
    passwords = {}
    for tenant in TENANTS:
        assert pbx("tenant", "add", tenant, *directory).stdout.strip() == f"added tenant {tenant}"
        for extension in EXTENSIONS:
            passwords[f"{extension}@{tenant}"] = password = secrets.token_urlsafe(12)
            pbx("user", "add", extension, f"--password={password}", "--tenant", tenant, *directory)
    with running_pbx(data_dir) as started:
        started.passwords.update(passwords)
        yield started


@contextlib.contextmanager
def tenant_phones(server: PbxServer) -> Iterator[dict[str, Pjsua2Phone]]:
    phones: dict[str, Pjsua2Phone] = {}
    try:
        for user in server.passwords:
            extension, _, tenant = user.partition("@")
            if not tenant:
                continue
            phones[user] = Pjsua2Phone(user=extension, password=server.passwords[user], server=server.address,
                                       port=free_port(), domain=tenant)
            assert phones[user].register()["code"] == 200, user
        yield phones
    finally:
        for phone in phones.values():
            phone.close()


def rang(phone: Pjsua2Phone) -> int:
    return sum(event.get("event") == "incoming" for event in phone.seen())


def test_each_tenants_1001_reaches_its_own_1002_and_never_the_others(server: PbxServer) -> None:
    print(pbx("tenant", "list", "--data-dir", str(server.data_dir)).stdout)
    listing = json.loads(pbx("tenant", "list", "--json", "--data-dir", str(server.data_dir)).stdout)
    assert [(t["domain"], t["default"], t["users"]) for t in listing] == [
        ("a.example", False, 2), ("b.example", False, 2), ("pbx.local", True, 0)]

    with tenant_phones(server) as phones:
        for tenant, other in (TENANTS, TENANTS[::-1]):
            caller, callee = phones[f"1001@{tenant}"], phones[f"1002@{tenant}"]
            caller.send("call", uri=f"sip:1002@{tenant}")
            incoming = callee.wait_for("incoming", timeout=10)
            assert "1001@" in incoming["remote_uri"], incoming
            callee.send("answer")
            confirmed = caller.wait_for("call_state", lambda e: e["state"] in ("CONFIRMED", "DISCONNECTED"))
            assert confirmed["state"] == "CONFIRMED", confirmed
            caller.send("hangup")
            callee.wait_for("call_state", lambda e: e["state"] == "DISCONNECTED")

            # The other tenant's 1002, named by its domain: refused, and it never rings.
            caller.send("call", uri=f"sip:1002@{other}")
            refused = caller.wait_for("call_state", lambda e: (e["index"], e["state"]) == (1, "DISCONNECTED"))
            print(f"1001@{tenant} calling 1002@{other}: {refused['code']} {refused.get('reason')}")
            assert refused["code"] == 403, refused
        assert {user: rang(phone) for user, phone in phones.items()} == {
            "1001@a.example": 0, "1002@a.example": 1, "1001@b.example": 0, "1002@b.example": 1}


def test_a_phone_of_a_domain_no_tenant_has_is_refused(server: PbxServer) -> None:
    stranger = Pjsua2Phone(user="1001", password=server.passwords["1001@a.example"], server=server.address,
                           port=free_port(), domain="c.example")
    try:
        refused = stranger.register()
    finally:
        stranger.close()
    print(f"REGISTER for c.example: {refused}")
    assert refused["code"] == 403

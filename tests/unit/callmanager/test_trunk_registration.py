"""The trunk's REGISTER client: challenge answered once, refresh before expiry, failure and
retry, with the provider's answers as bytes and the clock passed in."""

from __future__ import annotations

import itertools

from pbx_services.callmanager.trunk_registration import (
    FAILED,
    REGISTERED,
    REGISTERING,
    RegistrationClient,
    TrunkAccount,
)
from pbx_services.sip.digest import DigestCredentials, compute_ha1, verify_response
from pbx_services.sip.message import SipRequest, SipResponse, parse_message

ACCOUNT = TrunkAccount(host="127.0.0.1", port=5099, transport="UDP", username="acme", password="s3cret-trunk")
CONTACT = "sip:acme@127.0.0.1:5060"


def _client() -> RegistrationClient:
    branches = itertools.count(1)
    return RegistrationClient(account=ACCOUNT, contact=CONTACT, call_id="reg-1", from_tag="ft",
                              via=lambda: f"SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{next(branches)}",
                              make_cnonce=lambda: "cn0", expires=600, retry_interval=30.0)


def _answer(request: SipRequest, status: str, *extra: str) -> SipResponse:
    """The provider's answer (sipp's, as the integration test's trunk_registrar.xml sends it)."""
    lines = [f"SIP/2.0 {status}", f"Via: {request.headers.get('Via')}",
             f"From: {request.headers.get('From')}", f"To: {request.headers.get('To')};tag=prov1",
             f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}", *extra,
             "Content-Length: 0"]
    response = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(response, SipResponse)
    return response


CHALLENGE = 'WWW-Authenticate: Digest realm="provider.example", nonce="4e1f0b2d1", algorithm=MD5, qop="auth"'


def test_the_first_register_names_the_account_and_our_contact() -> None:
    client = _client()
    register = client.start(0.0)
    assert client.status.phase is REGISTERING
    assert bytes(register.serialize()).startswith(b"REGISTER sip:127.0.0.1:5099 SIP/2.0\r\n")
    assert register.headers.get("From") == "<sip:acme@127.0.0.1>;tag=ft"
    assert register.headers.get("Contact") == f"<{CONTACT}>"
    assert (register.headers.get("CSeq"), register.headers.get("Expires")) == ("1 REGISTER", "600")


def test_a_challenge_is_answered_with_a_digest_the_provider_verifies_then_refreshed_halfway() -> None:
    client = _client()
    register = client.start(0.0)
    again = client.handle_response(_answer(register, "401 Unauthorized", CHALLENGE), 0.1)
    assert again is not None and again.headers.get("CSeq") == "2 REGISTER"
    credentials = DigestCredentials.parse(again.headers.get("Authorization") or "")
    assert (credentials.username, credentials.realm, credentials.uri) == (
        "acme", "provider.example", "sip:127.0.0.1:5099")
    ha1 = compute_ha1("acme", "provider.example", "s3cret-trunk", credentials.algorithm)
    assert verify_response(credentials, method="REGISTER", ha1=ha1)

    assert client.handle_response(_answer(again, "200 OK", f"Contact: <{CONTACT}>;expires=120"), 0.2) is None
    assert client.status.phase is REGISTERED and client.status.expires_at == 120.2
    assert client.next_timer() == 60.2
    assert client.handle_timer(60.0) is None
    refresh = client.handle_timer(60.2)
    assert refresh is not None and refresh.headers.get("Authorization") is None
    assert client.status.phase is REGISTERING


def test_a_second_challenge_for_the_same_credentials_fails_the_registration() -> None:
    client = _client()
    register = client.start(0.0)
    again = client.handle_response(_answer(register, "401 Unauthorized", CHALLENGE), 0.1)
    assert again is not None
    assert client.handle_response(_answer(again, "401 Unauthorized", CHALLENGE), 0.2) is None
    assert (client.status.phase, client.status.code) == (FAILED, 401)


def test_a_refusal_fails_with_the_providers_status_and_reason_and_is_retried() -> None:
    client = _client()
    register = client.start(0.0)
    assert client.handle_response(_answer(register, "403 Forbidden"), 0.5) is None
    assert (client.status.phase, client.status.code, client.status.reason) == (FAILED, 403, "Forbidden")
    assert client.next_timer() == 30.5
    retry = client.handle_timer(30.5)
    assert retry is not None and retry.headers.get("CSeq") == "2 REGISTER"
    assert client.status.phase is REGISTERING


def test_no_answer_is_a_408_failure() -> None:
    client = _client()
    register = client.start(0.0)
    assert client.handle_response(_answer(register, "408 Request Timeout"), 32.0) is None
    assert (client.status.phase, client.status.code) == (FAILED, 408)

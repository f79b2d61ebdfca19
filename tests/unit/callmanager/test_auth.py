"""Digest authentication of REGISTER and INVITE: which credentials count, which are refused, how."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.users import UserService
from pbx_services.sip.digest import (
    DigestAlgorithm,
    DigestChallenge,
    NonceManager,
    build_authorization,
    build_challenges,
)
from pbx_services.sip.message import SipResponse

from .conftest import DOMAIN, OutgoingCall, Pbx, Phone, crlf, redact

# RFC 3261 20.43: warning-value = warn-code SP warn-agent SP warn-text, warn-text a quoted-string.
WARNING_VALUE = re.compile(r'\d{3} [^ ]+ "(?:[^"\\]|\\.)*"')


def challenge_for(phone: Phone, call_id: str = "auth-1@10.0.0.1") -> SipResponse:
    phone.send(phone.register_request(call_id=call_id, cseq=1))
    return phone.pop_response(401)


def register_with(phone: Phone, authorization: str, *, call_id: str = "auth-1@10.0.0.1", cseq: int = 2,
                  contacts: list[str] | None = None) -> SipResponse:
    phone.send(phone.register_request(call_id=call_id, cseq=cseq, authorization=authorization,
                                      contacts=contacts))
    return phone.pop_response()


def test_only_the_configured_algorithms_are_offered(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(algorithms=(DigestAlgorithm.MD5,))
    alice = pbx.phone("100", "10.0.0.1", 5062)

    challenge = challenge_for(alice)

    assert [DigestChallenge.parse(v).algorithm for v in challenge.headers.get_all("WWW-Authenticate")] == [
        DigestAlgorithm.MD5]


def test_credentials_with_an_algorithm_not_offered_are_challenged(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(algorithms=(DigestAlgorithm.SHA256,))
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = challenge_for(alice)
    sha256 = DigestChallenge.parse(challenge.headers.get_all("WWW-Authenticate")[0])
    md5 = dataclasses.replace(sha256, algorithm=DigestAlgorithm.MD5)
    authorization = build_authorization(md5, username="100", password="alice-pw-100", method="REGISTER",
                                        uri="sip:pbx.local", cnonce="c1", nc=1)

    response = register_with(alice, authorization)

    assert response.status_code == 401
    assert pbx.core.location.binding_count() == 0


def test_rfc2069_credentials_without_qop_are_accepted_once(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = DigestChallenge.parse(challenge_for(alice).headers.get_all("WWW-Authenticate")[1])
    authorization = build_authorization(dataclasses.replace(challenge, qop=()), username="100",
                                        password="alice-pw-100", method="REGISTER", uri="sip:pbx.local",
                                        cnonce="unused", nc=1)
    assert "qop" not in authorization and "nc=" not in authorization

    assert register_with(alice, authorization).status_code == 200
    # Without a nonce-count a replay cannot be told from a new request: the nonce is good once.
    eve = pbx.phone("100", "198.51.100.66", 5060)
    replayed = register_with(eve, authorization, cseq=3, contacts=["<sip:100@198.51.100.66:5060>"])

    assert replayed.status_code == 401
    assert [b.contact for b in pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)] == [
        "sip:100@10.0.0.1:5062"]


def test_nonce_counts_may_skip_but_not_go_back(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = challenge_for(alice)

    statuses = []
    for cseq, nc in ((2, 1), (3, 5), (4, 3), (5, 6)):
        authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local", nc=nc)
        statuses.append(register_with(alice, authorization, cseq=cseq).status_code)

    assert statuses == [200, 200, 401, 200]


def test_a_nonce_made_with_another_secret_is_challenged_and_is_no_failure(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    forged_nonce = NonceManager(b"another secret of 32 bytes......", 300).make_nonce(pbx.now)
    [md5] = build_challenges(DOMAIN, forged_nonce, algorithms=[DigestAlgorithm.MD5])
    forged = DigestChallenge.parse(md5)

    for cseq in range(1, 11):
        authorization = build_authorization(forged, username="100", password="alice-pw-100",
                                            method="REGISTER", uri="sip:pbx.local", cnonce="c", nc=cseq)
        response = register_with(alice, authorization, cseq=cseq)
        assert response.status_code == 401
        assert not any(DigestChallenge.parse(v).stale for v in response.headers.get_all("WWW-Authenticate"))

    assert alice.register().status_code == 200


def test_a_response_computed_for_another_method_is_wrong(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = challenge_for(alice)

    response = register_with(alice, alice.credentials(challenge, "INVITE", "sip:pbx.local"))

    assert response.status_code == 401
    assert pbx.core.location.binding_count() == 0


def test_register_needs_authorization_not_proxy_authorization(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = challenge_for(alice)
    authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local")

    alice.send(alice.register_request(call_id="auth-1@10.0.0.1", cseq=2,
                                      extra=[f"Proxy-Authorization: {authorization}"]))

    assert alice.pop_response().status_code == 401


def test_invite_needs_proxy_authorization_not_authorization(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    call = OutgoingCall(request_uri="sip:200@pbx.local", call_id="auth-inv@10.0.0.1", tag="t1")
    alice.send(alice.invite_request(call, cseq=1))
    challenge = alice.pop_response(407)
    assert redact(challenge.serialize()).splitlines()[6:8] == [
        'Proxy-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=SHA-256, qop="auth"',
        'Proxy-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=MD5, qop="auth"',
    ]
    authorization = alice.credentials(challenge, "INVITE", call.request_uri)

    alice.send(alice.invite_request(call, cseq=2, extra=[f"Authorization: {authorization}"]))

    assert alice.pop_response().status_code == 407


def test_a_basic_authorization_is_ignored_and_challenged(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = register_with(alice, "Basic MTAwOmFsaWNlLXB3LTEwMA==", cseq=1)

    assert response.status_code == 401


def test_a_malformed_authorization_is_refused_with_400_saying_what_is_wrong(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    alice.send(alice.register_request(call_id="auth-1@10.0.0.1", cseq=1,
                                      authorization='Digest username="100", realm="pbx.local"'))

    received = alice.pop()
    assert received.message.status_code == 400  # type: ignore[union-attr]
    assert "Digest credentials: missing parameter 'nonce'" in (received.message.headers.get("Warning") or "")
    assert pbx.core.stack.counters["refused_requests"] == 1


def test_the_warning_for_malformed_credentials_is_a_valid_quoted_string(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    alice.send(alice.register_request(call_id="auth-1@10.0.0.1", cseq=1,
                                      authorization='Digest username="100", it\'s'))

    response = alice.pop_response(400)
    warning = response.headers.get("Warning") or ""
    assert WARNING_VALUE.fullmatch(warning), warning


def test_a_user_added_later_can_register_once_the_directory_refreshes(
        pbx: Pbx, sessions: sessionmaker[Session]) -> None:
    dave = pbx.phone("400", "10.0.0.4", 5062, password="dave-pw-400")
    assert dave.register().status_code == 401

    UserService(sessions=sessions, default_domain=DOMAIN).add_user("400", "dave-pw-400")
    pbx.advance(10)
    pbx.housekeeping()

    assert dave.register().status_code == 200


def test_a_deleted_user_stops_authenticating_once_the_directory_refreshes(
        pbx: Pbx, sessions: sessionmaker[Session]) -> None:
    carol = pbx.phone("300", "10.0.0.3", 5062)
    assert carol.register().status_code == 200

    UserService(sessions=sessions, default_domain=DOMAIN).delete_user("300")
    pbx.advance(10)
    pbx.housekeeping()

    assert carol.register().status_code == 401


def test_credentials_of_the_realm_asked_for_are_picked_among_several(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    challenge = challenge_for(alice)
    ours = alice.credentials(challenge, "REGISTER", "sip:pbx.local")
    theirs = ours.replace('realm="pbx.local"', 'realm="elsewhere.example"')

    alice.send(crlf(
        "REGISTER sip:pbx.local SIP/2.0\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKtwocreds\n"
        "From: <sip:100@pbx.local>;tag=x1\n"
        "To: <sip:100@pbx.local>\n"
        "Call-ID: auth-1@10.0.0.1\n"
        "CSeq: 2 REGISTER\n"
        "Contact: <sip:100@10.0.0.1:5062>\n"
        f"Authorization: {theirs}\n"
        f"Authorization: {ours}\n"
        "Content-Length: 0\n\n"))

    assert alice.pop_response().status_code == 200

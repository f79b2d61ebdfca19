"""Policy: answers that never tell whether an extension exists, and blocking password guessers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pbx_services.callmanager.policy import AuthFailureLimiter
from pbx_services.cluster.state.auth_failures import InMemoryAuthFailures
from pbx_services.sip.message import SipResponse

from .conftest import OutgoingCall, Pbx, Phone, redact

# -- non-disclosure -----------------------------------------------------------------------------


def register_with_password(phone: Phone, password: str, *, call_id: str) -> tuple[bytes, bytes]:
    """REGISTER without, then with credentials; both answers as bytes."""
    phone.send(phone.register_request(call_id=call_id, cseq=1))
    challenge = phone.pop()
    assert isinstance(challenge.message, SipResponse)
    authorization = phone.credentials(challenge.message, "REGISTER", f"sip:{phone.domain}", password=password)
    phone.send(phone.register_request(call_id=call_id, cseq=2, authorization=authorization))
    return challenge.data, phone.pop().data


def test_unknown_extension_and_wrong_password_get_the_same_answers_to_register(pbx: Pbx) -> None:
    known = pbx.phone("100", "10.0.0.1", 5062)
    unknown = pbx.phone("999", "10.0.0.1", 5062)

    known_answers = register_with_password(known, "wrong-password", call_id="probe@10.0.0.1")
    unknown_answers = register_with_password(unknown, "wrong-password", call_id="probe@10.0.0.1")

    for known_data, unknown_data in zip(known_answers, unknown_answers, strict=True):
        assert redact(unknown_data).replace("999", "100") == redact(known_data)
    assert redact(known_answers[1]).splitlines()[0] == "SIP/2.0 401 Unauthorized"


def test_an_unknown_username_in_credentials_is_answered_like_a_wrong_password(pbx: Pbx) -> None:
    """The same REGISTER, only the digest username differs."""
    phone = pbx.phone("100", "10.0.0.1", 5062)
    answers = []
    for username in ("100", "999"):
        phone.send(phone.register_request(call_id="probe@10.0.0.1", cseq=1))
        challenge = phone.pop_response(401)
        authorization = phone.credentials(challenge, "REGISTER", "sip:pbx.local", username=username,
                                          password="guess-1234")
        phone.send(phone.register_request(call_id="probe@10.0.0.1", cseq=2, authorization=authorization))
        answers.append(redact(phone.pop().data))

    assert answers[0] == answers[1]
    assert answers[0].startswith("SIP/2.0 401 Unauthorized\r\n")


def invite_with_password(phone: Phone, callee: str, password: str, call_id: str) -> tuple[bytes, bytes]:
    call = OutgoingCall(request_uri=f"sip:{callee}@pbx.local", call_id=call_id, tag="probe-tag")
    phone.send(phone.invite_request(call, cseq=1))
    assert phone.pop_response(100)
    challenge = phone.pop()
    assert isinstance(challenge.message, SipResponse) and challenge.message.status_code == 407
    authorization = phone.credentials(challenge.message, "INVITE", call.request_uri, password=password)
    phone.send(phone.invite_request(call, cseq=2, authorization=authorization))
    assert phone.pop_response(100)
    return challenge.data, phone.pop().data


def test_unknown_caller_and_wrong_password_get_the_same_answers_to_invite(pbx: Pbx) -> None:
    known = pbx.phone("100", "10.0.0.1", 5062)
    unknown = pbx.phone("999", "10.0.0.1", 5062)

    known_answers = invite_with_password(known, "200", "wrong-password", "probe-a@10.0.0.1")
    unknown_answers = invite_with_password(unknown, "200", "wrong-password", "probe-a@10.0.0.1")

    for known_data, unknown_data in zip(known_answers, unknown_answers, strict=True):
        assert redact(unknown_data).replace("999", "100") == redact(known_data)
    assert redact(known_answers[1]).splitlines()[0] == "SIP/2.0 407 Proxy Authentication Required"


def test_an_unknown_callee_is_only_revealed_to_an_authenticated_caller(pbx: Pbx) -> None:
    stranger = pbx.phone("999", "10.0.0.5", 5062)

    _, answer = invite_with_password(stranger, "555", "guess-1234", "probe-b@10.0.0.5")

    assert answer.startswith(b"SIP/2.0 407 ")


# -- blocking -----------------------------------------------------------------------------------


def fail(phone: Phone, times: int) -> list[int]:
    """REGISTER with a wrong password `times` times; the status of each final answer."""
    statuses = []
    for _ in range(times):
        statuses.append(phone.register().status_code)
    return statuses


def test_a_source_is_blocked_after_the_failure_limit_even_with_the_right_password(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")

    assert fail(guesser, 5) == [401, 401, 401, 401, 403]

    guesser.password = "alice-pw-100"
    response = guesser.register()
    assert response.status_code == 403
    assert response.reason == "Forbidden"
    assert pbx.core.location.binding_count() == 0
    assert pbx.core.limiter.blocked_count(pbx.now) == 1


def test_a_blocked_source_is_refused_without_a_challenge(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")
    fail(guesser, 5)

    guesser.send(guesser.register_request(call_id="after-block@10.0.0.66", cseq=1))

    received = guesser.pop()
    assert redact(received.data) == (
        "SIP/2.0 403 Forbidden\r\n"
        "Via: SIP/2.0/UDP 10.0.0.66:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.66\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:100@pbx.local>;tag=<tag>\r\n"
        "Call-ID: after-block@10.0.0.66\r\n"
        "CSeq: 1 REGISTER\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_a_blocked_source_cannot_call_either(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")
    fail(guesser, 5)
    guesser.password = "alice-pw-100"
    call = OutgoingCall(request_uri="sip:200@pbx.local", call_id="blocked-call@10.0.0.66", tag="t1")

    guesser.send(guesser.invite_request(call, cseq=1))

    response = guesser.pop_response()
    assert response.status_code == 403
    assert response.to.tag is not None


def test_another_source_still_registers_while_one_is_blocked(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")
    fail(guesser, 5)
    alice = pbx.phone("100", "10.0.0.1", 5062)

    assert alice.register().status_code == 200


def test_the_block_lifts_after_block_seconds(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")
    fail(guesser, 5)
    guesser.password = "alice-pw-100"

    pbx.advance(pbx.settings.block_seconds - 1)
    assert guesser.register().status_code == 403
    pbx.advance(1)
    assert guesser.register().status_code == 200


def test_failures_spread_beyond_the_window_do_not_add_up(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")

    assert fail(guesser, 4) == [401] * 4
    pbx.advance(pbx.settings.auth_failure_window)
    assert fail(guesser, 4) == [401] * 4
    pbx.advance(pbx.settings.auth_failure_window)
    assert fail(guesser, 5) == [401] * 4 + [403]


def test_a_success_between_guesses_does_not_reset_the_count(pbx: Pbx) -> None:
    """An attacker with one valid account must not be able to keep guessing another's password."""
    mallory = pbx.phone("300", "10.0.0.66", 5062)
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")

    statuses = []
    for _ in range(3):
        statuses += fail(guesser, 2)
        statuses.append(mallory.register().status_code)

    assert statuses == [401, 401, 200, 401, 401, 200, 403, 403, 403]


def test_trusted_networks_are_never_blocked(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(trusted_networks=("10.1.0.0/16",))
    office = pbx.phone("100", "10.1.2.3", 5062, password="guess-1234")

    assert fail(office, 20) == [401] * 20

    office.password = "alice-pw-100"
    assert office.register().status_code == 200
    assert pbx.core.limiter.blocked_count(pbx.now) == 0


def test_an_address_next_to_a_trusted_network_is_blocked(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(trusted_networks=("10.1.0.0/16",))
    outsider = pbx.phone("100", "10.2.0.1", 5062, password="guess-1234")

    assert fail(outsider, 5)[-1] == 403


def test_challenges_and_stale_nonces_are_not_failures(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    for cseq in range(1, 11):
        alice.send(alice.register_request(call_id="c@10.0.0.1", cseq=cseq))
        assert alice.pop_response().status_code == 401
    for cseq in range(11, 21):
        alice.send(alice.register_request(call_id="c@10.0.0.1", cseq=cseq))
        challenge = alice.pop_response(401)
        pbx.advance(pbx.settings.nonce_ttl + 1)
        authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local")
        alice.send(alice.register_request(call_id="c@10.0.0.1", cseq=cseq + 100, authorization=authorization))
        assert "stale=true" in (alice.pop_response(401).headers.get("WWW-Authenticate") or "")

    assert alice.register().status_code == 200
    assert pbx.core.limiter.blocked_count(pbx.now) == 0


def test_housekeeping_forgets_blocks_that_ended(pbx: Pbx) -> None:
    guesser = pbx.phone("100", "10.0.0.66", 5062, password="guess-1234")
    fail(guesser, 5)
    assert pbx.core.limiter.blocked_count(pbx.now) == 1

    pbx.advance(pbx.settings.block_seconds)
    pbx.housekeeping()

    assert pbx.core.limiter.blocked_count(pbx.now) == 0
    assert pbx.core.limiter._store._blocked_until == {}  # type: ignore[attr-defined]


# -- the limiter on its own ---------------------------------------------------------------------


def limiter(**overrides: object) -> AuthFailureLimiter:
    settings: dict[str, object] = {"limit": 3, "window": 60.0, "block_seconds": 600.0}
    settings.update(overrides)
    return AuthFailureLimiter(**settings)  # type: ignore[arg-type]


def test_limiter_blocks_on_the_limit_th_failure_within_the_window() -> None:
    policy = limiter()

    assert [policy.record_failure("192.0.2.1", t) for t in (0.0, 10.0, 20.0)] == [False, False, True]
    assert policy.is_blocked("192.0.2.1", 20.0)
    assert policy.is_blocked("192.0.2.1", 619.9)
    assert not policy.is_blocked("192.0.2.1", 620.0)
    assert not policy.is_blocked("192.0.2.2", 20.0)


def test_limiter_failures_older_than_the_window_are_forgotten() -> None:
    policy = limiter()

    assert [policy.record_failure("192.0.2.1", t) for t in (0.0, 30.0, 60.0, 70.0)] == [
        False, False, False, True]


@pytest.mark.parametrize("trusted, address, expected", [
    ("10.0.0.0/8", "10.200.1.1", False),
    ("10.0.0.0/8", "11.0.0.1", True),
    ("2001:db8::/32", "2001:db8::5", False),
    ("2001:db8::/32", "2001:db9::5", True),
    ("192.0.2.7", "192.0.2.7", False),
    ("192.0.2.0/24", "not-an-address", True),
])
def test_limiter_trusted_networks(trusted: str, address: str, expected: bool) -> None:
    policy = limiter(limit=1, trusted_networks=[trusted])

    assert policy.record_failure(address, 0.0) is expected
    assert policy.is_blocked(address, 0.0) is expected


def test_limiter_purge_forgets_old_failures_and_ended_blocks() -> None:
    policy = limiter()
    policy.record_failure("192.0.2.1", 0.0)
    for t in (0.0, 1.0, 2.0):
        policy.record_failure("192.0.2.2", t)

    policy.purge(59.0)
    assert set(policy._store._failures) == {"192.0.2.1"}
    policy.purge(60.0)
    assert policy._store._failures == {}
    assert policy.blocked_count(60.0) == 1
    policy.purge(602.0)
    assert policy.blocked_count(602.0) == 0
    assert policy._store._blocked_until == {}


def test_limiter_tracks_a_bounded_number_of_sources() -> None:
    policy = limiter(store=InMemoryAuthFailures(max_tracked=3))

    for i in range(10):
        policy.record_failure(f"192.0.2.{i}", float(i))

    assert len(policy._store._failures) == 3
    assert set(policy._store._failures) == {"192.0.2.7", "192.0.2.8", "192.0.2.9"}

"""The registrar (RFC 3261 section 10.3) of a real Call Manager, driven by REGISTER bytes."""

from __future__ import annotations

from collections.abc import Callable
from email.utils import formatdate

from pbx_services.sip.digest import DigestAlgorithm, DigestChallenge
from pbx_services.sip.message import SipResponse

from .conftest import DOMAIN, OTHER_DOMAIN, START, WALL_OFFSET, Pbx, Phone, crlf, redact


def contacts_of(response: SipResponse) -> dict[str, str | None]:
    """Contact URI -> its expires parameter, as the 200 lists them."""
    return {str(c.uri): c.params.get("expires") for c in response.contacts}


def query(phone: Phone) -> dict[str, str | None]:
    """The bindings of the phone's AOR, from a REGISTER without Contact (fresh challenge and all)."""
    response = phone.register(contacts=[])
    assert response.status_code == 200
    return contacts_of(response)


# -- challenge and authentication ---------------------------------------------------------------


def test_register_without_credentials_is_challenged_sha256_first_then_md5(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))

    received = alice.pop()
    assert redact(received.data) == (
        "SIP/2.0 401 Unauthorized\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:100@pbx.local>;tag=<tag>\r\n"
        "Call-ID: reg-1@10.0.0.1\r\n"
        "CSeq: 1 REGISTER\r\n"
        'WWW-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=SHA-256, qop="auth"\r\n'
        'WWW-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=MD5, qop="auth"\r\n'
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert received.transmit.destination == ("10.0.0.1", 5062)
    assert received.transmit.transport == "UDP"
    challenges = [DigestChallenge.parse(v) for v in received.message.headers.get_all("WWW-Authenticate")]
    assert [c.algorithm for c in challenges] == [DigestAlgorithm.SHA256, DigestAlgorithm.MD5]
    assert {c.realm for c in challenges} == {DOMAIN}
    assert challenges[0].nonce == challenges[1].nonce
    assert not any(c.stale for c in challenges)
    assert pbx.core.location.binding_count() == 0


def test_retransmitted_register_gets_the_same_answer(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    request = alice.register_request(call_id="reg-1@10.0.0.1", cseq=1)

    alice.send(request)
    first = alice.pop()
    alice.send(request)

    assert alice.pop().data == first.data
    alice.assert_silent()


def test_register_with_md5_credentials_binds_the_contact(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(algorithm=DigestAlgorithm.MD5)

    assert redact(response.serialize()) == (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:100@pbx.local>;tag=<tag>\r\n"
        f"Call-ID: {alice.register_call_id}\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Contact: <sip:100@10.0.0.1:5062>;expires=3600\r\n"
        "Date: <date>\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert response.headers.get("Date") == formatdate(START + WALL_OFFSET, usegmt=True)
    [binding] = pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)
    assert binding.source == ("10.0.0.1", 5062)
    assert binding.transport == "UDP"
    assert binding.user_agent == "TestPhone/1.0"
    assert binding.call_id == alice.register_call_id
    assert binding.cseq == 2


def test_register_with_sha256_credentials_binds_the_contact(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(algorithm=DigestAlgorithm.SHA256)

    assert response.status_code == 200
    assert contacts_of(response) == {"sip:100@10.0.0.1:5062": "3600"}


def test_the_to_tag_of_the_200_differs_from_the_401s(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))
    challenge = alice.pop_response(401)
    authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local")

    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=2, authorization=authorization))

    assert alice.pop_response(200).to.tag != challenge.to.tag


def test_wrong_password_is_challenged_again(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062, password="not-the-password")

    response = alice.register()

    assert response.status_code == 401
    assert pbx.core.location.binding_count() == 0


def test_credentials_for_another_realm_are_challenged(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))
    challenge = alice.pop_response(401)
    value = challenge.headers.get_all("WWW-Authenticate")[1].replace(f'realm="{DOMAIN}"',
                                                                     f'realm="{OTHER_DOMAIN}"')
    other = SipResponse(401, headers=[("WWW-Authenticate", value)])
    authorization = alice.credentials(other, "REGISTER", "sip:pbx.local", password="other-pw-100")

    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=2, authorization=authorization))

    response = alice.pop_response(401)
    assert 'realm="pbx.local"' in response.headers.get_all("WWW-Authenticate")[0]
    assert pbx.core.location.binding_count() == 0
    # Not counted as a failure: the phone only answered a realm we did not ask about.
    assert pbx.core.limiter.blocked_count(pbx.now) == 0


def test_a_user_of_another_tenant_registers_in_its_own_realm(pbx: Pbx) -> None:
    other = pbx.phone("100", "10.0.0.9", 5062, password="other-pw-100", domain=OTHER_DOMAIN)
    ours = pbx.phone("100", "10.0.0.1", 5062)

    other.send(other.register_request(call_id="reg-9@10.0.0.9", cseq=1))
    challenge = other.pop_response(401)
    assert {DigestChallenge.parse(v).realm for v in challenge.headers.get_all("WWW-Authenticate")} == {
        OTHER_DOMAIN}
    other.challenge, other.nc, other.register_cseq = challenge, 0, 1
    assert other.reregister().status_code == 200
    assert ours.register().status_code == 200

    assert [b.contact for b in pbx.core.location.lookup("sip:100@other.example", pbx.wall)] == [
        "sip:100@10.0.0.9:5062"]
    assert [b.contact for b in pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)] == [
        "sip:100@10.0.0.1:5062"]


def test_the_password_of_the_same_extension_in_another_tenant_does_not_work(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062, password="other-pw-100")

    assert alice.register().status_code == 401


def test_authenticated_as_one_extension_registering_another_is_forbidden(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(to_user="200")

    assert redact(response.serialize()).splitlines()[0] == "SIP/2.0 403 Not Allowed To Register This AOR"
    assert response.to.tag is not None
    assert response.headers.get("Contact") is None
    assert pbx.core.location.binding_count() == 0


def test_a_stale_nonce_is_challenged_with_stale_true(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))
    challenge = alice.pop_response(401)
    pbx.advance(pbx.settings.nonce_ttl + 1)

    authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local")
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=2, authorization=authorization))

    stale = alice.pop_response(401)
    assert redact(stale.serialize()).splitlines()[6:8] == [
        'WWW-Authenticate: Digest realm="pbx.local", nonce="<nonce>", stale=true, algorithm=SHA-256, '
        'qop="auth"',
        'WWW-Authenticate: Digest realm="pbx.local", nonce="<nonce>", stale=true, algorithm=MD5, qop="auth"',
    ]
    fresh = DigestChallenge.parse(stale.headers.get_all("WWW-Authenticate")[0]).nonce
    assert fresh != DigestChallenge.parse(challenge.headers.get_all("WWW-Authenticate")[0]).nonce
    assert pbx.core.location.binding_count() == 0
    # The fresh nonce works, and a stale nonce was no failure.
    alice.challenge, alice.nc, alice.register_cseq = stale, 0, 2
    assert alice.reregister(call_id="reg-1@10.0.0.1").status_code == 200


def test_a_nonce_within_its_lifetime_is_accepted_with_the_next_nonce_count(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    assert alice.register().status_code == 200
    pbx.advance(pbx.settings.nonce_ttl - 1)

    assert alice.reregister().status_code == 200


def test_a_replayed_authorization_is_challenged_not_accepted(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))
    challenge = alice.pop_response(401)
    authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local", nc=1)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=2, authorization=authorization))
    assert alice.pop_response().status_code == 200
    attacker = pbx.phone("100", "198.51.100.66", 5060)

    # The same nonce and nonce-count in a new transaction, binding the attacker's contact.
    attacker.send(attacker.register_request(call_id="reg-1@10.0.0.1", cseq=3, authorization=authorization))

    replayed = attacker.pop_response(401)
    assert not any(DigestChallenge.parse(v).stale for v in replayed.headers.get_all("WWW-Authenticate"))
    assert [b.contact for b in pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)] == [
        "sip:100@10.0.0.1:5062"]


# -- bindings -----------------------------------------------------------------------------------


def test_several_contacts_in_one_register(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>", "<sip:100@10.0.0.1:5070;transport=tcp>"])

    assert contacts_of(response) == {"sip:100@10.0.0.1:5062": "3600",
                                     "sip:100@10.0.0.1:5070;transport=tcp": "3600"}
    assert response.headers.get_lines("Contact") == [
        "<sip:100@10.0.0.1:5062>;expires=3600", "<sip:100@10.0.0.1:5070;transport=tcp>;expires=3600"]


def test_contacts_from_several_registers_add_up(pbx: Pbx) -> None:
    desk = pbx.phone("100", "10.0.0.1", 5062)
    mobile = pbx.phone("100", "10.0.0.7", 5080)
    assert desk.register().status_code == 200
    pbx.advance(10)

    response = mobile.register()

    assert contacts_of(response) == {"sip:100@10.0.0.7:5080": "3600", "sip:100@10.0.0.1:5062": "3590"}
    assert {b.source for b in pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)} == {
        ("10.0.0.1", 5062), ("10.0.0.7", 5080)}


def test_a_refresh_with_the_same_call_id_and_a_higher_cseq_extends_the_binding(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    assert alice.register(expires=120).status_code == 200
    pbx.advance(100)

    refreshed = alice.reregister(expires=120)

    assert contacts_of(refreshed) == {"sip:100@10.0.0.1:5062": "120"}
    pbx.advance(119)  # past the first registration's end
    assert query(alice) == {"sip:100@10.0.0.1:5062": "1"}
    pbx.advance(1)
    assert query(alice) == {}


def test_an_out_of_order_cseq_for_the_same_call_id_is_refused_with_500(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    assert alice.register(expires=120).status_code == 200  # CSeq 2

    for cseq in (2, 1):
        response = alice.reregister(cseq=cseq, expires=3000)
        assert response.status_code == 500
        assert response.headers.get("Warning") == (
            '399 pbx-services "REGISTER is out of order for this Call-ID"')

    assert query(alice) == {"sip:100@10.0.0.1:5062": "120"}


def test_a_new_call_id_replaces_the_binding_whatever_its_cseq(pbx: Pbx) -> None:
    """A rebooted phone starts a new Call-ID at CSeq 1 (RFC 3261 10.3 step 7)."""
    alice = pbx.phone("100", "10.0.0.1", 5062)
    assert alice.register(expires=120).status_code == 200
    alice.register_call_id = "rebooted@10.0.0.1"

    response = alice.reregister(cseq=1, expires=600)

    assert contacts_of(response) == {"sip:100@10.0.0.1:5062": "600"}
    [binding] = pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)
    assert (binding.call_id, binding.cseq) == ("rebooted@10.0.0.1", 1)


def test_the_contact_expires_parameter_wins_over_the_expires_header(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=120", "<sip:100@10.0.0.1:5064>"],
                              expires=300)

    assert contacts_of(response) == {"sip:100@10.0.0.1:5064": "300", "sip:100@10.0.0.1:5062": "120"}


def test_without_any_expires_the_default_applies(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(default_expires=1800)
    alice = pbx.phone("100", "10.0.0.1", 5062)

    assert contacts_of(alice.register()) == {"sip:100@10.0.0.1:5062": "1800"}


def test_an_interval_below_the_minimum_is_refused_with_423_and_min_expires(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(expires=59)

    assert redact(response.serialize()) == (
        "SIP/2.0 423 Interval Too Brief\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        "From: <sip:100@pbx.local>;tag=<tag>\r\n"
        "To: <sip:100@pbx.local>;tag=<tag>\r\n"
        f"Call-ID: {alice.register_call_id}\r\n"
        "CSeq: 2 REGISTER\r\n"
        "Min-Expires: 60\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert pbx.core.location.binding_count() == 0


def test_a_too_brief_contact_parameter_is_refused_even_beside_a_good_one(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=30", "<sip:100@10.0.0.1:5064>"],
                              expires=300)

    assert response.status_code == 423
    assert response.headers.get("Min-Expires") == "60"
    assert pbx.core.location.binding_count() == 0


def test_exactly_the_minimum_is_accepted(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    assert contacts_of(alice.register(expires=60)) == {"sip:100@10.0.0.1:5062": "60"}


def test_an_interval_above_the_maximum_is_clamped(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=86400"], expires=7200)

    assert contacts_of(response) == {"sip:100@10.0.0.1:5062": "3600"}
    pbx.advance(3600)
    pbx.housekeeping()
    assert pbx.core.location.binding_count() == 0


def test_unregister_one_contact_with_expires_zero(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(contacts=["<sip:100@10.0.0.1:5062>", "<sip:100@10.0.0.1:5064>"])

    response = alice.reregister(contacts=["<sip:100@10.0.0.1:5062>;expires=0"])

    assert contacts_of(response) == {"sip:100@10.0.0.1:5064": "3600"}


def test_unregister_with_an_expires_header_of_zero(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()

    response = alice.reregister(expires=0)

    assert response.status_code == 200
    assert response.headers.get("Contact") is None
    assert pbx.core.location.binding_count() == 0
    assert pbx.core.location.binding_count() == 0


def test_unregistering_a_contact_that_is_not_bound_is_fine(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(expires=0)

    assert response.status_code == 200
    assert response.contacts == []


def test_contact_star_with_expires_zero_removes_every_binding(pbx: Pbx) -> None:
    desk = pbx.phone("100", "10.0.0.1", 5062)
    mobile = pbx.phone("100", "10.0.0.7", 5080)
    desk.register(contacts=["<sip:100@10.0.0.1:5062>", "<sip:100@10.0.0.1:5064>"])
    mobile.register()
    bob = pbx.phone("200", "10.0.0.2", 5062)
    bob.register()

    response = desk.reregister(contacts=["*"], expires=0)

    assert response.status_code == 200
    assert response.headers.get("Contact") is None
    assert pbx.core.location.lookup("sip:100@pbx.local", pbx.wall) == []
    assert len(pbx.core.location.lookup("sip:200@pbx.local", pbx.wall)) == 1


def test_an_out_of_order_contact_star_removes_nothing(pbx: Pbx) -> None:
    """RFC 3261 10.3 step 6: a binding refreshed by a later REGISTER of the Call-ID stays."""
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()  # CSeq 2
    alice.reregister(expires=600)  # CSeq 3

    response = alice.reregister(cseq=3, contacts=["*"], expires=0)

    assert response.status_code == 500
    assert query(alice) == {"sip:100@10.0.0.1:5062": "600"}


def test_contact_star_removes_the_bindings_of_other_call_ids_whatever_their_cseq(pbx: Pbx) -> None:
    desk = pbx.phone("100", "10.0.0.1", 5062)
    desk.register_cseq = 50
    desk.register()
    alice = pbx.phone("100", "10.0.0.7", 5080)
    alice.register()

    response = alice.reregister(contacts=["*"], expires=0)

    assert response.status_code == 200
    assert pbx.core.location.binding_count() == 0


def test_contact_star_with_another_expires_is_refused_with_400(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()

    for expires in (300, None):
        response = alice.reregister(contacts=["*"], expires=expires)
        assert response.status_code == 400
        assert response.headers.get("Warning") == '399 pbx-services "Contact: * needs Expires: 0"'

    assert query(alice) == {"sip:100@10.0.0.1:5062": "3600"}


def test_contact_star_beside_another_contact_is_refused_with_400(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1,
                                      contacts=["*", "<sip:100@10.0.0.1:5062>"], expires=0))

    response = alice.pop_response(400)

    assert response.headers.get("Warning") == '399 pbx-services "Contact: * must be the only Contact"'


def test_a_register_without_contact_lists_the_bindings_and_changes_nothing(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=600", "<sip:100@10.0.0.1:5064>;expires=900"])
    pbx.advance(100)

    response = alice.reregister(contacts=[])

    assert contacts_of(response) == {"sip:100@10.0.0.1:5064": "800", "sip:100@10.0.0.1:5062": "500"}
    pbx.advance(500)
    assert query(alice) == {"sip:100@10.0.0.1:5064": "300"}


def test_a_binding_expires_when_its_time_is_up(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(expires=120)

    pbx.advance(119.5)
    pbx.housekeeping()
    assert pbx.core.location.binding_count() == 1
    pbx.advance(0.5)

    assert query(alice) == {}
    pbx.housekeeping()
    assert pbx.core.location.binding_count() == 0


def test_only_so_many_contacts_are_kept_the_newest_ones(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(max_contacts=2)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(contacts=["<sip:100@10.0.0.1:5001>"], expires=3600)
    pbx.advance(10)
    alice.reregister(contacts=["<sip:100@10.0.0.1:5002>"], expires=3600)
    pbx.advance(10)

    # The newest contact asks for a shorter time than the older ones have left.
    response = alice.reregister(contacts=["<sip:100@10.0.0.1:5003>"], expires=600)

    assert contacts_of(response) == {"sip:100@10.0.0.1:5002": "3590", "sip:100@10.0.0.1:5003": "600"}


def test_a_lower_q_does_not_make_the_newest_contact_give_way(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(max_contacts=2)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(contacts=["<sip:100@10.0.0.1:5001>", "<sip:100@10.0.0.1:5002>"])
    pbx.advance(10)

    response = alice.reregister(contacts=["<sip:100@10.0.0.1:5003>;q=0.5"])

    assert "sip:100@10.0.0.1:5003" in contacts_of(response)
    assert len(response.contacts) == 2


def test_too_many_contacts_in_one_register_keep_the_limit(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(max_contacts=2)
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=[f"<sip:100@10.0.0.1:{port}>" for port in (5001, 5002, 5003)])

    assert response.status_code == 200
    assert len(response.contacts) == 2
    assert pbx.core.location.binding_count() == 2


def test_higher_q_contacts_are_listed_first(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5001>;q=0.1", "<sip:100@10.0.0.1:5002>;q=0.9"])

    assert list(contacts_of(response)) == ["sip:100@10.0.0.1:5002", "sip:100@10.0.0.1:5001"]


def test_a_new_contact_of_the_same_instance_replaces_the_old_one(pbx: Pbx) -> None:
    """RFC 5626: a phone that changed address re-registers with its +sip.instance."""
    instance = '+sip.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register(contacts=[f"<sip:100@10.0.0.1:5062>;{instance}", "<sip:100@10.0.0.1:5099>"])

    response = alice.reregister(contacts=[f"<sip:100@10.0.0.1:6000>;{instance}"])

    assert set(contacts_of(response)) == {"sip:100@10.0.0.1:6000", "sip:100@10.0.0.1:5099"}
    [binding] = [b for b in pbx.core.location.lookup("sip:100@pbx.local", pbx.wall) if b.instance_id]
    assert binding.instance_id == "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"


def test_a_contact_expires_that_is_not_a_number_is_refused_with_400(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=soon"])

    assert response.status_code == 400
    assert response.headers.get("Warning") == (
        "399 pbx-services \"Contact expires is not a number: 'soon'\"")
    assert pbx.core.location.binding_count() == 0


def test_a_bad_contact_q_is_refused_with_400(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)

    for q, problem in (("high", "is not a number"), ("1.5", "is out of range"), ("nan", "is out of range")):
        response = alice.register(contacts=[f"<sip:100@10.0.0.1:5062>;q={q}"])
        assert response.status_code == 400
        assert response.headers.get("Warning") == f"399 pbx-services \"Contact q {problem}: '{q}'\""

    assert pbx.core.location.binding_count() == 0


def test_the_warning_of_a_refused_register_is_a_valid_quoted_string(pbx: Pbx) -> None:
    """RFC 3261 20.43: warn-text is a quoted-string; a quote in the peer's value must not end it."""
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062>;expires=it's"])

    assert response.status_code == 400
    warning = response.headers.get("Warning")
    assert warning is not None and warning.startswith('399 pbx-services "') and warning.endswith('"')
    assert '"' not in warning[len('399 pbx-services "'):-1]


def test_a_register_for_the_pbx_address_means_the_default_tenant(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062, domain="192.0.2.10")
    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=1))
    challenge = alice.pop_response(401)
    assert 'realm="pbx.local"' in challenge.headers.get_all("WWW-Authenticate")[0]
    authorization = alice.credentials(challenge, "REGISTER", "sip:192.0.2.10")

    alice.send(alice.register_request(call_id="reg-1@10.0.0.1", cseq=2, authorization=authorization))

    assert alice.pop_response(200).status_code == 200
    assert len(pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)) == 1


def test_a_register_for_an_unknown_domain_is_refused_unchallenged(pbx: Pbx) -> None:
    stranger = pbx.phone("100", "10.0.0.1", 5062, domain="nowhere.example")
    stranger.send(stranger.register_request(call_id="reg-1@10.0.0.1", cseq=1))

    refused = stranger.pop_response()

    assert (refused.status_code, refused.reason) == (403, "Unknown Domain")
    assert pbx.core.location.lookup("sip:100@pbx.local", pbx.wall) == []


def test_a_register_over_tcp_binds_the_connection(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 40001, transport="TCP")

    response = alice.register(contacts=["<sip:100@10.0.0.1:5062;transport=tcp>"])

    assert response.status_code == 200
    [binding] = pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)
    assert (binding.source, binding.transport) == (("10.0.0.1", 40001), "TCP")


def test_a_register_with_a_contact_without_brackets_and_params(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.send(crlf(
        "REGISTER sip:pbx.local SIP/2.0\n"
        "v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKcompact1\n"
        "f: <sip:100@pbx.local>;tag=abc\n"
        "t: <sip:100@pbx.local>\n"
        "i: compact-1\n"
        "CSeq: 1 REGISTER\n"
        "m: sip:100@10.0.0.1:5062;expires=120\n"
        "l: 0\n\n"))
    challenge = alice.pop_response(401)
    authorization = alice.credentials(challenge, "REGISTER", "sip:pbx.local")

    alice.send(crlf(
        "REGISTER sip:pbx.local SIP/2.0\n"
        "v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKcompact2\n"
        "f: <sip:100@pbx.local>;tag=abc\n"
        "t: <sip:100@pbx.local>\n"
        "i: compact-1\n"
        "CSeq: 2 REGISTER\n"
        "m: sip:100@10.0.0.1:5062;expires=120\n"
        f"Authorization: {authorization}\n"
        "l: 0\n\n"))

    response = alice.pop_response(200)
    # The addr-spec's parameters belong to the header (RFC 3261 20.10): expires=120 applies.
    assert contacts_of(response) == {"sip:100@10.0.0.1:5062": "120"}
    assert pbx.core.location.lookup("sip:100@pbx.local", pbx.wall)[0].source == ("10.0.0.1", 5062)


def test_the_response_goes_where_rport_says(pbx: Pbx) -> None:
    """Behind NAT: the Via says 10.0.0.1:5062, the datagram came from 203.0.113.5:31000."""
    pbx.phone("100", "203.0.113.5", 31000)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    data = alice.register_request(call_id="nat-1@10.0.0.1", cseq=1)

    pbx.receive(data, ("203.0.113.5", 31000))

    [received] = pbx.inboxes[("203.0.113.5", 31000)]
    assert received.transmit.destination == ("203.0.113.5", 31000)
    branch = received.message.top_via.branch
    assert received.message.headers.get("Via") == (
        f"SIP/2.0/UDP 10.0.0.1:5062;branch={branch};rport=31000;received=203.0.113.5")
    alice.assert_silent()

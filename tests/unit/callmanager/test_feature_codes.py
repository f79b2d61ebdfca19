"""Feature codes in the Call Manager (issue 13): a user's code goes to an application server of
its feature's role as the feature's service number, whatever code its tenant dials; a tenant's
changed code leaves the default one a plain number; only users dial them; the caller's call
limit holds (`cluster.feature_codes`, `callmanager.directory`, `CallRouter.feature_targets`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.feature_codes import FeatureCodeService
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.cluster.users import UserService
from pbx_services.sip.message import SipRequest

from .conftest import DOMAIN, Pbx, Phone, registered

IVR = ("192.0.2.60", 5070)


def with_ivr_server(pbx: Pbx) -> Pbx:
    server = ServerEntry(name="ivr1", role=ServerRole.IVR, host=IVR[0], port=IVR[1], workers=1, weight=1,
                         enabled=True)
    pbx.core.app_servers.update_servers([server], pbx.now)
    return pbx


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx]) -> Pbx:
    return with_ivr_server(make_pbx())


@pytest.fixture
def ivr(pbx: Pbx) -> Phone:
    return pbx.phone("ivr", *IVR)


def invite_at(ivr: Phone) -> SipRequest:
    """The next INVITE the IVR server got (the Call Manager's OPTIONS probes passed over)."""
    while True:
        request = ivr.pop_request()
        if request.method == "INVITE":
            return request


def test_a_feature_code_reaches_the_ivr_server_as_its_service_number(pbx: Pbx, alice: Phone,
                                                                      ivr: Phone) -> None:
    alice.call("*721005")

    invite = invite_at(ivr)
    assert invite.uri.user == "*721005" and invite.to.uri.user == "*721005"  # type: ignore[union-attr]
    assert invite.from_.uri.user == "100"  # type: ignore[union-attr]


def test_a_tenant_s_own_code_is_sent_as_the_default_one(make_pbx: Callable[..., Pbx],
                                                        sessions: sessionmaker[Session]) -> None:
    FeatureCodeService(sessions=sessions, default_domain=DOMAIN).set_codes(DOMAIN, ["dnd_on=#9"])
    pbx = with_ivr_server(make_pbx())
    alice, ivr = registered(pbx, "100", "10.0.0.1"), pbx.phone("ivr", *IVR)

    alice.call("%239")  # #9, escaped in the Request-URI

    assert invite_at(ivr).uri.user_unescaped == "*78"  # type: ignore[union-attr]
    alice.call("*78")  # no longer a feature code: a number nobody has
    alice.pop_response(100)
    assert alice.pop_response().status_code == 404


def test_the_caller_s_call_limit_holds(make_pbx: Callable[..., Pbx], sessions: sessionmaker[Session]) -> None:
    UserService(sessions=sessions, default_domain=DOMAIN).set_user("100", max_calls=1)
    pbx = with_ivr_server(make_pbx())
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    alice.call("200")
    bob.pop_request("INVITE")

    alice.call("*78")

    alice.pop_response(100)
    refused = alice.pop_response()
    assert refused.status_code == 403 and "Limit" in refused.reason


def test_without_an_ivr_server_a_feature_code_is_503(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx()
    alice = registered(pbx, "100", "10.0.0.1")

    alice.call("*78")

    alice.pop_response(100)
    assert alice.pop_response().status_code == 503

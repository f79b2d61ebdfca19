"""The Call Manager's live view for the portal: its calls and the registrations of named users."""

from pbx_services.callmanager.call import Call, CallInput, Leg
from pbx_services.callmanager.live_view import MAX_AORS, answer_live
from pbx_services.cluster.events import HangupBy
from pbx_services.cluster.state.location import Binding, InMemoryLocation
from pbx_services.runtime.control import ControlRequest

WALL = 1_800_000_000.0


def call(call_id: str, caller: str, callee: str, started_at: float) -> Call:
    return Call(a=Leg(side=HangupBy.CALLER, peer=("127.0.0.1", 5062), transport="UDP"), call_id=call_id,
                a_tx=None, a_invite=None, a_tag="a", b_call_id=f"b-{call_id}", b_tag="b", caller=caller,
                callee=callee, tenant_id=1, started_at=started_at, realm="pbx.example")


def location_with(*aors: str) -> InMemoryLocation:
    location = InMemoryLocation()
    for n, aor in enumerate(aors):
        binding = Binding(aor=aor, contact=f"sip:{n}@127.0.0.1:{5070 + n}", expires_at=WALL + 60,
                          call_id=f"reg-{n}", cseq=1, source=("127.0.0.1", 5070 + n), transport="UDP",
                          refreshed_at=WALL, user_agent="pjsua2")
        location.update(aor, save=[binding], now=WALL)
    return location


def test_calls_oldest_first_with_their_phase_and_durations() -> None:
    talking = call("c1", "1001", "1002", started_at=10.0)
    talking.transition(CallInput.ANSWERED)
    talking.transition(CallInput.ACKED)
    talking.answered_at = 12.0
    ringing = call("c2", "1003", "500", started_at=18.0)

    reply = answer_live(ControlRequest("GET", ("calls",)), calls={ringing, talking},
                        location=InMemoryLocation(), now=20.0, wall_now=WALL)

    assert reply.status == 200
    assert reply.body["calls"] == [
        {"call_id": "c1", "caller": "1001", "callee": "1002", "domain": "pbx.example", "tenant_id": 1,
         "phase": "connected", "seconds": 10.0, "talking_seconds": 8.0, "application_server": None},
        {"call_id": "c2", "caller": "1003", "callee": "500", "domain": "pbx.example", "tenant_id": 1,
         "phase": "routing", "seconds": 2.0, "talking_seconds": None, "application_server": None},
    ]


def test_registrations_of_the_named_users_only() -> None:
    location = location_with("sip:1001@pbx.example", "sip:1002@pbx.example")

    request = ControlRequest("GET", ("registrations",), {"aors": ["1001@PBX.example", "1003@pbx.example"]})
    reply = answer_live(request, calls=(), location=location, now=0.0, wall_now=WALL + 10)

    assert reply.status == 200
    assert reply.body == {"registrations": {"1001@PBX.example": [
        {"contact": "sip:0@127.0.0.1:5070", "source": "127.0.0.1:5070", "transport": "UDP",
         "expires_in": 50, "user_agent": "pjsua2"}]}}


def test_a_bad_request_is_answered_with_what_is_wrong() -> None:
    not_a_list = "aors: a list of addresses of record (\"1001@example.com\")"
    too_many = {"aors": ["1@a"] * (MAX_AORS + 1)}
    for body, message in (({}, not_a_list), ({"aors": ["1001"]}, not_a_list),
                          (too_many, f"aors: at most {MAX_AORS} at once, not 1001")):
        reply = answer_live(ControlRequest("GET", ("registrations",), body), calls=(),
                            location=InMemoryLocation(), now=0.0, wall_now=WALL)
        assert (reply.status, reply.body) == (400, {"error": message})
    for request in (ControlRequest("POST", ("calls",)), ControlRequest("GET", ("calls", "x"))):
        reply = answer_live(request, calls=(), location=InMemoryLocation(), now=0.0, wall_now=WALL)
        assert reply.status == 404

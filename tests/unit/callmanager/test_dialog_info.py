"""The dialog event package's body for BLF (RFC 4235): a user's calls as dialogs, byte for byte."""

from xml.etree import ElementTree

from pbx_services.callmanager.call import Call, CallInput, Leg
from pbx_services.callmanager.dialog_info import dialog_info, dialogs_of
from pbx_services.cluster.events import HangupBy


def call(call_id: str, caller: str, callee: str, *, realm: str = "pbx.local",
         inputs: tuple[CallInput, ...] = ()) -> Call:
    made = Call(a=Leg(HangupBy.CALLER, ("10.0.0.1", 5060), "UDP"), call_id=call_id, a_tx=None, a_invite=None,
                a_tag="a", b_call_id="b", b_tag="b", caller=caller, callee=callee, tenant_id=1,
                started_at=0.0, realm=realm)
    for call_input in inputs:
        made.transition(call_input)
    return made


def test_a_users_ringing_and_talking_calls_are_early_and_confirmed_dialogs() -> None:
    calls = [call("c2@x", "1002", "1003", inputs=(CallInput.ANSWERED,)),
             call("c1@x", "1001", "1002"),
             call("c3@x", "1004", "1005"),
             call("c4@x", "1001", "1002", realm="other.example")]

    views = dialogs_of(calls, "pbx.local", "1002")

    assert [(v.id, v.direction, v.state, v.remote) for v in views] == [
        ("c1@x", "recipient", "early", "1001"), ("c2@x", "initiator", "confirmed", "1003")]
    assert dialog_info("sip:1002@pbx.local", 3, views, "pbx.local") == (
        b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" '
        b'entity="sip:1002@pbx.local">\r\n'
        b'<dialog id="c1@x" direction="recipient">\r\n<state>early</state>\r\n'
        b"<remote><identity>sip:1001@pbx.local</identity></remote>\r\n</dialog>\r\n"
        b'<dialog id="c2@x" direction="initiator">\r\n<state>confirmed</state>\r\n'
        b"<remote><identity>sip:1003@pbx.local</identity></remote>\r\n</dialog>\r\n"
        b"</dialog-info>\r\n")


def test_an_idle_line_has_no_dialog_and_an_ended_call_is_terminated() -> None:
    ended = call("c1@x", "1001", "1002", inputs=(CallInput.ENDED,))

    assert dialog_info("sip:1009@pbx.local", 0, dialogs_of([ended], "pbx.local", "1009"), "pbx.local") == (
        b'<?xml version="1.0" encoding="UTF-8"?>\r\n'
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full" '
        b'entity="sip:1009@pbx.local">\r\n</dialog-info>\r\n')
    assert [v.state for v in dialogs_of([ended], "pbx.local", "1002")] == ["terminated"]


def test_quotes_in_a_call_id_cannot_break_the_document() -> None:
    body = dialog_info("sip:1002@pbx.local", 1, dialogs_of([call('a"<b@x', "1001", "1002")], "pbx.local",
                                                            "1002"), "pbx.local")
    [dialog] = ElementTree.fromstring(body)
    assert dialog.get("id") == 'a"<b@x'

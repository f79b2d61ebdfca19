"""RFC 4475 section 3: every torture message, parsed as the RFC says it must be.

The messages are byte fixtures in tests/data/sip/rfc4475/<name>.dat; expected.json says
for each whether it is valid (parses) and what a UAS answers (null where the RFC names
no response, or the message is a response). Integration tests reuse the same table for
the Call Manager's answers.
"""

import json
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest

from pbx_services.sip.headers import unquote
from pbx_services.sip.message import SipParseError, SipRequest, SipResponse, parse_message
from pbx_services.sip.uri import AbsoluteUri, SipUri

TORTURE_DIR = Path(__file__).resolve().parents[2] / "data" / "sip" / "rfc4475"
EXPECTED: dict[str, dict] = json.loads((TORTURE_DIR / "expected.json").read_text(encoding="utf-8"))

# What the parser says about each invalid message: the reason in the 400 (or 505).
REJECTIONS = {
    "badinv01": "empty element in header list 'SIP/2.0/UDP 192.0.2.15;;,;,,'",
    "clerr": "Content-Length 9999 is larger than the body (154 bytes)",
    "ncl": "malformed Content-Length '-999'",
    "scalar02": "CSeq number is out of range: 36893488147419103232",
    "scalarlg": "CSeq number is out of range: 9292394834772304023312",
    "quotbal": "To header has an unterminated display name",
    "ltgtruri": "malformed Request-URI: malformed URI: '<sip:user@example.com>'",
    "lwsruri": "malformed request line 'INVITE sip:user@example.com; lr SIP/2.0'",
    "lwsstart": "malformed request line 'INVITE  sip:user@example.com  SIP/2.0'",
    "trws": "malformed request line 'OPTIONS sip:remote-target@example.com SIP/2.0  '",
    "escruri": "Request-URI has headers: 'sip:user@example.com?Route=%3Csip:example.com%3E'",
    "baddate": "malformed Date 'Fri, 01 Jan 2010 16:00:00 EST': RFC 1123 form in GMT required",
    "regbadct": "Contact header URI must be in <> to contain whitespace, comma or '?': "
                "'sip:user@example.com?Route=%3Csip:sip.example.com%3E'",
    "badaspec": "To header has whitespace inside <URI>",
    "baddn": "From header has an unquoted display name with special characters: 'Bell, Alexander'",
    "badvers": "SIP version SIP/7.0 is not supported",
    "mismatch01": "CSeq method INVITE does not match the request method OPTIONS",
    "mismatch02": "CSeq method INVITE does not match the request method NEWMETHOD",
    "bigcode": "malformed status line 'SIP/2.0 4294967301 better not break the receiver'",
    "insuf": "missing From header",
    "multi01": "more than one CSeq header",
    "mcl01": "conflicting Content-Length headers",
}


def _load(name: str) -> bytes:
    return (TORTURE_DIR / f"{name}.dat").read_bytes()


def _parse(name: str) -> SipRequest | SipResponse:
    return parse_message(_load(name))


def _request(name: str) -> SipRequest:
    message = _parse(name)
    assert isinstance(message, SipRequest)
    return message


def _without_length(message: SipRequest | SipResponse) -> list[tuple[str, str]]:
    """The headers but Content-Length, which serializing always writes (and corrects)."""
    return [(name, value) for name, value in message.headers if name != "Content-Length"]


def test_the_corpus_is_all_of_section_3():
    assert sorted(path.stem for path in TORTURE_DIR.glob("*.dat")) == sorted(EXPECTED)
    assert len(EXPECTED) == 49
    assert sorted(name for name, e in EXPECTED.items() if not e["valid"]) == sorted(REJECTIONS)
    for entry in EXPECTED.values():
        assert set(entry) == {"section", "valid", "answer", "note"}
        assert entry["answer"] is None or 100 <= entry["answer"] <= 699


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message(name):
    expected = EXPECTED[name]
    data = _load(name)
    if expected["valid"]:
        message = parse_message(data)
        # what we would send on, re-parsed, is the same message in canonical form
        canonical = message.serialize()
        again = parse_message(canonical)
        assert again.serialize() == canonical
        assert _without_length(again) == _without_length(message)
        assert again.body == message.body
        return
    with pytest.raises(SipParseError) as error:
        parse_message(data)
    assert error.value.reason == REJECTIONS[name]
    if data.startswith(b"SIP/"):
        assert expected["answer"] is None  # a broken response is dropped, never answered
    else:
        assert error.value.status_code == expected["answer"]
        # what the stack needs to send that answer: the request's own Via, Call-ID and CSeq
        partial = error.value.partial
        assert isinstance(partial, SipRequest)
        assert partial.headers.get("Via") and partial.headers.get("CSeq")


def test_wsinv_short_tortuous_invite():
    message = _request("wsinv")
    assert message.method == "INVITE"
    assert isinstance(message.uri, SipUri)
    assert message.uri.params == {"unknownparam": None}
    assert message.to.tag == "1918181833n"
    assert message.from_.display_name == '"J Rosenberg \\\\\\""'
    assert message.from_.display_text == 'J Rosenberg \\"'
    assert message.from_.tag == "98asjd8"
    assert message.max_forwards == 68
    assert (message.cseq.seq, message.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in message.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"), ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239")]
    assert message.headers.get("Subject") == ""
    assert message.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert message.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert message.headers.get_all("Route") == [
        "<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"]
    [contact] = message.contacts
    assert contact.display_text == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert message.content_type == "application/sdp"
    assert len(message.body) == 150


def test_intmeth_wide_range_of_valid_characters():
    message = _request("intmeth")
    assert message.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert isinstance(message.uri, SipUri)
    assert message.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert message.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert message.top_via.branch == "z9hG4bK-.!%66*_+`'~"
    assert message.to.display_text == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert message.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert message.from_.params == {"fromparam''~+*_!.-%": '"работающий"', "tag": "_token~1'+`*%!-."}
    assert message.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert message.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert message.max_forwards == 255
    # the NUL, BEL, DEL and UTF-8 bytes are sent on unchanged (only "Name:value" gains a space)
    assert message.serialize() == _load("intmeth").replace(b"'~:\xef", b"'~: \xef")


def test_esc01_escapes_compare_unescaped_and_are_not_unescaped_twice():
    message = _request("esc01")
    assert isinstance(message.uri, SipUri)
    assert message.uri.user_unescaped == "sips:user@example.com"
    assert message.to.sip_uri.user_unescaped == "user"
    assert message.from_.sip_uri.user_unescaped == "I have spaces"
    [contact] = message.contacts
    assert contact.sip_uri.user_unescaped == "caller"
    assert contact.sip_uri.params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    assert unquote_to_bytes("v%61lue%25%34%31") == b"value%41"


def test_escnull_registers_two_distinct_contacts():
    message = _request("escnull")
    assert message.to.sip_uri.address_of_record() == "sip:null-\x00-null@example.com"
    assert [c.sip_uri.user_unescaped for c in message.contacts] == ["\x00", "\x00\x00"]


def test_esc02_percent_that_is_not_an_escape():
    message = _request("esc02")
    assert message.method == "RE%47IST%45R"
    assert message.to.display_text == "%Z%45"
    assert message.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [c.sip_uri.host for c in message.contacts] == ["host1.example.com", "host3.example.com"]
    assert message.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_lwsdisp_and_longreq():
    assert _request("lwsdisp").from_.display_name == "caller"
    message = _request("longreq")
    assert len(message.vias) == 34
    assert [v.host for v in message.vias[:3]] == ["sip33.example.com", "sip32.example.com",
                                                  "sip31.example.com"]
    assert message.vias[-1].params["received"] == "192.0.2.5"
    assert message.to.sip_uri.port == 6000
    assert len(message.to.sip_uri.params) == 3
    assert message.from_.tag == "12" + "982" * 50 + "424"
    assert message.headers.get("Unknown-" + "Long" * 20 + "-Name", "").startswith("unknown-longlong")


def test_dblreq_extra_bytes_after_the_body_are_ignored():
    message = _request("dblreq")
    assert message.method == "REGISTER"
    assert message.body == b""
    assert message.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def test_semiuri_and_transports():
    message = _request("semiuri")
    assert isinstance(message.uri, SipUri)
    assert (message.uri.user, message.uri.host) == ("user;par=u%40example.net", "example.com")
    assert len(message.headers.get_all("Accept")) == 6
    assert [v.transport for v in _request("transports").vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


def test_mpart01_binary_body():
    message = _request("mpart01")
    assert len(message.body) == 553
    assert b"\x00" in message.body
    assert message.content_type == "multipart/mixed"
    assert message.top_via.params["rport"] is None


def test_responses_with_unusual_reason_phrases():
    unreason = _parse("unreason")
    assert isinstance(unreason, SipResponse)
    assert (unreason.status_code, unreason.reason) == (200, "= 2**3 * 5**2 но сто девяносто девять - простое")
    noreason = _parse("noreason")
    assert isinstance(noreason, SipResponse)
    assert (noreason.status_code, noreason.reason) == (100, "")
    assert noreason.serialize() == _load("noreason")


def test_transaction_and_application_layer_messages_parse_into_what_those_layers_need():
    assert _request("badbranch").top_via.branch == "z9hG4bK"
    unkscm = _request("unkscm").uri
    assert isinstance(unkscm, AbsoluteUri) and unkscm.scheme == "nobodyknowsthisscheme"
    assert _request("novelsc").uri == AbsoluteUri(scheme="soap.beep", text="soap.beep://192.0.2.103:3002")
    unksm2 = _request("unksm2")
    schemes = [unksm2.to.uri.scheme, unksm2.from_.uri.scheme, unksm2.contacts[0].uri.scheme]
    assert schemes == ["isbn", "http", "name"]
    bext01 = _request("bext01")
    assert bext01.headers.get_all("Require") == ["nothingSupportsThis", "nothingSupportsThisEither"]
    assert bext01.headers.get_all("Proxy-Require") == ["noProxiesSupportThis", "norDoAnyProxiesSupportThis"]
    assert _request("invut").content_type == "application/unknownformat"
    assert _request("regaut01").headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    bcast = _parse("bcast")
    assert [v.host for v in bcast.vias] == ["192.0.2.198", "255.255.255.255"]
    assert _request("zeromf").max_forwards == 0
    assert _request("sdp01").headers.get_all("Accept") == ["text/nobodyKnowsThis"]


def test_cparam_contact_parameters_belong_to_the_header_or_the_uri():
    [header_param] = _request("cparam01").contacts
    assert header_param.params == {"unknownparam": None}
    assert str(header_param.uri) == "sip:+19725552222@gw1.example.net"
    [uri_param] = _request("cparam02").contacts
    assert uri_param.params == {}
    assert str(uri_param.uri) == "sip:+19725552222@gw1.example.net;unknownparam"


def test_regescrt_escaped_header_inside_angle_brackets():
    [contact] = _request("regescrt").contacts
    assert contact.sip_uri.headers == {"Route": "%3Csip:sip.example.com%3E"}
    assert unquote(contact.sip_uri.headers["Route"]) == "%3Csip:sip.example.com%3E"


def test_inv2543_rfc2543_request():
    message = _request("inv2543")
    assert message.top_via.branch is None
    assert message.from_.tag is None
    assert message.max_forwards == 70  # absent: the default
    assert message.headers.get("Content-Length") is None
    assert message.body.startswith(b"v=0\r\n") and message.body.endswith(b"m=audio 49217 RTP/AVP 0\r\n")
    assert message.to.params == {"user": "phone"}  # addr-spec: ;user=phone is a header parameter here

"""SIP URIs (RFC 3261 19.1): parts, case rules, escaping, exact errors, and the fast path."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pbx_services.sip.errors import RemoteProtocolError
from pbx_services.sip.uri import AbsoluteUri, SipUri, parse_uri, split_hostport, valid_host


def test_full_sip_uri_parts_and_round_trip():
    text = "sips:alice:secret@pbx.example.com:5061;transport=tcp;lr?Subject=hi&Priority=urgent"
    uri = SipUri.parse(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips", "alice", "secret", "pbx.example.com", 5061)
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == {"Subject": "hi", "Priority": "urgent"}
    assert str(uri) == text


@pytest.mark.parametrize("text", [
    "sip:pbx.example.com",
    "sip:1001@192.0.2.10:5060;ob",
    "sip:[2001:db8::10]:5060;transport=udp",
    "sip:+16505552222@ss1.example.net;user=phone",
    "sip:1003-0x55d3c8a0@192.0.2.20:5060",
    "sip:user;par=u%40example.net@example.com",
    "sip:alice@example.com.",
])
def test_canonical_uris_serialize_back(text):
    assert str(parse_uri(text)) == text


def test_scheme_and_host_are_case_insensitive_user_is_not():
    uri = SipUri.parse("SIP:Alice@PBX.Example.COM;Transport=TCP")
    assert (uri.scheme, uri.user, uri.host) == ("sip", "Alice", "pbx.example.com")
    # parameter names are case-insensitive, values are kept as sent
    assert uri.params == {"transport": "TCP"}
    assert uri.transport == "tcp"
    assert str(uri) == "sip:Alice@pbx.example.com;transport=TCP"


def test_transport_defaults():
    assert SipUri.parse("sip:a@example.com").transport == "udp"
    assert SipUri.parse("sips:a@example.com").transport == "tls"


def test_escaped_user_part_is_kept_and_unescaped_on_demand():
    uri = SipUri.parse("sip:I%20have%20spaces@example.net")
    assert uri.user == "I%20have%20spaces"
    assert uri.user_unescaped == "I have spaces"
    assert str(uri) == "sip:I%20have%20spaces@example.net"
    assert SipUri.parse("sip:%00%00@host5.example.com").user_unescaped == "\x00\x00"
    assert SipUri.parse("sip:%C3%A9l%C3%A8ve@example.com").user_unescaped == "élève"


def test_address_of_record_uses_the_unescaped_user():
    uri = SipUri.parse("sip:%75se%72@EXAMPLE.com;transport=udp")
    assert uri.address_of_record() == "sip:user@example.com"
    assert SipUri.parse("sip:example.com").address_of_record() == "sip:example.com"


def test_unusual_but_legal_user_and_password_characters():
    uri = SipUri.parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
                       ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com")
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"


def test_ipv6_and_ipv4_hosts():
    uri = SipUri.parse("sip:alice@[2001:DB8::1]:5070")
    assert (uri.host, uri.port) == ("[2001:db8::1]", 5070)
    assert SipUri.parse("sip:192.0.2.255").host == "192.0.2.255"


def test_copy_is_independent():
    uri = SipUri.parse("sip:a@example.com;lr?X=1")
    copy = uri.copy()
    copy.params["transport"] = "tcp"
    copy.headers.clear()
    assert uri.params == {"lr": None}
    assert uri.headers == {"X": "1"}
    assert copy == SipUri.parse("sip:a@example.com;lr;transport=tcp")


@pytest.mark.parametrize("text, reason", [
    ("sip:", "SIP URI has forbidden characters: 'sip:'"),
    ("sip:alice@exa mple.com", "SIP URI has forbidden characters: 'sip:alice@exa mple.com'"),
    ("sip:<alice@example.com>", "SIP URI has forbidden characters: 'sip:<alice@example.com>'"),
    ("sip:@example.com", "SIP URI has a malformed user part: 'sip:@example.com'"),
    ("sip:al%4ice@example.com", "SIP URI has a malformed user part: 'sip:al%4ice@example.com'"),
    ("sip:al[ice@example.com", "SIP URI has a malformed user part: 'sip:al[ice@example.com'"),
    ("sip:alice:p@ss@example.com", "SIP URI has a malformed host: 'sip:alice:p@ss@example.com'"),
    ("sip:alice:p;w@example.com", "SIP URI has a malformed password: 'sip:alice:p;w@example.com'"),
    ("sip:alice@example.com;lr=", "SIP URI has a malformed parameter 'lr=': 'sip:alice@example.com;lr='"),
    ("sip:alice@example.com;%zz", "SIP URI has a malformed parameter '%zz': 'sip:alice@example.com;%zz'"),
    ("sip:alice@example.com?Route", "SIP URI has a malformed header: 'sip:alice@example.com?Route'"),
    ("sip:alice@example.com:0", "SIP URI has a malformed port: 'sip:alice@example.com:0'"),
    ("sip:alice@example.com:65536", "SIP URI has a malformed port: 'sip:alice@example.com:65536'"),
    ("sip:alice@example.com:５０６０", "SIP URI has a malformed port: 'sip:alice@example.com:５０６０'"),
    ("sip:alice@192.0.2.256", "SIP URI has a malformed host: 'sip:alice@192.0.2.256'"),
    ("sip:alice@-example.com", "SIP URI has a malformed host: 'sip:alice@-example.com'"),
    ("sip:alice@example.123", "SIP URI has a malformed host: 'sip:alice@example.123'"),
    ("sip:alice@[2001:db8::1", "SIP URI has an unterminated IPv6 reference: 'sip:alice@[2001:db8::1'"),
    ("sip:alice@[2001:db8::g]", "SIP URI has a malformed host: 'sip:alice@[2001:db8::g]'"),
    ("sip:alice@[fe80::1%25eth0]", "SIP URI has a malformed host: 'sip:alice@[fe80::1%25eth0]'"),
    ("sip:alice@[::1]x", "SIP URI has junk after its IPv6 reference: 'sip:alice@[::1]x'"),
    ("tel:+1", "not a SIP URI: 'tel:+1'"),
])
def test_malformed_sip_uris_say_what_is_wrong(text, reason):
    with pytest.raises(RemoteProtocolError) as error:
        SipUri.parse(text)
    assert error.value.reason == reason
    assert error.value.status_code == 400


def test_other_schemes_are_kept_whole():
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert uri == AbsoluteUri(scheme="tel", text="tel:+1-201-555-0123;phone-context=example.com")
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"
    assert parse_uri("SOAP.BEEP://192.0.2.103:3002").scheme == "soap.beep"
    assert isinstance(parse_uri("SIPS:a@example.com"), SipUri)


@pytest.mark.parametrize("text", ["no-scheme", ":x", "1tel:123", "tel:", "tel:a b", "http://x/\x00"])
def test_malformed_absolute_uris(text):
    with pytest.raises(RemoteProtocolError, match="malformed URI"):
        parse_uri(text)


def test_split_hostport():
    assert split_hostport("Example.COM:5060") == ("example.com", 5060)
    assert split_hostport("[::1]") == ("[::1]", None)
    with pytest.raises(ValueError, match="malformed port"):
        split_hostport("example.com:")


@pytest.mark.parametrize("host, valid", [
    ("example.com", True), ("a-b.example.com", True), ("example.com.", True), ("x", True),
    ("192.0.2.1", True), ("[::1]", True), ("[2001:db8::1]", True),
    ("", False), ("a..b", False), ("a-.com", False), ("256.1.1.1", False), ("1.2.3", False),
    ("[::1", False), ("[zz::1]", False), ("ex_ample.com", False),
])
def test_valid_host(host, valid):
    assert valid_host(host) is valid


_URI_ALPHABET = "aAsSiIpP:@;=?&%0123456789.-_[]!~*'()+$,/ \"<>x"


@given(st.text(alphabet=_URI_ALPHABET, max_size=40).map(lambda tail: "sip:" + tail))
@example("sip:a@b;c=d")
@example("sip:[::1]:5060;x")
@example("sip:a:@b")
def test_fast_path_agrees_with_the_general_parser(text):
    """Whatever the compiled fast path accepts, the general parser accepts the same way."""
    try:
        fast = SipUri.parse(text)
    except RemoteProtocolError:
        return
    assert SipUri._parse_general(text) == fast


@given(st.builds(
    lambda scheme, user, password, host, port, params: (
        f"{scheme}:{user + (':' + password if password is not None else '') + '@' if user else ''}"
        f"{host}{':' + str(port) if port is not None else ''}{params}"),
    st.sampled_from(["sip", "sips", "SIP"]),
    st.sampled_from(["", "alice", "1001", "a%20b", "x;y=z", "o'neil", "a?b"]),
    st.sampled_from([None, "", "pw", "p%41ss"]),
    st.sampled_from(["example.com", "EXAMPLE.com", "192.0.2.1", "[2001:db8::1]", "a-b.c", "1.2.3", "-x.com"]),
    st.sampled_from([None, 0, 1, 5060, 65535, 65536]),
    st.sampled_from(["", ";lr", ";transport=TCP", ";a=b;c", ";=x", ";x="]),
))
def test_fast_path_agrees_on_well_formed_shapes(text):
    try:
        fast = SipUri.parse(text)
    except RemoteProtocolError:
        with pytest.raises(RemoteProtocolError):
            SipUri._parse_general(text)
        return
    assert SipUri._parse_general(text) == fast
    assert SipUri.parse(str(fast)) == fast

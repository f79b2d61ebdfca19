"""Header fields: names and compact forms, lists, Address, Via, CSeq and the Headers container."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError
from pbx_services.sip.headers import (
    Address,
    CSeq,
    Headers,
    Via,
    canonical_name,
    header_key,
    is_sip_date,
    parse_delta_seconds,
    parse_header_lines,
    parse_media_type,
    parse_param_header,
    quote,
    split_list,
    unquote,
)
from pbx_services.sip.uri import AbsoluteUri, SipUri

# --- names ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, canonical", [
    ("v", "Via"), ("V", "Via"), ("via", "Via"), ("VIA", "Via"), ("f", "From"), ("t", "To"),
    ("i", "Call-ID"), ("call-id", "Call-ID"), ("m", "Contact"), ("l", "Content-Length"),
    ("c", "Content-Type"), ("k", "Supported"), ("cseq", "CSeq"), ("www-authenticate", "WWW-Authenticate"),
    ("x-yealink-network", "x-yealink-network"), ("NewFangledHeader", "NewFangledHeader"),
])
def test_header_names_are_case_insensitive_and_compact_forms_expand(name, canonical):
    assert canonical_name(name) == canonical
    assert header_key(name) == canonical.lower()


def test_names_looked_up_do_not_become_acceptable_on_the_wire():
    assert canonical_name("Bad Name") == "Bad Name"
    assert header_key("TO ") == "to "
    headers, _, bad_line = parse_header_lines(["Bad Name: x", "TO : <sip:a@b>"])
    assert bad_line == "Bad Name: x"
    assert list(headers) == [("To", "<sip:a@b>")]


def test_parse_header_lines_reports_repeats_and_the_first_bad_line():
    headers, repeated, bad_line = parse_header_lines([
        "Via: SIP/2.0/UDP a", "v : SIP/2.0/UDP b", "Max-Forwards 70", "X-A: 1", "Bad Name: x", "x-a:2",
    ])
    assert list(headers) == [("Via", "SIP/2.0/UDP a"), ("Via", "SIP/2.0/UDP b"), ("X-A", "1"), ("x-a", "2")]
    assert repeated == ["via", "x-a"]
    assert bad_line == "Max-Forwards 70"
    assert headers.get_lines("X-A") == ["1", "2"]


# --- lists ---------------------------------------------------------------------------


@pytest.mark.parametrize("value, items", [
    ("INVITE, ACK,BYE", ["INVITE", "ACK", "BYE"]),
    ("<sip:a@x>", ["<sip:a@x>"]),
    ('"Smith, John" <sip:j@x>, <sip:k@x;a=b,c>', ['"Smith, John" <sip:j@x>', "<sip:k@x;a=b,c>"]),
    ('"a \\" , b" <sip:a@x>,<sip:b@x>', ['"a \\" , b" <sip:a@x>', "<sip:b@x>"]),
    ("SIP/2.0/UDP a;branch=z9hG4bK1 ,\tSIP/2.0/TCP b", ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/TCP b"]),
])
def test_split_list(value, items):
    assert split_list(value) == items


@pytest.mark.parametrize("value, reason", [
    ("a,,b", "empty element in header list 'a,,b'"),
    ("SIP/2.0/UDP 192.0.2.15;;,;,,", "empty element in header list 'SIP/2.0/UDP 192.0.2.15;;,;,,'"),
    ('"open, <sip:a@x>', "unterminated quoted string in '\"open, <sip:a@x>'"),
])
def test_split_list_errors(value, reason):
    with pytest.raises(RemoteProtocolError) as error:
        split_list(value)
    assert error.value.reason == reason


# --- Address -------------------------------------------------------------------------


def test_name_addr_with_quoted_display_name_and_tag():
    address = Address.parse('"Alice" <sip:1001@pbx.example.com>;tag=0a6f3e21')
    assert address.display_name == '"Alice"'
    assert address.display_text == "Alice"
    assert address.uri == SipUri(host="pbx.example.com", user="1001")
    assert address.tag == "0a6f3e21"
    assert str(address) == '"Alice" <sip:1001@pbx.example.com>;tag=0a6f3e21'


def test_quoted_display_name_escapes():
    address = Address.parse(r'"J Rosenberg \\\"" <sip:jdrosen@example.com>')
    assert address.display_name == r'"J Rosenberg \\\""'
    assert address.display_text == 'J Rosenberg \\"'
    assert unquote(quote(address.display_text)) == address.display_text


@pytest.mark.parametrize("value, display", [
    ("sipp <sip:sipp@127.0.1.1:5061>;tag=1", "sipp"),
    ("caller<sip:caller@example.com>;tag=323", "caller"),
    ("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>", "token1~` token2'+_ token3*%!.-"),
    ("A.  Bell <sip:a.g.bell@example.com>", "A.  Bell"),
    ('"" <sip:a@example.com>', '""'),
    ('"Quoted string \\"\\""<sip:jdrosen@example.com>', '"Quoted string \\"\\""'),
])
def test_display_names(value, display):
    assert Address.parse(value).display_name == display


def test_addr_spec_parameters_belong_to_the_header():
    address = Address.parse("sip:+19725552222@gw1.example.net;unknownparam;Expires=60")
    assert address.uri == SipUri(host="gw1.example.net", user="+19725552222")
    assert address.params == {"unknownparam": None, "expires": "60"}
    enclosed = Address.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert enclosed.uri.params == {"unknownparam": None}
    assert enclosed.params == {}


def test_lws_around_separators():
    address = Address.parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
    assert address.params == {"tag": "1918181833n"}
    contact = Address.parse('"Q" <sip:jdrosen@example.com> ; newparam = newvalue ; secondparam ; q = 0.33')
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}


def test_quoted_and_ipv6_parameter_values():
    address = Address.parse(
        '<sip:d@192.0.2.30:40513;transport=tls>;+sip.instance="<urn:uuid:5a3e1c2b>";x=[::1]')
    assert address.params == {"+sip.instance": '"<urn:uuid:5a3e1c2b>"', "x": "[::1]"}
    assert unquote(address.params["+sip.instance"] or "") == "<urn:uuid:5a3e1c2b>"


def test_other_uri_schemes_are_kept_and_are_a_416_where_sip_is_needed():
    address = Address.parse("<tel:+16505550100>;tag=a")
    assert address.uri == AbsoluteUri(scheme="tel", text="tel:+16505550100")
    with pytest.raises(RemoteProtocolError) as error:
        _ = address.sip_uri
    assert error.value.status_code == 416
    assert Address.parse("isbn:2983792873").uri == AbsoluteUri(scheme="isbn", text="isbn:2983792873")


def test_copy_is_independent():
    address = Address.parse("<sip:a@example.com;lr>;tag=1")
    copy = address.copy()
    copy.params["tag"] = "2"
    assert isinstance(copy.uri, SipUri)
    copy.uri.params.clear()
    assert str(address) == "<sip:a@example.com;lr>;tag=1"


@pytest.mark.parametrize("value, reason", [
    ("", "From header is empty"),
    ('"unterminated <sip:a@b>', "From header has an unterminated display name"),
    ('"Joe" sip:a@b', "From header has a display name without <URI>"),
    ('"Bell\x01" <sip:a@b>', "From header has control characters in its display name"),
    ("Bell, Alexander <sip:a@b>", "From header has an unquoted display name with special characters: "
                                  "'Bell, Alexander'"),
    ("<sip:a@b", "From header has an unterminated <URI>"),
    ("< sip:a@b >", "From header has whitespace inside <URI>"),
    ("sip:a@b?x=y", "From header URI must be in <> to contain whitespace, comma or '?': 'sip:a@b?x=y'"),
    ("<sip:a@b>;;", "From header has a malformed parameter ''"),
    ("<sip:a@b>;tag=", "From header has a parameter with an empty value 'tag='"),
    ("<sip:a@b>;tag=a b", "From header has a malformed parameter value 'tag=a b'"),
    ('<sip:a@b>;p="open', "From header has an unterminated quoted string: ';p=\"open'"),
    ("<sip:a@b> junk", "From header has junk before its parameters: 'junk'"),
    ("<sip:a@-b>", "From header has a bad URI: SIP URI has a malformed host: 'sip:a@-b'"),
    ("<a b>", "From header has a bad URI: malformed URI: 'a b'"),
])
def test_malformed_addresses_say_what_is_wrong(value, reason):
    with pytest.raises(RemoteProtocolError) as error:
        Address.parse(value, header="From")
    assert error.value.reason == reason


_DISPLAYS = st.sampled_from(["", '"Alice" ', '"A\\"B"', "Alice ", "A B ", '"x,y"', "bad,name ", '"open '])
_URIS = st.sampled_from(["sip:a@example.com", "sip:example.com;lr", "SIP:A@B.c:5060;transport=TCP",
                         "sips:a:pw@[::1]", "sip:a@-bad", "tel:+1", "sip:a b@c", "sip:u%41@h", "sip:a@h:0"])
_PARAMS = st.sampled_from(["", ";tag=1", ";Tag=A;lr", ';q="0.5"', ";x=[::1]", ";=", ";a=b c", " ;tag=x"])


@given(st.builds(lambda d, u, p, angle: f"{d}<{u}>{p}" if angle else f"{d}{u}{p}",
                 _DISPLAYS, _URIS, _PARAMS, st.booleans()))
@example('"Alice" <sip:a@example.com>;tag=1')
def test_address_fast_path_agrees_with_the_general_parser(value):
    """What the compiled fast path accepts, the general parser accepts the same way."""
    try:
        fast = Address.parse(value)
    except RemoteProtocolError:
        return
    assert Address._parse_general(value, "address") == fast


@given(st.text(alphabet='"<>;=,:@ abcSIPsip.\\\t1[]%', max_size=40))
def test_address_parse_only_raises_remote_protocol_errors(value):
    try:
        fast = Address.parse(value)
    except RemoteProtocolError:
        return
    assert Address._parse_general(value, "address") == fast


# --- Via -----------------------------------------------------------------------------


def test_via_parts():
    via = Via.parse("SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKPj3c8e;received=192.0.2.99")
    assert (via.transport, via.host, via.port) == ("UDP", "192.0.2.10", 5060)
    assert via.params == {"rport": None, "branch": "z9hG4bKPj3c8e", "received": "192.0.2.99"}
    assert via.branch == "z9hG4bKPj3c8e"
    assert via.sent_by == ("192.0.2.10", 5060)
    assert str(via) == "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bKPj3c8e;received=192.0.2.99"


def test_via_with_lws_everywhere_and_lower_case_protocol():
    via = Via.parse("sip / 2.0 / tls Host.Example.COM : 5061 ; branch = z9hG4bKx ; alias")
    assert (via.transport, via.host, via.port) == ("TLS", "host.example.com", 5061)
    assert via.params == {"branch": "z9hG4bKx", "alias": None}


def test_via_default_ports_and_ipv6():
    assert Via.parse("SIP/2.0/TLS example.com").sent_by == ("example.com", 5061)
    assert Via.parse("SIP/2.0/UDP example.com").sent_by == ("example.com", 5060)
    via = Via.parse("SIP/2.0/UDP [2001:db8::1]:5070;branch=z9hG4bK1;received=2001:db8::99")
    assert via.sent_by == ("[2001:db8::1]", 5070)
    assert via.params["received"] == "2001:db8::99"
    assert Via.parse("SIP/2.0/UDP h;ttl=16;maddr=224.2.0.1").params == {"ttl": "16", "maddr": "224.2.0.1"}


@pytest.mark.parametrize("value, reason", [
    ("SIP/3.0/UDP h", "malformed Via: 'SIP/3.0/UDP h'"),
    ("SIP/2.0 h", "malformed Via: 'SIP/2.0 h'"),
    ("SIP/2.0/UDP", "malformed Via: 'SIP/2.0/UDP'"),
    ("SIP/2.0/UDP h_x", "Via has a malformed host in sent-by: 'SIP/2.0/UDP h_x'"),
    ("SIP/2.0/UDP h:0", "Via has a malformed port in sent-by: 'SIP/2.0/UDP h:0'"),
    ("SIP/2.0/UDP h junk", "Via has junk before its parameters: 'junk'"),
    ("SIP/2.0/UDP h;branch", "Via has a malformed branch: 'SIP/2.0/UDP h;branch'"),
    ('SIP/2.0/UDP h;branch="x"', "Via has a malformed branch: 'SIP/2.0/UDP h;branch=\"x\"'"),
    ("SIP/2.0/UDP h;received=example.com",
     "Via has a malformed received: 'SIP/2.0/UDP h;received=example.com'"),
    ("SIP/2.0/UDP h;rport=abc", "Via has a non-numeric rport: 'SIP/2.0/UDP h;rport=abc'"),
    ("SIP/2.0/UDP h;ttl=256", "Via has a malformed ttl: 'SIP/2.0/UDP h;ttl=256'"),
    ("SIP/2.0/UDP h;maddr=-x", "Via has a malformed maddr: 'SIP/2.0/UDP h;maddr=-x'"),
    ("SIP/2.0/UDP h;x=1:2", "Via has a malformed parameter value 'x=1:2'"),
])
def test_malformed_vias_say_what_is_wrong(value, reason):
    with pytest.raises(RemoteProtocolError) as error:
        Via.parse(value)
    assert error.value.reason == reason


@given(st.builds(lambda proto, host, port, params: f"{proto} {host}{port}{params}",
                 st.sampled_from(["SIP/2.0/UDP", "SIP/2.0/tcp", "sip/2.0/UDP", "SIP/2.0/", "SIP /2.0/UDP"]),
                 st.sampled_from(["h.example.com", "192.0.2.1", "[::1]", "-h", "H.EXAMPLE.COM", "256.1.1.1"]),
                 st.sampled_from(["", ":5060", ":0", ":70000", " : 5060"]),
                 st.sampled_from(["", ";branch=z9hG4bK1", ";rport", ";rport=1;received=1.2.3.4", ";branch",
                                  ";ttl=300", ";received=::1", ";maddr=x.y", ";a=b ;c"])))
def test_via_fast_path_agrees_with_the_general_parser(value):
    try:
        fast = Via.parse(value)
    except RemoteProtocolError:
        return
    assert Via._parse_general(value) == fast


# --- CSeq, numbers, media types, dates -----------------------------------------------


@pytest.mark.parametrize("value, seq, method", [
    ("8512 INVITE", 8512, "INVITE"), ("0009\t INVITE", 9, "INVITE"), ("0 ACK", 0, "ACK"),
    ("4294967295 BYE", 2**32 - 1, "BYE"), ("2147483648 REGISTER", 2**31, "REGISTER"),
    ("000000000001 OPTIONS", 1, "OPTIONS"), ("1 !interesting-Method0123456789_*+`.%indeed'~", 1,
                                             "!interesting-Method0123456789_*+`.%indeed'~"),
])
def test_cseq(value, seq, method):
    assert CSeq.parse(value) == CSeq(seq=seq, method=method)


@pytest.mark.parametrize("value, reason", [
    ("INVITE 1", "malformed CSeq: 'INVITE 1'"),
    ("-1 INVITE", "malformed CSeq: '-1 INVITE'"),
    ("1", "malformed CSeq: '1'"),
    ("1 IN VITE", "malformed CSeq: '1 IN VITE'"),
    ("１ INVITE", "malformed CSeq: '１ INVITE'"),
    ("4294967296 INVITE", "CSeq number is out of range: 4294967296"),
    ("36893488147419103232 REGISTER", "CSeq number is out of range: 36893488147419103232"),
])
def test_malformed_cseq(value, reason):
    with pytest.raises(RemoteProtocolError) as error:
        CSeq.parse(value)
    assert error.value.reason == reason


def test_delta_seconds():
    assert parse_delta_seconds(" 0068 ", header="Max-Forwards") == 68
    assert parse_delta_seconds("4294967295", header="Expires") == 2**32 - 1
    for bad in ["", "-1", "1e3", "²", "1" + "0" * 100]:
        with pytest.raises(RemoteProtocolError, match="Expires is not a valid number"):
            parse_delta_seconds(bad, header="Expires")


def test_media_types():
    assert parse_media_type("Application/SDP") == ("application/sdp", {})
    assert parse_media_type("multipart/mixed;boundary=7a9cbec02ceef655") == (
        "multipart/mixed", {"boundary": "7a9cbec02ceef655"})
    assert parse_media_type('text/plain ; charset="utf-8"') == ("text/plain", {"charset": '"utf-8"'})
    with pytest.raises(RemoteProtocolError, match="malformed media type 'application'"):
        parse_media_type("application")
    assert parse_param_header("presence;id=1", header="Event") == ("presence", {"id": "1"})


@pytest.mark.parametrize("value, valid", [
    ("Sat, 15 Oct 2005 04:44:56 GMT", True), ("Sat, 13 Nov 2010 23:29:00 GMT", True),
    ("Fri, 01 Jan 2010 16:00:00 EST", False), ("Sat, 15 Oct 2005 04:44:56", False),
    ("15 Oct 2005 04:44:56 GMT", False), ("Sat, 15 October 2005 04:44:56 GMT", False),
])
def test_sip_dates(value, valid):
    assert is_sip_date(value) is valid


# --- the Headers container -----------------------------------------------------------


def _headers() -> Headers:
    return Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"),
                    ("Via", "SIP/2.0/UDP c;branch=z9hG4bK3"), ("To", "<sip:b@x>"), ("Route", "<sip:p1;lr>"),
                    ("Route", "<sip:p2;lr>,<sip:p3;lr>"), ("Subject", "")])


def test_lookup_is_case_insensitive_and_knows_compact_forms():
    headers = _headers()
    assert headers.get("VIA") == "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"
    assert headers.get("t") == "<sip:b@x>"
    assert headers.get("Subject") == ""
    assert headers.get("Contact") is None
    assert headers.get("Contact", "none") == "none"
    assert "subject" in headers and "m" not in headers and 3 not in headers


def test_lines_versus_values():
    headers = _headers()
    assert len(headers.get_lines("Via")) == 2
    assert headers.get_all("Via") == ["SIP/2.0/UDP a;branch=z9hG4bK1", "SIP/2.0/UDP b;branch=z9hG4bK2",
                                      "SIP/2.0/UDP c;branch=z9hG4bK3"]
    assert headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    # not a list header: a comma is part of the value
    headers.add("User-Agent", "Linphone-Desktop/5.2.6 (debian) Debian GNU/Linux 12, Qt 5.15.8")
    assert headers.get_all("User-Agent") == ["Linphone-Desktop/5.2.6 (debian) Debian GNU/Linux 12, Qt 5.15.8"]


def test_returned_lists_do_not_alias_the_headers():
    headers = _headers()
    headers.get_lines("Route").append("<sip:evil>")
    headers.get_all("Subject").append("x")
    assert headers.get_lines("Route") == ["<sip:p1;lr>", "<sip:p2;lr>,<sip:p3;lr>"]
    assert headers.get_all("Subject") == [""]


def test_add_prepend_set_remove():
    headers = _headers()
    headers.add("x-custom", "1")
    headers.prepend("via", "SIP/2.0/UDP proxy;branch=z9hG4bK0")
    assert list(headers)[0] == ("Via", "SIP/2.0/UDP proxy;branch=z9hG4bK0")
    assert list(headers)[-1] == ("x-custom", "1")
    headers.set("ROUTE", "<sip:only;lr>")
    assert headers.get_lines("Route") == ["<sip:only;lr>"]
    assert [name for name, _ in headers].index("Route") == 4  # where the first Route was
    headers.set("Expires", "60")
    assert list(headers)[-1] == ("Expires", "60")
    headers.remove("v")
    headers.remove("Absent")
    assert headers.get_lines("Via") == []
    assert len(headers) == 5


def test_pop_first_takes_one_value_of_a_list_header():
    headers = _headers()
    assert headers.pop_first("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"
    assert headers.get_lines("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2", "SIP/2.0/UDP c;branch=z9hG4bK3"]
    assert headers.pop_first("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert headers.pop_first("Via") == "SIP/2.0/UDP c;branch=z9hG4bK3"
    assert headers.pop_first("Via") is None
    assert headers.pop_first("Route") == "<sip:p1;lr>"
    assert headers.pop_first("Route") == "<sip:p2;lr>"
    assert headers.get_lines("Route") == ["<sip:p3;lr>"]
    assert headers.pop_first("Subject") == ""


def test_copy_and_equality():
    headers = _headers()
    copy = headers.copy()
    assert copy == headers
    copy.add("X", "1")
    assert copy != headers
    assert "X" not in headers


@pytest.mark.parametrize("name, value, reason", [
    ("Bad Name", "x", "header name is not a token: 'Bad Name'"),
    ("", "x", "header name is not a token: ''"),
    ("Subject", "a\r\nVia: SIP/2.0/UDP evil", "header Subject value contains a line break: "
                                             "'a\\r\\nVia: SIP/2.0/UDP evil'"),
])
def test_our_own_malformed_headers_are_local_errors(name, value, reason):
    headers = Headers()
    for change in (headers.add, headers.prepend, headers.set):
        with pytest.raises(LocalProtocolError) as error:
            change(name, value)
        assert str(error.value) == reason
    with pytest.raises(LocalProtocolError):
        Headers([(name, value)])

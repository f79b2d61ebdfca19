"""Tests for pbx_services/sip/digest.py."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_services.sip.digest import (
    MAX_CLOCK_SKEW,
    DigestAlgorithm,
    DigestChallenge,
    DigestCredentials,
    NonceManager,
    NonceStatus,
    Qop,
    build_authorization,
    build_challenges,
    compute_ha1,
    compute_userhash,
    verify_response,
)
from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError

SECRET = b"0123456789abcdef0123456789abcdef"
TTL = 300.0
NOW = 1_700_000_000.0
REALM = "pbx.example.com"

# RFC 2617 section 3.5, folded over several lines as printed there.
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa",\r\n'
    '                 realm="testrealm@host.com",\r\n'
    '                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",\r\n'
    '                 uri="/dir/index.html",\r\n'
    "                 qop=auth,\r\n"
    "                 nc=00000001,\r\n"
    '                 cnonce="0a4f113b",\r\n'
    '                 response="6629fae49393a05397450978507c4ef1",\r\n'
    '                 opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def rfc7616_authorization(algorithm: str, response: str) -> str:
    """RFC 7616 section 3.9.1 (password "Circle of Life", lowercase "of")."""
    return (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        f'response="{response}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )


# Known answers


def test_rfc2617_md5_example() -> None:
    credentials = DigestCredentials.parse(RFC2617_AUTHORIZATION)
    assert credentials == DigestCredentials(
        scheme="Digest",
        username="Mufasa",
        realm="testrealm@host.com",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        uri="/dir/index.html",
        response="6629fae49393a05397450978507c4ef1",
        algorithm=DigestAlgorithm.MD5,
        cnonce="0a4f113b",
        nc=1,
        qop=Qop.AUTH,
        opaque="5ccc069c403ebaf9f0171e9517f40e41",
    )
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", DigestAlgorithm.MD5)
    assert ha1 == "939e7578ed9e3c518a452acee763bce9"
    assert verify_response(credentials, method="GET", ha1=ha1)
    assert not verify_response(credentials, method="POST", ha1=ha1)


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        (DigestAlgorithm.MD5, "8ca523f5e9506fed4657c9700eebdbec"),
        (DigestAlgorithm.SHA256, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_examples(algorithm: DigestAlgorithm, response: str) -> None:
    credentials = DigestCredentials.parse(rfc7616_authorization(algorithm.value, response))
    assert credentials.algorithm is algorithm
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    assert verify_response(credentials, method="GET", ha1=ha1)
    wrong = compute_ha1("Mufasa", "http-auth@example.org", "Circle Of Life", algorithm)
    assert not verify_response(credentials, method="GET", ha1=wrong)


def test_rfc2069_example_without_qop() -> None:
    # RFC 2069 section 2.4; the response printed there is wrong, this is the erratum's value.
    credentials = DigestCredentials.parse(
        'Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'uri="/dir/index.html", response="1949323746fe6a43ef61f9606e7febea", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert (credentials.qop, credentials.nc, credentials.cnonce) == (None, None, None)
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "CircleOfLife", DigestAlgorithm.MD5)
    assert verify_response(credentials, method="GET", ha1=ha1)


def test_auth_int_hashes_the_body() -> None:
    body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\n"
    ha1 = compute_ha1("alice", REALM, "secret", DigestAlgorithm.SHA256)
    sha = DigestAlgorithm.SHA256.hexdigest
    ha2 = sha("INVITE:sip:bob@pbx.example.com:" + hashlib.sha256(body).hexdigest())
    response = sha(f"{ha1}:n:0000000a:c:auth-int:{ha2}")
    credentials = DigestCredentials.parse(
        f'Digest username="alice", realm="{REALM}", nonce="n", uri="sip:bob@pbx.example.com", '
        f'response="{response}", algorithm=SHA-256, qop=auth-int, nc=0000000a, cnonce="c"'
    )
    assert credentials.nc == 10
    assert verify_response(credentials, method="INVITE", ha1=ha1, entity_body=body)
    assert not verify_response(credentials, method="INVITE", ha1=ha1, entity_body=body + b"a=x\r\n")


def test_compute_userhash() -> None:
    assert compute_userhash("Mufasa", "http-auth@example.org", DigestAlgorithm.SHA256) == (
        hashlib.sha256(b"Mufasa:http-auth@example.org").hexdigest()
    )


# Challenges


def test_build_challenges_offers_sha256_then_md5() -> None:
    assert build_challenges(REALM, "abc") == [
        'Digest realm="pbx.example.com", nonce="abc", algorithm=SHA-256, qop="auth"',
        'Digest realm="pbx.example.com", nonce="abc", algorithm=MD5, qop="auth"',
    ]


def test_build_challenges_stale_and_opaque_escaped() -> None:
    sha256, md5 = build_challenges('a "quoted" \\ realm', "abc", opaque="xyz", stale=True)
    assert sha256 == (
        'Digest realm="a \\"quoted\\" \\\\ realm", nonce="abc", opaque="xyz", stale=true, '
        'algorithm=SHA-256, qop="auth"'
    )
    challenge = DigestChallenge.parse(md5)
    assert challenge == DigestChallenge(
        scheme="Digest",
        realm='a "quoted" \\ realm',
        nonce="abc",
        algorithm=DigestAlgorithm.MD5,
        qop=(Qop.AUTH,),
        opaque="xyz",
        stale=True,
    )


def test_challenge_qop_list_keeps_known_options_in_order() -> None:
    challenge = DigestChallenge.parse('digest realm="r", nonce="n", qop="auth-int, auth-conf ,auth"')
    assert challenge.qop == (Qop.AUTH_INT, Qop.AUTH)
    assert challenge.algorithm is DigestAlgorithm.MD5
    assert (challenge.stale, challenge.userhash, challenge.opaque) == (False, False, None)


def test_challenge_without_qop_is_rfc2069() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", stale=FALSE')
    assert challenge.qop == ()
    assert challenge.stale is False


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('Digest nonce="n"', "Digest challenge: missing parameter 'realm'"),
        ('Digest realm="r"', "Digest challenge: missing parameter 'nonce'"),
        ('Digest realm="r", nonce="n", qop="auth-conf"', "Digest challenge: no supported qop in 'auth-conf'"),
        (
            'Digest realm="r", nonce="n", algorithm=SHA-512-256',
            "Digest challenge: unsupported algorithm 'SHA-512-256'",
        ),
        (
            'Digest realm="r", nonce="n", stale=maybe',
            "Digest challenge: stale must be true or false, got 'maybe'",
        ),
        ('Basic realm="r"', "Digest challenge: scheme 'Basic' is not Digest"),
    ],
)
def test_challenge_parse_errors(header: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        DigestChallenge.parse(header)
    assert (excinfo.value.status_code, excinfo.value.reason) == (400, reason)


# Client to server round trips


@pytest.mark.parametrize("index", [0, 1])
def test_round_trip_client_to_server(index: int) -> None:
    nonces = NonceManager(SECRET, TTL)
    nonce = nonces.make_nonce(NOW)
    challenge = DigestChallenge.parse(build_challenges(REALM, nonce, opaque="o")[index])
    uri = "sip:pbx.example.com"
    for nc in (1, 2):
        header = build_authorization(
            challenge, username="alice", password="s3cret", method="REGISTER", uri=uri, cnonce="cn", nc=nc
        )
        credentials = DigestCredentials.parse(header)
        assert credentials.algorithm is challenge.algorithm
        assert (credentials.username, credentials.realm, credentials.uri) == ("alice", REALM, uri)
        assert (credentials.nc, credentials.cnonce, credentials.qop, credentials.opaque) == (
            nc,
            "cn",
            Qop.AUTH,
            "o",
        )
        ha1 = compute_ha1("alice", REALM, "s3cret", credentials.algorithm)
        assert verify_response(credentials, method="REGISTER", ha1=ha1)
        assert not verify_response(credentials, method="INVITE", ha1=ha1)
        assert nonces.check(credentials.nonce, credentials.nc, NOW + 1) is NonceStatus.VALID
    assert nonces.check(nonce, 2, NOW + 2) is NonceStatus.REPLAY


def test_build_authorization_exact_header() -> None:
    challenge = DigestChallenge.parse(build_challenges(REALM, "n0nce")[0])
    header = build_authorization(
        challenge, username="alice", password="pw", method="INVITE", uri="sip:bob@pbx", cnonce="c", nc=255
    )
    ha1 = hashlib.sha256(b"alice:pbx.example.com:pw").hexdigest()
    ha2 = hashlib.sha256(b"INVITE:sip:bob@pbx").hexdigest()
    response = hashlib.sha256(f"{ha1}:n0nce:000000ff:c:auth:{ha2}".encode()).hexdigest()
    assert header == (
        f'Digest username="alice", realm="pbx.example.com", nonce="n0nce", uri="sip:bob@pbx", '
        f'response="{response}", algorithm=SHA-256, cnonce="c", qop=auth, nc=000000ff'
    )


def test_round_trip_rfc2069_challenge_sends_no_cnonce_or_nc() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n"')
    header = build_authorization(
        challenge, username="u", password="p", method="GET", uri="/", cnonce="c", nc=1
    )
    credentials = DigestCredentials.parse(header)
    assert (credentials.qop, credentials.cnonce, credentials.nc) == (None, None, None)
    assert verify_response(credentials, method="GET", ha1=compute_ha1("u", "r", "p", DigestAlgorithm.MD5))


def test_round_trip_auth_int_only_challenge() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth-int"')
    header = build_authorization(
        challenge,
        username="u",
        password="p",
        method="MESSAGE",
        uri="sip:x",
        cnonce="c",
        nc=1,
        entity_body=b"hi",
    )
    credentials = DigestCredentials.parse(header)
    assert credentials.qop is Qop.AUTH_INT
    ha1 = compute_ha1("u", "r", "p", DigestAlgorithm.MD5)
    assert verify_response(credentials, method="MESSAGE", ha1=ha1, entity_body=b"hi")
    assert not verify_response(credentials, method="MESSAGE", ha1=ha1, entity_body=b"ho")


def test_round_trip_userhash() -> None:
    challenge = DigestChallenge.parse(build_challenges(REALM, "n")[0] + ", userhash=true")
    header = build_authorization(
        challenge, username="alice", password="pw", method="REGISTER", uri="sip:x", cnonce="c", nc=1
    )
    credentials = DigestCredentials.parse(header)
    assert credentials.userhash is True
    assert credentials.username == compute_userhash("alice", REALM, DigestAlgorithm.SHA256)
    assert verify_response(
        credentials, method="REGISTER", ha1=compute_ha1("alice", REALM, "pw", DigestAlgorithm.SHA256)
    )


@pytest.mark.parametrize("nc", [0, 2**32])
def test_build_authorization_rejects_nc_out_of_range(nc: int) -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth"')
    with pytest.raises(LocalProtocolError, match=r"^nonce-count \d+ is outside 1\.\.0xffffffff$"):
        build_authorization(challenge, username="u", password="p", method="GET", uri="/", cnonce="c", nc=nc)


def test_build_authorization_refuses_line_break_in_a_value() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", qop="auth"')
    with pytest.raises(LocalProtocolError, match=r"^cannot put a line break or NUL in a quoted string"):
        build_authorization(
            challenge, username="u\r\nX: y", password="p", method="GET", uri="/", cnonce="c", nc=1
        )


def test_verify_response_with_non_ascii_or_short_response_is_false() -> None:
    base = 'Digest username="u", realm="r", nonce="n", uri="/", response="{}"'
    ha1 = compute_ha1("u", "r", "p", DigestAlgorithm.MD5)
    for response in ("\u00e9" * 32, "", "ab"):
        assert not verify_response(DigestCredentials.parse(base.format(response)), method="GET", ha1=ha1)


def test_verify_response_accepts_uppercase_hex() -> None:
    credentials = DigestCredentials.parse(RFC2617_AUTHORIZATION.replace("6629fae4", "6629FAE4"))
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", DigestAlgorithm.MD5)
    assert verify_response(credentials, method="GET", ha1=ha1)


# Nonces


def test_nonce_is_url_safe_and_unique() -> None:
    nonces = NonceManager(SECRET, TTL)
    first, second = nonces.make_nonce(NOW), nonces.make_nonce(NOW)
    assert first != second
    assert len(first) == 48 and first.replace("-", "").replace("_", "").isalnum()


def test_nonce_from_another_worker_with_the_same_secret_is_valid() -> None:
    nonce = NonceManager(SECRET, TTL).make_nonce(NOW)
    assert NonceManager(SECRET, TTL).check(nonce, 1, NOW + 10) is NonceStatus.VALID
    assert (
        NonceManager(b"another secret of 32 bytes......", TTL).check(nonce, 1, NOW + 10)
        is NonceStatus.INVALID
    )


def test_stale_nonce() -> None:
    nonces = NonceManager(SECRET, TTL)
    nonce = nonces.make_nonce(NOW)
    assert nonces.check(nonce, 1, NOW + TTL) is NonceStatus.VALID
    assert nonces.check(nonce, 2, NOW + TTL + 0.01) is NonceStatus.STALE


def test_nonce_from_the_future() -> None:
    nonces = NonceManager(SECRET, TTL)
    assert nonces.check(nonces.make_nonce(NOW + MAX_CLOCK_SKEW), 1, NOW) is NonceStatus.VALID
    assert nonces.check(nonces.make_nonce(NOW + MAX_CLOCK_SKEW + 1), 1, NOW) is NonceStatus.INVALID


@pytest.mark.parametrize(
    "nonce",
    [
        "",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "A" * 48,
        "A" * 47 + "=",
        "A" * 49,
        "A" * 24 + "\n" + "A" * 23,
        "\u00c9" * 48,
    ],
)
def test_garbled_nonce_is_invalid(nonce: str) -> None:
    assert NonceManager(SECRET, TTL).check(nonce, 1, NOW) is NonceStatus.INVALID


@settings(max_examples=200)
@given(position=st.integers(min_value=0, max_value=47), replacement=st.sampled_from("AZaz09-_"))
def test_property_any_altered_character_makes_the_nonce_invalid(position: int, replacement: str) -> None:
    nonces = NonceManager(SECRET, TTL)
    nonce = nonces.make_nonce(NOW)
    forged = nonce[:position] + replacement + nonce[position + 1 :]
    expected = NonceStatus.VALID if forged == nonce else NonceStatus.INVALID
    assert nonces.check(forged, 1, NOW) is expected


def test_replayed_or_lower_nonce_count() -> None:
    nonces = NonceManager(SECRET, TTL)
    nonce = nonces.make_nonce(NOW)
    assert nonces.check(nonce, 0, NOW) is NonceStatus.REPLAY
    assert nonces.check(nonce, 5, NOW) is NonceStatus.VALID
    assert nonces.check(nonce, 5, NOW) is NonceStatus.REPLAY
    assert nonces.check(nonce, 3, NOW) is NonceStatus.REPLAY
    assert nonces.check(nonce, 6, NOW) is NonceStatus.VALID


def test_rfc2069_requests_without_nonce_count_are_not_tracked() -> None:
    nonces = NonceManager(SECRET, TTL)
    nonce = nonces.make_nonce(NOW)
    assert nonces.check(nonce, None, NOW) is NonceStatus.VALID
    assert nonces.check(nonce, None, NOW) is NonceStatus.VALID
    assert nonces.counts.tracked == 0


def test_expired_nonce_counts_are_forgotten() -> None:
    nonces = NonceManager(SECRET, TTL)
    first, second = nonces.make_nonce(NOW), nonces.make_nonce(NOW + 100)
    assert nonces.counts.next_timer() is None
    nonces.check(first, 1, NOW + 100)
    nonces.check(second, 1, NOW + 100)
    assert nonces.counts.tracked == 2
    assert nonces.counts.next_timer() == NOW + TTL
    nonces.counts.handle_timer(NOW + TTL)
    assert nonces.counts.tracked == 2
    nonces.counts.handle_timer(NOW + TTL + 1)
    assert nonces.counts.tracked == 1
    assert nonces.counts.next_timer() == NOW + 100 + TTL
    nonces.counts.handle_timer(NOW + 100 + TTL + 1)
    assert nonces.counts.tracked == 0 and nonces.counts.next_timer() is None


def test_check_purges_expired_counts_without_a_timer() -> None:
    nonces = NonceManager(SECRET, TTL)
    for offset in range(10):
        nonces.check(nonces.make_nonce(NOW + offset), 1, NOW + offset)
    late = NOW + 10 + TTL
    nonces.check(nonces.make_nonce(late), 1, late)
    assert nonces.counts.tracked == 1


def test_replay_memory_is_capped_and_forgetting_never_admits_a_replay() -> None:
    nonces = NonceManager(SECRET, TTL, max_tracked=3)
    issued = [nonces.make_nonce(NOW + offset) for offset in range(5)]
    for nonce in issued:
        assert nonces.check(nonce, 1, NOW + 10) is NonceStatus.VALID
        assert nonces.counts.tracked <= 3
    assert nonces.counts.tracked == 3
    # The two oldest were dropped: their old count is not accepted again, the client gets stale=true.
    assert nonces.check(issued[0], 1, NOW + 10) is NonceStatus.STALE
    assert nonces.check(issued[1], 2, NOW + 10) is NonceStatus.STALE
    assert nonces.check(issued[4], 1, NOW + 10) is NonceStatus.REPLAY
    assert nonces.check(issued[4], 2, NOW + 10) is NonceStatus.VALID


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"secret": b"short", "ttl": TTL}, "nonce secret must be at least 16 bytes"),
        ({"secret": SECRET, "ttl": 0}, "nonce ttl must be positive"),
        ({"secret": SECRET, "ttl": TTL, "max_tracked": 0}, "max_tracked must be at least 1"),
    ],
)
def test_nonce_manager_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        NonceManager(**kwargs)  # type: ignore[arg-type]


def test_make_nonce_rejects_negative_time() -> None:
    with pytest.raises(LocalProtocolError):
        NonceManager(SECRET, TTL).make_nonce(-1.0)


# Parsing credentials


def test_parse_is_case_insensitive_and_tolerates_quoting_and_whitespace() -> None:
    credentials = DigestCredentials.parse(
        ' \tdIgEsT\tUserName = "bob" ,REALM="r",Nonce="n",\r\n\tURI="sip:x",Response="00",'
        'ALGORITHM="sha-256", QOP="auth", NC=00000010, CNonce=abc, opaque="" , UserHash=TRUE'
    )
    assert credentials == DigestCredentials(
        scheme="dIgEsT",
        username="bob",
        realm="r",
        nonce="n",
        uri="sip:x",
        response="00",
        algorithm=DigestAlgorithm.SHA256,
        cnonce="abc",
        nc=16,
        qop=Qop.AUTH,
        opaque="",
        userhash=True,
    )


def test_parse_quoted_string_escapes_folding_and_utf8() -> None:
    credentials = DigestCredentials.parse(
        'Digest username="J\\"o\\\\e \u00e9", realm="a,b=c",\r\n nonce="n", uri="sip:x;a=\\b", '
        'response="00", extra="line\r\n  two", future-param=token'
    )
    assert credentials.username == 'J"o\\e \u00e9'
    assert credentials.realm == "a,b=c"
    assert credentials.uri == "sip:x;a=b"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "Digest credentials: expected the auth scheme, got end of header"),
        (
            '"Digest" username="u"',
            'Digest credentials: expected the auth scheme, got \'"Digest" username="u"\'',
        ),
        ("Basic dXNlcjpwYXNz", "Digest credentials: scheme 'Basic' is not Digest"),
        ("Digest", "Digest credentials: no parameters after the scheme"),
        ("Digest   ", "Digest credentials: no parameters after the scheme"),
        ('Digest,username="u"', "Digest credentials: no parameters after the scheme"),
        ('Digest username="u",', "Digest credentials: expected a parameter name, got end of header"),
        (
            'Digest username="u",,realm="r"',
            "Digest credentials: expected a parameter name, got ',realm=\"r\"'",
        ),
        ('Digest username "u"', "Digest credentials: parameter 'username' has no '='"),
        ("Digest username=", "Digest credentials: parameter 'username' has no value, got end of header"),
        ("Digest username=/x", "Digest credentials: parameter 'username' has no value, got '/x'"),
        ('Digest username="u', "Digest credentials: parameter 'username' has an unterminated quoted string"),
        (
            'Digest username="u\\',
            "Digest credentials: parameter 'username' has a bad escape at the end of a line",
        ),
        (
            'Digest username="u\x00"',
            "Digest credentials: parameter 'username' has control character '\\x00' in its value",
        ),
        (
            'Digest username="a\r\nb"',
            "Digest credentials: parameter 'username' has control character '\\r' in its value",
        ),
        (
            'Digest username="u" realm="r"',
            "Digest credentials: expected ',' after parameter 'username', got 'realm=\"r\"'",
        ),
        (
            'Digest username="u"\r\nrealm="r"',
            "Digest credentials: expected ',' after parameter 'username', got '\\r\\nrealm=\"r\"'",
        ),
        ('Digest username="u", Username="v"', "Digest credentials: repeated parameter 'username'"),
        (
            'Digest realm="r", nonce="n", uri="/", response="0"',
            "Digest credentials: missing parameter 'username'",
        ),
        (
            'Digest username="u", nonce="n", uri="/", response="0"',
            "Digest credentials: missing parameter 'realm'",
        ),
        (
            'Digest username="u", realm="r", uri="/", response="0"',
            "Digest credentials: missing parameter 'nonce'",
        ),
        (
            'Digest username="u", realm="r", nonce="n", response="0"',
            "Digest credentials: missing parameter 'uri'",
        ),
        (
            'Digest username="u", realm="r", nonce="n", uri="/"',
            "Digest credentials: missing parameter 'response'",
        ),
    ],
)
def test_parse_syntax_errors(header: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        DigestCredentials.parse(header)
    assert (excinfo.value.status_code, excinfo.value.reason) == (400, reason)


VALID = 'Digest username="u", realm="r", nonce="n", uri="/", response="0"'


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (", qop=auth-conf", "Digest credentials: unsupported qop 'auth-conf'"),
        (", qop=auth, nc=00000001", "Digest credentials: missing parameter 'cnonce' (required with qop)"),
        (', qop=auth, cnonce="c"', "Digest credentials: missing parameter 'nc' (required with qop)"),
        (', qop=auth, cnonce="c", nc=1', "Digest credentials: nc must be 8 lowercase hex digits, got '1'"),
        (
            ', qop=auth, cnonce="c", nc=0000000A',
            "Digest credentials: nc must be 8 lowercase hex digits, got '0000000A'",
        ),
        (
            ', qop=auth, cnonce="c", nc=000000001',
            "Digest credentials: nc must be 8 lowercase hex digits, got '000000001'",
        ),
        (", algorithm=MD5-sess", "Digest credentials: unsupported algorithm 'MD5-sess'"),
        (", userhash=yes", "Digest credentials: userhash must be true or false, got 'yes'"),
    ],
)
def test_parse_semantic_errors(extra: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        DigestCredentials.parse(VALID + extra)
    assert (excinfo.value.status_code, excinfo.value.reason) == (400, reason)


def test_long_garbage_is_cut_short_in_the_error() -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        DigestCredentials.parse("Digest " + "/" * 100)
    assert excinfo.value.reason == "Digest credentials: expected a parameter name, got '" + "/" * 40 + "...'"


_HEADER_PIECES = st.sampled_from(
    [
        "Digest",
        " ",
        "\t",
        "\r\n ",
        "\r\n",
        ",",
        "=",
        '"',
        "\\",
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "qop",
        "auth",
        "nc",
        "00000001",
        "cnonce",
        "algorithm",
        "SHA-256",
        "userhash",
        "true",
        "\u00e9",
        "\x00",
        "/",
    ]
)


@settings(max_examples=1000)
@given(
    st.lists(_HEADER_PIECES, max_size=30).map("".join)
    | st.text(max_size=80)
    | st.builds(
        lambda cut, noise: VALID[:cut] + noise + VALID[cut:], st.integers(0, len(VALID)), st.text(max_size=4)
    )
)
def test_property_parse_only_raises_remote_protocol_error(header: str) -> None:
    for parse in (DigestCredentials.parse, DigestChallenge.parse):
        try:
            parse(header)
        except RemoteProtocolError as exc:
            assert exc.status_code == 400
            assert exc.reason.isascii() and "\n" not in exc.reason and "\r" not in exc.reason


@given(st.lists(st.tuples(st.sampled_from(["username", "realm", "nonce", "uri", "response", "qop", "nc",
                                             "cnonce", "algorithm", "opaque", "Realm"]),
                          st.text(alphabet="abcAB01-_.:@ /,=\\\"\t", max_size=12), st.booleans()),
                min_size=1, max_size=8),
       st.sampled_from([", ", ",", " , ", ",\t"]))
def test_fast_path_agrees_with_the_full_parser(params: list[tuple[str, str, bool]], separator: str) -> None:
    from pbx_services.sip.digest import _parse_plain_auth_header, _scan_auth_header

    value = "Digest " + separator.join(
        f'{name}="{text}"' if quoted else f"{name}={text}" for name, text, quoted in params)
    fast = _parse_plain_auth_header(value)
    if fast is not None:
        assert fast == _scan_auth_header(value, "test")

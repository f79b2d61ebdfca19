"""HTTP Digest authentication as SIP uses it (RFC 3261 section 22, RFC 8760, RFC 7616, RFC 2617).

Server side, for REGISTER and INVITE challenges:

1. `build_challenges(realm, nonce_manager.make_nonce(now))` gives the WWW-Authenticate or
   Proxy-Authenticate values for a 401/407, SHA-256 first (RFC 8760 section 2.4).
2. `DigestCredentials.parse(value)` reads the Authorization / Proxy-Authorization that comes back.
3. `verify_response(credentials, method=..., ha1=...)` checks the response hash against the HA1
   from the user database (`compute_ha1`), for the algorithm in the credentials.
4. Only then `nonce_manager.check(credentials.nonce, credentials.nc, now)`: a nonce-count is recorded
   only for a request that proved knowledge of the password, so a forged request cannot advance the
   counter and lock out the real client; and STALE means "right password, old nonce", which is what
   stale=true tells the client (RFC 7616 section 3.3).

Client side, for trunks and tests: `DigestChallenge.parse` and `build_authorization`.

Nonces are stateless (timestamp, random bytes and an HMAC over both), so any worker that shares the
secret validates a nonce another worker issued. The nonce-count memory that stops replays is a
`NonceCounts`: in-process (`InMemoryNonceCounts`) for one process, or shared by every worker and
Call Manager (the cluster's state store), so that a request replayed to another one is caught too.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import heapq
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError

SCHEME_DIGEST = "Digest"
NC_HEX_DIGITS = 8
MAX_NC = 0xFFFFFFFF
NONCE_TIMESTAMP_BYTES = 8  # issue time in milliseconds, unsigned big-endian
NONCE_RANDOM_BYTES = 12
NONCE_MAC_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5 allows it)
NONCE_LENGTH = 48  # base64url characters of the 36 bytes above, without padding
MIN_SECRET_BYTES = 16
# How far in the future a nonce's issue time may lie: other workers' clocks are not exactly ours.
MAX_CLOCK_SKEW = 5.0
DEFAULT_MAX_TRACKED_NONCES = 65536

_NONCE_SHAPE = re.compile(rf"[A-Za-z0-9_-]{{{NONCE_LENGTH}}}")
_NC_SHAPE = re.compile(rf"[0-9a-f]{{{NC_HEX_DIGITS}}}")  # RFC 3261 nc-value = 8LHEX
# RFC 3261 section 25.1 token characters.
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_WSP = " \t"
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
# The shape nearly every client sends: no folding, no escapes, no control characters.
_FAST_SCHEME = re.compile(rf"[ \t]*({_TOKEN})[ \t]+")
_FAST_PARAM = re.compile(
    rf"({_TOKEN})[ \t]*=[ \t]*(?:\"([^\"\\\x00-\x08\x0a-\x1f\x7f]*)\"|({_TOKEN}))[ \t]*(,[ \t]*|$)")
_MAX_SHOWN = 40  # characters of a bad value quoted back in an error message


class DigestAlgorithm(enum.StrEnum):
    """The algorithms we offer and accept; the value is the token on the wire."""

    MD5 = "MD5"
    SHA256 = "SHA-256"

    def hexdigest(self, data: str | bytes) -> str:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if self is DigestAlgorithm.MD5:
            return hashlib.md5(raw).hexdigest()
        return hashlib.sha256(raw).hexdigest()


# RFC 8760 section 2.4: a UAS offers the strongest algorithm first.
CHALLENGE_ALGORITHMS = (DigestAlgorithm.SHA256, DigestAlgorithm.MD5)
_ALGORITHMS_BY_NAME = {algorithm.value.lower(): algorithm for algorithm in DigestAlgorithm}


class Qop(enum.StrEnum):
    """Quality of protection: auth hashes method and URI, auth-int adds the message body."""

    AUTH = "auth"
    AUTH_INT = "auth-int"


class NonceStatus(enum.Enum):
    VALID = "valid"
    STALE = "stale"  # issued by us but too old (or its counter forgotten): challenge with stale=true
    INVALID = "invalid"  # not issued by anyone holding the secret, or garbled
    REPLAY = "replay"  # nonce-count not above the last one accepted for this nonce


def compute_ha1(username: str, realm: str, password: str, algorithm: DigestAlgorithm) -> str:
    """H(username ":" realm ":" password), what a user database stores instead of the password."""
    return algorithm.hexdigest(f"{username}:{realm}:{password}")


def compute_userhash(username: str, realm: str, algorithm: DigestAlgorithm) -> str:
    """H(username ":" realm), sent in place of the username when userhash=true (RFC 7616 section 3.4.4)."""
    return algorithm.hexdigest(f"{username}:{realm}")


class NonceCounts(Protocol):
    """The last nonce-count accepted for each nonce in use, wherever it is kept."""

    def advance(self, nonce: str, nc: int, issued: float, now: float) -> NonceStatus:
        """Record `nc` for `nonce` (issued at `issued`) when it is above the last one: VALID;
        REPLAY when it is not; STALE when the nonce's count may have been forgotten."""
        ...

    def handle_timer(self, now: float) -> None:
        """Forget the counts of nonces expired at `now`."""
        ...


class InMemoryNonceCounts:
    """Nonce-counts in this process. Memory is bounded: a nonce's counter is dropped once the
    nonce expires, and when more than `max_tracked` are in use the oldest one is dropped early;
    a nonce whose counter might have been dropped this way answers STALE rather than VALID, so
    forgetting never lets a replay through."""

    def __init__(self, ttl: float, *, max_tracked: int = DEFAULT_MAX_TRACKED_NONCES) -> None:
        if max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")
        self._ttl = ttl
        self._max_tracked = max_tracked
        self._last_nc: dict[str, int] = {}
        self._by_issue_time: list[tuple[float, str]] = []  # heap over the keys of _last_nc
        self._forgotten_until = float("-inf")  # issue time of the newest nonce dropped early

    @property
    def tracked(self) -> int:
        """How many nonces have a remembered nonce-count."""
        return len(self._last_nc)

    def advance(self, nonce: str, nc: int, issued: float, now: float) -> NonceStatus:
        self.handle_timer(now)
        last_nc = self._last_nc.get(nonce)
        if last_nc is None:
            if issued <= self._forgotten_until:
                return NonceStatus.STALE
            self._track(nonce, issued)
            last_nc = 0
        if nc <= last_nc:
            return NonceStatus.REPLAY
        self._last_nc[nonce] = nc
        return NonceStatus.VALID

    def next_timer(self) -> float | None:
        """When the oldest remembered nonce expires, None when nothing is remembered."""
        return self._by_issue_time[0][0] + self._ttl if self._by_issue_time else None

    def handle_timer(self, now: float) -> None:
        while self._by_issue_time and now - self._by_issue_time[0][0] > self._ttl:
            _, nonce = heapq.heappop(self._by_issue_time)
            del self._last_nc[nonce]

    def _track(self, nonce: str, issued: float) -> None:
        if len(self._last_nc) >= self._max_tracked:
            oldest_issued, oldest = heapq.heappop(self._by_issue_time)
            del self._last_nc[oldest]
            self._forgotten_until = max(self._forgotten_until, oldest_issued)
        heapq.heappush(self._by_issue_time, (issued, nonce))
        self._last_nc[nonce] = 0


class NonceManager:
    """Issues and checks nonces; `counts` remembers the last nonce-count accepted for each.

    `now` is wall-clock seconds shared by every worker that validates the nonces (time.time()),
    since a nonce carries its issue time to other processes.
    """

    def __init__(self, secret: bytes, ttl: float, *, counts: NonceCounts | None = None,
                 max_tracked: int = DEFAULT_MAX_TRACKED_NONCES) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"nonce secret must be at least {MIN_SECRET_BYTES} bytes")
        if ttl <= 0:
            raise ValueError("nonce ttl must be positive")
        self._secret = secret
        self.ttl = ttl
        self.counts: NonceCounts = counts or InMemoryNonceCounts(ttl, max_tracked=max_tracked)

    def make_nonce(self, now: float) -> str:
        if now < 0:
            raise LocalProtocolError("nonce issue time must not be negative")
        issued_ms = int(now * 1000).to_bytes(NONCE_TIMESTAMP_BYTES, "big")
        payload = issued_ms + secrets.token_bytes(NONCE_RANDOM_BYTES)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).decode("ascii")

    def check(self, nonce: str, nc: int | None, now: float) -> NonceStatus:
        """Check a nonce and, when VALID, record `nc` as its latest nonce-count.

        Call it only after `verify_response` succeeded (see the module docstring). `nc` is None
        for RFC 2069 clients, which send no nonce-count: nothing can be tracked for them.
        """
        issued = self._issue_time(nonce)
        if issued is None or issued - now > MAX_CLOCK_SKEW:
            return NonceStatus.INVALID
        if now - issued > self.ttl:
            return NonceStatus.STALE
        if nc is None:
            return NonceStatus.VALID
        return self.counts.advance(nonce, nc, issued, now)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:NONCE_MAC_BYTES]

    def _issue_time(self, nonce: str) -> float | None:
        """The issue time of an authentic nonce in seconds, None when it is not one of ours."""
        # The shape check also keeps b64decode from skipping stray characters, so that one nonce
        # has exactly one spelling and cannot dodge the replay table.
        if not _NONCE_SHAPE.fullmatch(nonce):
            return None
        raw = base64.urlsafe_b64decode(nonce)
        payload, mac = raw[:-NONCE_MAC_BYTES], raw[-NONCE_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return int.from_bytes(payload[:NONCE_TIMESTAMP_BYTES], "big") / 1000


def build_challenges(realm: str, nonce: str, *, opaque: str | None = None, stale: bool = False,
                     algorithms: Sequence[DigestAlgorithm] = CHALLENGE_ALGORITHMS) -> list[str]:
    """WWW-Authenticate / Proxy-Authenticate values, one per algorithm, SHA-256 first (RFC 8760)."""
    challenges = []
    for algorithm in algorithms:
        params = [f"realm={_quote(realm)}", f"nonce={_quote(nonce)}"]
        if opaque is not None:
            params.append(f"opaque={_quote(opaque)}")
        if stale:
            params.append("stale=true")
        params += [f"algorithm={algorithm.value}", f'qop="{Qop.AUTH.value}"']
        challenges.append(f"{SCHEME_DIGEST} {', '.join(params)}")
    return challenges


@dataclass(frozen=True)
class DigestCredentials:
    """An Authorization or Proxy-Authorization header value.

    With `userhash` set, `username` is H(username ":" realm) rather than the user name.
    """

    scheme: str
    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    cnonce: str | None = None
    nc: int | None = None
    qop: Qop | None = None
    opaque: str | None = None
    userhash: bool = False

    @classmethod
    def parse(cls, header_value: str) -> DigestCredentials:
        """Parse a header value; raise RemoteProtocolError(status_code=400) saying what is wrong.

        Every parameter may be a token or a quoted-string: clients that quote qop or algorithm
        are common enough that rejecting them would only lock phones out.
        """
        what = "Digest credentials"
        scheme, params = _parse_auth_header(header_value, what)
        for name in ("username", "realm", "nonce", "uri", "response"):
            if name not in params:
                raise _error(what, f"missing parameter {name!a}")
        qop = None
        nc = None
        if "qop" in params:
            qop_text = params["qop"].lower()
            if qop_text not in (Qop.AUTH.value, Qop.AUTH_INT.value):
                raise _error(what, f"unsupported qop {_show(params['qop'])}")
            qop = Qop(qop_text)
            for name in ("cnonce", "nc"):
                if name not in params:
                    raise _error(what, f"missing parameter {name!a} (required with qop)")
        if "nc" in params:
            if not _NC_SHAPE.fullmatch(params["nc"]):
                raise _error(
                    what, f"nc must be {NC_HEX_DIGITS} lowercase hex digits, got {_show(params['nc'])}"
                )
            nc = int(params["nc"], 16)
        return cls(
            scheme=scheme,
            username=params["username"],
            realm=params["realm"],
            nonce=params["nonce"],
            uri=params["uri"],
            response=params["response"],
            algorithm=_parse_algorithm(params, what),
            cnonce=params.get("cnonce"),
            nc=nc,
            qop=qop,
            opaque=params.get("opaque"),
            userhash=_parse_flag(params, "userhash", what),
        )


@dataclass(frozen=True)
class DigestChallenge:
    """A WWW-Authenticate or Proxy-Authenticate header value. `qop` lists the supported options
    offered, in order, and is empty for an RFC 2069 challenge.

    An algorithm we do not implement raises RemoteProtocolError: a client facing several
    challenges parses each and answers the first that parses.
    """

    scheme: str
    realm: str
    nonce: str
    algorithm: DigestAlgorithm = DigestAlgorithm.MD5
    qop: tuple[Qop, ...] = ()
    opaque: str | None = None
    stale: bool = False
    userhash: bool = False

    @classmethod
    def parse(cls, header_value: str) -> DigestChallenge:
        what = "Digest challenge"
        scheme, params = _parse_auth_header(header_value, what)
        for name in ("realm", "nonce"):
            if name not in params:
                raise _error(what, f"missing parameter {name!a}")
        qop: tuple[Qop, ...] = ()
        if "qop" in params:
            offered = [option.strip(_WSP).lower() for option in params["qop"].split(",")]
            # RFC 7616 section 3.3: unrecognized options are ignored.
            qop = tuple(Qop(option) for option in offered if option in (Qop.AUTH.value, Qop.AUTH_INT.value))
            if not qop:
                raise _error(what, f"no supported qop in {_show(params['qop'])}")
        return cls(
            scheme=scheme,
            realm=params["realm"],
            nonce=params["nonce"],
            algorithm=_parse_algorithm(params, what),
            qop=qop,
            opaque=params.get("opaque"),
            stale=_parse_flag(params, "stale", what),
            userhash=_parse_flag(params, "userhash", what),
        )


def verify_response(
    credentials: DigestCredentials, *, method: str, ha1: str, entity_body: bytes = b""
) -> bool:
    """Whether the credentials' response hash is right for `ha1`, computed with credentials.algorithm.

    `entity_body` only matters for qop=auth-int. The nonce, realm and URI are not checked here.
    """
    expected = _request_digest(
        credentials.algorithm,
        ha1=ha1,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        entity_body=entity_body,
    )
    # Bytes, because compare_digest refuses non-ASCII str and the response is the peer's text.
    return hmac.compare_digest(expected.encode("ascii"), credentials.response.lower().encode("utf-8"))


def build_authorization(
    challenge: DigestChallenge,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str,
    nc: int,
    entity_body: bytes = b"",
) -> str:
    """An Authorization / Proxy-Authorization value answering `challenge`.

    Uses qop=auth when offered, else auth-int over `entity_body`, else the RFC 2069 form (then
    `cnonce` and `nc` are not sent).
    """
    if not 1 <= nc <= MAX_NC:
        raise LocalProtocolError(f"nonce-count {nc} is outside 1..{MAX_NC:#x}")
    qop = None
    if challenge.qop:
        qop = Qop.AUTH if Qop.AUTH in challenge.qop else challenge.qop[0]
    algorithm = challenge.algorithm
    response = _request_digest(
        algorithm,
        ha1=compute_ha1(username, challenge.realm, password, algorithm),
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        entity_body=entity_body,
    )
    sent_username = compute_userhash(username, challenge.realm, algorithm) if challenge.userhash else username
    params = [
        f"username={_quote(sent_username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        f"algorithm={algorithm.value}",
    ]
    if qop is not None:
        params += [f"cnonce={_quote(cnonce)}", f"qop={qop.value}", f"nc={nc:0{NC_HEX_DIGITS}x}"]
    if challenge.opaque is not None:
        params.append(f"opaque={_quote(challenge.opaque)}")
    if challenge.userhash:
        params.append("userhash=true")
    return f"{SCHEME_DIGEST} {', '.join(params)}"


def _request_digest(
    algorithm: DigestAlgorithm,
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    qop: Qop | None,
    nc: int | None,
    cnonce: str | None,
    entity_body: bytes,
) -> str:
    """The response hash of RFC 7616 section 3.4.1 (RFC 2617 section 3.2.2.1 without qop)."""
    if qop is Qop.AUTH_INT:
        ha2 = algorithm.hexdigest(f"{method}:{uri}:{algorithm.hexdigest(entity_body)}")
    else:
        ha2 = algorithm.hexdigest(f"{method}:{uri}")
    if qop is None:
        return algorithm.hexdigest(f"{ha1}:{nonce}:{ha2}")
    if nc is None or cnonce is None:
        raise LocalProtocolError(f"qop={qop.value} needs a cnonce and a nonce-count")
    return algorithm.hexdigest(f"{ha1}:{nonce}:{nc:0{NC_HEX_DIGITS}x}:{cnonce}:{qop.value}:{ha2}")


def _parse_algorithm(params: dict[str, str], what: str) -> DigestAlgorithm:
    name = params.get("algorithm", DigestAlgorithm.MD5.value)  # RFC 7616 section 3.3 default
    algorithm = _ALGORITHMS_BY_NAME.get(name.lower())
    if algorithm is None:
        raise _error(what, f"unsupported algorithm {_show(name)}")
    return algorithm


def _parse_flag(params: dict[str, str], name: str, what: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise _error(what, f"{name} must be true or false, got {_show(params[name])}")
    return value == "true"


def _parse_auth_header(header_value: str, what: str) -> tuple[str, dict[str, str]]:
    """Split `Digest name=value, name="value", ...` into the scheme and lowercase names -> values.

    Grammar of RFC 3261 section 25.1: LWS (with CRLF folding) around "=" and ",", token or
    quoted-string values, quoted-pair escapes; a repeated parameter is an error.
    """
    return _parse_plain_auth_header(header_value) or _scan_auth_header(header_value, what)


def _scan_auth_header(header_value: str, what: str) -> tuple[str, dict[str, str]]:
    """The full grammar, character by character, with a precise error for anything wrong."""
    scanner = _Scanner(header_value, what)
    scanner.skip_lws()
    scheme = scanner.token()
    if not scheme:
        raise scanner.error(f"expected the auth scheme, got {scanner.show_rest()}")
    if scheme.lower() != SCHEME_DIGEST.lower():
        raise scanner.error(f"scheme {_show(scheme)} is not Digest")
    if not scanner.skip_lws() or scanner.at_end():
        raise scanner.error("no parameters after the scheme")
    params: dict[str, str] = {}
    while True:
        name = scanner.token()
        if not name:
            raise scanner.error(f"expected a parameter name, got {scanner.show_rest()}")
        scanner.skip_lws()
        if not scanner.take("="):
            raise scanner.error(f"parameter {_show(name)} has no '='")
        scanner.skip_lws()
        if scanner.peek() == '"':
            value = scanner.quoted_string(name)
        else:
            value = scanner.token()
            if not value:  # missing, or starts with a character no token has
                raise scanner.error(f"parameter {_show(name)} has no value, got {scanner.show_rest()}")
        key = name.lower()
        if key in params:
            raise scanner.error(f"repeated parameter {_show(key)}")
        params[key] = value
        scanner.skip_lws()
        if scanner.at_end():
            return scheme, params
        if not scanner.take(","):
            raise scanner.error(f"expected ',' after parameter {_show(name)}, got {scanner.show_rest()}")
        scanner.skip_lws()


def _parse_plain_auth_header(header_value: str) -> tuple[str, dict[str, str]] | None:
    """The common case in one regex pass per parameter; None sends it to the full scanner."""
    match = _FAST_SCHEME.match(header_value)
    if match is None or match.group(1).lower() != SCHEME_DIGEST.lower():
        return None
    params: dict[str, str] = {}
    pos, end = match.end(), len(header_value)
    while pos < end:
        param = _FAST_PARAM.match(header_value, pos)
        if param is None:
            return None
        name, quoted, token, separator = param.groups()
        key = name.lower()
        if key in params or (separator and param.end() == end):
            return None  # a repeated parameter or a trailing comma: let the scanner say so
        params[key] = quoted if quoted is not None else token
        pos = param.end()
    return (match.group(1), params) if params else None


class _Scanner:
    """A cursor over one header value."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.pos = 0

    def error(self, problem: str) -> RemoteProtocolError:
        return _error(self.what, problem)

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def show_rest(self) -> str:
        return "end of header" if self.at_end() else _show(self.text[self.pos :])

    def skip_lws(self) -> bool:
        """Skip SWS: spaces and tabs, and a CRLF (or bare LF) only when whitespace follows it."""
        start = self.pos
        while True:
            while self.peek() and self.peek() in _WSP:
                self.pos += 1
            fold = self._fold_length()
            if not fold:
                return self.pos > start
            self.pos += fold

    def token(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _TOKEN_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def quoted_string(self, name: str) -> str:
        """The unescaped content of the quoted-string at the cursor."""
        self.pos += 1  # opening quote
        chars: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped in ("", "\r", "\n"):
                    raise self.error(f"parameter {_show(name)} has a bad escape at the end of a line")
                chars.append(escaped)
                self.pos += 2
                continue
            fold = self._fold_length()
            if fold:
                chars.append(" ")  # a folded line is equivalent to one SP (RFC 3261 section 7.3.1)
                self.pos += fold
                continue
            if char != "\t" and (char < " " or char == "\x7f"):
                raise self.error(f"parameter {_show(name)} has control character {_show(char)} in its value")
            chars.append(char)
            self.pos += 1
        raise self.error(f"parameter {_show(name)} has an unterminated quoted string")

    def _fold_length(self) -> int:
        """Length of a line fold (CRLF or LF followed by SP/HTAB) at the cursor, else 0."""
        for newline in ("\r\n", "\n"):
            if self.text.startswith(newline, self.pos):
                after = self.text[self.pos + len(newline) : self.pos + len(newline) + 1]
                return len(newline) if after and after in _WSP else 0
        return 0


def _quote(value: str) -> str:
    if any(char in value for char in "\r\n\0"):
        raise LocalProtocolError(f"cannot put a line break or NUL in a quoted string: {_show(value)}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _error(what: str, problem: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{what}: {problem}", status_code=400)


def _show(text: str) -> str:
    """A peer's text quoted for an error message: ASCII only, so it is safe in a reason phrase."""
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return ascii(text)

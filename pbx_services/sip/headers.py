"""SIP header fields: the ordered header list and the structured headers a SIP core needs.

Rules from RFC 3261 section 7.3: header names are case-insensitive and have compact
forms; a header whose grammar is a comma-separated list may appear several times or
carry several values in one line, which mean the same thing; quoted strings and
<URI>s may contain commas. Around ";", "=", "/" and ":" any LWS is allowed.

Address and Via parsing have a fast path: a compiled pattern for the usual compact
shape that accepts only what the general path accepts (a property test checks it);
everything else takes the general path, which says exactly what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import LocalProtocolError, RemoteProtocolError
from .uri import FAST_URI_NO_USER, FAST_URI_WITH_USER, SipUri, Uri, fast_sip_uri, parse_uri, valid_host

PBX_RECORDING = "Pbx-Recording"
"""Our own header field: in an application server's 200, where it records the call (a
meeting's mix), which the Call Manager, trusting only its own servers, puts in the CDR."""
PBX_JOIN_TAG = "Pbx-Join-Tag"
"""Our own header field: in an INVITE an application server makes to be joined later with one of
its calls (a queue ringing an agent), the Call Manager's tag of that call's dialog, so that the
worker holding that call (named in its tag) gets this one too."""
PBX_QUEUE_AGENT = "Pbx-Queue-Agent"
"""Our own header field: in a queue server's REFER joining a caller to an agent,
`DOMAIN/EXT;claim=ID;wrap-up=S`: the agent's record in the state store, which the Call
Manager (trusting only its own servers) moves to wrap-up when the joined call ends."""

@dataclass(frozen=True, slots=True)
class Replaces:
    """A Replaces value (RFC 3891 section 6.1): the dialog an INVITE, or the INVITE a REFER asks
    for, is to replace, named as the UA holding it knows it: `to_tag` is that UA's own tag,
    `from_tag` its peer's."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    """Only an early dialog may be replaced (a confirmed one is refused with 486)."""

    @classmethod
    def parse(cls, text: str) -> Replaces:
        call_id, *items = [item.strip() for item in text.split(";")]
        params: dict[str, str | None] = {}
        for item in items:
            name, eq, value = item.partition("=")
            params[name.strip().lower()] = value.strip() if eq else None
        to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
        if not call_id or any(c.isspace() for c in call_id):
            raise RemoteProtocolError("Replaces has no Call-ID")
        if not to_tag or not from_tag:
            raise RemoteProtocolError("Replaces needs a to-tag and a from-tag")
        return cls(call_id=call_id, to_tag=to_tag, from_tag=from_tag, early_only="early-only" in params)

    def __str__(self) -> str:
        return f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}" + (
            ";early-only" if self.early_only else "")


COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Authentication-Info",
    "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date", "Error-Info", "Expires",
    "From", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires", "Organization", "Priority",
    "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "Record-Route", "Reply-To",
    "Require", "Retry-After", "Route", "Server", "Subject", "Supported", "Timestamp", "To",
    "Unsupported", "User-Agent", "Via", "Warning", "WWW-Authenticate", "RAck", "RSeq", "Event",
    "Allow-Events", "Subscription-State", "Refer-To", "Referred-By", "Replaces", "Session-Expires",
    "Min-SE", "P-Asserted-Identity", "P-Preferred-Identity", "Privacy", "Path", "Reason", "Identity",
    "Identity-Info", "Accept-Contact", "Reject-Contact", "Request-Disposition", "Diversion",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update(COMPACT_FORMS)

# Headers whose grammar is `#element`: a comma in them separates values.
LIST_HEADERS = frozenset(name.lower() for name in [
    "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Call-Info", "Contact",
    "Content-Encoding", "Content-Language", "Error-Info", "In-Reply-To", "Proxy-Require",
    "Record-Route", "Require", "Route", "Supported", "Unsupported", "Via", "Warning", "Allow-Events",
    "Path", "Reason", "P-Asserted-Identity", "Privacy", "Diversion",
])

# Headers that must appear at most once (RFC 3261 table 2 and 20.x); a second one is a 400.
SINGLE_HEADERS = frozenset(name.lower() for name in [
    "Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Length", "Content-Type", "Expires",
    "Min-Expires",
])

_TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~]"
_TOKEN_TEXT = _TOKEN_CLASS + "+"
_TOKEN = re.compile(_TOKEN_TEXT)
# qdtext (no raw control characters but HTAB) and quoted-pair, RFC 3261 25.1.
_QUOTED_TEXT = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
_QUOTED = re.compile(_QUOTED_TEXT)
_IPV6_REF_TEXT = r"\[[0-9A-Fa-f:.]+\]"
_BARE_IPV6 = re.compile(r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*")
# gen-value = token / host / quoted-string (a hostname or IPv4 address is a token).
_GEN_VALUE_TEXT = rf"(?:{_TOKEN_TEXT}|{_QUOTED_TEXT}|{_IPV6_REF_TEXT})"
_GEN_VALUE = re.compile(_GEN_VALUE_TEXT)
_PARAMS_TEXT = rf"(?:;{_TOKEN_TEXT}(?:={_GEN_VALUE_TEXT})?)*"
_DISPLAY_TOKENS = re.compile(rf"{_TOKEN_TEXT}(?:[ \t]+{_TOKEN_TEXT})*")
_LWS = " \t"

# Header names seen, by spelling: (canonical name, lookup key). Names as received (LWS
# before the colon included) have their own cache, which holds checked tokens only.
_NAME_CACHE: dict[str, tuple[str, str]] = {}
_RECEIVED_NAME_CACHE: dict[str, tuple[str, str]] = {}
_NAME_CACHE_SIZE = 4096


def _name_info(name: str) -> tuple[str, str]:
    info = _NAME_CACHE.get(name)
    if info is None:
        canonical = _CANONICAL.get(name.lower(), name)
        info = (canonical, canonical.lower())
        if len(_NAME_CACHE) < _NAME_CACHE_SIZE:
            _NAME_CACHE[name] = info
    return info


def canonical_name(name: str) -> str:
    """The usual spelling of a header name, compact forms expanded; unknown names kept."""
    return _name_info(name)[0]


def header_key(name: str) -> str:
    """The case-insensitive identity of a header name (compact forms expanded)."""
    return _name_info(name)[1]


def _received_name(raw: str) -> tuple[str, str] | None:
    """(canonical name, key) of a header name as it came off the wire, LWS before the colon allowed."""
    name = raw.rstrip(_LWS)
    if not _TOKEN.fullmatch(name):
        return None
    info = _name_info(name)
    if len(_RECEIVED_NAME_CACHE) < _NAME_CACHE_SIZE:
        _RECEIVED_NAME_CACHE[raw] = info
    return info


def parse_header_lines(lines: Iterable[str]) -> tuple[Headers, list[str], str | None]:
    """Headers from unfolded `Name: value` lines, LWS around the colon allowed.

    Also returns the keys of headers seen more than once (one entry per repeat) and
    the first line that is not a header (None when all are), which the caller judges.
    """
    fields: list[tuple[str, str]] = []
    index: dict[str, list[str]] = {}
    repeated: list[str] = []
    bad_line = None
    known = _RECEIVED_NAME_CACHE
    for line in lines:
        name, colon, value = line.partition(":")
        info = known.get(name) if colon else None
        if info is None:
            info = _received_name(name) if colon else None
            if info is None:
                bad_line = bad_line or line
                continue
        value = value.strip(_LWS)
        fields.append((info[0], value))
        values = index.get(info[1])
        if values is None:
            index[info[1]] = [value]
        else:
            values.append(value)
            repeated.append(info[1])
    return Headers._received(fields, index), repeated, bad_line


def is_token(text: str) -> bool:
    return _TOKEN.fullmatch(text) is not None


def split_list(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements.

    Commas inside quoted strings (with backslash escapes) and inside <...> do not split.
    """
    if "," not in value:
        items = [value.strip(_LWS)]
    elif '"' not in value and "<" not in value:
        items = [item.strip(_LWS) for item in value.split(",")]
    else:
        items = _split_list_quoted(value)
    if "" in items:
        raise RemoteProtocolError(f"empty element in header list {value!r}")
    return items


def _split_list_quoted(value: str) -> list[str]:
    items: list[str] = []
    start = 0
    in_quotes = in_angle = escaped = False
    for i, ch in enumerate(value):
        if escaped:
            escaped = False
        elif in_quotes:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            items.append(value[start:i].strip(_LWS))
            start = i + 1
    if in_quotes:
        raise RemoteProtocolError(f"unterminated quoted string in {value!r}")
    items.append(value[start:].strip(_LWS))
    return items


def _check_field(name: str, value: str) -> str:
    """A header we are about to send: a token name, no line breaks in the value."""
    if not is_token(name):
        raise LocalProtocolError(f"header name is not a token: {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalProtocolError(f"header {name} value contains a line break: {value!r}")
    return canonical_name(name)


class Headers:
    """The header fields of one message, in order, looked up case-insensitively.

    Each field is kept as (canonical name, value) with compact forms expanded, so
    serializing gives canonical names in the original order. Values are kept as they
    arrived (folded lines joined by one space).
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [(_check_field(n, v), v) for n, v in fields]
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def _received(cls, fields: list[tuple[str, str]], index: dict[str, list[str]]) -> Headers:
        """Headers the parser built: canonical names, with the lookup index already made."""
        headers = cls.__new__(cls)
        headers._fields = fields
        headers._index = index
        return headers

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._fields:
                key = header_key(name)
                if key in index:
                    index[key].append(value)
                else:
                    index[key] = [value]
            self._index = index
        return index

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and header_key(name) in self._lookup()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._fields == other._fields

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def copy(self) -> Headers:
        new = Headers()
        new._fields = list(self._fields)
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's value as it arrived (a list header may hold several values)."""
        values = self._lookup().get(header_key(name))
        return values[0] if values else default

    def get_lines(self, name: str) -> list[str]:
        """Every field of that name, one entry per header line."""
        return list(self._lookup().get(header_key(name), ()))

    def get_all(self, name: str) -> list[str]:
        """Every value of that name; list headers split on their separating commas."""
        key = header_key(name)
        lines = self._lookup().get(key, [])
        if key not in LIST_HEADERS:
            return list(lines)
        return [item for line in lines for item in split_list(line)]

    # Every change makes a new field list: messages cache their parsed headers by its identity.
    def _replace(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self._index = None

    def add(self, name: str, value: str) -> None:
        """Append a field (after any others of that name)."""
        self._replace([*self._fields, (_check_field(name, value), value)])

    def prepend(self, name: str, value: str) -> None:
        """Insert a field before every other (a proxy's new top Via)."""
        self._replace([(_check_field(name, value), value), *self._fields])

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one, at the first one's place (or the end)."""
        canonical = _check_field(name, value)
        key = header_key(canonical)
        placed = False
        kept: list[tuple[str, str]] = []
        for field_name, old in self._fields:
            if header_key(field_name) != key:
                kept.append((field_name, old))
            elif not placed:
                kept.append((canonical, value))
                placed = True
        if not placed:
            kept.append((canonical, value))
        self._replace(kept)

    def remove(self, name: str) -> None:
        """Remove every field of that name (absent is fine)."""
        key = header_key(name)
        self._replace([(n, v) for n, v in self._fields if header_key(n) != key])

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list header (the top Via, the next Route).

        The remaining values of that line stay in its place, joined by ", ".
        """
        key = header_key(name)
        for index, (field_name, value) in enumerate(self._fields):
            if header_key(field_name) == key:
                items = split_list(value) if key in LIST_HEADERS else [value]
                rest = [(field_name, ", ".join(items[1:]))] if len(items) > 1 else []
                self._replace([*self._fields[:index], *rest, *self._fields[index + 1 :]])
                return items[0]
        return None


def _parse_params(text: str, where: str, *,
                  address_params: frozenset[str] = frozenset()) -> dict[str, str | None]:
    """`;name=value;flag` parameters of a header value, LWS allowed around ";" and "=".

    Names are lower-cased (they are case-insensitive); values are kept as they arrived,
    a quoted-string with its quotes. `address_params` may also hold a bare IPv6 address.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    if text[0] != ";":
        raise RemoteProtocolError(f"{where} has junk before its parameters: {text!r}")
    if '"' not in text:
        items = text[1:].split(";")
    else:
        try:
            items = _split_outside_quotes(text[1:], ";")
        except ValueError:
            raise RemoteProtocolError(f"{where} has an unterminated quoted string: {text!r}") from None
    for item in items:
        name, eq, value = item.partition("=")
        name, value = name.strip(_LWS), value.strip(_LWS)
        if not _TOKEN.fullmatch(name):
            raise RemoteProtocolError(f"{where} has a malformed parameter {item.strip(_LWS)!r}")
        if eq:
            if not value:
                raise RemoteProtocolError(f"{where} has a parameter with an empty value {item.strip(_LWS)!r}")
            if not _GEN_VALUE.fullmatch(value) and not (
                    name.lower() in address_params and _BARE_IPV6.fullmatch(value)):
                raise RemoteProtocolError(f"{where} has a malformed parameter value {item.strip(_LWS)!r}")
        params[name.lower()] = value if eq else None
    return params


def _params_from(text: str) -> dict[str, str | None]:
    """Parameters already checked by a fast-path pattern (no LWS anywhere)."""
    params: dict[str, str | None] = {}
    items = text[1:].split(";") if '"' not in text else _split_outside_quotes(text[1:], ";")
    for item in items:
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    items, start, in_quotes, escaped = [], 0, False, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and in_quotes:
            escaped = True
        elif ch == '"':
            in_quotes = not in_quotes
        elif ch == sep and not in_quotes:
            items.append(text[start:i])
            start = i + 1
    if in_quotes:
        raise ValueError("unterminated quoted string")
    items.append(text[start:])
    return items


def _format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(text: str) -> str:
    """The content of a quoted-string with its backslash escapes removed."""
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        return text
    out, escaped = [], False
    for ch in text[1:-1]:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Groups: quoted display name, token display name, the six of the URI pattern, parameters.
_FAST_DISPLAY = rf"(?:({_QUOTED_TEXT}) ?|({_TOKEN_TEXT}(?: {_TOKEN_TEXT})*) ?)?"
_FAST_NAME_ADDR_WITH_USER = re.compile(rf"{_FAST_DISPLAY}<{FAST_URI_WITH_USER}>({_PARAMS_TEXT})")
_FAST_NAME_ADDR_NO_USER = re.compile(rf"{_FAST_DISPLAY}<{FAST_URI_NO_USER}>({_PARAMS_TEXT})")
_FAST_ADDR_SPEC = re.compile(rf"([A-Za-z][A-Za-z0-9+\-.]*:[^;\s,?<>\"]+)({_PARAMS_TEXT})")


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.

    `display_name` is kept as it arrived (quoted or a run of tokens) so it serializes back;
    `display_text` gives it unquoted.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str, *, header: str = "address") -> Address:
        if "<" in value:
            pattern = _FAST_NAME_ADDR_WITH_USER if "@" in value else _FAST_NAME_ADDR_NO_USER
            match = pattern.fullmatch(value)
            if match is not None:
                quoted, tokens, *uri_parts, param_text = match.groups()
                sip_uri = fast_sip_uri(*uri_parts)
                if sip_uri is not None:
                    return cls(uri=sip_uri, display_name=quoted or tokens,
                               params=_params_from(param_text) if param_text else {})
        else:
            match = _FAST_ADDR_SPEC.fullmatch(value)
            if match is not None:
                uri_text, param_text = match.groups()
                try:
                    uri = parse_uri(uri_text)
                except RemoteProtocolError:
                    pass  # the general path below says what is wrong, in this header's words
                else:
                    return cls(uri=uri, params=_params_from(param_text) if param_text else {})
        return cls._parse_general(value, header)

    @classmethod
    def _parse_general(cls, value: str, header: str) -> Address:
        text = value.strip(_LWS)
        if not text:
            raise RemoteProtocolError(f"{header} header is empty")
        display: str | None = None
        if text.startswith('"'):
            end = _end_of_quoted(text)
            if end < 0:
                raise RemoteProtocolError(f"{header} header has an unterminated display name")
            display = text[: end + 1]
            if not _QUOTED.fullmatch(display):
                raise RemoteProtocolError(f"{header} header has control characters in its display name")
            text = text[end + 1 :].lstrip(_LWS)
            if not text.startswith("<"):
                raise RemoteProtocolError(f"{header} header has a display name without <URI>")
        elif "<" in text:
            before, _, _ = text.partition("<")
            tokens = before.strip(_LWS)
            if tokens:
                if not _DISPLAY_TOKENS.fullmatch(tokens):
                    raise RemoteProtocolError(f"{header} header has an unquoted display name with "
                                              f"special characters: {tokens!r}")
                display = tokens
            text = text[len(before):]
        if text.startswith("<"):
            end = text.find(">")
            if end < 0:
                raise RemoteProtocolError(f"{header} header has an unterminated <URI>")
            uri_text, rest = text[1:end], text[end + 1 :].strip(_LWS)
            if uri_text != uri_text.strip():
                raise RemoteProtocolError(f"{header} header has whitespace inside <URI>")
        else:
            # addr-spec: its parameters belong to the header, not the URI (RFC 3261 20.10)
            uri_text, semi, params_text = text.partition(";")
            uri_text = uri_text.rstrip(_LWS)
            rest = semi + params_text
            if any(c in uri_text for c in " \t,?"):
                raise RemoteProtocolError(f"{header} header URI must be in <> to contain "
                                          f"whitespace, comma or '?': {value.strip(_LWS)!r}")
        try:
            uri = parse_uri(uri_text)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(f"{header} header has a bad URI: {exc.reason}") from None
        return cls(uri=uri, display_name=display, params=_parse_params(rest, f"{header} header"))

    def __str__(self) -> str:
        prefix = f"{self.display_name} " if self.display_name else ""
        return f"{prefix}<{self.uri}>{_format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    @property
    def display_text(self) -> str | None:
        """The display name as a person reads it: quotes and backslash escapes removed."""
        return unquote(self.display_name) if self.display_name is not None else None

    @property
    def sip_uri(self) -> SipUri:
        """The URI when it is sip:/sips:; a peer's non-SIP URI where one is needed is a 416."""
        if not isinstance(self.uri, SipUri):
            raise RemoteProtocolError(f"unsupported URI scheme {self.uri.scheme!r}", status_code=416)
        return self.uri

    def copy(self) -> Address:
        uri = self.uri.copy() if isinstance(self.uri, SipUri) else self.uri
        return Address(uri=uri, display_name=self.display_name, params=dict(self.params))


def _end_of_quoted(text: str) -> int:
    escaped = False
    for i in range(1, len(text)):
        ch = text[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            return i
    return -1


BRANCH_MAGIC_COOKIE = "z9hG4bK"
_FAST_VIA = re.compile(
    rf"SIP/2\.0/({_TOKEN_TEXT}) ([A-Za-z0-9\-.]+|{_IPV6_REF_TEXT})(?::([0-9]{{1,5}}))?({_PARAMS_TEXT})")
# sent-protocol LWS sent-by, with SWS around "/" and ":" (RFC 3261 20.42); "SIP" is case-insensitive.
_VIA_HEAD = re.compile(
    rf"SIP[ \t]*/[ \t]*2\.0[ \t]*/[ \t]*({_TOKEN_TEXT})[ \t]+(\[[^\]]*\]|[^\s;:]+)(?:[ \t]*:[ \t]*([^\s;]*))?"
    r"[ \t]*(.*)", re.S | re.I)
_TTL_MAX = 255
_VIA_ADDRESS_PARAMS = frozenset({"received"})  # via-received allows a bare IPv6address


_IPV4_ADDRESS = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def _valid_ip(text: str) -> bool:
    """IPv4address / IPv6address, the latter with or without brackets (RFC 3261, RFC 5118)."""
    if ":" not in text:
        return _IPV4_ADDRESS.fullmatch(text) is not None and valid_host(text)
    try:
        ipaddress.IPv6Address(text[1:-1] if text.startswith("[") and text.endswith("]") else text)
    except ValueError:
        return False
    return "%" not in text


def _check_via_params(params: dict[str, str | None], value: str) -> None:
    """The Via parameters with a grammar of their own (RFC 3261 20.42, RFC 3581)."""
    if "branch" in params and (params["branch"] is None or not is_token(params["branch"] or "")):
        raise RemoteProtocolError(f"Via has a malformed branch: {value!r}")
    received = params.get("received", "")
    if received is None or (received and not _valid_ip(received)):
        raise RemoteProtocolError(f"Via has a malformed received: {value!r}")
    rport = params.get("rport")
    if rport is not None and not (rport.isascii() and rport.isdigit()):
        raise RemoteProtocolError(f"Via has a non-numeric rport: {value!r}")
    if "ttl" in params:
        ttl = params["ttl"]
        if ttl is None or not (ttl.isascii() and ttl.isdigit()) or len(ttl) > 3 or int(ttl) > _TTL_MAX:
            raise RemoteProtocolError(f"Via has a malformed ttl: {value!r}")
    if "maddr" in params:
        maddr = params["maddr"]
        if maddr is None or not valid_host(maddr):
            raise RemoteProtocolError(f"Via has a malformed maddr: {value!r}")


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Via:
        match = _FAST_VIA.fullmatch(value)
        if match is not None:
            transport, host, port_text, param_text = match.groups()
            port = int(port_text) if port_text is not None else None
            if valid_host(host) and (port is None or 0 < port <= 65535):
                params = _params_from(param_text) if param_text else {}
                _check_via_params(params, value)
                return cls(transport=transport.upper(), host=host.lower(), port=port, params=params)
        return cls._parse_general(value)

    @classmethod
    def _parse_general(cls, value: str) -> Via:
        text = value.strip(_LWS)
        match = _VIA_HEAD.fullmatch(text)
        if not match:
            raise RemoteProtocolError(f"malformed Via: {text!r}")
        transport, host, port_text, rest = match.groups()
        if not valid_host(host):
            raise RemoteProtocolError(f"Via has a malformed host in sent-by: {text!r}")
        port = None
        if port_text is not None:
            if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) <= 65535:
                raise RemoteProtocolError(f"Via has a malformed port in sent-by: {text!r}")
            port = int(port_text)
        params = _parse_params(rest, "Via", address_params=_VIA_ADDRESS_PARAMS)
        _check_via_params(params, text)
        return cls(transport=transport.upper(), host=host.lower(), port=port, params=params)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def sent_by(self) -> tuple[str, int]:
        default = 5061 if self.transport == "TLS" else 5060
        return self.host, self.port or default


CSEQ_MAX = 2**32 - 1
KNOWN_METHODS = frozenset({"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE",
                           "INFO", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        parts = value.split()
        if (len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit())
                or (parts[1] not in KNOWN_METHODS and not is_token(parts[1]))):
            raise RemoteProtocolError(f"malformed CSeq: {value.strip(_LWS)!r}")
        # RFC 3261 8.1.1.5: a 32-bit unsigned integer.
        if len(parts[0].lstrip("0")) > 10 or int(parts[0]) > CSEQ_MAX:
            raise RemoteProtocolError(f"CSeq number is out of range: {parts[0]}")
        return cls(seq=int(parts[0]), method=parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_delta_seconds(value: str, *, header: str) -> int:
    """Expires, Min-Expires, Max-Forwards-like unsigned integers; absurd sizes are a 400."""
    text = value.strip(_LWS)
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 10:
        raise RemoteProtocolError(f"{header} is not a valid number: {text!r}")
    return int(text)


def parse_param_header(value: str, *, header: str) -> tuple[str, dict[str, str | None]]:
    """A `token;params` value such as Content-Type, Event or a Contact's expires parameters."""
    head, semi, rest = value.partition(";")
    return head.strip(_LWS), _parse_params(semi + rest, header)


_MEDIA_TYPE = re.compile(rf"{_TOKEN_TEXT}[ \t]*/[ \t]*{_TOKEN_TEXT}")


def parse_media_type(value: str) -> tuple[str, dict[str, str | None]]:
    """Content-Type / Accept element: (`type/subtype` lower-cased, parameters) (RFC 3261 20.15)."""
    head, params = parse_param_header(value, header="Content-Type")
    if not _MEDIA_TYPE.fullmatch(head):
        raise RemoteProtocolError(f"malformed media type {value.strip(_LWS)!r}")
    kind, _, subtype = head.partition("/")
    return f"{kind.strip(_LWS).lower()}/{subtype.strip(_LWS).lower()}", params


_SIP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT", re.I)


def is_sip_date(value: str) -> bool:
    """Whether a Date value is an RFC 1123 date in GMT, the only form SIP allows (RFC 3261 20.17)."""
    return _SIP_DATE.fullmatch(value.strip(_LWS)) is not None


def format_params(params: dict[str, str | None]) -> str:
    return _format_params(params)

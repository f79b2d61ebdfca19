"""SIP header fields: the ordered header list and the structured headers a SIP core needs.

Rules from RFC 3261 section 7.3: header names are case-insensitive and have compact
forms; a header whose grammar is a comma-separated list may appear several times or
carry several values in one line, which mean the same thing; quoted strings and
<URI>s may contain commas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import RemoteProtocolError
from .uri import SipUri, Uri, parse_uri, split_hostport

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

_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


def canonical_name(name: str) -> str:
    """The usual spelling of a header name, compact forms expanded; unknown names kept."""
    return _CANONICAL.get(name.lower(), name)


def is_token(text: str) -> bool:
    return bool(_TOKEN.match(text))


def split_list(value: str) -> list[str]:
    """Split a header value on the commas that separate list elements.

    Commas inside quoted strings (with backslash escapes) and inside <...> do not split.
    """
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
            items.append(value[start:i].strip())
            start = i + 1
    if in_quotes:
        raise RemoteProtocolError(f"unterminated quoted string in {value!r}")
    items.append(value[start:].strip())
    if any(not item for item in items):
        raise RemoteProtocolError(f"empty element in header list {value!r}")
    return items


class Headers:
    """The header fields of one message, in order, looked up case-insensitively.

    Each field is kept as (canonical name, value) with compact forms expanded, so
    serializing gives canonical names in the original order.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [(canonical_name(n), v) for n, v in fields]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def copy(self) -> Headers:
        new = Headers()
        new._fields = list(self._fields)
        return new

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field's value as it arrived (a list header may hold several values)."""
        key = canonical_name(name).lower()
        for field_name, value in self._fields:
            if field_name.lower() == key:
                return value
        return default

    def get_lines(self, name: str) -> list[str]:
        """Every field of that name, one entry per header line."""
        key = canonical_name(name).lower()
        return [value for field_name, value in self._fields if field_name.lower() == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of that name; list headers split on their separating commas."""
        lines = self.get_lines(name)
        if canonical_name(name).lower() not in LIST_HEADERS:
            return lines
        return [item for line in lines for item in split_list(line)]

    # Every change makes a new field list: messages cache their parsed headers by its identity.
    def add(self, name: str, value: str) -> None:
        self._fields = [*self._fields, (canonical_name(name), value)]

    def prepend(self, name: str, value: str) -> None:
        self._fields = [(canonical_name(name), value), *self._fields]

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one, at the first one's place (or the end)."""
        canonical = canonical_name(name)
        key = canonical.lower()
        position = None
        kept: list[tuple[str, str]] = []
        for field_name, old in self._fields:
            if field_name.lower() == key:
                if position is None:
                    position = len(kept)
                    kept.append((canonical, value))
            else:
                kept.append((field_name, old))
        if position is None:
            kept.append((canonical, value))
        self._fields = kept

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._fields = [(n, v) for n, v in self._fields if n.lower() != key]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of a list header (the top Via, the next Route)."""
        key = canonical_name(name).lower()
        for index, (field_name, value) in enumerate(self._fields):
            if field_name.lower() == key:
                items = split_list(value)
                rest = [(field_name, ", ".join(items[1:]))] if len(items) > 1 else []
                self._fields = [*self._fields[:index], *rest, *self._fields[index + 1 :]]
                return items[0]
        return None


def _parse_params(text: str, where: str) -> dict[str, str | None]:
    """`;name=value;flag` parameters of a header value (quoted values kept with quotes)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    if not text.startswith(";"):
        raise RemoteProtocolError(f"{where} has junk before its parameters: {text!r}")
    for item in _split_outside_quotes(text[1:], ";"):
        name, eq, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not name or not is_token(name):
            raise RemoteProtocolError(f"{where} has a malformed parameter {item!r}")
        if eq and not value:
            raise RemoteProtocolError(f"{where} has a parameter with an empty value {item!r}")
        if eq and not value.startswith('"') and not value.startswith("[") and not is_token(value):
            raise RemoteProtocolError(f"{where} has a malformed parameter value {item!r}")
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
        raise RemoteProtocolError(f"unterminated quoted string in {text!r}")
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


_DISPLAY_TOKENS = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~ \t]*$")


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.

    `display_name` is kept as it arrived (quoted or a run of tokens) so it serializes back.
    """

    uri: Uri
    display_name: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str, *, header: str = "address") -> Address:
        text = value.strip()
        if not text:
            raise RemoteProtocolError(f"{header} header is empty")
        display: str | None = None
        if text.startswith('"'):
            end = _end_of_quoted(text)
            if end < 0:
                raise RemoteProtocolError(f"{header} header has an unterminated display name")
            display = text[: end + 1]
            text = text[end + 1 :].lstrip()
            if not text.startswith("<"):
                raise RemoteProtocolError(f"{header} header has a display name without <URI>")
        elif "<" in text:
            before, _, _ = text.partition("<")
            if before.strip():
                if not _DISPLAY_TOKENS.match(before):
                    raise RemoteProtocolError(f"{header} header has an unquoted display name with "
                                              f"special characters: {before.strip()!r}")
                display = before.strip()
            text = text[len(before):]
        if text.startswith("<"):
            end = text.find(">")
            if end < 0:
                raise RemoteProtocolError(f"{header} header has an unterminated <URI>")
            uri_text, rest = text[1:end], text[end + 1 :].strip()
            if uri_text != uri_text.strip():
                raise RemoteProtocolError(f"{header} header has whitespace inside <URI>")
        else:
            # addr-spec: its parameters belong to the header, not the URI (RFC 3261 20.10)
            uri_text, semi, params_text = text.partition(";")
            rest = semi + params_text
            if any(c in uri_text for c in " \t,?"):
                raise RemoteProtocolError(f"{header} header URI must be in <> to contain "
                                          f"whitespace, comma or '?': {value.strip()!r}")
        return cls(uri=parse_uri(uri_text), display_name=display,
                   params=_parse_params(rest, f"{header} header"))

    def __str__(self) -> str:
        prefix = f"{self.display_name} " if self.display_name else ""
        return f"{prefix}<{self.uri}>{_format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

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
_VIA_HEAD = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+([^;\s]+)\s*(.*)$", re.S)


@dataclass(slots=True)
class Via:
    """One Via value (RFC 3261 20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> Via:
        match = _VIA_HEAD.match(value.strip())
        if not match:
            raise RemoteProtocolError(f"malformed Via: {value.strip()!r}")
        transport, sent_by, rest = match.groups()
        host, port = _parse_sent_by(sent_by, value)
        params = _parse_params(rest.strip(), "Via")
        for numeric in ("rport", "ttl"):
            raw = params.get(numeric)
            if raw is not None and not raw.isdigit():
                raise RemoteProtocolError(f"Via has a non-numeric {numeric}: {value.strip()!r}")
        return cls(transport=transport.upper(), host=host, port=port, params=params)

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


def _parse_sent_by(sent_by: str, value: str) -> tuple[str, int | None]:
    try:
        return split_hostport(sent_by)
    except ValueError as exc:
        raise RemoteProtocolError(f"Via has a {exc} in sent-by: {value.strip()!r}") from None


@dataclass(slots=True, frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> CSeq:
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
            raise RemoteProtocolError(f"malformed CSeq: {value.strip()!r}")
        seq = int(parts[0])
        if seq >= 2**31:
            raise RemoteProtocolError(f"CSeq number is out of range: {parts[0]}")
        return cls(seq=seq, method=parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_delta_seconds(value: str, *, header: str) -> int:
    """Expires, Min-Expires, Max-Forwards-like unsigned integers; absurd sizes are a 400."""
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        raise RemoteProtocolError(f"{header} is not a valid number: {text!r}")
    return int(text)


def parse_param_header(value: str, *, header: str) -> tuple[str, dict[str, str | None]]:
    """A `token;params` value such as Content-Type, Event or a Contact's expires parameters."""
    head, semi, rest = value.partition(";")
    return head.strip(), _parse_params(semi + rest, header)


def format_params(params: dict[str, str | None]) -> str:
    return _format_params(params)

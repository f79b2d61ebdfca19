"""SIP requests and responses: parsing from bytes, serializing to bytes (RFC 3261 section 7).

`parse_message` is strict where the RFC says a message is broken (RFC 4475 section 3.1.2)
and lenient where it says to be (line folding, LWS around colons, compact forms,
bare LF line ends, CRLFs before the start line, a missing Content-Length on a
datagram). A broken message raises `SipParseError` carrying what could be read of
it, so the stack can still answer a request with 400 (or 505).

The headers every layer above needs (Via, From, To, Call-ID, CSeq, Contact, and for
requests Max-Forwards and Expires) are checked while parsing, and the parsed Via,
From, To, CSeq and Contact are kept for the typed accessors; Content-Type and Date
are checked too. Other headers are kept as text and parsed when asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import RemoteProtocolError
from .headers import (
    KNOWN_METHODS,
    SINGLE_HEADERS,
    Address,
    CSeq,
    Headers,
    Via,
    canonical_name,
    is_sip_date,
    is_token,
    parse_delta_seconds,
    parse_header_lines,
    parse_media_type,
    split_list,
)
from .uri import SipUri, Uri, parse_uri

SIP_VERSION = "SIP/2.0"
MAX_FORWARDS_DEFAULT = 70
MAX_FORWARDS_LIMIT = 255

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated",
    200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily", 305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
    491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_VERSION = re.compile(r"SIP/[0-9]+\.[0-9]+", re.I)
# Reason-Phrase: any UTF-8 text, but no control character other than HTAB (RFC 3261 25.1).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CALL_ID = re.compile(r"[^\s\x00-\x1f\x7f]+")
_REQUIRED = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))


class SipParseError(RemoteProtocolError):
    """A message that cannot be accepted; `partial` is what could be read of it, if anything."""

    def __init__(self, reason: str, *, status_code: int = 400, partial: SipMessage | None = None) -> None:
        super().__init__(reason, status_code=status_code)
        self.partial = partial


class SipMessage:
    """What requests and responses share: the headers, the body and typed header access.

    Typed accessors parse their header once; the result lives until the headers change.
    """

    __slots__ = ("headers", "body", "_parsed", "_parsed_for")

    def __init__(self, headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b"") -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body
        self._parsed: dict[str, Any] = {}
        self._parsed_for: list[tuple[str, str]] | None = None

    def _cache(self) -> dict[str, Any]:
        # Headers replace their field list on every change, so identity tells staleness.
        fields = self.headers._fields
        if self._parsed_for is not fields:
            self._parsed = {}
            self._parsed_for = fields
        return self._parsed

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise RemoteProtocolError(f"missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        cache = self._cache()
        vias: list[Via] | None = cache.get("via")
        if vias is None:
            vias = cache["via"] = [Via.parse(v) for v in self.headers.get_all("Via")]
        return vias

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via header")
        return vias[0]

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        cache = self._cache()
        cseq: CSeq | None = cache.get("cseq")
        if cseq is None:
            cseq = cache["cseq"] = CSeq.parse(self._required("CSeq"))
        return cseq

    @property
    def from_(self) -> Address:
        cache = self._cache()
        address: Address | None = cache.get("from")
        if address is None:
            address = cache["from"] = Address.parse(self._required("From"), header="From")
        return address

    @property
    def to(self) -> Address:
        cache = self._cache()
        address: Address | None = cache.get("to")
        if address is None:
            address = cache["to"] = Address.parse(self._required("To"), header="To")
        return address

    @property
    def contacts(self) -> list[Address]:
        """Contact values; `[]` for none and for `Contact: *` (see `contact_is_star`)."""
        cache = self._cache()
        contacts: list[Address] | None = cache.get("contact")
        if contacts is None:
            contacts = cache["contact"] = _parse_contacts(self.headers.get_all("Contact"))
        return contacts

    @property
    def contact_is_star(self) -> bool:
        return self.headers.get_all("Contact") == ["*"]

    @property
    def content_type(self) -> str | None:
        """`type/subtype` of the body, lower-cased, without parameters; None when absent."""
        value = self.headers.get("Content-Type")
        return parse_media_type(value)[0] if value else None

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return parse_delta_seconds(value, header="Expires") if value is not None else None

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The message as bytes: canonical header names, `Name: value`, Content-Length computed."""
        lines = [self.start_line()]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body


class SipRequest(SipMessage):
    __slots__ = ("method", "uri", "version")

    def __init__(self, method: str, uri: Uri, headers: Headers | Iterable[tuple[str, str]] = (),
                 body: bytes = b"", *, version: str = SIP_VERSION) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    @property
    def max_forwards(self) -> int:
        value = self.headers.get("Max-Forwards")
        return MAX_FORWARDS_DEFAULT if value is None else _check_max_forwards(value)

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


class SipResponse(SipMessage):
    __slots__ = ("status_code", "reason", "version")

    def __init__(self, status_code: int, reason: str | None = None,
                 headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b"",
                 *, version: str = SIP_VERSION) -> None:
        super().__init__(headers, body)
        self.status_code = status_code
        self.reason = REASON_PHRASES.get(status_code, "Unknown") if reason is None else reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status_code} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status_code} {self.reason}>"


def _check_max_forwards(value: str) -> int:
    hops = parse_delta_seconds(value, header="Max-Forwards")
    if hops > MAX_FORWARDS_LIMIT:
        raise RemoteProtocolError(f"Max-Forwards out of range: {hops}")
    return hops


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one whole SIP message (a datagram, or one framed from a stream)."""
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # RFC 3261 7.5: CRLFs before the start line are ignored
    lines, body, bare_cr = _split_head(data)
    start = lines[0]
    if not start:
        raise SipParseError("message has no start line")
    headers, repeated, bad_line = parse_header_lines(lines[1:])
    message: SipRequest | SipResponse
    if start[:4].upper() == "SIP/":
        message = _parse_status_line(start, headers)
    else:
        message = _parse_request_line(start, headers)
    if bare_cr:
        raise SipParseError("message has a bare CR in its header", partial=message)
    if bad_line is not None:
        raise SipParseError(f"malformed header line {bad_line[:60]!r}", partial=message)
    index = headers._lookup()
    message.body = _checked_body(message, index, body)
    _validate(message, index, repeated)
    return message


def _split_head(data: bytes) -> tuple[list[str], bytes, bool]:
    """The header lines (unfolded), what follows the empty line, and whether a bare CR was seen.

    Lines holding a bare CR are left out, so that nothing echoed from a broken message
    (into a 400) can carry one.
    """
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        # RFC 3261 allows UTF-8 in some headers; other bytes are kept to be echoed back untouched.
        head = data[:end].decode("utf-8", "surrogateescape")
        lines = head.split("\r\n")
        breaks = len(lines) - 1
        if head.count("\n") == breaks and head.count("\r") == breaks:
            if "\r\n " in head or "\r\n\t" in head:
                lines = _unfold(lines)
            return lines, data[end + 4 :], False
    return _split_head_lenient(data)


def _split_head_lenient(data: bytes) -> tuple[list[str], bytes, bool]:
    """Bare LF line ends, a mix of both, or no empty line at all (a truncated datagram)."""
    end = data.find(b"\r\n\r\n")
    bare = data.find(b"\n\n", 0, end if end >= 0 else len(data))
    if bare >= 0:
        head, body = data[:bare], data[bare + 2 :]
        if head.endswith(b"\r"):
            head = head[:-1]
    elif end >= 0:
        head, body = data[:end], data[end + 4 :]
    else:
        head, body = data.rstrip(b"\r\n"), b""
    text = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    lines = text.split("\n")
    bare_cr = "\r" in text
    if bare_cr:
        if "\r" in lines[0]:
            raise SipParseError("message has a bare CR in its start line")
        lines = [line for line in lines if "\r" not in line]
    return _unfold(lines), body, bare_cr


def _unfold(lines: list[str]) -> list[str]:
    """Folded continuation lines joined to the header they continue by one space."""
    unfolded = lines[:1]
    for raw in lines[1:]:
        # A continuation needs a header to continue: the start line cannot be folded.
        if raw[:1] in (" ", "\t") and len(unfolded) > 1:
            unfolded[-1] = unfolded[-1].rstrip(" \t") + " " + raw.strip(" \t")
        else:
            unfolded.append(raw)
    return unfolded


def _parse_request_line(start: str, headers: Headers) -> SipRequest:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(f"malformed request line {start[:80]!r}", partial=_unknown_request(headers))
    method, uri_text, version = parts
    if method not in KNOWN_METHODS and not is_token(method):
        raise SipParseError(f"malformed method {method[:40]!r}", partial=_unknown_request(headers))
    if version != SIP_VERSION and not _VERSION.fullmatch(version):
        raise SipParseError(f"malformed SIP version {version[:40]!r}",
                            partial=_unknown_request(headers, method))
    try:
        uri = parse_uri(uri_text)
    except RemoteProtocolError as exc:
        raise SipParseError(f"malformed Request-URI: {exc.reason}",
                            partial=_unknown_request(headers, method)) from None
    request = SipRequest(method, uri, headers, version=version)
    if version != SIP_VERSION and version.upper() != SIP_VERSION:
        raise SipParseError(f"SIP version {version} is not supported", status_code=505, partial=request)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 3261 19.1.1 table 1: headers are not allowed in a Request-URI.
        raise SipParseError(f"Request-URI has headers: {uri_text[:80]!r}", partial=request)
    return request


def _unknown_request(headers: Headers, method: str = "UNKNOWN") -> SipRequest:
    """What is known of a request whose request line is broken: its headers (and method)."""
    return SipRequest(method, SipUri(host="invalid"), headers)


def _parse_status_line(start: str, headers: Headers) -> SipResponse:
    version, _, rest = start.partition(" ")
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not _VERSION.fullmatch(version):
        raise SipParseError(f"malformed status line {start[:80]!r}")
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code out of range: {status}")
    if _CONTROL.search(reason):
        raise SipParseError(f"reason phrase has control characters: {reason[:80]!r}")
    response = SipResponse(status, reason, headers, version=version)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"SIP version {version} is not supported", status_code=505, partial=response)
    return response


def _checked_body(message: SipMessage, index: dict[str, list[str]], body: bytes) -> bytes:
    """The body as Content-Length says; without one (a datagram) the rest of the data."""
    lengths = index.get("content-length")
    if not lengths:
        return body
    if len(lengths) > 1 and any(v != lengths[0] for v in lengths):
        raise SipParseError("conflicting Content-Length headers", partial=message)
    text = lengths[0]
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > 10:
        raise SipParseError(f"malformed Content-Length {text[:40]!r}", partial=message)
    length = int(text)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} is larger than the body ({len(body)} bytes)",
                            partial=message)
    return body[:length] if length < len(body) else body


def _parse_contacts(values: list[str]) -> list[Address]:
    if values == ["*"]:
        return []
    if "*" in values:
        raise RemoteProtocolError("Contact: * must be the only Contact")
    return [Address.parse(v, header="Contact") for v in values]


def _validate(message: SipRequest | SipResponse, index: dict[str, list[str]], repeated: list[str]) -> None:
    """The checks that make a message usable by a transaction and a dialog layer.

    `repeated` names the headers that appear more than once. The parsed Via, From,
    To, CSeq and Contact are kept for the typed accessors.
    """
    for key in repeated:
        if key in SINGLE_HEADERS and any(v != index[key][0] for v in index[key]):
            raise SipParseError(f"more than one {canonical_name(key)} header", partial=message)
    for key, name in _REQUIRED:
        if key not in index:
            raise SipParseError(f"missing {name} header", partial=message)
    try:
        cseq = CSeq.parse(index["cseq"][0])
        parsed: dict[str, Any] = {
            "via": [Via.parse(v) for line in index["via"] for v in split_list(line)],
            "from": Address.parse(index["from"][0], header="From"),
            "to": Address.parse(index["to"][0], header="To"),
            "cseq": cseq,
        }
        contact_lines = index.get("contact")
        if contact_lines is not None:
            parsed["contact"] = _parse_contacts([v for line in contact_lines for v in split_list(line)])
        if isinstance(message, SipRequest):
            if "max-forwards" in index:
                _check_max_forwards(index["max-forwards"][0])
            if "expires" in index:
                parse_delta_seconds(index["expires"][0], header="Expires")
        if "content-type" in index:
            parse_media_type(index["content-type"][0])
        for date in index.get("date", ()):
            if not is_sip_date(date):
                raise RemoteProtocolError(f"malformed Date {date[:60]!r}: RFC 1123 form in GMT required")
    except RemoteProtocolError as exc:
        raise SipParseError(exc.reason, status_code=exc.status_code, partial=message) from None
    message._parsed = parsed
    message._parsed_for = message.headers._fields
    call_id = index["call-id"][0]
    if not _CALL_ID.fullmatch(call_id):
        raise SipParseError(f"malformed Call-ID {call_id[:60]!r}", partial=message)
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise SipParseError(f"CSeq method {cseq.method} does not match the request method "
                            f"{message.method}", partial=message)


def make_response(request: SipRequest, status_code: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                  body: bytes = b"") -> SipResponse:
    """A response to `request` (RFC 3261 8.2.6.2): Via, From, To, Call-ID and CSeq copied.

    `to_tag` is added to To unless the request already has one (or its To cannot be
    parsed, as in a 400 to a broken request: then To is copied as it is).
    """
    copied: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_lines("Via")]
    to_value = request.headers.get("To") or ""
    if to_tag is not None and status_code > 100 and to_value:
        try:
            to = request.to
        except RemoteProtocolError:
            to = None
        if to is not None and to.tag is None:
            to = to.copy()
            to.params["tag"] = to_tag
            to_value = str(to)
    copied += [("From", request.headers.get("From") or ""), ("To", to_value),
               ("Call-ID", request.headers.get("Call-ID") or ""), ("CSeq", request.headers.get("CSeq") or "")]
    if request.method == "INVITE" and 100 < status_code < 300:
        copied += [("Record-Route", v) for v in request.headers.get_lines("Record-Route")]
    copied += list(headers)
    return SipResponse(status_code, reason, copied, body)

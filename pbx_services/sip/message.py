"""SIP requests and responses: parsing from bytes, serializing to bytes (RFC 3261 section 7).

`parse_message` is strict where the RFC says a message is broken (RFC 4475 section 3.1.2)
and lenient where it says to be (line folding, LWS around colons, compact forms,
bare LF line ends, a missing Content-Length on a datagram). A broken request raises
`SipParseError` carrying what could be read of it, so the stack can still answer 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .errors import RemoteProtocolError
from .headers import (
    SINGLE_HEADERS,
    Address,
    CSeq,
    Headers,
    Via,
    is_token,
    parse_delta_seconds,
    parse_param_header,
)
from .uri import Uri, parse_uri

SIP_VERSION = "SIP/2.0"
MAX_FORWARDS_DEFAULT = 70

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

_REQUEST_LINE = re.compile(r"^([^ \t]+) ([^ \t]+) ([^ \t]+)$")
_STATUS_LINE = re.compile(r"^([^ \t]+) (\d{3}) (.*)$")
_VERSION = re.compile(r"^SIP/\d+\.\d+$", re.I)

T = TypeVar("T")


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

    def _typed(self, key: str, build: Callable[[], T]) -> T:
        # Headers replace their field list on every change, so identity tells staleness.
        fields = self.headers._fields
        if self._parsed_for is not fields:
            self._parsed = {}
            self._parsed_for = fields
        if key not in self._parsed:
            self._parsed[key] = build()
        result: T = self._parsed[key]
        return result

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise RemoteProtocolError(f"missing {name} header")
        return value

    @property
    def vias(self) -> list[Via]:
        return self._typed("via", lambda: [Via.parse(v) for v in self.headers.get_all("Via")])

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise RemoteProtocolError("missing Via header")
        return vias[0]

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return self._typed("cseq", lambda: CSeq.parse(self._required("CSeq")))

    @property
    def from_(self) -> Address:
        return self._typed("from", lambda: Address.parse(self._required("From"), header="From"))

    @property
    def to(self) -> Address:
        return self._typed("to", lambda: Address.parse(self._required("To"), header="To"))

    @property
    def contacts(self) -> list[Address]:
        """Contact values; `[]` for none and for `Contact: *` (see `contact_is_star`)."""
        def build() -> list[Address]:
            values = self.headers.get_all("Contact")
            if values == ["*"]:
                return []
            if "*" in values:
                raise RemoteProtocolError("Contact: * must be the only Contact")
            return [Address.parse(v, header="Contact") for v in values]
        return self._typed("contact", build)

    @property
    def contact_is_star(self) -> bool:
        return self.headers.get_all("Contact") == ["*"]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return parse_param_header(value, header="Content-Type")[0].lower() if value else None

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return parse_delta_seconds(value, header="Expires") if value is not None else None

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
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
        lines.append("")
        lines.append("")
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
        if value is None:
            return MAX_FORWARDS_DEFAULT
        hops = parse_delta_seconds(value, header="Max-Forwards")
        if hops > 255:
            raise RemoteProtocolError(f"Max-Forwards out of range: {hops}")
        return hops

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


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one whole SIP message (a datagram, or one framed from a stream)."""
    head, body = _split_head(data)
    lines = _unfold(head)
    if not lines or not lines[0]:
        raise SipParseError("message has no start line")
    start = lines[0]
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not is_token(name):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        fields.append((name, value.strip(" \t")))
    headers = Headers(fields)
    message: SipRequest | SipResponse
    if start.startswith("SIP/") and " " in start:
        message = _parse_status_line(start, headers)
    else:
        message = _parse_request_line(start, headers)
    message.body = _checked_body(message, body)
    _validate(message)
    return message


def _split_head(data: bytes) -> tuple[str, bytes]:
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        head, body = data[:end], data[end + 4 :]
    else:
        end = data.find(b"\n\n")
        if end >= 0:
            head, body = data[:end], data[end + 2 :]
        else:
            head, body = data.rstrip(b"\r\n"), b""
    try:
        return head.decode("utf-8"), body
    except UnicodeDecodeError:
        # RFC 3261 allows UTF-8 in some headers; other bytes are kept to be echoed back untouched.
        return head.decode("utf-8", "surrogateescape"), body


def _unfold(head: str) -> list[str]:
    lines: list[str] = []
    for raw in head.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] = lines[-1].rstrip(" \t") + " " + raw.strip(" \t")
        else:
            lines.append(raw.rstrip("\r"))
    return lines


def _parse_request_line(start: str, headers: Headers) -> SipRequest:
    match = _REQUEST_LINE.match(start)
    partial = SipRequest("UNKNOWN", parse_uri("sip:invalid"), headers)
    if not match:
        raise SipParseError(f"malformed request line {start[:80]!r}", partial=partial)
    method, uri_text, version = match.groups()
    if not is_token(method):
        raise SipParseError(f"malformed method {method[:40]!r}", partial=partial)
    partial.method = method
    if not _VERSION.match(version):
        raise SipParseError(f"malformed SIP version {version!r}", partial=partial)
    try:
        uri = parse_uri(uri_text)
    except RemoteProtocolError as exc:
        raise SipParseError(f"malformed Request-URI: {exc.reason}", partial=partial) from None
    request = SipRequest(method, uri, headers, version=version)
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"SIP version {version} is not supported", status_code=505, partial=request)
    return request


def _parse_status_line(start: str, headers: Headers) -> SipResponse:
    match = _STATUS_LINE.match(start) or _STATUS_LINE.match(start + " ")
    if not match or not _VERSION.match(match.group(1)):
        raise SipParseError(f"malformed status line {start[:80]!r}")
    version, code, reason = match.groups()
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code out of range: {status}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"SIP version {version} is not supported")
    return SipResponse(status, reason, headers, version=version)


def _checked_body(message: SipMessage, body: bytes) -> bytes:
    lengths = message.headers.get_lines("Content-Length")
    if not lengths:
        return body
    if len(set(v.strip() for v in lengths)) > 1:
        raise SipParseError("conflicting Content-Length headers", partial=message)
    text = lengths[0].strip()
    if not text.isdigit() or len(text) > 10:
        raise SipParseError(f"malformed Content-Length {text!r}", partial=message)
    length = int(text)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} is larger than the body ({len(body)} bytes)",
                            partial=message)
    return body[:length]


def _validate(message: SipRequest | SipResponse) -> None:
    """The checks that make a message usable by a transaction and a dialog layer."""
    headers = message.headers
    seen: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in SINGLE_HEADERS:
            if key in seen and seen[key] != value:
                raise SipParseError(f"more than one {name} header", partial=message)
            seen[key] = value
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if headers.get(name) is None:
            raise SipParseError(f"missing {name} header", partial=message)
    try:
        # Parsing them now caches them for the layers above and rejects a broken one here.
        _ = (message.vias, message.cseq, message.from_, message.to, message.contacts)
        if isinstance(message, SipRequest):
            _ = (message.max_forwards, message.expires)
    except RemoteProtocolError as exc:
        raise SipParseError(exc.reason, partial=message) from None
    if not message.call_id or any(c in message.call_id for c in " \t"):
        raise SipParseError(f"malformed Call-ID {message.call_id!r}", partial=message)
    if isinstance(message, SipRequest) and message.cseq.method != message.method:
        raise SipParseError(f"CSeq method {message.cseq.method} does not match the request method "
                            f"{message.method}", partial=message)


def make_response(request: SipRequest, status_code: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                  body: bytes = b"") -> SipResponse:
    """A response to `request` (RFC 3261 8.2.6.2): Via, From, To, Call-ID and CSeq copied.

    `to_tag` is added to To unless the request already has one.
    """
    copied: list[tuple[str, str]] = [("Via", v) for v in request.headers.get_lines("Via")]
    to_value = request.headers.get("To") or ""
    if to_tag is not None and status_code > 100:
        to = request.to
        if to.tag is None:
            to = to.copy()
            to.params["tag"] = to_tag
            to_value = str(to)
    copied += [("From", request.headers.get("From") or ""), ("To", to_value),
               ("Call-ID", request.headers.get("Call-ID") or ""), ("CSeq", request.headers.get("CSeq") or "")]
    if request.method == "INVITE" and 100 < status_code < 300:
        copied += [("Record-Route", v) for v in request.headers.get_lines("Record-Route")]
    copied += list(headers)
    return SipResponse(status_code, reason, copied, body)

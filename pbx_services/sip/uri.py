"""SIP and SIPS URIs (RFC 3261 section 19.1), and any other absolute URI kept as text.

The user part and parameters are kept as they arrived (still %-escaped) so that a
URI serializes back to the same text; `user_unescaped` gives the value to look up.
Scheme, host and parameter names are case-insensitive and kept lower-cased.

Parsing has a fast path: one compiled pattern that matches the usual shape of a URI
(no escapes, no headers) and accepts only what the general path below it accepts;
anything else goes through the general path, which says exactly what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from .errors import RemoteProtocolError

SIP_SCHEMES = frozenset({"sip", "sips"})
MAX_PORT = 65535

# RFC 3261 25.1: characters allowed unescaped in each part; "%" is allowed in the
# classes below and every escape is then checked by _BAD_ESCAPE.
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_CHARS = re.compile(rf"[{_UNRESERVED}&=+$,;?/%]+")
_PASSWORD_CHARS = re.compile(rf"[{_UNRESERVED}&=+$,%]*")
_PARAM_CHARS = re.compile(rf"[{_UNRESERVED}\[\]/:&+$%]+")
_HEADER_CHARS = re.compile(rf"[{_UNRESERVED}\[\]/?:+$%]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?")
_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
_URI_FORBIDDEN = re.compile(r"[\s<>\"\x00-\x1f\x7f]")

# The fast path: lower-case scheme, no escapes, no headers; `fast_sip_uri` still checks
# the host (valid_host) and the port range, the pattern itself checks all the rest.
_FAST_PARAM = rf"[{_UNRESERVED}\[\]/:&+$]+"
_FAST_TAIL = (r"([A-Za-z0-9\-.]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
              rf"((?:;{_FAST_PARAM}(?:={_FAST_PARAM})?)*)")
# Groups: scheme, user, password, host, port, parameters (see `fast_sip_uri`); the
# header parsers embed these patterns in theirs.
FAST_URI_WITH_USER = rf"(sips?):([{_UNRESERVED}&=+$,;?/]+)(?::([{_UNRESERVED}&=+$,]*))?@{_FAST_TAIL}"
FAST_URI_NO_USER = rf"(sips?):()(){_FAST_TAIL}"
_FAST_WITH_USER = re.compile(FAST_URI_WITH_USER)
_FAST_NO_USER = re.compile(FAST_URI_NO_USER)

# Hosts recur (our own domain, each phone's address): remember which are valid.
_HOST_CACHE: dict[str, bool] = {}
_HOST_CACHE_SIZE = 4096


def is_escaped_text(text: str) -> bool:
    """Whether every % in `text` starts a %HEX HEX escape."""
    return "%" not in text or _BAD_ESCAPE.search(text) is None


def valid_host(host: str) -> bool:
    """A hostname, an IPv4 address or an [IPv6] reference (RFC 3261 25.1 `host`)."""
    known = _HOST_CACHE.get(host)
    if known is not None:
        return known
    if host.startswith("[") and "%" not in host:
        try:
            ipaddress.IPv6Address(host[1:-1] if host.endswith("]") else "-")
            valid = True
        except ValueError:
            valid = False
    elif host.startswith("["):
        valid = False
    elif _IPV4.fullmatch(host):
        valid = all(int(octet) <= 255 for octet in host.split("."))
    else:
        valid = _HOSTNAME.fullmatch(host) is not None
    if len(_HOST_CACHE) >= _HOST_CACHE_SIZE:
        _HOST_CACHE.clear()
    _HOST_CACHE[host] = valid
    return valid


def _params_from(text: str) -> dict[str, str | None]:
    """`;a=b;c` already checked by a pattern into {"a": "b", "c": None}."""
    params: dict[str, str | None] = {}
    for item in text[1:].split(";"):
        name, eq, value = item.partition("=")
        params[name.lower()] = value if eq else None
    return params


@dataclass(slots=True)
class SipUri:
    """A sip: or sips: URI. Scheme, host and parameter names are lower-cased; the rest verbatim."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        match = (_FAST_WITH_USER if "@" in text else _FAST_NO_USER).fullmatch(text)
        if match is not None:
            uri = fast_sip_uri(*match.groups())
            if uri is not None:
                return uri
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> SipUri:
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in SIP_SCHEMES:
            raise RemoteProtocolError(f"not a SIP URI: {text!r}")
        if not rest or _URI_FORBIDDEN.search(rest):
            raise RemoteProtocolError(f"SIP URI has forbidden characters: {text!r}")
        # "@" cannot appear in a host, a parameter or a header, so the first one ends the userinfo.
        user = password = None
        userinfo, at, rest = rest.partition("@")
        if not at:
            rest = userinfo
        else:
            user, colon, pw = userinfo.partition(":")
            if not user or not _USER_CHARS.fullmatch(user) or not is_escaped_text(user):
                raise RemoteProtocolError(f"SIP URI has a malformed user part: {text!r}")
            if colon:
                if not _PASSWORD_CHARS.fullmatch(pw) or not is_escaped_text(pw):
                    raise RemoteProtocolError(f"SIP URI has a malformed password: {text!r}")
                password = pw
        headers: dict[str, str] = {}
        rest, qmark, header_text = rest.partition("?")
        if qmark:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if (not name or not eq or not _HEADER_CHARS.fullmatch(name)
                        or not _HEADER_CHARS.fullmatch(value) or not is_escaped_text(item)):
                    raise RemoteProtocolError(f"SIP URI has a malformed header: {text!r}")
                headers[name] = value
        hostport, *param_items = rest.split(";")
        params: dict[str, str | None] = {}
        for item in param_items:
            name, eq, value = item.partition("=")
            if (not _PARAM_CHARS.fullmatch(name) or (eq and not _PARAM_CHARS.fullmatch(value))
                    or not is_escaped_text(item)):
                raise RemoteProtocolError(f"SIP URI has a malformed parameter {item!r}: {text!r}")
            params[name.lower()] = value if eq else None
        try:
            host, port = split_hostport(hostport)
        except ValueError as exc:
            raise RemoteProtocolError(f"SIP URI has {exc}: {text!r}") from None
        return cls(host=host, user=user, password=password, port=port, scheme=scheme,
                   params=params, headers=headers)

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += [":", self.password]
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += [":", str(self.port)]
        for name, value in self.params.items():
            parts += [";", name] if value is None else [";", name, "=", value]
        if self.headers:
            parts += ["?", "&".join(f"{k}={v}" for k, v in self.headers.items())]
        return "".join(parts)

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %-escapes decoded (what a location lookup compares)."""
        if self.user is None:
            return None
        return unquote_to_bytes(self.user).decode("utf-8", "replace")

    @property
    def transport(self) -> str:
        """The transport parameter, lower-cased; UDP when absent (RFC 3263 default for sip:)."""
        value = self.params.get("transport")
        return value.lower() if value else ("tls" if self.scheme == "sips" else "udp")

    def copy(self) -> SipUri:
        return SipUri(host=self.host, user=self.user, password=self.password, port=self.port,
                      scheme=self.scheme, params=dict(self.params), headers=dict(self.headers))

    def address_of_record(self) -> str:
        """`sip:user@host`: the key of a registration binding (RFC 3261 10.3 step 5)."""
        user = self.user_unescaped
        return f"{self.scheme}:{user}@{self.host}" if user is not None else f"{self.scheme}:{self.host}"


def fast_sip_uri(scheme: str, user: str, password: str | None, host: str, port_text: str | None,
                 param_text: str) -> SipUri | None:
    """The URI a match of FAST_URI_WITH_USER / FAST_URI_NO_USER describes (an empty user
    means none), or None when its host or port needs the general path to say what is wrong."""
    if not valid_host(host):
        return None
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 0 < port <= MAX_PORT:
            return None
    return SipUri(host=host.lower(), user=user or None, password=password if user else None, port=port,
                  scheme=scheme, params=_params_from(param_text) if param_text else {})


@dataclass(slots=True, frozen=True)
class AbsoluteUri:
    """A URI of a scheme we do not route (tel:, im:, http:, ...), kept as text."""

    scheme: str
    text: str

    @classmethod
    def parse(cls, text: str) -> AbsoluteUri:
        scheme, sep, rest = text.partition(":")
        if not sep or not rest or not _SCHEME.fullmatch(scheme) or _URI_FORBIDDEN.search(text):
            raise RemoteProtocolError(f"malformed URI: {text!r}")
        return cls(scheme=scheme.lower(), text=text)

    def __str__(self) -> str:
        return self.text


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """A SIP/SIPS URI parsed into parts, any other scheme kept whole."""
    if text.startswith("sip:"):
        return SipUri.parse(text)
    scheme = text[:5].partition(":")[0].lower()
    if scheme in SIP_SCHEMES:
        return SipUri.parse(text)
    return AbsoluteUri.parse(text)


def split_hostport(hostport: str) -> tuple[str, int | None]:
    """`host[:port]` (host may be an [IPv6] reference) split and checked; ValueError says why."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("an unterminated IPv6 reference")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError("junk after its IPv6 reference")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_part = hostport.partition(":")
        port_text = port_part if colon else None
    if not valid_host(host):
        raise ValueError("a malformed host")
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) <= MAX_PORT:
            raise ValueError("a malformed port")
        port = int(port_text)
    return host.lower(), port

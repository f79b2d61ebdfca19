"""SIP and SIPS URIs (RFC 3261 section 19.1), and any other absolute URI kept as text.

The user part and parameters are kept as they arrived (still %-escaped) so that a
URI serializes back to the same text; `user_unescaped` gives the value to look up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from .errors import RemoteProtocolError

SIP_SCHEMES = frozenset({"sip", "sips"})

# RFC 3261 25.1: characters allowed unescaped in each part (escapes are checked separately).
_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
_USER_CHARS = re.compile(rf"^(?:[{_UNRESERVED}&=+$,;?/]|%[0-9A-Fa-f]{{2}})+$")
_PASSWORD_CHARS = re.compile(rf"^(?:[{_UNRESERVED}&=+$,]|%[0-9A-Fa-f]{{2}})*$")
_PARAM_CHARS = re.compile(rf"^(?:[{_UNRESERVED}\[\]/:&+$]|%[0-9A-Fa-f]{{2}})+$")
_HEADER_CHARS = re.compile(rf"^(?:[{_UNRESERVED}\[\]/?:+$]|%[0-9A-Fa-f]{{2}})*$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*[A-Za-z](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.?$")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_IPV6_REF = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")


def _valid_host(host: str) -> bool:
    if _IPV4.match(host):
        return all(int(octet) <= 255 for octet in host.split("."))
    return bool(_IPV6_REF.match(host) or _HOSTNAME.match(host))


@dataclass(slots=True)
class SipUri:
    """A sip: or sips: URI. Host is lower-cased; everything else is kept verbatim."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, sep, rest = text.partition(":")
        scheme = scheme.lower()
        if not sep or scheme not in SIP_SCHEMES:
            raise RemoteProtocolError(f"not a SIP URI: {text!r}")
        if not rest or any(c in rest for c in " \t\r\n<>\""):
            raise RemoteProtocolError(f"SIP URI has forbidden characters: {text!r}")
        headers: dict[str, str] = {}
        rest, qmark, header_text = rest.partition("?")
        if qmark:
            for item in header_text.split("&"):
                name, eq, value = item.partition("=")
                if not name or not eq or not _HEADER_CHARS.match(name) or not _HEADER_CHARS.match(value):
                    raise RemoteProtocolError(f"SIP URI has a malformed header: {text!r}")
                headers[name] = value
        user = password = None
        userinfo, at, hostpart = rest.rpartition("@")
        if at:
            user, colon, pw = userinfo.partition(":")
            if not user or not _USER_CHARS.match(user):
                raise RemoteProtocolError(f"SIP URI has a malformed user part: {text!r}")
            if colon:
                if not _PASSWORD_CHARS.match(pw):
                    raise RemoteProtocolError(f"SIP URI has a malformed password: {text!r}")
                password = pw
        hostport, *param_items = hostpart.split(";")
        params: dict[str, str | None] = {}
        for item in param_items:
            name, eq, value = item.partition("=")
            if not name or not _PARAM_CHARS.match(name) or (eq and not _PARAM_CHARS.match(value)):
                raise RemoteProtocolError(f"SIP URI has a malformed parameter {item!r}: {text!r}")
            params[name.lower()] = value if eq else None
        try:
            host, port = split_hostport(hostport)
        except ValueError as exc:
            raise RemoteProtocolError(f"SIP URI has a {exc}: {text!r}") from None
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


@dataclass(slots=True, frozen=True)
class AbsoluteUri:
    """A URI of a scheme we do not route (tel:, im:, http:, ...), kept as text."""

    scheme: str
    text: str

    @classmethod
    def parse(cls, text: str) -> AbsoluteUri:
        scheme, sep, rest = text.partition(":")
        if not sep or not rest or not _SCHEME.match(scheme) or any(c in text for c in " \t\r\n<>\""):
            raise RemoteProtocolError(f"malformed URI: {text!r}")
        return cls(scheme=scheme.lower(), text=text)

    def __str__(self) -> str:
        return self.text


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """A SIP/SIPS URI parsed into parts, any other scheme kept whole."""
    scheme = text.partition(":")[0].lower()
    if scheme in SIP_SCHEMES:
        return SipUri.parse(text)
    return AbsoluteUri.parse(text)


def split_hostport(hostport: str) -> tuple[str, int | None]:
    """`host[:port]` (host may be an [IPv6] reference) split and checked; ValueError says why."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, tail = hostport[: end + 1], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError("junk after the IPv6 reference")
        port_text = tail[1:] if tail else None
    else:
        host, colon, port_part = hostport.partition(":")
        port_text = port_part if colon else None
    if not _valid_host(host):
        raise ValueError("malformed host")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            raise ValueError("malformed port")
        port = int(port_text)
    return host.lower(), port

"""SDP session descriptions (RFC 8866, formerly RFC 4566), sans-IO.

`SessionDescription.parse(data)` reads an offer or answer into objects and `serialize()` writes it
back. Output always uses the RFC 8866 field order and CRLF line ends, so a well-formed description
round-trips byte-exact; bare LF line ends, runs of spaces between fields and fields out of order
within a level are accepted and come back normalized.

Rules the parser enforces, each failure a `RemoteProtocolError` naming the line:

- the first three lines are v=0, o= and s=; at least one t= line; no empty lines inside;
- i=, u=, c=, z= and k= appear at most once per level, and r= follows a t=;
- every media section has a c= line or inherits the session-level one (RFC 8866 section 5.7);
- numbers are decimal digits (ports 0-65535, payload types 0-127);
- a=rtpmap is well-formed and not repeated for a payload type, and a section carries at most one
  direction attribute, so `rtpmap()` and `direction` cannot fail on a parsed description.

Other attributes are kept verbatim as (name, value) pairs, value None for a property attribute.
Text is decoded as UTF-8 with surrogateescape so that a device sending Latin-1 in s= still
round-trips byte-exact.
"""

from __future__ import annotations

import copy
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError

SDP_VERSION = 0
NETTYPE_IN = "IN"
ADDRTYPE_IP4 = "IP4"
ADDRTYPE_IP6 = "IP6"
# RFC 2543 put a call on hold by setting c= to the unspecified address; RFC 3264 section 8.4
# still asks answerers to understand it.
HOLD_ADDRESS_IP4 = "0.0.0.0"
MAX_PORT = 65535
MAX_PAYLOAD_TYPE = 127
ATTR_RTPMAP = "rtpmap"
ATTR_FMTP = "fmtp"
ATTR_RTCP = "rtcp"

LINE_END = "\r\n"
_TEXT_ENCODING = "utf-8"
_TEXT_ERRORS = "surrogateescape"
_HEADER_TYPES = "vos"  # the fixed first three lines
_KNOWN_TYPES = frozenset("vosiuepcbtrzkam")
_MEDIA_LEVEL_TYPES = frozenset("icbka")
_SINGLE_TYPES = frozenset("iuczk")  # at most once per level
_DECIMAL = re.compile(r"[0-9]+")
_MAX_SHOWN = 40  # characters of a bad value quoted back in an error message


class Direction(enum.StrEnum):
    """RFC 3264 section 5.1 direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


_DIRECTION_NAMES = frozenset(direction.value for direction in Direction)
_HOLD_DIRECTIONS = frozenset({Direction.SENDONLY, Direction.INACTIVE})


@dataclass(frozen=True)
class RtpMap:
    """One payload type of a media section: an a=rtpmap line or a static RFC 3551 assignment."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None  # the rtpmap encoding parameters; None when omitted (one channel)


# RFC 3551 section 6 static audio payload types that a phone may offer without an a=rtpmap.
STATIC_PAYLOAD_TYPES: Mapping[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000),
    3: RtpMap(3, "GSM", 8000),
    4: RtpMap(4, "G723", 8000),
    8: RtpMap(8, "PCMA", 8000),
    9: RtpMap(9, "G722", 8000),  # 8000 by historical error, RFC 3551 section 4.5.2
    13: RtpMap(13, "CN", 8000),
    18: RtpMap(18, "G729", 8000),
}


@dataclass(frozen=True)
class Origin:
    """The o= line. Session id and version are kept as the digit strings sent."""

    username: str
    session_id: str
    session_version: str
    nettype: str
    addrtype: str
    address: str

    def next_version(self) -> Origin:
        """The origin of a changed description: RFC 3264 section 8 needs a higher version."""
        return Origin(
            self.username,
            self.session_id,
            str(int(self.session_version) + 1),
            self.nettype,
            self.addrtype,
            self.address,
        )

    def __str__(self) -> str:
        return " ".join(
            (self.username, self.session_id, self.session_version, self.nettype, self.addrtype, self.address)
        )


@dataclass(frozen=True)
class Connection:
    """A c= line. A multicast `address` keeps its /ttl and /count suffixes verbatim."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """An IN connection whose address type follows the address (IP6 when it has a colon)."""
        return cls(NETTYPE_IN, ADDRTYPE_IP6 if ":" in address else ADDRTYPE_IP4, address)

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Bandwidth:
    """A b= line, e.g. b=AS:64 (kilobits per second) or b=TIAS:64000 (bits per second)."""

    bwtype: str
    bandwidth: int

    def __str__(self) -> str:
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(frozen=True)
class Timing:
    """A t= line with the r= lines that follow it (kept verbatim: they use unit suffixes)."""

    start_time: int
    stop_time: int
    repeats: tuple[str, ...] = ()


Attribute = tuple[str, str | None]


@dataclass(kw_only=True)
class MediaDescription:
    """One m= section with its i=, c=, b=, k= and a= lines."""

    media: str
    port: int
    port_count: int | None = None
    proto: str
    formats: list[str]
    info: str | None = None
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    encryption_key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> codec for the RTP formats of the m= line, in its order of preference.

        A static payload type without an a=rtpmap gets its RFC 3551 assignment; a dynamic one
        without an a=rtpmap (malformed, but seen) and non-RTP formats (t38) are left out.
        """
        declared: dict[int, RtpMap] = {}
        for name, value in self.attributes:
            if name == ATTR_RTPMAP and value is not None:
                rtpmap = _parse_built_rtpmap(value)
                declared[rtpmap.payload_type] = rtpmap
        result: dict[int, RtpMap] = {}
        for fmt in self.formats:
            if not _DECIMAL.fullmatch(fmt):
                continue
            payload_type = int(fmt)
            rtpmap_or_none = declared.get(payload_type, STATIC_PAYLOAD_TYPES.get(payload_type))
            if rtpmap_or_none is not None:
                result[payload_type] = rtpmap_or_none
        return result

    def fmtp(self) -> dict[int, str]:
        """Payload type -> its a=fmtp parameter string (e.g. 101 -> "0-16"), as sent."""
        result: dict[int, str] = {}
        for name, value in self.attributes:
            if name == ATTR_FMTP and value is not None:
                fmt, _, params = value.partition(" ")
                if _DECIMAL.fullmatch(fmt):
                    result[int(fmt)] = params
        return result

    @property
    def direction(self) -> Direction | None:
        """The direction attribute of this section, None when it has none (see `media_direction`)."""
        return _find_direction(self.attributes)

    @direction.setter
    def direction(self, direction: Direction | None) -> None:
        _set_direction(self.attributes, direction)


@dataclass(kw_only=True)
class SessionDescription:
    """A whole session description: session-level fields, then the media sections."""

    version: int = SDP_VERSION
    origin: Origin
    session_name: str
    info: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timing: list[Timing] = field(default_factory=lambda: [Timing(0, 0)])
    time_zones: str | None = None
    encryption_key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body; raise RemoteProtocolError(status_code=400) naming the bad line."""
        text = data.decode(_TEXT_ENCODING, _TEXT_ERRORS) if isinstance(data, bytes) else data
        return _Parser(_split_lines(text)).parse()

    def serialize(self) -> bytes:
        lines = [f"v={self.version}", f"o={self.origin}", f"s={self.session_name}"]
        lines += _optional("i", self.info) + _optional("u", self.uri)
        lines += [f"e={email}" for email in self.emails] + [f"p={phone}" for phone in self.phones]
        lines += _optional("c", self.connection) + [f"b={bandwidth}" for bandwidth in self.bandwidths]
        for timing in self.timing:
            lines.append(f"t={timing.start_time} {timing.stop_time}")
            lines += [f"r={repeat}" for repeat in timing.repeats]
        lines += _optional("z", self.time_zones) + _optional("k", self.encryption_key)
        lines += _attribute_lines(self.attributes)
        for media in self.media:
            port = f"{media.port}" if media.port_count is None else f"{media.port}/{media.port_count}"
            lines.append(f"m={media.media} {port} {media.proto} {' '.join(media.formats)}")
            lines += _optional("i", media.info) + _optional("c", media.connection)
            lines += [f"b={bandwidth}" for bandwidth in media.bandwidths]
            lines += _optional("k", media.encryption_key) + _attribute_lines(media.attributes)
        for line in lines:
            # A value copied from elsewhere (a SIP header, a user name) must not inject SDP lines.
            if "\r" in line or "\n" in line or "\0" in line:
                raise LocalProtocolError(f"SDP {line[:2]} line contains a line break or NUL: {_show(line)}")
        return (LINE_END.join(lines) + LINE_END).encode(_TEXT_ENCODING, _TEXT_ERRORS)

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute, None when there is none."""
        return _find_direction(self.attributes)

    @direction.setter
    def direction(self, direction: Direction | None) -> None:
        _set_direction(self.attributes, direction)

    def media_direction(self, index: int) -> Direction:
        """Effective direction of media section `index`: its own, else the session's, else sendrecv."""
        return self.media[index].direction or self.direction or Direction.SENDRECV

    def media_connection(self, index: int) -> Connection:
        """Effective c= of media section `index`: its own, else the session-level one."""
        connection = self.media[index].connection or self.connection
        if connection is None:
            raise LocalProtocolError(f"SDP media section {index} has no c= line and there is no session c=")
        return connection

    def is_hold(self) -> bool:
        """True when every active stream (port not 0) is held.

        A stream is held when its effective direction is sendonly or inactive (RFC 3264 section
        8.4) or its connection address is 0.0.0.0 (RFC 2543). One-way video alone is not a hold.
        """
        active = [index for index, media in enumerate(self.media) if media.port != 0]
        return bool(active) and all(
            self.media_direction(index) in _HOLD_DIRECTIONS
            or self.media_connection(index).address == HOLD_ADDRESS_IP4
            for index in active
        )

    def with_connection_address(
        self, address: str, ports: Mapping[int, int] | None = None
    ) -> SessionDescription:
        """A copy pointing every stream at a media relay: c= set to `address`, and the port of
        media section i set to ports[i] for each i given.

        A c=0.0.0.0 stays as it is, since rewriting it would turn an RFC 2543 hold into a resume.
        An a=rtcp (RFC 3605) of a section whose port changes is dropped so that RTCP goes to the
        relay's port + 1 (or the muxed port); one whose port stays has its address rewritten.
        The o= line is left alone: bump it with `origin.next_version()` when the body changes.
        """
        ports = dict(ports or {})
        for index, port in ports.items():
            if not 0 <= index < len(self.media):
                raise LocalProtocolError(f"SDP has no media section {index} (it has {len(self.media)})")
            if self.media[index].port == 0:
                raise LocalProtocolError(f"SDP media section {index} is disabled (port 0); it keeps port 0")
            if not 0 < port <= MAX_PORT:
                raise LocalProtocolError(f"SDP port {port} for media section {index} is out of range")
        relay = Connection.for_address(address)
        result = copy.deepcopy(self)
        if result.connection is not None and result.connection.address != HOLD_ADDRESS_IP4:
            result.connection = relay
        for index, media in enumerate(result.media):
            if media.connection is None and result.connection is None:
                media.connection = relay
            elif media.connection is not None and media.connection.address != HOLD_ADDRESS_IP4:
                media.connection = relay
            if index in ports:
                media.port = ports[index]
            media.attributes = _relay_rtcp_attributes(media.attributes, relay, port_changed=index in ports)
        return result


class _LineError(Exception):
    """What is wrong with one line; the parser prefixes the line number."""

    def __init__(self, problem: str, status_code: int = 400) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status_code = status_code


class _Parser:
    """Reads the lines of one description; the current media section is the last of `media`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.origin: Origin | None = None
        self.session_name = ""
        self.info: str | None = None
        self.uri: str | None = None
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.connection: Connection | None = None
        self.bandwidths: list[Bandwidth] = []
        self.timing: list[Timing] = []
        self.time_zones: str | None = None
        self.encryption_key: str | None = None
        self.attributes: list[Attribute] = []
        self.media: list[MediaDescription] = []
        self.media_line_numbers: list[int] = []
        self.seen: set[str] = set()  # single-valued type letters seen at the current level
        self.rtpmap_payload_types: set[int] = set()

    def parse(self) -> SessionDescription:
        if not self.lines:
            raise RemoteProtocolError("SDP is empty", status_code=400)
        for number, line in enumerate(self.lines, start=1):
            try:
                self._feed(number, line)
            except _LineError as exc:
                raise RemoteProtocolError(
                    f"SDP line {number}: {exc.problem}", status_code=exc.status_code
                ) from None
        if len(self.lines) < len(_HEADER_TYPES):
            raise RemoteProtocolError(
                f"SDP ends before the {_HEADER_TYPES[len(self.lines)]}= line", status_code=400
            )
        if not self.timing:
            raise RemoteProtocolError("SDP has no t= line", status_code=400)
        for media, number in zip(self.media, self.media_line_numbers, strict=True):
            if media.connection is None and self.connection is None:
                raise RemoteProtocolError(
                    f"SDP line {number}: media section has no c= line and there is no session-level c=",
                    status_code=400,
                )
        assert self.origin is not None  # line 2 is an o= line, checked above
        return SessionDescription(
            origin=self.origin,
            session_name=self.session_name,
            info=self.info,
            uri=self.uri,
            emails=self.emails,
            phones=self.phones,
            connection=self.connection,
            bandwidths=self.bandwidths,
            timing=self.timing,
            time_zones=self.time_zones,
            encryption_key=self.encryption_key,
            attributes=self.attributes,
            media=self.media,
        )

    def _feed(self, number: int, line: str) -> None:
        if len(line) < 2 or line[1] != "=":
            raise _LineError(f"expected '<type>=<value>', got {_show(line)}")
        letter, value = line[0], line[2:]
        if number <= len(_HEADER_TYPES):
            self._feed_header(_HEADER_TYPES[number - 1], letter, value)
        elif letter not in _KNOWN_TYPES:
            raise _LineError(f"unknown type letter {_show(letter)}")
        elif letter in _HEADER_TYPES:
            raise _LineError(f"{letter}= line is only allowed as line {_HEADER_TYPES.index(letter) + 1}")
        elif letter == "m":
            self.media.append(_parse_media_line(value))
            self.media_line_numbers.append(number)
            self.seen = set()
            self.rtpmap_payload_types = set()
        elif self.media:
            self._feed_media(letter, value)
        else:
            self._feed_session(letter, value)

    def _feed_header(self, expected: str, letter: str, value: str) -> None:
        if letter != expected:
            raise _LineError(f"expected {expected}= line, got {_show(letter + '=' + value)}")
        if letter == "v" and value != str(SDP_VERSION):
            raise _LineError(f"unsupported SDP version {_show(value)}")
        if letter == "o":
            self.origin = _parse_origin(value)
        elif letter == "s":
            self.session_name = value

    def _once(self, letter: str, level: str) -> None:
        if letter in self.seen:
            if letter == "c" and level == "media section":
                # Legal (RFC 8866 section 5.7), but only for layered multicast, which a PBX does not do.
                raise _LineError("more than one c= line in the media section (layered multicast)", 488)
            raise _LineError(f"more than one {letter}= line in the {level}")
        self.seen.add(letter)

    def _feed_session(self, letter: str, value: str) -> None:
        if letter in _SINGLE_TYPES:
            self._once(letter, "session")
        if letter == "i":
            self.info = value
        elif letter == "u":
            self.uri = value
        elif letter == "e":
            self.emails.append(value)
        elif letter == "p":
            self.phones.append(value)
        elif letter == "c":
            self.connection = _parse_connection(value)
        elif letter == "b":
            self.bandwidths.append(_parse_bandwidth(value))
        elif letter == "t":
            self.timing.append(_parse_timing(value))
        elif letter == "r":
            if not self.timing:
                raise _LineError("r= line without a preceding t= line")
            last = self.timing[-1]
            self.timing[-1] = Timing(last.start_time, last.stop_time, (*last.repeats, value))
        elif letter == "z":
            self.time_zones = value
        elif letter == "k":
            self.encryption_key = value
        else:
            self._add_attribute(self.attributes, value, in_media=False)

    def _feed_media(self, letter: str, value: str) -> None:
        if letter not in _MEDIA_LEVEL_TYPES:
            raise _LineError(f"{letter}= line is not allowed in a media section")
        if letter in _SINGLE_TYPES:
            self._once(letter, "media section")
        media = self.media[-1]
        if letter == "i":
            media.info = value
        elif letter == "c":
            media.connection = _parse_connection(value)
        elif letter == "b":
            media.bandwidths.append(_parse_bandwidth(value))
        elif letter == "k":
            media.encryption_key = value
        else:
            self._add_attribute(media.attributes, value, in_media=True)

    def _add_attribute(self, attributes: list[Attribute], text: str, *, in_media: bool) -> None:
        name, colon, raw_value = text.partition(":")
        value = raw_value if colon else None
        if not name:
            raise _LineError("a= line has an empty attribute name")
        if name in _DIRECTION_NAMES:
            if value is not None:
                raise _LineError(f"a={name} takes no value")
            earlier = _find_direction(attributes)
            if earlier is not None:
                raise _LineError(f"a={name} conflicts with the earlier a={earlier}")
        elif in_media and name == ATTR_RTPMAP:
            payload_type = _parse_rtpmap(value or "").payload_type
            if payload_type in self.rtpmap_payload_types:
                raise _LineError(f"a=rtpmap repeats payload type {payload_type}")
            self.rtpmap_payload_types.add(payload_type)
        elif in_media and name == ATTR_FMTP:
            fmt, space, _ = (value or "").partition(" ")
            if not fmt or not space:
                raise _LineError(f"a=fmtp needs '<format> <parameters>', got {_show(value or '')}")
        attributes.append((name, value))


def _split_lines(text: str) -> list[str]:
    """Lines without their CRLF or bare LF ends; blank lines at the very end are tolerated."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if line == "":
            raise RemoteProtocolError(f"SDP line {number}: empty line", status_code=400)
        if "\r" in line:
            raise RemoteProtocolError(f"SDP line {number}: bare CR inside the line", status_code=400)
        if "\0" in line:
            raise RemoteProtocolError(f"SDP line {number}: NUL inside the line", status_code=400)
    return lines


def _fields(value: str, letter: str, expected: int) -> list[str]:
    fields = value.split()
    if len(fields) != expected:
        raise _LineError(f"{letter}= line needs {expected} fields, got {len(fields)}")
    return fields


def _parse_origin(value: str) -> Origin:
    username, session_id, session_version, nettype, addrtype, address = _fields(value, "o", 6)
    if not _DECIMAL.fullmatch(session_id):
        raise _LineError(f"o= line has non-numeric session id {_show(session_id)}")
    if not _DECIMAL.fullmatch(session_version):
        raise _LineError(f"o= line has non-numeric session version {_show(session_version)}")
    return Origin(username, session_id, session_version, nettype, addrtype, address)


def _parse_connection(value: str) -> Connection:
    nettype, addrtype, address = _fields(value, "c", 3)
    return Connection(nettype, addrtype, address)


def _parse_bandwidth(value: str) -> Bandwidth:
    bwtype, colon, bandwidth = value.partition(":")
    if not bwtype or not colon:
        raise _LineError(f"b= line needs '<bwtype>:<bandwidth>', got {_show(value)}")
    if not _DECIMAL.fullmatch(bandwidth):
        raise _LineError(f"b= line has non-numeric bandwidth {_show(bandwidth)}")
    return Bandwidth(bwtype, int(bandwidth))


def _parse_timing(value: str) -> Timing:
    start_time, stop_time = _fields(value, "t", 2)
    if not _DECIMAL.fullmatch(start_time):
        raise _LineError(f"t= line has non-numeric start time {_show(start_time)}")
    if not _DECIMAL.fullmatch(stop_time):
        raise _LineError(f"t= line has non-numeric stop time {_show(stop_time)}")
    return Timing(int(start_time), int(stop_time))


def _parse_media_line(value: str) -> MediaDescription:
    fields = value.split()
    if len(fields) < 4:
        raise _LineError(f"m= line needs at least 4 fields, got {len(fields)}")
    media, port_field, proto, *formats = fields
    port_text, slash, count_text = port_field.partition("/")
    if not _DECIMAL.fullmatch(port_text):
        raise _LineError(f"m= line has non-numeric port {_show(port_text)}")
    port = int(port_text)
    if port > MAX_PORT:
        raise _LineError(f"m= line has port {port} out of range")
    port_count = None
    if slash:
        if not _DECIMAL.fullmatch(count_text) or int(count_text) == 0:
            raise _LineError(f"m= line has invalid port count {_show(count_text)}")
        port_count = int(count_text)
    return MediaDescription(media=media, port=port, port_count=port_count, proto=proto, formats=formats)


def _parse_rtpmap(value: str) -> RtpMap:
    """`<payload type> <encoding name>/<clock rate>[/<encoding parameters>]`, RFC 8866 section 6.6."""
    payload_text, space, codec = value.partition(" ")
    encoding, clock_rate_text, channels_text = (codec.split("/", 2) + ["", ""])[:3]
    if not space or not encoding or "/" not in codec:
        raise _LineError(f"a=rtpmap needs '<payload type> <encoding>/<clock rate>', got {_show(value)}")
    if not _DECIMAL.fullmatch(payload_text) or int(payload_text) > MAX_PAYLOAD_TYPE:
        raise _LineError(f"a=rtpmap has invalid payload type {_show(payload_text)}")
    if not _DECIMAL.fullmatch(clock_rate_text):
        raise _LineError(f"a=rtpmap has non-numeric clock rate {_show(clock_rate_text)}")
    channels = None
    if "/" in codec.split("/", 1)[1]:
        if not _DECIMAL.fullmatch(channels_text):
            raise _LineError(f"a=rtpmap has non-numeric encoding parameters {_show(channels_text)}")
        channels = int(channels_text)
    return RtpMap(int(payload_text), encoding, int(clock_rate_text), channels)


def _parse_built_rtpmap(value: str) -> RtpMap:
    # Parsed descriptions were validated line by line, so a bad value here was put in by our code.
    try:
        return _parse_rtpmap(value)
    except _LineError as exc:
        raise LocalProtocolError(f"SDP {exc.problem}") from None


def _find_direction(attributes: list[Attribute]) -> Direction | None:
    for name, _ in attributes:
        if name in _DIRECTION_NAMES:
            return Direction(name)
    return None


def _set_direction(attributes: list[Attribute], direction: Direction | None) -> None:
    """Replace the direction attribute in place (keeping its position), add it, or remove it."""
    for position, (name, _) in enumerate(attributes):
        if name in _DIRECTION_NAMES:
            if direction is None:
                del attributes[position]
            else:
                attributes[position] = (direction.value, None)
            return
    if direction is not None:
        attributes.append((direction.value, None))


def _relay_rtcp_attributes(
    attributes: list[Attribute], relay: Connection, *, port_changed: bool
) -> list[Attribute]:
    result: list[Attribute] = []
    for name, value in attributes:
        if name == ATTR_RTCP and value is not None:
            if port_changed:
                continue
            fields = value.split()
            if len(fields) == 4:  # <port> <nettype> <addrtype> <address>
                value = f"{fields[0]} {relay}"
        result.append((name, value))
    return result


def _optional(letter: str, value: object | None) -> list[str]:
    return [] if value is None else [f"{letter}={value}"]


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


def _show(text: str) -> str:
    """A peer's text quoted for an error message: ASCII only, so it is safe in a reason phrase."""
    if len(text) > _MAX_SHOWN:
        text = text[:_MAX_SHOWN] + "..."
    return ascii(text)

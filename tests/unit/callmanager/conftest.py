"""A real Call Manager on a fresh database, driven by tiny byte-level test phones.

`Pbx` wraps a `CallManager` built as the controller builds it, with the clock in the
test's hands: `pbx.advance(seconds)` fires every timer due on the way, in order. Every
`Transmit` the core makes is parsed and put in the inbox of the phone at its destination
(or in `pbx.unrouted`), so a test reads as "the phone sends ..., the phone receives ...".

`Phone` is a user agent written from RFC 3261, not from the core: it builds its requests
and responses as text, answers digest challenges with the client side of the digest
module, and remembers the dialogs its calls make.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.directory import Directory
from pbx_services.callmanager.forwarding import ForwardingTable
from pbx_services.callmanager.mediapool import PoolSettings
from pbx_services.callmanager.policy import AuthFailureLimiter
from pbx_services.callmanager.registrar import RegistrarSettings
from pbx_services.callmanager.ring_groups import RingGroupTable
from pbx_services.callmanager.service import CallManager
from pbx_services.callmanager.workers import WorkerPlace
from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.events import CallEnded
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.cluster.state import open_state_store
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.media.server import MediaServer
from pbx_services.media.session import Leg
from pbx_services.sip.digest import DigestAlgorithm, DigestChallenge, NonceManager, build_authorization
from pbx_services.sip.events import Transmit
from pbx_services.sip.message import SipRequest, SipResponse, parse_message
from tests.unit.sip.wire import crlf

PBX_HOST = "192.0.2.10"
PBX_PORT = 5060
PBX = (PBX_HOST, PBX_PORT)
DOMAIN = "pbx.local"
OTHER_DOMAIN = "other.example"
START = 1000.0
"""The core's clock (a monotonic loop time) when a test starts."""
WALL_OFFSET = 1_700_000_000.0
"""Wall-clock seconds minus loop time, as the controller computes it."""
SECRET_HEX = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

USERS = {"100": "alice-pw-100", "200": "bob-pw-200", "300": "carol-pw-300"}
"""Extensions of the default tenant and their passwords."""
OTHER_USERS = {"100": "other-pw-100", "500": "other-pw-500"}
"""Users of the second tenant (same extension, other realm)."""

SDP_OFFER = (b"v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
SDP_ANSWER = (b"v=0\r\no=bob 2 2 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\n"
              b"m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
SDP_HOLD = SDP_OFFER.replace(b"a=rtpmap:0 PCMU/8000\r\n", b"a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n")

_counter = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_counter)}"


# -- reading what the PBX sent ------------------------------------------------------------------

_REDACTIONS = [
    (re.compile(r"tag=[A-Za-z0-9_\-.!%*+`'~]+"), "tag=<tag>"),
    (re.compile(r'nonce="[^"]*"'), 'nonce="<nonce>"'),
    (re.compile(r"branch=z9hG4bK[A-Za-z0-9_\-.!%*+`'~]+"), "branch=z9hG4bK<branch>"),
    (re.compile(r"^Date: [^\r\n]*", re.M), "Date: <date>"),
]


def redact(data: bytes, *, call_id: str | None = None) -> str:
    """The message as text with what is random in it (tags, nonces, branches, Date) replaced.

    `call_id` (a Call-ID the PBX made up) is replaced by `<call-id>` too.
    """
    text = data.decode()
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    if call_id is not None:
        text = text.replace(call_id, "<call-id>")
    return text


@dataclass
class Received:
    """One message the PBX sent to a phone."""

    message: SipRequest | SipResponse
    transmit: Transmit
    time: float
    """The PBX's clock when it sent the message."""

    @property
    def data(self) -> bytes:
        return self.transmit.data


# -- the PBX ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PbxSettings:
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 3600
    max_contacts: int = 10
    nonce_ttl: float = 300.0
    auth_failure_limit: int = 5
    auth_failure_window: float = 60.0
    block_seconds: float = 600.0
    trusted_networks: tuple[str, ...] = ()
    algorithms: tuple[DigestAlgorithm, ...] = (DigestAlgorithm.SHA256, DigestAlgorithm.MD5)
    no_answer_timeout: float = 60.0
    max_message_size: int = 4096
    media_servers: int = 0
    """Real media server cores (sans-IO) to anchor calls on; 0 leaves SDP untouched."""
    media_port_pairs: int = 50
    """RTP/RTCP port pairs of each media server (a call takes two)."""
    record_calls: bool = False


MEDIA_HOST = "192.0.2.50"
MEDIA_CONTROL_PORT = 2223


class MediaNode:
    """A media server core at a control address; `alive = False` makes it silent (killed)."""

    def __init__(self, index: int, pairs: int, now: float, recording_dir: Path) -> None:
        self.address = (MEDIA_HOST, MEDIA_CONTROL_PORT + index)
        self.name = f"media{index + 1}"
        self.port_min = 30000 + 1000 * index
        self.alive = True
        self._index, self._pairs, self._recording_dir = index, pairs, recording_dir
        self.boots = 0
        self.core = self._boot(now)

    def _boot(self, now: float) -> MediaServer:
        self.boots += 1
        return MediaServer(
            worker=0, boot_id=f"boot-{self._index}.{self.boots}", process_id=self._index,
            port_min=self.port_min, port_max=self.port_min + 2 * self._pairs - 1, sdp_address=MEDIA_HOST,
            recording_dir=self._recording_dir, tone_plan="us", rtp_timeout=60.0, hold_timeout=3600.0,
            bind_ports=_bind_nowhere, unbind_ports=lambda leg: None, wall_offset=WALL_OFFSET, now=now)

    def restart(self, now: float) -> None:
        """Killed and started again by its supervisor: a new boot id, no calls."""
        self.core = self._boot(now)
        self.alive = True

    @property
    def entry(self) -> ServerEntry:
        return ServerEntry(name=self.name, role=ServerRole.MEDIA, host=self.address[0], port=self.address[1],
                           workers=1, weight=1, enabled=True)


def _bind_nowhere(leg: Leg) -> bool:
    leg.sendto = lambda data, destination: None
    return True


class Pbx:
    """A `CallManager` with the clock, the CDRs and the phones of one test."""

    def __init__(self, sessions: sessionmaker[Session], settings: PbxSettings) -> None:
        self.now = START
        self.settings = settings
        self.directory_engine = sessions.kw["bind"]
        self.directory = Directory(engine=self.directory_engine, default_domain=DOMAIN)
        self.directory.tick(self.now)
        self.cdrs: list[CallEnded] = []
        self.state = open_state_store(None, nonce_ttl=settings.nonce_ttl)
        """What Call Managers share; a core made anew by `restart` finds it as it was."""
        recordings = Path(sessions.kw["bind"].url.database).parent / "recordings"
        self.media = [MediaNode(i, settings.media_port_pairs, self.now, recordings)
                      for i in range(settings.media_servers)]
        self.core = self._make_core(WorkerPlace(node="cm1"))
        self.inboxes: dict[tuple[str, int], list[Received]] = {}
        """What the PBX sent, by destination; phones at the same address share one."""
        self.unrouted: list[Received] = []

    def _make_core(self, place: WorkerPlace) -> CallManager:
        settings = self.settings
        core = CallManager(
            host=PBX_HOST, port=PBX_PORT, max_message_size=settings.max_message_size,
            directory=self.directory,
            nonces=NonceManager(bytes.fromhex(SECRET_HEX), settings.nonce_ttl,
                                counts=self.state.nonce_counts),
            limiter=AuthFailureLimiter(limit=settings.auth_failure_limit, window=settings.auth_failure_window,
                                       block_seconds=settings.block_seconds,
                                       trusted_networks=list(settings.trusted_networks),
                                       store=self.state.auth_failures),
            registrar_settings=RegistrarSettings(
                min_expires=settings.min_expires, max_expires=settings.max_expires,
                default_expires=settings.default_expires, max_contacts=settings.max_contacts),
            algorithms=settings.algorithms, on_call_ended=self.cdrs.append,
            no_answer_timeout=settings.no_answer_timeout, wall_offset=WALL_OFFSET,
            media_pool=PoolSettings() if settings.media_servers else None, record_calls=settings.record_calls,
            location=self.state.location, dialogs=self.state.dialogs, place=place, agents=self.state.agents,
            forwarding=ForwardingTable(self.directory_engine, ttl=0.0),
            ring_groups=RingGroupTable(self.directory_engine, ttl=0.0), call_counts=self.state.call_counts)
        if core.media is not None:
            core.media.update_servers([node.entry for node in self.media], self.now)
        return core

    def restart(self, place: WorkerPlace | None = None) -> None:
        """The Call Manager process dies and another starts (the same worker again unless
        `place` says otherwise): only the state store and the media servers go on."""
        self.core = self._make_core(place or self.core.place)

    @property
    def wall(self) -> float:
        """The test's time on the wall clock, as the state store keeps it."""
        return self.now + WALL_OFFSET

    def phone(self, extension: str, ip: str, port: int = 5060, *, password: str | None = None,
              domain: str = DOMAIN, transport: str = "UDP") -> Phone:
        return Phone(self, extension=extension, password=password or USERS.get(extension, "wrong-pw"),
                     address=(ip, port), domain=domain, transport=transport)

    def receive(self, data: bytes, source: tuple[str, int], transport: str = "UDP") -> None:
        self.core.receive(data, source, transport, self.now)
        self.deliver()

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass, firing each timer at its deadline (as the controller's loop does)."""
        until = self.now + seconds
        while (deadline := self._next_deadline()) is not None and deadline <= until:
            self.now = max(self.now, deadline)
            self._run_timers()
        self.now = until
        self._run_timers()

    def _next_deadline(self) -> float | None:
        candidates = [self.core.next_timer(), *(n.core.next_timer() for n in self.media if n.alive)]
        deadlines = [d for d in candidates if d is not None]
        return min(deadlines, default=None)

    def _run_timers(self) -> None:
        self.core.handle_timer(self.now)
        for node in self.media:
            if node.alive:
                node.core.handle_timer(self.now)
                node.core.take_rtp_datagrams()
        self.deliver()

    def housekeeping(self) -> None:
        self.core.housekeeping(self.now)
        self.deliver()

    def deliver(self) -> None:
        """Hand what the core sent to the phones, and run its media control exchanges to the end."""
        nodes = {node.address: node for node in self.media}
        while True:
            for transmit in self.core.take_transmits():
                received = Received(_parse(transmit.data), transmit, self.now)
                self.inboxes.get(transmit.destination, self.unrouted).append(received)
            control = self.core.take_media_control_transmits()
            replies = [(data, node.address) for node in self.media if node.alive
                       for data, _ in node.core.take_control_datagrams()]
            if not control and not replies:
                return
            for data, destination in control:
                node = nodes.get(destination)
                if node is not None and node.alive:
                    node.core.receive_control(data, (PBX_HOST, 40000), self.now)
            for data, source in replies:
                self.core.receive_media_control(data, source, self.now)

    def media_node_of(self, call_id: str) -> MediaNode:
        [node] = [node for node in self.media if call_id in node.core.calls]
        return node


def _parse(data: bytes) -> SipRequest | SipResponse:
    message = parse_message(data)
    # What we send must survive our own parser unchanged.
    assert message.serialize() == data, data
    return message


# -- the phones ---------------------------------------------------------------------------------


@dataclass
class PhoneDialog:
    """A phone's side of a dialog (RFC 3261 12), enough to send requests in it."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    remote_target: str
    cseq: int

    def request(self, phone: Phone, method: str, *, body: bytes = b"", cseq: int | None = None,
                branch: str | None = None, contact: bool = False,
                content_type: str = "application/sdp") -> bytes:
        if cseq is None and method != "ACK":
            self.cseq += 1
        seq = self.cseq if cseq is None else cseq
        lines = [
            f"{method} {self.remote_target} SIP/2.0",
            phone.via(branch),
            "Max-Forwards: 70",
            f"From: <{self.local_uri}>;tag={self.local_tag}",
            f"To: <{self.remote_uri}>;tag={self.remote_tag}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {seq} {method}",
        ]
        if contact:
            lines.append(f"Contact: <{phone.contact_uri}>")
        return _with_body(lines, body, content_type)


@dataclass
class Phone:
    """A SIP phone at `address` speaking raw bytes to the PBX."""

    pbx: Pbx
    extension: str
    password: str
    address: tuple[str, int]
    domain: str = DOMAIN
    transport: str = "UDP"
    tag: str = field(default_factory=lambda: unique("tag"))
    """The From tag of its REGISTERs."""
    register_call_id: str = field(init=False)
    register_cseq: int = 0
    challenge: SipResponse | None = None
    """The last 401 this phone answered; `reregister` answers it again with the next nc."""
    nc: int = 0
    inbox: list[Received] = field(init=False, repr=False)
    """What the PBX sent to this phone's address, oldest first."""

    def __post_init__(self) -> None:
        self.register_call_id = unique(f"reg-{self.extension}-") + f"@{self.address[0]}"
        self.inbox = self.pbx.inboxes.setdefault(self.address, [])

    # -- basics -------------------------------------------------------------------------------

    @property
    def contact_uri(self) -> str:
        return f"sip:{self.extension}@{self.address[0]}:{self.address[1]}"

    def via(self, branch: str | None = None) -> str:
        branch = branch or unique("z9hG4bKph")
        return f"Via: SIP/2.0/{self.transport} {self.address[0]}:{self.address[1]};branch={branch};rport"

    def send(self, data: bytes) -> None:
        self.pbx.receive(data, self.address, self.transport)

    def pop(self) -> Received:
        assert self.inbox, f"{self.extension} at {self.address} received nothing"
        return self.inbox.pop(0)

    def pop_response(self, status: int | None = None) -> SipResponse:
        """The next response, 100 Trying skipped unless asked for."""
        while True:
            message = self.pop().message
            assert isinstance(message, SipResponse), f"expected a response, got {message!r}"
            if status != 100 and message.status_code == 100:
                continue
            if status is not None:
                assert message.status_code == status, f"expected {status}, got {message!r}"
            return message

    def pop_request(self, method: str | None = None) -> SipRequest:
        received = self.pop()
        message = received.message
        assert isinstance(message, SipRequest), f"expected a request, got {message!r}"
        if method is not None:
            assert message.method == method, f"expected {method}, got {message!r}"
        return message

    def assert_silent(self) -> None:
        assert not self.inbox, f"{self.extension} received {[r.message for r in self.inbox]}"

    # -- digest -------------------------------------------------------------------------------

    def credentials(self, challenge_response: SipResponse, method: str, uri: str, *,
                    algorithm: DigestAlgorithm = DigestAlgorithm.MD5, nc: int = 1,
                    username: str | None = None, password: str | None = None) -> str:
        """The Authorization value answering the challenge of `algorithm` in a 401 or 407."""
        name = "WWW-Authenticate" if challenge_response.status_code == 401 else "Proxy-Authenticate"
        for value in challenge_response.headers.get_all(name):
            challenge = DigestChallenge.parse(value)
            if challenge.algorithm is algorithm:
                return build_authorization(challenge, username=username or self.extension,
                                           password=password or self.password, method=method, uri=uri,
                                           cnonce=unique("cnonce"), nc=nc)
        raise AssertionError(f"no {algorithm} challenge in {challenge_response.headers}")

    # -- REGISTER -----------------------------------------------------------------------------

    def register_request(self, *, call_id: str, cseq: int, contacts: list[str] | None = None,
                         expires: int | str | None = None, authorization: str | None = None,
                         to_user: str | None = None, extra: Sequence[str] = ()) -> bytes:
        """REGISTER bytes; `contacts` are Contact values (default: this phone's), [] for none."""
        to = f"sip:{to_user or self.extension}@{self.domain}"
        lines = [
            f"REGISTER sip:{self.domain} SIP/2.0",
            self.via(),
            "Max-Forwards: 70",
            f"From: <{to}>;tag={self.tag}",
            f"To: <{to}>",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} REGISTER",
        ]
        for contact in (f"<{self.contact_uri}>",) if contacts is None else contacts:
            lines.append(f"Contact: {contact}")
        if expires is not None:
            lines.append(f"Expires: {expires}")
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        lines.append("User-Agent: TestPhone/1.0")
        lines += extra
        return _with_body(lines)

    def register(self, *, contacts: list[str] | None = None, expires: int | str | None = None,
                 call_id: str | None = None, algorithm: DigestAlgorithm = DigestAlgorithm.MD5,
                 to_user: str | None = None) -> SipResponse:
        """The whole exchange: REGISTER, 401, REGISTER with credentials; the last response."""
        call_id = call_id or self.register_call_id
        self.register_cseq += 1
        self.send(self.register_request(call_id=call_id, cseq=self.register_cseq, contacts=contacts,
                                        expires=expires, to_user=to_user))
        first = self.pop_response()
        if first.status_code != 401:
            return first  # a blocked source is refused at once
        self.challenge = first
        self.nc = 0
        return self.reregister(contacts=contacts, expires=expires, call_id=call_id, algorithm=algorithm,
                               to_user=to_user)

    def reregister(self, *, contacts: list[str] | None = None, expires: int | str | None = None,
                   call_id: str | None = None, cseq: int | None = None,
                   algorithm: DigestAlgorithm = DigestAlgorithm.MD5, to_user: str | None = None,
                   extra: Sequence[str] = ()) -> SipResponse:
        """REGISTER answering the last challenge again (next nonce-count); the final response."""
        assert self.challenge is not None, "register() first"
        self.nc += 1
        if cseq is None:
            self.register_cseq += 1
            cseq = self.register_cseq
        authorization = self.credentials(self.challenge, "REGISTER", f"sip:{self.domain}",
                                         algorithm=algorithm, nc=self.nc)
        self.send(self.register_request(call_id=call_id or self.register_call_id, cseq=cseq,
                                        contacts=contacts, expires=expires, to_user=to_user,
                                        authorization=authorization, extra=extra))
        return self.pop_response()

    # -- calls as the caller ------------------------------------------------------------------

    def invite_request(self, call: OutgoingCall, *, cseq: int, authorization: str | None = None,
                       body: bytes | None = None, extra: Sequence[str] = (), branch: str | None = None,
                       max_forwards: int = 70) -> bytes:
        lines = [
            f"INVITE {call.request_uri} SIP/2.0",
            self.via(branch),
            f"Max-Forwards: {max_forwards}",
            f'From: "Phone {self.extension}" <sip:{self.extension}@{self.domain}>;tag={call.tag}',
            f"To: <{call.request_uri}>",
            f"Call-ID: {call.call_id}",
            f"CSeq: {cseq} INVITE",
            f"Contact: <{self.contact_uri}>",
        ]
        if authorization is not None:
            lines.append(f"Proxy-Authorization: {authorization}")
        lines += extra
        return _with_body(lines, SDP_OFFER if body is None else body)

    def call(self, callee: str, *, body: bytes | None = None, extra: Sequence[str] = (),
             host: str | None = None) -> OutgoingCall:
        """INVITE `callee` (at `host`, default the phone's domain), answer the 407, and send the
        INVITE with credentials.

        Leaves the 100 Trying (and what follows) in the inbox.
        """
        call = OutgoingCall(request_uri=f"sip:{callee}@{host or self.domain}",
                            call_id=unique("call-") + "@phone", tag=unique("ctag"))
        first_branch = unique("z9hG4bKinv")
        self.send(self.invite_request(call, cseq=1, body=body, extra=extra, branch=first_branch))
        challenge = self.pop_response(407)
        self.send(crlf(
            f"ACK {call.request_uri} SIP/2.0\n"
            f"{self.via(first_branch)}\n"
            "Max-Forwards: 70\n"
            f'From: "Phone {self.extension}" <sip:{self.extension}@{self.domain}>;tag={call.tag}\n'
            f"To: {challenge.headers.get('To')}\n"
            f"Call-ID: {call.call_id}\n"
            "CSeq: 1 ACK\n"
            "Content-Length: 0\n\n"))
        self.assert_silent()
        call.cseq = 2
        call.branch = unique("z9hG4bKinv")
        call.invite = self.invite_request(
            call, cseq=2, body=body, extra=extra, branch=call.branch,
            authorization=self.credentials(challenge, "INVITE", call.request_uri))
        self.send(call.invite)
        return call

    def cancel(self, call: OutgoingCall) -> None:
        self.send(crlf(
            f"CANCEL {call.request_uri} SIP/2.0\n"
            f"{self.via(call.branch)}\n"
            "Max-Forwards: 70\n"
            f'From: "Phone {self.extension}" <sip:{self.extension}@{self.domain}>;tag={call.tag}\n'
            f"To: <{call.request_uri}>\n"
            f"Call-ID: {call.call_id}\n"
            f"CSeq: {call.cseq} CANCEL\n"
            "Content-Length: 0\n\n"))

    def ack_failure(self, call: OutgoingCall, response: SipResponse) -> None:
        """The ACK to a failure response, in the INVITE's transaction (RFC 3261 17.1.1.3)."""
        self.send(crlf(
            f"ACK {call.request_uri} SIP/2.0\n"
            f"{self.via(call.branch)}\n"
            "Max-Forwards: 70\n"
            f'From: "Phone {self.extension}" <sip:{self.extension}@{self.domain}>;tag={call.tag}\n'
            f"To: {response.headers.get('To')}\n"
            f"Call-ID: {call.call_id}\n"
            f"CSeq: {call.cseq} ACK\n"
            "Content-Length: 0\n\n"))

    def dialog_from_answer(self, call: OutgoingCall, response: SipResponse) -> PhoneDialog:
        assert response.to.tag is not None and response.contacts
        return PhoneDialog(call_id=call.call_id, local_tag=call.tag, remote_tag=response.to.tag,
                           local_uri=f"sip:{self.extension}@{self.domain}", remote_uri=call.request_uri,
                           remote_target=str(response.contacts[0].uri), cseq=call.cseq)

    # -- calls as the callee ------------------------------------------------------------------

    def respond(self, request: SipRequest, status: int, reason: str | None = None, *,
                to_tag: str | None = None, body: bytes = b"", contact: bool = True,
                extra: Sequence[str] = ()) -> bytes:
        """A response to `request` (RFC 3261 8.2.6), written out by hand."""
        to = request.headers.get("To") or ""
        if to_tag is not None and ";tag=" not in to:
            to = f"{to};tag={to_tag}"
        lines = [f"SIP/2.0 {status} {reason or _REASONS[status]}"]
        lines += [f"Via: {via}" for via in request.headers.get_lines("Via")]
        lines += [f"From: {request.headers.get('From')}", f"To: {to}",
                  f"Call-ID: {request.call_id}", f"CSeq: {request.headers.get('CSeq')}"]
        if contact and 100 < status < 300:
            lines.append(f"Contact: <{self.contact_uri}>")
        lines += extra
        return _with_body(lines, body)

    def dialog_from_invite(self, invite: SipRequest, local_tag: str) -> PhoneDialog:
        """The callee's dialog made by answering `invite` with `local_tag`."""
        assert invite.contacts
        return PhoneDialog(call_id=invite.call_id, local_tag=local_tag, remote_tag=invite.from_.tag or "",
                           local_uri=str(invite.to.uri), remote_uri=str(invite.from_.uri),
                           remote_target=str(invite.contacts[0].uri), cseq=0)

    def ack_2xx(self, dialog: PhoneDialog, cseq: int, body: bytes = b"") -> None:
        self.send(dialog.request(self, "ACK", cseq=cseq, body=body))


@dataclass
class OutgoingCall:
    """What the caller's phone keeps of a call it makes."""

    request_uri: str
    call_id: str
    tag: str
    cseq: int = 1
    branch: str = ""
    invite: bytes = b""


_REASONS = {100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 404: "Not Found",
            480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 486: "Busy Here",
            487: "Request Terminated", 488: "Not Acceptable Here", 491: "Request Pending",
            603: "Decline"}


def _with_body(lines: list[str], body: bytes = b"", content_type: str = "application/sdp") -> bytes:
    if body:
        lines = [*lines, f"Content-Type: {content_type}"]
    head = "\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])
    return head.encode() + body


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh SQLite database with the default tenant, a second one, and their users."""
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    tenants = TenantService(sessions=sessions)
    tenants.ensure_tenant(DOMAIN)
    tenants.ensure_tenant(OTHER_DOMAIN)
    users = UserService(sessions=sessions, default_domain=DOMAIN)
    for extension, password in USERS.items():
        users.add_user(extension, password)
    for extension, password in OTHER_USERS.items():
        users.add_user(extension, password, tenant=OTHER_DOMAIN)
    yield sessions
    engine.dispose()


@pytest.fixture
def make_pbx(sessions: sessionmaker[Session]) -> Callable[..., Pbx]:
    """Build a PBX, with `PbxSettings` fields as keyword arguments to change the defaults."""

    def make(**overrides: Any) -> Pbx:
        return Pbx(sessions, PbxSettings(**overrides))

    return make


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx]) -> Pbx:
    return make_pbx()


# Alice (100) and Bob (200) registered from 10.0.0.1 and 10.0.0.2, on the module's `pbx`.
def registered(pbx: Pbx, extension: str, ip: str) -> Phone:
    phone = pbx.phone(extension, ip, 5062)
    assert phone.register().status_code == 200
    return phone


@pytest.fixture
def alice(pbx: Pbx) -> Phone:
    return registered(pbx, "100", "10.0.0.1")


@pytest.fixture
def bob(pbx: Pbx) -> Phone:
    return registered(pbx, "200", "10.0.0.2")

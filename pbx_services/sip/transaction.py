"""SIP transactions (RFC 3261 section 17, with RFC 6026 and RFC 3581), sans-IO.

Rules of the machines below:
- Each machine is a table (state, input) -> (next state, action). Inputs are messages
  from the network, responses from the TU and timers firing. A message with no entry is
  absorbed; a TU response with no entry is a `LocalProtocolError`.
- Entering a state cancels the running timers that the machine's `timers` does not list
  for it and starts the listed ones not yet running. A, E, G and the 2xx retransmission
  run on UDP only; D, I, J and K are 0 on reliable transports, and a 0 timer fires at once.
- RFC 6026: a 2xx moves INVITE transactions to Accepted (Timers L, M = 64*T1), where
  further 2xx reach the TU on the client side and ACKs reach the TU on the server side.
- Time is `now` (seconds, any monotonic origin) passed in; `next_timer()` says when to
  call `handle_timer(now)`. Messages to send queue up until `take_transmits()`.
- A transaction leaves the layer's tables the moment it is Terminated.
- In a machine's `lean` states a transaction keeps only what retransmissions need (a
  REGISTER storm leaves tens of thousands of Completed ones for 64*T1): a server one, the
  bytes of its final response and where they go, no longer its request (reading `request`
  is then a `LocalProtocolError`) nor its parsed response (`last_response` is parsed again
  from those bytes); a client one, no longer its request's bytes (the TU may still read
  `request` while it handles the final response). An INVITE server transaction is lean
  only once Confirmed: before, the TU answers the INVITE again with its 2xx (Accepted) or
  reports Timer H with its request (Completed), and a call holds its INVITE anyway.
"""

from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass
from enum import Enum

from .errors import LocalProtocolError
from .events import (
    AckTimedOut,
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    ServerTransactionTimedOut,
    TransactionTimedOut,
    Transmit,
)
from .headers import BRANCH_MAGIC_COOKIE, PBX_JOIN_TAG, Via, split_list
from .message import MAX_FORWARDS_DEFAULT, SipRequest, SipResponse, make_response, parse_message
from .uri import SipUri

T1 = 0.5
"""RTT estimate (s): the first retransmission interval."""
T2 = 4.0
"""Longest retransmission interval (s) for non-INVITE requests and INVITE responses."""
T4 = 5.0
"""Longest time (s) a message stays in the network: Timers I and K."""
TIMER_D = 32.0
"""How long a client INVITE transaction absorbs retransmitted failures (UDP)."""

UNRELIABLE_TRANSPORTS = frozenset({"UDP"})
DEFAULT_PORT = 5060
# asyncio may run a timer callback up to its clock resolution early; do not spin on that.
_TIMER_SLACK = 1e-6
# Rebuild the timer heap once this many cancelled entries sit in it (and they are half of it).
_COMPACT_THRESHOLD = 4096


class TransactionState(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


CALLING, TRYING, PROCEEDING, ACCEPTED, COMPLETED, CONFIRMED, TERMINATED = TransactionState


class Input(Enum):
    """What drives a transaction machine."""

    RECEIVED_REQUEST = "request retransmission"
    RECEIVED_ACK = "ACK"
    RECEIVED_1XX = "1xx"
    RECEIVED_2XX = "2xx"
    RECEIVED_FAILURE = "300-699"
    SENT_1XX = "1xx from the TU"
    SENT_2XX = "2xx from the TU"
    SENT_FAILURE = "300-699 from the TU"
    TIMER_A = "Timer A"
    TIMER_B = "Timer B"
    TIMER_D = "Timer D"
    TIMER_E = "Timer E"
    TIMER_F = "Timer F"
    TIMER_G = "Timer G"
    TIMER_H = "Timer H"
    TIMER_I = "Timer I"
    TIMER_J = "Timer J"
    TIMER_K = "Timer K"
    TIMER_L = "Timer L"
    TIMER_M = "Timer M"
    TIMER_2XX = "2xx retransmission timer"


class Action(Enum):
    NOTHING = "nothing"
    DELIVER = "pass the response to the TU"
    ACK_AND_DELIVER = "send the ACK, pass the response to the TU"
    RESEND_ACK = "send the ACK again"
    RETRANSMIT = "send the request again, re-arm the timer doubled"
    SEND_RESPONSE = "send the TU's response"
    RESEND_RESPONSE = "send the last response again (re-arm the timer when it is one)"
    DELIVER_ACK = "pass the ACK to the TU"
    TIME_OUT = "report TransactionTimedOut"
    SERVER_TIME_OUT = "report ServerTransactionTimedOut"
    END_ACCEPTED = "report AckTimedOut when still waiting for the ACK"


Transitions = dict[tuple[TransactionState, Input], tuple[TransactionState, Action]]


@dataclass(frozen=True, slots=True)
class Machine:
    """One transaction state machine: its transition table, the timers of each state and the
    states where it keeps only what retransmissions need."""

    name: str
    initial: TransactionState
    transitions: Transitions
    timers: dict[TransactionState, tuple[Input, ...]]
    lean: frozenset[TransactionState]


CLIENT_INVITE = Machine("client INVITE", CALLING, {
    (CALLING, Input.TIMER_A): (CALLING, Action.RETRANSMIT),
    (CALLING, Input.TIMER_B): (TERMINATED, Action.TIME_OUT),
    (CALLING, Input.RECEIVED_1XX): (PROCEEDING, Action.DELIVER),
    (CALLING, Input.RECEIVED_2XX): (ACCEPTED, Action.DELIVER),
    (CALLING, Input.RECEIVED_FAILURE): (COMPLETED, Action.ACK_AND_DELIVER),
    (PROCEEDING, Input.RECEIVED_1XX): (PROCEEDING, Action.DELIVER),
    (PROCEEDING, Input.RECEIVED_2XX): (ACCEPTED, Action.DELIVER),
    (PROCEEDING, Input.RECEIVED_FAILURE): (COMPLETED, Action.ACK_AND_DELIVER),
    (ACCEPTED, Input.RECEIVED_2XX): (ACCEPTED, Action.DELIVER),
    (ACCEPTED, Input.TIMER_M): (TERMINATED, Action.NOTHING),
    (COMPLETED, Input.RECEIVED_FAILURE): (COMPLETED, Action.RESEND_ACK),
    # a proxy may still forward a 2xx from another fork: the TU must ACK it (and may BYE)
    (COMPLETED, Input.RECEIVED_2XX): (COMPLETED, Action.DELIVER),
    (COMPLETED, Input.TIMER_D): (TERMINATED, Action.NOTHING),
}, timers={
    CALLING: (Input.TIMER_A, Input.TIMER_B),
    ACCEPTED: (Input.TIMER_M,),
    COMPLETED: (Input.TIMER_D,),
}, lean=frozenset({ACCEPTED, COMPLETED}))

CLIENT_NON_INVITE = Machine("client non-INVITE", TRYING, {
    (TRYING, Input.TIMER_E): (TRYING, Action.RETRANSMIT),
    (TRYING, Input.TIMER_F): (TERMINATED, Action.TIME_OUT),
    (TRYING, Input.RECEIVED_1XX): (PROCEEDING, Action.DELIVER),
    (TRYING, Input.RECEIVED_2XX): (COMPLETED, Action.DELIVER),
    (TRYING, Input.RECEIVED_FAILURE): (COMPLETED, Action.DELIVER),
    (PROCEEDING, Input.TIMER_E): (PROCEEDING, Action.RETRANSMIT),
    (PROCEEDING, Input.TIMER_F): (TERMINATED, Action.TIME_OUT),
    (PROCEEDING, Input.RECEIVED_1XX): (PROCEEDING, Action.DELIVER),
    (PROCEEDING, Input.RECEIVED_2XX): (COMPLETED, Action.DELIVER),
    (PROCEEDING, Input.RECEIVED_FAILURE): (COMPLETED, Action.DELIVER),
    (COMPLETED, Input.TIMER_K): (TERMINATED, Action.NOTHING),
}, timers={
    TRYING: (Input.TIMER_E, Input.TIMER_F),
    PROCEEDING: (Input.TIMER_E, Input.TIMER_F),
    COMPLETED: (Input.TIMER_K,),
}, lean=frozenset({COMPLETED}))

SERVER_INVITE = Machine("server INVITE", PROCEEDING, {
    (PROCEEDING, Input.RECEIVED_REQUEST): (PROCEEDING, Action.RESEND_RESPONSE),
    (PROCEEDING, Input.SENT_1XX): (PROCEEDING, Action.SEND_RESPONSE),
    (PROCEEDING, Input.SENT_2XX): (ACCEPTED, Action.SEND_RESPONSE),
    (PROCEEDING, Input.SENT_FAILURE): (COMPLETED, Action.SEND_RESPONSE),
    (ACCEPTED, Input.RECEIVED_ACK): (ACCEPTED, Action.DELIVER_ACK),
    (ACCEPTED, Input.SENT_2XX): (ACCEPTED, Action.SEND_RESPONSE),
    (ACCEPTED, Input.TIMER_2XX): (ACCEPTED, Action.RESEND_RESPONSE),
    (ACCEPTED, Input.TIMER_L): (TERMINATED, Action.END_ACCEPTED),
    (COMPLETED, Input.RECEIVED_REQUEST): (COMPLETED, Action.RESEND_RESPONSE),
    (COMPLETED, Input.RECEIVED_ACK): (CONFIRMED, Action.NOTHING),
    (COMPLETED, Input.TIMER_G): (COMPLETED, Action.RESEND_RESPONSE),
    (COMPLETED, Input.TIMER_H): (TERMINATED, Action.SERVER_TIME_OUT),
    (CONFIRMED, Input.TIMER_I): (TERMINATED, Action.NOTHING),
}, timers={
    ACCEPTED: (Input.TIMER_L, Input.TIMER_2XX),
    COMPLETED: (Input.TIMER_G, Input.TIMER_H),
    CONFIRMED: (Input.TIMER_I,),
}, lean=frozenset({CONFIRMED}))

SERVER_NON_INVITE = Machine("server non-INVITE", TRYING, {
    (TRYING, Input.SENT_1XX): (PROCEEDING, Action.SEND_RESPONSE),
    (TRYING, Input.SENT_2XX): (COMPLETED, Action.SEND_RESPONSE),
    (TRYING, Input.SENT_FAILURE): (COMPLETED, Action.SEND_RESPONSE),
    (PROCEEDING, Input.RECEIVED_REQUEST): (PROCEEDING, Action.RESEND_RESPONSE),
    (PROCEEDING, Input.SENT_1XX): (PROCEEDING, Action.SEND_RESPONSE),
    (PROCEEDING, Input.SENT_2XX): (COMPLETED, Action.SEND_RESPONSE),
    (PROCEEDING, Input.SENT_FAILURE): (COMPLETED, Action.SEND_RESPONSE),
    (COMPLETED, Input.RECEIVED_REQUEST): (COMPLETED, Action.RESEND_RESPONSE),
    (COMPLETED, Input.TIMER_J): (TERMINATED, Action.NOTHING),
}, timers={
    COMPLETED: (Input.TIMER_J,),
}, lean=frozenset({COMPLETED}))

_RETRANSMIT_TIMERS = frozenset({Input.TIMER_A, Input.TIMER_E, Input.TIMER_G, Input.TIMER_2XX})


# Our random identifiers are lowercase hex: mixed-case ones can spell a header name, and sipp
# 3.6 finds a response's CSeq by a case-sensitive search of the whole message, so a To tag such
# as "UkCSeqBek9ddxtM6" (about 1 in 1.3 million base64 tags) made it drop our answer as unexpected.
_RANDOM_BYTES = 12  # 96 bits


def make_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 24 random lowercase hex digits."""
    return BRANCH_MAGIC_COOKIE + secrets.token_hex(_RANDOM_BYTES)


def make_tag() -> str:
    """A fresh From/To tag, also what our Call-IDs are made of: 24 random lowercase hex digits."""
    return secrets.token_hex(_RANDOM_BYTES)


def make_cancel(invite: SipRequest) -> SipRequest:
    """The CANCEL for `invite` (RFC 3261 9.1): same Request-URI, top Via, Route, From, To, Call-ID;
    and our Pbx-Join-Tag, which leads it to the Call Manager worker holding the INVITE."""
    uri = invite.uri.copy() if isinstance(invite.uri, SipUri) else invite.uri
    headers = _hop_headers(invite, invite.headers.get("To") or "", "CANCEL")
    join_tag = invite.headers.get(PBX_JOIN_TAG)
    if join_tag is not None:
        headers.append((PBX_JOIN_TAG, join_tag))
    return SipRequest("CANCEL", uri, headers)


def _make_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK to a failure response (RFC 3261 17.1.1.3): To is the response's, with its tag."""
    return SipRequest("ACK", invite.uri, _hop_headers(invite, response.headers.get("To") or "", "ACK"))


def _hop_headers(invite: SipRequest, to: str, method: str) -> list[tuple[str, str]]:
    top_via = split_list(invite.headers.get_lines("Via")[0])[0]
    return [
        ("Via", top_via),
        ("Max-Forwards", str(MAX_FORWARDS_DEFAULT)),
        *[("Route", route) for route in invite.headers.get_lines("Route")],
        ("From", invite.headers.get("From") or ""),
        ("To", to),
        ("Call-ID", invite.call_id),
        ("CSeq", f"{invite.cseq.seq} {method}"),
    ]


def _unbracket(host: str) -> str:
    return host[1:-1] if host.startswith("[") else host


def _via_destination(via: Via, source: Address) -> Address:
    """Where a response goes over UDP (RFC 3261 18.2.2, RFC 3581 section 4; maddr ignored)."""
    params = via.params
    received = params.get("received")
    if "rport" in params:
        rport = params["rport"]
        return (_unbracket(received) if received else source[0]), (int(rport) if rport else source[1])
    return _unbracket(received or via.host), via.port or DEFAULT_PORT


class _Transaction:
    """What both kinds share: `request`, `transport` ("UDP", "TCP"), `state`, `method`,
    `is_invite`, `last_response` (the last one sent or received) and `user_data`, a free
    slot for the TU (its call leg, its registration, ...)."""

    __slots__ = ("_request", "transport", "state", "method", "is_invite", "_last_response", "user_data",
                 "_machine", "_key", "_reliable", "_timers", "_interval")

    def __init__(self, machine: Machine, request: SipRequest, transport: str,
                 key: tuple[object, ...]) -> None:
        self._request: SipRequest | None = request
        self.transport = transport
        self.method = request.method
        self.is_invite = request.method == "INVITE"
        self.state = machine.initial
        self._last_response: SipResponse | None = None
        self.user_data: object = None
        self._machine = machine
        self._key = key
        self._reliable = transport not in UNRELIABLE_TRANSPORTS
        self._timers: dict[Input, int] = {}  # running timer -> sequence number of its heap entry
        self._interval = 0.0  # the current retransmission interval

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.state.value} {self.transport}>"

    @property
    def request(self) -> SipRequest:
        if self._request is None:
            raise LocalProtocolError(f"{self!r} no longer keeps its request: it only answers retransmissions")
        return self._request

    @property
    def last_response(self) -> SipResponse | None:
        return self._last_response

    def _keep_only_retransmission_state(self) -> None:
        """Entering a lean state: let go of what retransmissions do not need."""
        raise NotImplementedError


class ServerTransaction(_Transaction):
    """A request we received and answer: `source` is where it came from and
    `response_destination` where responses go (RFC 3261 18.2.2 and RFC 3581; on TCP, the
    source itself)."""

    __slots__ = ("source", "response_destination", "_response_transmit", "_ack_key")

    def __init__(self, machine: Machine, request: SipRequest, source: Address, transport: str,
                 key: tuple[object, ...], response_destination: Address) -> None:
        super().__init__(machine, request, transport, key)
        self.source = source
        self.response_destination = response_destination
        self._response_transmit: Transmit | None = None
        self._ack_key: tuple[object, ...] | None = None  # set while waiting for the ACK to our 2xx

    @property
    def last_response(self) -> SipResponse | None:
        if self._last_response is None and self._response_transmit is not None:
            response = parse_message(self._response_transmit.data)
            assert isinstance(response, SipResponse)
            return response
        return self._last_response

    def _keep_only_retransmission_state(self) -> None:
        self._request = None
        self._last_response = None  # _response_transmit keeps its bytes


class ClientTransaction(_Transaction):
    """A request we sent to `destination` and wait for the answer to."""

    __slots__ = ("destination", "_request_transmit", "_ack_transmit")

    def __init__(self, machine: Machine, request: SipRequest, destination: Address, transport: str,
                 key: tuple[object, ...], request_transmit: Transmit) -> None:
        super().__init__(machine, request, transport, key)
        self.destination = destination
        self._request_transmit: Transmit | None = request_transmit
        self._ack_transmit: Transmit | None = None

    def _keep_only_retransmission_state(self) -> None:
        self._request_transmit = None  # the request is sent again only before a final response


_HeapEntry = tuple[float, int, _Transaction, Input]


class TransactionLayer:
    """Every transaction of one SIP endpoint, their timers and the messages they send.

    `retransmit_2xx` (an addition, off by default) makes the layer do the UAS core's job of
    RFC 3261 13.3.1.4: retransmit a 2xx to an INVITE over UDP (T1 doubling to T2) until its
    ACK arrives, matched by Call-ID, CSeq number and tags, and report `AckTimedOut` when
    none came before Timer L. Off, the TU re-sends the 2xx with `send_response` itself.
    """

    def __init__(self, *, t1: float = T1, t2: float = T2, t4: float = T4, send_100_trying: bool = True,
                 retransmit_2xx: bool = False) -> None:
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.send_100_trying = send_100_trying
        self.retransmit_2xx = retransmit_2xx
        self._server: dict[tuple[object, ...], ServerTransaction] = {}
        self._client: dict[tuple[object, ...], ClientTransaction] = {}
        self._awaiting_ack: dict[tuple[object, ...], ServerTransaction] = {}
        self._heap: list[_HeapEntry] = []
        self._stale = 0  # cancelled entries still in the heap
        self._sequence = 0
        self._transmits: list[Transmit] = []

    def __len__(self) -> int:
        return len(self._server) + len(self._client)

    # -- messages from the network -------------------------------------------------------

    def receive(self, message: SipRequest | SipResponse, source: Address, transport: str,
                now: float) -> list[Event]:
        """Feed one message read from the network; returns what the TU must handle."""
        transport = transport.upper()
        if isinstance(message, SipResponse):
            return self._receive_response(message, now)
        return self._receive_request(message, source, transport, now)

    def _receive_response(self, response: SipResponse, now: float) -> list[Event]:
        method = response.cseq.method
        tx = self._client.get((response.top_via.branch, method))
        code = response.status_code
        if tx is None:
            if 200 <= code < 300 and method == "INVITE":
                return [ResponseReceived(response, None)]
            return []  # a stray response (RFC 3261 18.1.2)
        if code < 200:
            stimulus = Input.RECEIVED_1XX
        elif code < 300:
            stimulus = Input.RECEIVED_2XX
        else:
            stimulus = Input.RECEIVED_FAILURE
        return self._step(tx, stimulus, now, response)

    def _receive_request(self, request: SipRequest, source: Address, transport: str,
                         now: float) -> list[Event]:
        via = request.top_via
        method = request.method
        key = _server_key(request, via, "INVITE" if method == "ACK" else method)
        tx = self._server.get(key)
        if method == "ACK":
            if tx is not None and _ack_matches(tx, request, key):
                return self._step(tx, Input.RECEIVED_ACK, now, request, source)
            self._stamp_via(request, via, source)
            if self._awaiting_ack:
                self._ack_arrived(self._awaiting_ack.get(_ack_key(request, request.to.tag)))
            return [RequestReceived(request, source, transport, None)]
        if tx is not None:
            return self._step(tx, Input.RECEIVED_REQUEST, now, request)
        via = self._stamp_via(request, via, source)
        destination = source if transport not in UNRELIABLE_TRANSPORTS else _via_destination(via, source)
        machine = SERVER_INVITE if method == "INVITE" else SERVER_NON_INVITE
        tx = ServerTransaction(machine, request, source, transport, key, destination)
        self._server[key] = tx
        if tx.is_invite and self.send_100_trying:
            timestamp = request.headers.get("Timestamp")
            trying = make_response(request, 100, headers=[("Timestamp", timestamp)] if timestamp else ())
            self.send_response(tx, trying, now)
        return [RequestReceived(request, source, transport, tx)]

    @staticmethod
    def _stamp_via(request: SipRequest, via: Via, source: Address) -> Via:
        """Add received and fill rport in the top Via (RFC 3261 18.2.1, RFC 3581 section 4)."""
        ip, port = source
        fill_rport = "rport" in via.params and via.params["rport"] is None
        received = via.params.get("received")
        if not fill_rport and _unbracket(received or via.host) == ip:
            return via
        params = dict(via.params)
        if fill_rport:
            params["rport"] = str(port)
        params["received"] = f"[{ip}]" if ":" in ip else ip
        stamped = Via(transport=via.transport, host=via.host, port=via.port, params=params)
        request.headers.pop_first("Via")
        request.headers.prepend("Via", str(stamped))
        return stamped

    def response_destination(self, request: SipRequest, source: Address, transport: str) -> Address:
        """Where responses to `request` go: RFC 3261 18.2.2 with RFC 3581 (maddr ignored).

        On TCP the source itself (the transport keeps the connection). A sent-by host name
        without received is returned as it is: resolving it is the caller's business.
        """
        if transport.upper() not in UNRELIABLE_TRANSPORTS:
            return source
        return _via_destination(request.top_via, source)

    def find_invite_server_transaction(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction that `cancel` cancels (RFC 3261 9.2), if it is still here."""
        return self._server.get(_server_key(cancel, cancel.top_via, "INVITE"))

    # -- messages from the TU ------------------------------------------------------------

    def send_request(self, request: SipRequest, destination: Address, transport: str,
                     now: float) -> ClientTransaction:
        """Send `request` in a new client transaction keyed on its top Via branch and method."""
        if request.method == "ACK":
            raise LocalProtocolError("an ACK is not a transaction: send it with send_stateless")
        branch = request.top_via.branch
        if not branch:
            raise LocalProtocolError(f"{request.method} has no branch in its top Via")
        key = (branch, request.method)
        if key in self._client:
            raise LocalProtocolError(f"a {request.method} client transaction with branch {branch} exists")
        transport = transport.upper()
        transmit = Transmit(request.serialize(), destination, transport)
        machine = CLIENT_INVITE if request.method == "INVITE" else CLIENT_NON_INVITE
        tx = ClientTransaction(machine, request, destination, transport, key, transmit)
        self._client[key] = tx
        self._transmits.append(transmit)
        self._start_timers(tx, now)
        return tx

    def send_response(self, transaction: ServerTransaction, response: SipResponse, now: float) -> None:
        """Send `response` through `transaction` (the state machine decides what follows)."""
        code = response.status_code
        if code < 200:
            stimulus = Input.SENT_1XX
        elif code < 300:
            stimulus = Input.SENT_2XX
        else:
            stimulus = Input.SENT_FAILURE
        if (transaction.state, stimulus) not in transaction._machine.transitions:
            last = transaction.last_response if transaction.is_invite else None
            if (transaction.state is TERMINATED and stimulus is Input.SENT_2XX
                    and last is not None and 200 <= last.status_code < 300):
                # The TU's last 2xx retransmissions may outlive Timer L: they need no state.
                self.send_stateless(response, transaction.response_destination, transaction.transport)
                return
            raise LocalProtocolError(f"cannot send a {code} response in the {transaction.state.value} "
                                     f"state of a {transaction._machine.name} transaction")
        self._step(transaction, stimulus, now, response)

    def send_stateless(self, message: SipRequest | SipResponse, destination: Address, transport: str) -> None:
        """Queue a message outside any transaction (an ACK to a 2xx, a stateless response)."""
        self._transmits.append(Transmit(message.serialize(), destination, transport.upper()))

    def take_transmits(self) -> list[Transmit]:
        """Everything queued to send since the last call, in order."""
        transmits, self._transmits = self._transmits, []
        return transmits

    # -- timers --------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        """The earliest deadline to call `handle_timer` at, or None when no timer runs."""
        heap = self._heap
        while heap:
            _, sequence, tx, timer = heap[0]
            if tx._timers.get(timer) == sequence:
                return heap[0][0]
            heapq.heappop(heap)
            self._stale -= 1
        return None

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer due at `now`."""
        events: list[Event] = []
        heap = self._heap
        due = now + _TIMER_SLACK
        while heap and heap[0][0] <= due:
            _, sequence, tx, timer = heapq.heappop(heap)
            if tx._timers.get(timer) != sequence:
                self._stale -= 1
                continue
            del tx._timers[timer]
            events += self._step(tx, timer, now)
        return events

    def _duration(self, tx: _Transaction, timer: Input) -> float | None:
        """How long `timer` runs for `tx`; None when it does not run at all."""
        if timer in _RETRANSMIT_TIMERS:
            if tx._reliable or (timer is Input.TIMER_2XX and not self.retransmit_2xx):
                return None
            return self.t1
        if timer is Input.TIMER_D:
            return 0.0 if tx._reliable else TIMER_D
        if timer is Input.TIMER_I or timer is Input.TIMER_K:
            return 0.0 if tx._reliable else self.t4
        if timer is Input.TIMER_J:
            return 0.0 if tx._reliable else 64 * self.t1
        return 64 * self.t1  # B, F, H, L, M

    def _arm(self, tx: _Transaction, timer: Input, deadline: float) -> None:
        self._sequence += 1
        if timer in tx._timers:
            self._stale += 1
        tx._timers[timer] = self._sequence
        heapq.heappush(self._heap, (deadline, self._sequence, tx, timer))

    def _cancel_all(self, tx: _Transaction, keep: tuple[Input, ...] = ()) -> None:
        for timer in [t for t in tx._timers if t not in keep]:
            del tx._timers[timer]
            self._stale += 1
        heap = self._heap
        if self._stale > _COMPACT_THRESHOLD and 2 * self._stale > len(heap):
            # in place: handle_timer may be iterating over this very list
            heap[:] = [entry for entry in heap if entry[2]._timers.get(entry[3]) == entry[1]]
            heapq.heapify(heap)
            self._stale = 0

    def _start_timers(self, tx: _Transaction, now: float) -> list[Event]:
        """Start the timers of `tx`'s state that are not running yet; fire 0 timers at once."""
        immediate = []
        for timer in tx._machine.timers.get(tx.state, ()):
            if timer in tx._timers:
                continue
            duration = self._duration(tx, timer)
            if duration is None:
                continue
            if duration == 0:
                immediate.append(timer)
                continue
            if timer in _RETRANSMIT_TIMERS:
                tx._interval = duration
            self._arm(tx, timer, now + duration)
        events: list[Event] = []
        for timer in immediate:
            if tx.state is not TERMINATED:
                events += self._step(tx, timer, now)
        return events

    # -- the machines --------------------------------------------------------------------

    def _step(self, tx: _Transaction, stimulus: Input, now: float,
              message: SipRequest | SipResponse | None = None, source: Address | None = None) -> list[Event]:
        entry = tx._machine.transitions.get((tx.state, stimulus))
        if entry is None:
            return []
        next_state, action = entry
        events = self._perform(tx, action, stimulus, now, message, source)
        if next_state is not tx.state:
            tx.state = next_state
            if next_state is TERMINATED:
                self._remove(tx)
            else:
                if next_state in tx._machine.lean:
                    tx._keep_only_retransmission_state()
                self._cancel_all(tx, keep=tx._machine.timers.get(next_state, ()))
                events += self._start_timers(tx, now)
        return events

    def _perform(self, tx: _Transaction, action: Action, stimulus: Input, now: float,
                 message: SipRequest | SipResponse | None, source: Address | None) -> list[Event]:
        if action is Action.NOTHING:
            return []
        if isinstance(tx, ClientTransaction):
            if action is Action.DELIVER or action is Action.ACK_AND_DELIVER:
                assert isinstance(message, SipResponse)
                tx._last_response = message
                if action is Action.ACK_AND_DELIVER:
                    tx._ack_transmit = Transmit(_make_ack(tx.request, message).serialize(),
                                                tx.destination, tx.transport)
                    self._transmits.append(tx._ack_transmit)
                return [ResponseReceived(message, tx)]
            if action is Action.RESEND_ACK:
                if tx._ack_transmit is not None:
                    self._transmits.append(tx._ack_transmit)
                return []
            if action is Action.RETRANSMIT:
                assert tx._request_transmit is not None  # only Trying and Proceeding retransmit
                self._transmits.append(tx._request_transmit)
                self._rearm(tx, stimulus, now)
                return []
            if action is Action.TIME_OUT:
                return [TransactionTimedOut(tx)]
        elif isinstance(tx, ServerTransaction):
            if action is Action.SEND_RESPONSE:
                assert isinstance(message, SipResponse)
                tx._last_response = message
                tx._response_transmit = Transmit(message.serialize(), tx.response_destination, tx.transport)
                self._transmits.append(tx._response_transmit)
                if stimulus is Input.SENT_2XX and self.retransmit_2xx and tx._ack_key is None:
                    tx._ack_key = _ack_key(tx.request, message.to.tag)
                    self._awaiting_ack[tx._ack_key] = tx
                return []
            if action is Action.RESEND_RESPONSE:
                if tx._response_transmit is not None:
                    self._transmits.append(tx._response_transmit)
                if stimulus in _RETRANSMIT_TIMERS:
                    self._rearm(tx, stimulus, now)
                return []
            if action is Action.DELIVER_ACK:
                assert isinstance(message, SipRequest) and source is not None
                self._stamp_via(message, message.top_via, source)
                self._ack_arrived(tx)
                return [RequestReceived(message, source, tx.transport, None)]
            if action is Action.SERVER_TIME_OUT:
                return [ServerTransactionTimedOut(tx)]
            if action is Action.END_ACCEPTED:
                return [AckTimedOut(tx)] if tx._ack_key is not None else []
        raise AssertionError(f"{action} is not an action of a {tx._machine.name} transaction")

    def _rearm(self, tx: _Transaction, timer: Input, now: float) -> None:
        if timer is Input.TIMER_A:
            tx._interval *= 2
        elif timer is Input.TIMER_E and tx.state is PROCEEDING:
            tx._interval = self.t2
        else:
            tx._interval = min(2 * tx._interval, self.t2)
        self._arm(tx, timer, now + tx._interval)

    def _ack_arrived(self, tx: ServerTransaction | None) -> None:
        """The ACK to our 2xx came: stop retransmitting the 2xx."""
        if tx is None or tx._ack_key is None:
            return
        del self._awaiting_ack[tx._ack_key]
        tx._ack_key = None
        self._cancel_all(tx, keep=(Input.TIMER_L,))

    def abandon(self, tx: ServerTransaction | ClientTransaction) -> None:
        """Forget a transaction: a server one without answering it (the request's
        retransmissions then reach the TU again as new requests: the TU could not handle it
        yet), a client one without retransmitting or timing out (the TU gave up on it)."""
        self._remove(tx)

    def _remove(self, tx: _Transaction) -> None:
        if isinstance(tx, ServerTransaction):
            if self._server.get(tx._key) is tx:
                del self._server[tx._key]
            if tx._ack_key is not None:
                self._awaiting_ack.pop(tx._ack_key, None)
        elif self._client.get(tx._key) is tx:
            del self._client[tx._key]
        self._cancel_all(tx)


def _server_key(request: SipRequest, via: Via, method: str) -> tuple[object, ...]:
    """The server transaction key of RFC 3261 17.2.3 (`method` is INVITE for an ACK or CANCEL).

    RFC 2543 requests (no magic cookie) are keyed on the Request-URI, From tag, Call-ID,
    CSeq number and top Via; the To tag is checked apart, for ACKs only (`_ack_matches`).
    """
    branch = via.branch
    if branch is not None and branch.startswith(BRANCH_MAGIC_COOKIE):
        host, port = via.sent_by
        return branch, host, port, method
    return (None, str(request.uri), request.from_.tag, request.call_id, request.cseq.seq, method,
            via.transport, via.sent_by, branch)


def _ack_matches(tx: ServerTransaction, ack: SipRequest, key: tuple[object, ...]) -> bool:
    """RFC 2543 ACKs must also carry the To tag of the response they acknowledge."""
    if key[0] is not None:
        return True
    return tx.last_response is not None and tx.last_response.to.tag == ack.to.tag


def _ack_key(request: SipRequest, to_tag: str | None) -> tuple[object, ...]:
    """What ties an ACK to the 2xx it acknowledges: Call-ID, CSeq number and both tags."""
    return request.call_id, request.cseq.seq, request.from_.tag, to_tag

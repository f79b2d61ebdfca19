"""The SIP stack of a SIP element (the Call Manager, an application server): bytes in,
transaction events out, answers to broken input.

Sans-IO like the core below it: the controller feeds datagrams and timer ticks with the
time, and takes `Transmit`s out. What cannot be used is answered (400, 505, 513) when it
is a request we can answer, and dropped and counted otherwise; nothing a peer sends
raises out of here. Refusals are logged at most once per source address a minute
(`RefusalLog`); `counters` has them all.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable

from .errors import RemoteProtocolError
from .events import Event, Transmit
from .headers import Address
from .message import SipMessage, SipParseError, SipRequest, SipResponse, make_response, parse_message
from .refusal_log import RefusalLog
from .transaction import ClientTransaction, ServerTransaction, TransactionLayer, make_branch
from .uri import SipUri

log = logging.getLogger(__name__)

SERVER_NAME = "pbx-services"


ForwardTo = Callable[[SipMessage], int | None]
"""The other worker a message belongs to, or None to handle it here (see workers.py)."""


class SipStack:
    def __init__(self, *, host: str, port: int, max_message_size: int,
                 layer: TransactionLayer | None = None, forward_to: ForwardTo | None = None) -> None:
        self.host = host
        self.port = port
        self.max_message_size = max_message_size
        self.layer = layer or TransactionLayer()
        # Present from the start, so that /metrics shows them (at 0) before the first one.
        self.counters: Counter[str] = Counter({"refused_requests": 0, "dropped_garbage": 0})
        self.refusals = RefusalLog(logger=log)
        self._forward_to = forward_to
        self._forwards: list[tuple[int, bytes, tuple[str, int], str]] = []

    # -- input ---------------------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float, *,
                forwarded: bool = False) -> list[Event]:
        """Transaction events for one received message; [] when it was absorbed, refused or is
        another worker's (`take_forwards`). A `forwarded` message is handled here whatever it is."""
        if len(data) > self.max_message_size:
            self.counters["oversized"] += 1
            self._refuse_oversized(data, source, transport, now)
            return []
        if not data.strip(b"\r\n\x00 \t"):
            self.counters["keepalive"] += 1
            return []
        try:
            message = parse_message(data)
        except SipParseError as exc:
            self._refuse(exc, source, transport, now)
            return []
        if self._forward_to is not None and not forwarded:
            owner = self._forward_to(message)
            if owner is not None:
                self.counters["forwarded_to_owner"] += 1
                self._forwards.append((owner, data, source, transport))
                return []
        self.counters["received_requests" if isinstance(message, SipRequest) else "received_responses"] += 1
        try:
            return self.layer.receive(message, source, transport, now)
        except RemoteProtocolError as exc:
            self._refuse(SipParseError(exc.reason, status_code=exc.status_code, partial=message),
                         source, transport, now)
            return []

    def _refuse(self, exc: SipParseError, source: tuple[str, int], transport: str, now: float) -> None:
        request = exc.partial if isinstance(exc.partial, SipRequest) else None
        if request is None or request.method == "ACK" or not all(
                request.headers.get(name) for name in ("From", "To", "Call-ID", "CSeq")):
            # No answer can be built that the sender could match to its request.
            self.counters["dropped_garbage"] += 1
            log.debug("dropped unusable message from %s:%s: %s", *source, exc.reason)
            return
        try:
            request.top_via  # noqa: B018 - a response needs somewhere to go
            response = make_response(request, exc.status_code, headers=[("Warning", warning(exc.reason))])
            destination = self.layer.response_destination(request, source, transport)
        except RemoteProtocolError:
            self.counters["dropped_garbage"] += 1
            log.debug("dropped unanswerable request from %s:%s: %s", *source, exc.reason)
            return
        self.counters["refused_requests"] += 1
        self.refusals.refused(source, exc.status_code, exc.reason, now)
        self.layer.send_stateless(response, destination, transport)

    def _refuse_oversized(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> None:
        head = data[: data.find(b"\r\n\r\n") + 4] if b"\r\n\r\n" in data else b""
        message: SipMessage | None = None
        try:
            message = parse_message(head) if head else None
        except SipParseError as exc:
            message = exc.partial
        if isinstance(message, SipRequest):
            self._refuse(SipParseError(f"message is larger than {self.max_message_size} bytes",
                                       status_code=513, partial=message), source, transport, now)
        else:
            self.counters["dropped_garbage"] += 1

    # -- output --------------------------------------------------------------------

    def respond(self, transaction: ServerTransaction, status_code: int, reason: str | None = None, *,
                now: float, to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                body: bytes = b"") -> SipResponse:
        response = make_response(transaction.request, status_code, reason, to_tag=to_tag,
                                 headers=[*headers, ("Server", SERVER_NAME)], body=body)
        self.layer.send_response(transaction, response, now)
        return response

    def send_request(self, request: SipRequest, destination: tuple[str, int], transport: str,
                     now: float) -> ClientTransaction:
        return self.layer.send_request(request, destination, transport, now)

    def send_stateless(self, message: SipRequest | SipResponse, destination: tuple[str, int],
                       transport: str) -> None:
        self.layer.send_stateless(message, destination, transport)

    def via(self, transport: str) -> str:
        """A new top Via for a request we originate."""
        return f"SIP/2.0/{transport} {self.host}:{self.port};branch={make_branch()};rport"

    def contact(self, transport: str) -> Address:
        params: dict[str, str | None] = {"transport": transport.lower()} if transport != "UDP" else {}
        return Address(uri=SipUri(host=self.host, port=self.port, params=params))

    def take_transmits(self) -> list[Transmit]:
        return self.layer.take_transmits()

    def hand_over(self, owner: int, data: bytes, source: tuple[str, int], transport: str) -> None:
        """Send a message received here (rewritten, or found to be another worker's only once
        handled) to worker `owner`, as a `take_forwards` item."""
        self.counters["forwarded_to_owner"] += 1
        self._forwards.append((owner, data, source, transport))

    def take_forwards(self) -> list[tuple[int, bytes, tuple[str, int], str]]:
        """(worker, data, source, transport) of each received message that is another worker's."""
        forwards, self._forwards = self._forwards, []
        return forwards

    def next_timer(self) -> float | None:
        return self.layer.next_timer()

    def handle_timer(self, now: float) -> list[Event]:
        return self.layer.handle_timer(now)


def warning(text: str) -> str:
    """A Warning header value carrying `text` (why we refused something) as a valid quoted-string."""
    clean = "".join(c for c in text if c.isprintable()).replace("\\", "/").replace('"', "'")
    return f'399 {SERVER_NAME} "{clean[:200]}"'

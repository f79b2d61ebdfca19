"""What the SIP transaction layer hands to its user (the TU) and to its transport.

`TransactionLayer.receive` and `handle_timer` return lists of `Event`s for the TU;
`take_transmits` returns the `Transmit`s the transport must send, in order. All are
small frozen dataclasses; the messages and transactions they carry are the layer's own
objects, not copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import SipRequest, SipResponse
    from .transaction import ClientTransaction, ServerTransaction

Address = tuple[str, int]
"""A transport address, (ip, port); not to be confused with `headers.Address` (a name-addr)."""


@dataclass(frozen=True, slots=True)
class Transmit:
    """One message for the transport to send."""

    data: bytes
    """The whole serialized SIP message."""
    destination: Address
    """(ip, port) to send to; on TCP, the connection to or from that address."""
    transport: str
    """"UDP" or "TCP" (upper case, as given to the layer)."""


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A request the TU must handle: a new one, or an ACK that only the TU can match."""

    request: SipRequest
    """The request, its top Via already carrying received/rport (RFC 3261 18.2.1, RFC 3581)."""
    source: Address
    """(ip, port) it came from."""
    transport: str
    """"UDP" or "TCP"."""
    transaction: ServerTransaction | None
    """The new server transaction to answer through; None only for an ACK that ends no
    server transaction of ours (the ACK to a 2xx: end-to-end, it belongs to the dialog).
    A non-INVITE one lets go of its `request` once it has sent its final response (an INVITE
    one once the ACK to its failure came): the TU keeps `request` from here if it needs it."""


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response to one of our requests that the TU must see."""

    response: SipResponse
    """The response, as received."""
    transaction: ClientTransaction | None
    """Its client transaction; None for a 2xx to an INVITE whose transaction is gone (a 2xx
    retransmission, or one from another fork): the TU must send its ACK again."""


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B or F fired: no final response came; the TU treats it as a 408."""

    transaction: ClientTransaction
    """The client transaction, now Terminated."""


@dataclass(frozen=True, slots=True)
class ServerTransactionTimedOut:
    """Timer H fired: the peer never ACKed our final non-2xx response to its INVITE."""

    transaction: ServerTransaction
    """The INVITE server transaction, now Terminated (for logging; nothing to answer)."""


@dataclass(frozen=True, slots=True)
class AckTimedOut:
    """Only with `retransmit_2xx`: no ACK came for our 2xx within 64*T1 (Timer L).

    RFC 3261 13.3.1.4: the dialog is confirmed but the session should be ended with a BYE.
    """

    transaction: ServerTransaction
    """The INVITE server transaction, now Terminated; its `last_response` is the 2xx."""


Event = RequestReceived | ResponseReceived | TransactionTimedOut | ServerTransactionTimedOut | AckTimedOut

"""SIP dialogs (RFC 3261 section 12): what two user agents keep between the requests of a call.

Rules:
- A dialog is identified by (Call-ID, local tag, remote tag). A UAS makes one from the
  INVITE it answers (`Dialog.from_uas`), a UAC from its INVITE and a 1xx with a To tag or
  a 2xx (`Dialog.from_uac`). Its states move only through `TRANSITIONS` below.
- The route set is fixed when the dialog is made (Record-Route in order for the UAS,
  reversed for the UAC), and once more when a 2xx confirms an early UAC dialog.
- Requests we make take the next local CSeq (ACK keeps its INVITE's); requests we get
  must not go back in CSeq (500), ACK and CANCEL excepted.
- A target refresh (INVITE or UPDATE, or a 2xx/early 1xx to one) with a Contact replaces
  the remote target.
- A BYE, a 481 or 408, or a failure to the INVITE of an early dialog ends it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import LocalProtocolError, RemoteProtocolError
from .headers import Address
from .message import MAX_FORWARDS_DEFAULT, SipRequest, SipResponse
from .transaction import make_branch
from .uri import SipUri, parse_uri

TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE"})
# Requests whose Contact the peer needs: the local contact goes in them unless one is given.
_CONTACT_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


EARLY, CONFIRMED, TERMINATED = DialogState


class DialogInput(Enum):
    ANSWERED = "2xx to the INVITE"
    REJECTED = "300-699 to the INVITE"
    GONE = "481 or 408 to a request in the dialog"
    BYE = "BYE sent or received"


TRANSITIONS: dict[tuple[DialogState, DialogInput], DialogState] = {
    (EARLY, DialogInput.ANSWERED): CONFIRMED,
    (EARLY, DialogInput.REJECTED): TERMINATED,
    (EARLY, DialogInput.GONE): TERMINATED,
    (EARLY, DialogInput.BYE): TERMINATED,
    (CONFIRMED, DialogInput.ANSWERED): CONFIRMED,
    (CONFIRMED, DialogInput.REJECTED): CONFIRMED,  # a failed re-INVITE leaves the dialog as it was
    (CONFIRMED, DialogInput.GONE): TERMINATED,
    (CONFIRMED, DialogInput.BYE): TERMINATED,
}
"""(state, input) -> next state; Terminated is final (every input leaves it there)."""

DialogId = tuple[str, str | None, str | None]


def request_dialog_id(request: SipRequest) -> DialogId:
    """The id of the dialog a received request belongs to: (Call-ID, To tag, From tag)."""
    return request.call_id, request.to.tag, request.from_.tag


def response_dialog_id(response: SipResponse) -> DialogId:
    """The id of the dialog a response to our request belongs to: (Call-ID, From tag, To tag)."""
    return response.call_id, response.from_.tag, response.to.tag


def _without_tag(address: Address) -> Address:
    address = address.copy()
    address.params.pop("tag", None)
    return address


def _with_tag(address: Address, tag: str | None) -> str:
    if tag is None:
        return str(address)
    address = address.copy()
    address.params["tag"] = tag
    return str(address)


@dataclass(slots=True, eq=False, kw_only=True)
class Dialog:
    """One dialog, seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    """None only for an RFC 2543 peer that sent no tag."""
    local_uri: Address
    """Our From (To when we are the UAS), without tag."""
    remote_uri: Address
    """The peer's address of record, without tag."""
    remote_target: SipUri
    """Where requests go: the peer's last Contact."""
    route_set: list[str]
    """Route values, in the order requests carry them."""
    local_seq: int
    """The CSeq of our last request; 0 before we sent one as UAS (the next one is 1)."""
    remote_seq: int | None
    """The CSeq of the peer's last request; None before it sent one in the dialog (UAC)."""
    state: DialogState
    local_contact: Address | None = None
    """Our Contact, put in the requests that need one (INVITE, UPDATE, SUBSCRIBE, NOTIFY, REFER)."""

    @classmethod
    def from_uas(cls, request: SipRequest, *, local_tag: str, local_contact: Address) -> Dialog:
        """The dialog we make by answering `request` with a tagged 1xx or a 2xx (RFC 3261 12.1.1).

        It starts Early; `confirm()` when the 2xx is sent.
        """
        contacts = request.contacts
        if not contacts:
            raise RemoteProtocolError(f"{request.method} that creates a dialog has no Contact")
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag,
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=contacts[0].sip_uri,
            route_set=request.headers.get_all("Record-Route"),
            local_seq=0,
            remote_seq=request.cseq.seq,
            state=EARLY,
            local_contact=local_contact,
        )

    @classmethod
    def from_uac(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The dialog `response` (a 1xx with a To tag, or a 2xx) makes for our `request` (12.1.2)."""
        local_tag = request.from_.tag
        if local_tag is None:
            raise LocalProtocolError(f"our {request.method} has no From tag")
        code = response.status_code
        remote_tag = response.to.tag
        if not 100 < code < 300 or (code < 200 and remote_tag is None):
            raise LocalProtocolError(f"a {code} response without a To tag does not create a dialog")
        contacts = response.contacts
        if contacts:
            remote_target = contacts[0].sip_uri
        elif code < 200 and isinstance(request.uri, SipUri):
            remote_target = request.uri.copy()  # the 2xx will bring it
        else:
            raise RemoteProtocolError(f"{code} response that creates a dialog has no Contact")
        request_contacts = request.contacts
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            remote_target=remote_target,
            route_set=response.headers.get_all("Record-Route")[::-1],
            local_seq=request.cseq.seq,
            remote_seq=None,
            state=EARLY if code < 200 else CONFIRMED,
            local_contact=request_contacts[0] if request_contacts else None,
        )

    @property
    def id(self) -> tuple[str, str, str | None]:
        """(Call-ID, local tag, remote tag)."""
        return self.call_id, self.local_tag, self.remote_tag

    def to_json(self) -> dict[str, Any]:
        """Everything the dialog is, as JSON-ready values (`from_json` gives it back), so that
        another process can go on with it."""
        return {"call_id": self.call_id, "local_tag": self.local_tag, "remote_tag": self.remote_tag,
                "local_uri": str(self.local_uri), "remote_uri": str(self.remote_uri),
                "remote_target": str(self.remote_target), "route_set": list(self.route_set),
                "local_seq": self.local_seq, "remote_seq": self.remote_seq, "state": self.state.value,
                "local_contact": str(self.local_contact) if self.local_contact is not None else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dialog:
        """The dialog `to_json` described; ValueError (or a SIP parse error) if it is not one."""
        try:
            remote_target = parse_uri(data["remote_target"])
            if not isinstance(remote_target, SipUri):
                raise ValueError("remote_target is not a SIP URI")
            remote_seq = data["remote_seq"]
            local_contact = data["local_contact"]
            return cls(
                call_id=str(data["call_id"]), local_tag=str(data["local_tag"]),
                remote_tag=None if data["remote_tag"] is None else str(data["remote_tag"]),
                local_uri=Address.parse(data["local_uri"]), remote_uri=Address.parse(data["remote_uri"]),
                remote_target=remote_target, route_set=[str(route) for route in data["route_set"]],
                local_seq=int(data["local_seq"]), remote_seq=None if remote_seq is None else int(remote_seq),
                state=DialogState(data["state"]),
                local_contact=None if local_contact is None else Address.parse(local_contact))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a dialog: {exc!r}") from None

    def _transition(self, dialog_input: DialogInput) -> None:
        self.state = TRANSITIONS.get((self.state, dialog_input), self.state)

    def confirm(self) -> None:
        """We (as UAS) sent the 2xx to the INVITE."""
        self._transition(DialogInput.ANSWERED)

    def terminate(self) -> None:
        """The dialog ends without a BYE of its own (a failure sent, an ACK that never came)."""
        self.state = TERMINATED

    # -- requests we send ----------------------------------------------------------------

    def create_request(self, method: str, *, via_host: str, via_port: int, transport: str,
                       contact: Address | None = None, body: bytes = b"", content_type: str | None = None,
                       extra_headers: Iterable[tuple[str, str]] = ()) -> SipRequest:
        """A request within the dialog (RFC 3261 12.2.1.1), with a new branch and the next CSeq.

        Sending a BYE ends the dialog. ACK has `create_ack`, CANCEL `transaction.make_cancel`.
        """
        if method in ("ACK", "CANCEL"):
            raise LocalProtocolError(f"{method} is not made by create_request")
        if self.state is TERMINATED:
            raise LocalProtocolError(f"cannot send {method} in a terminated dialog")
        self.local_seq += 1
        if contact is None and method in _CONTACT_METHODS:
            contact = self.local_contact
        extra = [("Contact", str(contact))] if contact is not None else []
        request = self._request(method, self.local_seq, via_host, via_port, transport,
                                [*extra, *extra_headers], body, content_type)
        if method == "BYE":
            self._transition(DialogInput.BYE)
        return request

    def create_ack(self, invite_cseq: int, *, via_host: str, via_port: int, transport: str,
                   body: bytes = b"", content_type: str | None = None) -> SipRequest:
        """The ACK to a 2xx to our INVITE number `invite_cseq` (RFC 3261 13.2.2.4), a new branch."""
        return self._request("ACK", invite_cseq, via_host, via_port, transport, [], body, content_type)

    def _request(self, method: str, seq: int, via_host: str, via_port: int, transport: str,
                 headers: list[tuple[str, str]], body: bytes, content_type: str | None) -> SipRequest:
        if ":" in via_host and not via_host.startswith("["):
            via_host = f"[{via_host}]"
        uri, routes = self._request_uri_and_routes()
        fields = [
            ("Via", f"SIP/2.0/{transport.upper()} {via_host}:{via_port};branch={make_branch()};rport"),
            ("Max-Forwards", str(MAX_FORWARDS_DEFAULT)),
            *[("Route", route) for route in routes],
            ("From", _with_tag(self.local_uri, self.local_tag)),
            ("To", _with_tag(self.remote_uri, self.remote_tag)),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
            *headers,
        ]
        if content_type is not None:
            fields.append(("Content-Type", content_type))
        return SipRequest(method, uri, fields, body)

    def _request_uri_and_routes(self) -> tuple[SipUri, list[str]]:
        """Request-URI and Route values: loose routing, or the strict-router rewrite (12.2.1.1)."""
        if not self.route_set:
            return self.remote_target.copy(), []
        first = Address.parse(self.route_set[0], header="Route").sip_uri
        if "lr" in first.params:
            return self.remote_target.copy(), list(self.route_set)
        uri = first.copy()
        uri.headers.clear()
        uri.params.pop("method", None)
        return uri, [*self.route_set[1:], f"<{self.remote_target}>"]

    # -- messages we receive -------------------------------------------------------------

    def receive_request(self, request: SipRequest) -> None:
        """Account for a request the peer sent in this dialog (RFC 3261 12.2.2).

        A CSeq lower than the last one is a `RemoteProtocolError` with status 500; any
        request to a terminated dialog one with 481.
        """
        if (request.call_id != self.call_id or request.to.tag != self.local_tag
                or (self.remote_tag is not None and request.from_.tag != self.remote_tag)):
            raise LocalProtocolError(f"{request.method} belongs to another dialog than {self.id}")
        if self.state is TERMINATED:
            raise RemoteProtocolError("the dialog is terminated", status_code=481)
        method = request.method
        if method in ("ACK", "CANCEL"):
            return
        seq = request.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            raise RemoteProtocolError(f"CSeq {seq} is lower than {self.remote_seq}", status_code=500)
        self.remote_seq = seq
        if method in TARGET_REFRESH_METHODS:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].sip_uri
        elif method == "BYE":
            self._transition(DialogInput.BYE)

    def receive_response(self, response: SipResponse) -> None:
        """Account for a response to a request we sent in this dialog (12.2.1.2, 13.2.2.4)."""
        if response.call_id != self.call_id or response.from_.tag != self.local_tag:
            raise LocalProtocolError(f"{response.status_code} response belongs to another dialog "
                                     f"than {self.id}")
        to_tag = response.to.tag
        if self.remote_tag is not None and to_tag is not None and to_tag != self.remote_tag:
            raise LocalProtocolError(f"{response.status_code} response comes from another dialog "
                                     f"(To tag {to_tag}) than {self.id}")
        code = response.status_code
        method = response.cseq.method
        if code in (408, 481):
            self._transition(DialogInput.GONE)
            return
        early = self.state is EARLY
        if method == "INVITE" and code >= 200:
            if code >= 300:
                self._transition(DialogInput.REJECTED)
                return
            if early:
                self.route_set = response.headers.get_all("Record-Route")[::-1]
            self._transition(DialogInput.ANSWERED)
        if method in TARGET_REFRESH_METHODS and (200 <= code < 300 or (early and code > 100)):
            contacts = response.contacts
            if contacts:
                self.remote_target = contacts[0].sip_uri

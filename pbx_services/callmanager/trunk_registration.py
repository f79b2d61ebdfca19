"""The outbound REGISTER client of a trunk whose provider wants to know where to send its calls.

Sans-IO, with the clock passed in: `start(now)` gives the first REGISTER, `handle_response`
the request to send next (the same REGISTER answering a 401/407 challenge with digest
credentials) or None, `next_timer()`/`handle_timer(now)` the refresh before the registration
expires, or the next try after a failure. The caller sends the requests (through the SIP
stack) and feeds their final responses back (a timeout as 408).

Rules: a registration is refreshed at `REFRESH_FRACTION` of the expiry the registrar granted;
a challenge is answered once per REGISTER (a second challenge for the same credentials means
they are wrong, unless it says `stale=true`); any other final answer than 2xx, or none,
fails the registration, which is tried again `retry_interval` seconds later.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from ..sip.digest import DigestChallenge, build_authorization
from ..sip.errors import RemoteProtocolError
from ..sip.headers import Address
from ..sip.message import SipRequest, SipResponse
from ..sip.uri import SipUri

REFRESH_FRACTION = 0.5
DEFAULT_EXPIRES = 3600
MIN_REFRESH = 10.0
"""Seconds at least between two REGISTERs of a registration the registrar granted."""
DEFAULT_RETRY_INTERVAL = 30.0
CHALLENGE_HEADERS = {401: ("WWW-Authenticate", "Authorization"),
                      407: ("Proxy-Authenticate", "Proxy-Authorization")}


def parse_challenge(response: SipResponse) -> DigestChallenge | None:
    """The first Digest challenge we can answer of a 401 or 407; None when there is none."""
    if response.status_code not in CHALLENGE_HEADERS:
        return None
    for value in response.headers.get_all(CHALLENGE_HEADERS[response.status_code][0]):
        try:
            return DigestChallenge.parse(value)
        except RemoteProtocolError:
            continue
    return None


def credentials_for(response: SipResponse, challenge: DigestChallenge, account: TrunkAccount, *, method: str,
                    uri: str, cnonce: str, nc: int) -> tuple[str, str]:
    """The Authorization (answering a 401) or Proxy-Authorization (a 407) header of the request
    that answers `challenge` as `account`."""
    return CHALLENGE_HEADERS[response.status_code][1], build_authorization(
        challenge, username=account.username, password=account.password, method=method, uri=uri,
        cnonce=cnonce, nc=nc)


class RegistrationPhase(enum.Enum):
    IDLE = "not started"
    REGISTERING = "REGISTER sent, no final answer yet"
    REGISTERED = "the registrar accepted it"
    FAILED = "the registrar refused it, or did not answer"


class RegistrationInput(enum.Enum):
    SEND = "a REGISTER goes out (the first, a refresh or a retry)"
    ACCEPTED = "a 2xx"
    REFUSED = "another final answer, a second challenge, or a timeout"


IDLE, REGISTERING, REGISTERED, FAILED = RegistrationPhase
TRANSITIONS: dict[tuple[RegistrationPhase, RegistrationInput], RegistrationPhase] = {
    (IDLE, RegistrationInput.SEND): REGISTERING,
    (REGISTERED, RegistrationInput.SEND): REGISTERING,
    (FAILED, RegistrationInput.SEND): REGISTERING,
    (REGISTERING, RegistrationInput.ACCEPTED): REGISTERED,
    (REGISTERING, RegistrationInput.REFUSED): FAILED,
}
"""(phase, input) -> next phase; no other pair is allowed. A challenge answered keeps the
registration in Registering."""


@dataclass(frozen=True, slots=True)
class TrunkAccount:
    """Where and as whom a trunk registers."""

    host: str
    port: int
    transport: str
    """"UDP" or "TCP", as the SIP stack names it."""
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    """What `pbx trunk list` shows of a registration."""

    phase: RegistrationPhase
    code: int | None = None
    """The registrar's last final answer (408: none came)."""
    reason: str = ""
    expires_at: float | None = None
    """When the registration granted ends (the caller's clock), while registered."""


class RegistrationClient:
    def __init__(self, *, account: TrunkAccount, contact: str, call_id: str, from_tag: str,
                 via: Callable[[], str], make_cnonce: Callable[[], str], expires: int = DEFAULT_EXPIRES,
                 retry_interval: float = DEFAULT_RETRY_INTERVAL) -> None:
        """`contact` is our Contact URI, `via` gives a new top Via for each request."""
        self.account = account
        self._contact = contact
        self._call_id = call_id
        self._from_tag = from_tag
        self._via = via
        self._make_cnonce = make_cnonce
        self._expires = expires
        self._retry_interval = retry_interval
        self._cseq = 0
        self._answered_challenge = False
        self._timer: float | None = None
        self._nc = 0
        self.status = RegistrationStatus(IDLE)

    @property
    def aor(self) -> SipUri:
        return SipUri(host=self.account.host, user=self.account.username)

    def start(self, now: float) -> SipRequest:
        """The REGISTER that starts (or refreshes, or retries) the registration."""
        self._move(RegistrationInput.SEND)
        self._answered_challenge = False
        self._timer = None
        return self._register([])

    def handle_response(self, response: SipResponse, now: float) -> SipRequest | None:
        """The final answer to our last REGISTER; the REGISTER to send next, if any."""
        code = response.status_code
        if code < 200 or self.status.phase is not REGISTERING:
            return None
        if 200 <= code < 300:
            granted = self._granted_expiry(response)
            self._move(RegistrationInput.ACCEPTED, code, response.reason, now + granted)
            self._timer = now + max(granted * REFRESH_FRACTION, min(MIN_REFRESH, granted))
            return None
        if code in CHALLENGE_HEADERS:
            answer = self._answer_challenge(response)
            if answer is not None:
                return answer
        self._move(RegistrationInput.REFUSED, code, response.reason)
        self._timer = now + self._retry_interval
        return None

    def next_timer(self) -> float | None:
        return self._timer

    def handle_timer(self, now: float) -> SipRequest | None:
        """The refresh or the retry when it is due."""
        if self._timer is None or now < self._timer:
            return None
        return self.start(now)

    def _answer_challenge(self, response: SipResponse) -> SipRequest | None:
        challenge = parse_challenge(response)
        if challenge is None or (self._answered_challenge and not challenge.stale):
            return None
        self._answered_challenge = True
        self._nc += 1
        uri = str(SipUri(host=self.account.host, port=self.account.port))
        return self._register([credentials_for(response, challenge, self.account, method="REGISTER", uri=uri,
                                               cnonce=self._make_cnonce(), nc=self._nc)])

    def _register(self, extra: list[tuple[str, str]]) -> SipRequest:
        self._cseq += 1
        aor = Address(uri=self.aor)
        headers = [
            ("Via", self._via()),
            ("Max-Forwards", "70"),
            ("From", str(Address(uri=self.aor, params={"tag": self._from_tag}))),
            ("To", str(aor)),
            ("Call-ID", self._call_id),
            ("CSeq", f"{self._cseq} REGISTER"),
            ("Contact", f"<{self._contact}>"),
            ("Expires", str(self._expires)),
            *extra,
        ]
        return SipRequest("REGISTER", SipUri(host=self.account.host, port=self.account.port), headers)

    def _granted_expiry(self, response: SipResponse) -> int:
        """The seconds the registrar granted: our Contact's expires, else Expires, else ours."""
        contacts = response.contacts
        for contact in contacts:
            expires = contact.params.get("expires")
            ours = len(contacts) == 1 or str(contact.uri) == self._contact
            if ours and expires is not None and expires.isdigit():
                return int(expires)
        value = (response.headers.get("Expires") or "").strip()
        return int(value) if value.isdigit() else self._expires

    def _move(self, registration_input: RegistrationInput, code: int | None = None, reason: str = "",
              expires_at: float | None = None) -> None:
        before = self.status.phase
        after = TRANSITIONS.get((before, registration_input))
        if after is None:
            raise RuntimeError(f"trunk registration at {self.account.host}: no move from {before.name} on "
                               f"{registration_input.name}")
        self.status = RegistrationStatus(after, code, reason, expires_at)

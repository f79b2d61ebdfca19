"""Digest authentication of REGISTER and INVITE, with brute-force policy.

The answers never tell whether an extension exists: an unknown user is challenged and
refused exactly like a known one with a wrong password (a dummy hash is checked so the
work, and the time it takes, is the same).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from ..sip.digest import (
    DigestAlgorithm,
    DigestCredentials,
    NonceManager,
    NonceStatus,
    build_challenges,
    compute_ha1,
    verify_response,
)
from ..sip.message import SipRequest
from .policy import AuthFailureLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """What the Call Manager knows of a user to check a digest response."""

    tenant_id: int
    domain: str
    extension: str
    ha1_md5: str
    ha1_sha256: str
    permission: str = "national"
    """The widest class of outbound route the user may dial (`models.user.permits`)."""
    max_calls: int = 0
    """How many calls the user may have at once; 0: no limit."""
    tenant_max_calls: int = 0
    """How many calls the user's tenant may have at once; 0: no limit."""
    withhold_number: bool = False
    """Its number is withheld on its calls out through a trunk."""

    def ha1(self, algorithm: DigestAlgorithm) -> str:
        return self.ha1_sha256 if algorithm is DigestAlgorithm.SHA256 else self.ha1_md5


CredentialLookup = Callable[[str, str], UserCredentials | None]
"""(domain, username) -> the user's credentials, or None."""


FORBIDDEN = 403


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Either the authenticated `user`, or the answer to refuse the request with."""

    user: UserCredentials | None = None
    status_code: int | None = None
    """401/407 to challenge, 403 to refuse; None when authenticated."""
    headers: tuple[tuple[str, str], ...] = ()
    """WWW-/Proxy-Authenticate headers of a challenge."""


class Authenticator:
    def __init__(self, *, lookup: CredentialLookup, nonces: NonceManager, limiter: AuthFailureLimiter,
                 algorithms: tuple[DigestAlgorithm, ...] = (DigestAlgorithm.SHA256, DigestAlgorithm.MD5),
                 wall_offset: float = 0.0) -> None:
        self._lookup = lookup
        self._nonces = nonces
        self._limiter = limiter
        self._algorithms = algorithms
        # Nonces carry wall-clock time so that every Call Manager can check every other's.
        self._wall_offset = wall_offset
        self._dummy_ha1 = {a: compute_ha1("nobody", "nowhere", secrets.token_hex(16), a) for a in algorithms}

    def authenticate(self, request: SipRequest, *, realm: str, source_ip: str, now: float,
                     proxy: bool) -> AuthResult:
        """Check the request's credentials for `realm`.

        `proxy` selects Proxy-Authorization/407 (INVITE and other requests a proxy
        challenges) over Authorization/401 (REGISTER, RFC 3261 22.3).
        """
        if self._limiter.is_blocked(source_ip, now + self._wall_offset):
            return AuthResult(status_code=FORBIDDEN)
        credentials = self._credentials_for(request, realm, proxy)
        if credentials is None:
            return self._challenge(realm, now, proxy)
        algorithm = credentials.algorithm
        if algorithm not in self._algorithms:
            return self._challenge(realm, now, proxy)
        user = self._lookup(realm, credentials.username)
        ha1 = user.ha1(algorithm) if user is not None else self._dummy_ha1[algorithm]
        good = verify_response(credentials, method=request.method, ha1=ha1, entity_body=request.body)
        if not good or user is None:
            if self._limiter.record_failure(source_ip, now + self._wall_offset):
                log.warning("blocked %s after repeated authentication failures", source_ip)
                return AuthResult(status_code=FORBIDDEN)
            return self._challenge(realm, now, proxy)
        # Only a correct response may advance the nonce count, so a forger cannot lock a phone out.
        # An answer without qop (RFC 2069) has no nonce-count to tell a replay from a new request:
        # its nonce counts as used once, or a captured REGISTER could be replayed with another Contact.
        nc = credentials.nc if credentials.qop is not None else 1
        status = self._nonces.check(credentials.nonce, nc, now + self._wall_offset)
        if status is NonceStatus.VALID:
            return AuthResult(user=user)
        # Right password, but an expired nonce (stale) or a used one (replay): ask again.
        return self._challenge(realm, now, proxy, stale=status is NonceStatus.STALE)

    def _credentials_for(self, request: SipRequest, realm: str, proxy: bool) -> DigestCredentials | None:
        header = "Proxy-Authorization" if proxy else "Authorization"
        for value in request.headers.get_lines(header):
            if not value.lower().startswith("digest"):
                continue
            credentials = DigestCredentials.parse(value)
            if credentials.realm == realm:
                return credentials
        return None

    def _challenge(self, realm: str, now: float, proxy: bool, *, stale: bool = False) -> AuthResult:
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        nonce = self._nonces.make_nonce(now + self._wall_offset)
        offered = build_challenges(realm, nonce, stale=stale, algorithms=self._algorithms)
        return AuthResult(status_code=407 if proxy else 401, headers=tuple((name, v) for v in offered))

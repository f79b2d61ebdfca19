"""What the B2BUA keeps about a call's media: where it is anchored and what each phone was told.

Each phone sees one SDP session from us for the whole call, even when the media server
that builds the bodies changes (re-homing): its o= line keeps our session id, and its
version goes up exactly when the body changes (RFC 3264 section 8).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from ..sip.sdp import SessionDescription
from .mediapool import MediaEndpoint

LEG_NAMES = ("a", "b")


@dataclass(eq=False)
class SdpOrigin:
    """The o= line we present to one phone."""

    session_id: str = field(default_factory=lambda: str(random.randrange(10**9, 10**10)))
    version: int = 0
    last_sent: bytes | None = None
    """The last body sent, o= line included, to tell a repeat from a change."""
    last_content: bytes | None = None

    def stamp(self, body: bytes) -> bytes:
        """`body` (from the media server) with our o= line, versioned."""
        description = SessionDescription.parse(body)
        connection = description.connection or next(
            (media.connection for media in description.media if media.connection), None)
        address = connection.address if connection is not None else description.origin.address
        unversioned = replace(description, origin=replace(description.origin, username="-", session_id="0",
                                                          session_version="0", address=address)).serialize()
        if unversioned == self.last_content and self.last_sent is not None:
            return self.last_sent
        if self.last_content is not None:
            self.version += 1
        self.last_content = unversioned
        origin = replace(description.origin, username="-", session_id=self.session_id,
                         session_version=str(self.version), address=address)
        self.last_sent = replace(description, origin=origin).serialize()
        return self.last_sent


@dataclass(eq=False)
class MediaAnchor:
    """A call's media on one media endpoint."""

    endpoint: MediaEndpoint
    media_call_id: str
    """The `call_id` the media server knows the call by."""
    sdp_from: dict[str, bytes] = field(default_factory=dict)
    """The last SDP each phone ("a", "b") sent."""
    origins: dict[str, SdpOrigin] = field(default_factory=lambda: {leg: SdpOrigin() for leg in LEG_NAMES})
    offer_for_b: bytes | None = None
    """The body the callee's INVITE carried (or should have, after re-homing)."""
    early_sdp_for_a: bytes | None = None
    """The answer the caller got in a provisional (early media or ringback); the 2xx repeats it."""
    ringback: bool = False
    """The media server plays ringback to the caller."""
    b_stale: bool = False
    """The callee was offered an endpoint that died before it answered: re-INVITE it once it has."""
    recording: str | None = None
    stranded: bool = False
    """Its endpoint was lost and no other could take it yet: re-homing is retried until a deadline."""

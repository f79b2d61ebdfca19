"""Event subscriptions the Call Manager is the notifier of (RFC 6665), for any event package.

A phone's SUBSCRIBE (digest-authenticated like its calls) to a resource of its tenant, the
Request-URI's user, for an event package registered here (`EventPackage`: message-summary,
RFC 3842, for message-waiting lights; the dialog package of RFC 4235 for BLF plugs in the
same way) is answered 200 with the Expires granted, and a NOTIFY with the resource's state
follows at once. The subscriber refreshes it with a SUBSCRIBE in its dialog before it
expires, and ends it with Expires: 0; either way a NOTIFY follows, the last one with
`Subscription-State: terminated`. A subscription not refreshed in time ends with a NOTIFY
`terminated;reason=timeout`.

When a resource's state changes (`changed`, or a package's `poll`), its subscribers are
NOTIFYed the new state; one NOTIFY per subscription is in flight at a time, and a change
meanwhile is sent when it completes. A package's state is any value that compares equal when
nothing changed (message-summary's counts, the dialog package's calls); the package makes each
NOTIFY's body of it and the subscription's version (0, 1, ...: RFC 4235's `version`). A
NOTIFY answered with an error (481: the phone forgot the subscription) or not at all ends the
subscription (RFC 6665 4.1.2.3).

Subscriptions live in the worker whose tag is in their dialog; a Call Manager restart or
failover loses them, and the phone's next refresh, answered 481, makes it subscribe anew.
Sans-IO: requests, the time and state changes in, SIP out through the stack.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..runtime.timers import Timer, TimerQueue
from ..sip.dialog import Dialog
from ..sip.errors import RemoteProtocolError
from ..sip.message import SipRequest, SipResponse
from ..sip.stack import SipStack
from ..sip.transaction import ServerTransaction, make_tag
from ..sip.uri import SipUri
from .auth import Authenticator

log = logging.getLogger(__name__)

MIN_EXPIRES = 60
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600
"""Seconds a subscription lasts when the SUBSCRIBE asks for no other (RFC 6665 leaves it to
the package; RFC 3842 suggests an hour)."""


class EventPackage(Protocol):
    """What an event package (RFC 6665 section 7) gives the notifier."""

    @property
    def name(self) -> str:
        """The Event header's package name ("message-summary")."""

    @property
    def content_type(self) -> str:
        """The NOTIFY body's media type ("application/simple-message-summary")."""

    def refusal(self, subscriber: str, realm: str, resource: str) -> tuple[int, str] | None:
        """The status refusing user `subscriber` of tenant `realm` a subscription to `resource`
        (someone else's mailbox), or None to accept it."""

    def state(self, realm: str, resource: str, now: float) -> Any:
        """The resource's state now (equal to the last one when nothing changed)."""

    def body(self, realm: str, resource: str, state: Any, version: int) -> bytes:
        """The NOTIFY body telling `state`, the subscription's `version`-th NOTIFY (from 0)."""


@runtime_checkable
class PolledPackage(EventPackage, Protocol):
    """A package whose resources change elsewhere (the database): polled once a second."""

    def poll(self, watched: set[tuple[str, str]], now: float) -> list[tuple[str, str, Any]]:
        """(realm, resource, state) of the resources of `watched` that may have changed lately
        (`now`: wall-clock seconds)."""


@dataclass(eq=False)
class Subscription:
    package: EventPackage
    realm: str
    resource: str
    subscriber: str
    dialog: Dialog
    peer: tuple[str, int]
    transport: str
    expires_at: float
    state: Any
    """The resource's state as last known."""
    told: bool = False
    """The last NOTIFY told `state` (none is sent for a state told already)."""
    version: int = 0
    """NOTIFYs with a body sent so far."""
    in_flight: bool = False
    """A NOTIFY of ours awaits its final response."""
    terminated: str | None = None
    """Why the subscription ends (the Subscription-State reason), once it does."""
    timer: Timer | None = field(default=None, repr=False)


class Subscriptions:
    def __init__(self, *, stack: SipStack, timers: TimerQueue, authenticator: Authenticator,
                 realm_for: Callable[[str], str | None], packages: Iterable[EventPackage] = (),
                 make_tag: Callable[[], str] = make_tag, wall_offset: float = 0.0) -> None:
        self._stack = stack
        self._timers = timers
        self._auth = authenticator
        self._realm_for = realm_for
        self._make_tag = make_tag
        self._wall_offset = wall_offset
        self.packages = {package.name: package for package in packages}
        self._dialogs: dict[tuple[str, str, str | None], Subscription] = {}
        self._by_resource: dict[tuple[str, str, str], set[Subscription]] = {}
        """(package, realm, resource) -> its subscriptions."""

    def __len__(self) -> int:
        return len(self._dialogs)

    @property
    def allow_events(self) -> str:
        """The Allow-Events value: the packages we notify."""
        return ", ".join(self.packages)

    # -- SUBSCRIBE ------------------------------------------------------------------------------

    def handle_subscribe(self, request: SipRequest, tx: ServerTransaction, source: tuple[str, int],
                         transport: str, now: float) -> None:
        """A SUBSCRIBE outside any dialog: a new subscription, once the phone is authenticated."""
        package = self._package(request, tx, now)
        if package is None:
            return
        realm = self._realm_for(request.from_.sip_uri.host)
        if realm is None:
            self._stack.respond(tx, 403, "Unknown Domain", now=now, to_tag=self._make_tag())
            return
        result = self._auth.authenticate(request, realm=realm, source_ip=source[0], now=now, proxy=False)
        if result.user is None:
            assert result.status_code is not None
            self._stack.respond(tx, result.status_code, now=now, to_tag=self._make_tag(),
                                headers=result.headers)
            return
        target = request.uri
        resource = target.user_unescaped if isinstance(target, SipUri) else None
        if not resource:
            self._stack.respond(tx, 404, now=now, to_tag=self._make_tag())
            return
        refused = package.refusal(result.user.extension, realm, resource)
        if refused is not None:
            log.info("SUBSCRIBE %s from %s@%s to %s refused: %d %s", package.name, result.user.extension,
                     realm, resource, *refused)
            self._stack.respond(tx, *refused, now=now, to_tag=self._make_tag())
            return
        expires = self._expires(request, tx, now)
        if expires is None:
            return
        dialog = Dialog.from_uas(request, local_tag=self._make_tag(),
                                 local_contact=self._stack.contact(transport))
        dialog.confirm()
        subscription = Subscription(package=package, realm=realm, resource=resource,
                                    subscriber=result.user.extension, dialog=dialog, peer=source,
                                    transport=transport, expires_at=now + expires,
                                    state=package.state(realm, resource, now))
        self._stack.respond(tx, 200, now=now, to_tag=dialog.local_tag,
                            headers=[("Expires", str(expires)), ("Contact", str(dialog.local_contact))])
        log.info("%s@%s subscribed to %s of %s for %d s", subscription.subscriber, realm, package.name,
                 resource, expires)
        if expires == 0:  # a fetch (RFC 6665 4.4.3): the state once, and it is over
            subscription.terminated = "timeout"
        else:
            self._dialogs[dialog.id] = subscription
            self._by_resource.setdefault((package.name, realm, resource), set()).add(subscription)
            self._arm(subscription)
        self._notify(subscription, now)

    def handle_in_dialog(self, request: SipRequest, tx: ServerTransaction, now: float) -> None:
        """A SUBSCRIBE in a subscription's dialog: a refresh, or (Expires: 0) its end."""
        subscription = self._dialogs.get((request.call_id, request.to.tag or "", request.from_.tag))
        if subscription is None:
            self._stack.respond(tx, 481, now=now)
            return
        if self._package(request, tx, now) is not subscription.package:
            if tx.last_response is None:
                self._stack.respond(tx, 489, "Bad Event", now=now,
                                    headers=[("Allow-Events", self.allow_events)])
            return
        try:
            subscription.dialog.receive_request(request)
        except RemoteProtocolError as exc:
            self._stack.respond(tx, exc.status_code, now=now)
            return
        expires = self._expires(request, tx, now)
        if expires is None:
            return
        if request.contacts:  # SUBSCRIBE is a target refresh request (RFC 6665 4.1.2.1)
            subscription.dialog.remote_target = request.contacts[0].sip_uri
        self._stack.respond(tx, 200, now=now, headers=[("Expires", str(expires)),
                                                         ("Contact", str(subscription.dialog.local_contact))])
        if expires == 0:
            log.info("%s@%s unsubscribed from %s of %s", subscription.subscriber, subscription.realm,
                     subscription.package.name, subscription.resource)
            self._end(subscription, "timeout", now)
            return
        subscription.expires_at = now + expires
        self._arm(subscription)
        subscription.told = False  # a refresh is answered with the state (RFC 6665 4.2.1.2)
        self._notify(subscription, now)

    def _package(self, request: SipRequest, tx: ServerTransaction, now: float) -> EventPackage | None:
        event = (request.headers.get("Event") or "").split(";")[0].strip().lower()
        package = self.packages.get(event)
        if package is None and tx.last_response is None:
            self._stack.respond(tx, 489, "Bad Event", now=now, to_tag=self._make_tag(),
                                headers=[("Allow-Events", self.allow_events)])
        return package

    def _expires(self, request: SipRequest, tx: ServerTransaction, now: float) -> int | None:
        """The seconds granted (0: ends now); None when refused (423, too brief)."""
        asked = request.expires
        if asked is None:
            return DEFAULT_EXPIRES
        if 0 < asked < MIN_EXPIRES:
            self._stack.respond(tx, 423, now=now, to_tag=self._make_tag(),
                                headers=[("Min-Expires", str(MIN_EXPIRES))])
            return None
        return min(asked, MAX_EXPIRES)

    # -- state changes and NOTIFY ----------------------------------------------------------------

    def watched(self, package: str) -> set[tuple[str, str]]:
        """(realm, resource) of the resources of `package` somebody subscribes to here."""
        return {(realm, resource) for name, realm, resource in self._by_resource if name == package}

    def changed(self, package: str, realm: str, resource: str, state: Any, now: float) -> None:
        """The resource's state is now `state`: its subscribers whose last NOTIFY told another are told."""
        for subscription in list(self._by_resource.get((package, realm, resource), ())):
            if subscription.state != state:
                subscription.state, subscription.told = state, False
            self._notify(subscription, now)

    def poll(self, now: float) -> None:
        """Ask the polled packages what changed (once a second, off the SIP path: it reads the database)."""
        for package in self.packages.values():
            if not isinstance(package, PolledPackage):
                continue
            watched = self.watched(package.name)
            if watched:
                for realm, resource, state in package.poll(watched, now + self._wall_offset):
                    self.changed(package.name, realm, resource, state, now)

    def _notify(self, subscription: Subscription, now: float) -> None:
        if subscription.in_flight or (subscription.told and subscription.terminated is None):
            return
        if subscription.terminated is not None:
            state = f"terminated;reason={subscription.terminated}"
        else:
            state = f"active;expires={max(0, round(subscription.expires_at - now))}"
        package = subscription.package
        body = package.body(subscription.realm, subscription.resource, subscription.state,
                            subscription.version)
        notify = subscription.dialog.create_request(
            "NOTIFY", via_host=self._stack.host, via_port=self._stack.port, transport=subscription.transport,
            body=body, content_type=package.content_type,
            extra_headers=[("Event", package.name), ("Subscription-State", state)])
        subscription.told = True
        subscription.version += 1
        subscription.in_flight = subscription.terminated is None
        tx = self._stack.send_request(notify, subscription.peer, subscription.transport, now)
        tx.user_data = lambda response, t: self._notified(subscription, response, t)

    def _notified(self, subscription: Subscription, response: SipResponse, now: float) -> None:
        code = response.status_code
        if code < 200 or subscription.terminated is not None:
            return
        subscription.in_flight = False
        if code >= 300:
            log.info("NOTIFY %s to %s@%s answered %d: subscription ended", subscription.package.name,
                     subscription.subscriber, subscription.realm, code)
            self._forget(subscription)
            return
        self._notify(subscription, now)  # what changed meanwhile

    def _arm(self, subscription: Subscription) -> None:
        if subscription.timer is not None:
            subscription.timer.cancel()
        subscription.timer = self._timers.schedule(subscription.expires_at,
                                                   lambda t: self._end(subscription, "timeout", t))

    def _end(self, subscription: Subscription, reason: str, now: float) -> None:
        """The last NOTIFY (`terminated;reason=...`), and the subscription is gone."""
        self._forget(subscription)
        subscription.terminated = reason
        subscription.in_flight = False
        self._notify(subscription, now)

    def _forget(self, subscription: Subscription) -> None:
        if subscription.timer is not None:
            subscription.timer.cancel()
            subscription.timer = None
        self._dialogs.pop(subscription.dialog.id, None)
        key = (subscription.package.name, subscription.realm, subscription.resource)
        remaining = self._by_resource.get(key)
        if remaining is not None:
            remaining.discard(subscription)
            if not remaining:
                del self._by_resource[key]

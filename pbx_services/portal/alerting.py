"""The portal's alert e-mails: the bus's server events through the alert engine, to the administrators.

`AlertRunner(config)` runs two threads in one portal instance (`pbx portal` starts it once, in
gunicorn's master, not per worker; the workers forked from the master leave its connections alone,
as psycopg and redis-py close only those of their own process):

- the reader reads the cluster's bus (the Redis stream of `cluster/redis_bus.py`) for
  `ServerStateChanged` events, feeds them to the alert engine (`cluster/alerts.py`), and writes
  what comes out in the database in one transaction: the alerts' history (`AlertRecord`), the
  e-mails to send (`AlertEmail`, pending), the engine's state and the bus entry it has reached
  (`AlertEngineState`);
- the sender sends the pending e-mails (`cluster/alert_mail.py`), retrying a failed one later
  (`alert_mail.retry_after`) and giving it up after the last retry, each failure logged.

Exactly one portal of the cluster does this, whichever hosts run one: the holder of the lease
`alerts` in the state store (`cluster/state/leases.py`); the others wait, renewing nothing. A new
holder takes on the engine state and bus position its predecessor saved, so it neither sends
again what was sent nor misses what came meanwhile. Two guards cover a holder that stalls past
its lease while another takes over: the saved state carries a version, and a save that does not
find the version it loaded is rolled back (that portal stops and the other goes on); an e-mail is
claimed (its next attempt moved on by one UPDATE) before it is sent, so two portals never send
the same one. Only an e-mail whose sending was cut short by the sender's death (the server may or
may not have taken it) is sent again by the next holder, once its claim has lapsed.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster import alert_mail
from pbx_services.cluster.alerts import Alert, AlertEngine, AlertTiming, Notification
from pbx_services.cluster.config import PbxConfig
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.events import ServerStateChanged
from pbx_services.cluster.models import AlertEmail, AlertEngineState, AlertRecord, EmailDelivery
from pbx_services.cluster.models.alert import ERROR_MAX_LENGTH, REASON_MAX_LENGTH, SUBJECT_MAX_LENGTH
from pbx_services.cluster.redis_bus import DEFAULT_STREAM, decode_event
from pbx_services.cluster.state import StateStore, StateStoreUnavailable, open_state_store
from pbx_services.cluster.state.redis import redis_client

log = logging.getLogger(__name__)

LEASE_KEY = "alerts"
LEASE_TTL = 10.0
"""Seconds the sending portal's lease lasts unrenewed: how long the others wait after it dies."""
RENEW_INTERVAL = 2.0
"""Seconds between renewals (and the longest one read of the bus waits)."""
STATE_ROW = 1
"""The id of the one `AlertEngineState` row."""
CURSOR_SAVE_INTERVAL = 5.0
"""Seconds between saves of the bus position alone, when only other events went by."""
READ_COUNT = 500
SERVER_EVENT = ServerStateChanged.__name__.encode()
ERROR_RETRY = 1.0
"""Seconds before trying again after the database or Redis failed."""
SEND_BATCH = 20
HISTORY_DAYS = 90
"""Resolved alerts and sent or failed e-mails older than this are deleted from the history."""
PRUNE_INTERVAL = 3600.0
"""Seconds between two prunings of the history by the sending portal."""


class _Superseded(Exception):
    """Another portal saved the alert state since this one loaded it."""


@dataclass(slots=True)
class _Held:
    """What the holder of the lease works on."""

    engine: AlertEngine
    cursor: str
    """The last bus entry taken into account."""
    version: int
    """The saved state's version this holder loaded or wrote last; 0: none saved yet."""
    saved_at: float
    """When (monotonic) it was saved last."""
    saved_cursor: str


class AlertRunner:
    def __init__(self, config: PbxConfig, *, name: str | None = None, lease_ttl: float = LEASE_TTL,
                 renew_interval: float = RENEW_INTERVAL, clock: Callable[[], float] = time.time,
                 tls_context: ssl.SSLContext | None = None) -> None:
        """`name`: this portal instance in the lease and the history (`host:pid` unless given);
        `clock`: wall-clock seconds, as the engine's timers are kept across hosts."""
        if config.state.url is None:
            raise ValueError("state.url: the alerts read the cluster's bus and share a lease in Redis: "
                             "set it")
        self._config = config
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._lease_ttl = lease_ttl
        self._renew_interval = renew_interval
        self._clock = clock
        self._tls_context = tls_context
        self._timing = AlertTiming(group_wait=config.alerts.group_wait,
                                   group_interval=config.alerts.group_interval,
                                   repeat_interval=config.alerts.repeat_interval)
        self._stopping = threading.Event()
        self._wake_sender = threading.Event()
        self._held_until = 0.0
        """Monotonic time until which this portal surely holds the lease."""
        self._held: _Held | None = None
        self._last_error: str | None = None
        """The reader's last failure, logged once until it works again."""
        self._pruned_at = -PRUNE_INTERVAL
        self._threads: list[threading.Thread] = []
        self._db: Any = None
        self._sessions: sessionmaker[Session] | None = None
        self._state: StateStore | None = None
        self._redis: redis.Redis | None = None

    def start(self) -> None:
        """Start the reader and sender threads (daemon threads: they never hold up an exit)."""
        self._db = create_engine_for(self._config.database.url)
        self._sessions = session_factory(self._db)
        assert self._config.state.url is not None
        self._redis, _ = redis_client(self._config.state.url,
                                      timeout=self._config.state.timeout + self._renew_interval)
        self._threads = [threading.Thread(target=self._read_loop, name="alerts-reader", daemon=True),
                         threading.Thread(target=self._send_loop, name="alerts-sender", daemon=True)]
        for thread in self._threads:
            thread.start()
        log.info("alerts: %s started (e-mails to %s)", self.name, ", ".join(self._config.alerts.recipients))

    def stop(self) -> None:
        self._stopping.set()
        self._wake_sender.set()
        for thread in self._threads:
            thread.join(timeout=self._renew_interval + self._config.smtp.timeout * 4 + 5)
        self._threads = []
        if self._redis is not None:
            self._redis.close()
        if self._state is not None:
            self._state.close()
        if self._db is not None:
            self._db.dispose()

    @property
    def is_sender(self) -> bool:
        """Whether this portal holds the lease (and sends the alerts) now."""
        return time.monotonic() < self._held_until

    def _read_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._renew():
                    self._work()
                    self._prune()
                else:
                    self._stopping.wait(self._renew_interval)
                if self._last_error is not None:
                    log.info("alerts: %s works again", self.name)
                    self._last_error = None
            except _Superseded:
                log.warning("alerts: another portal saved the alert state meanwhile: %s stops sending",
                            self.name)
                self._let_go()
                self._stopping.wait(self._lease_ttl)
            except (SQLAlchemyError, redis.RedisError, StateStoreUnavailable) as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != self._last_error:  # once per outage, not once a second
                    log.error("alerts: %s (trying again every %g s)", error, ERROR_RETRY)
                    self._last_error = error
                self._held = None  # loaded again from the database, which has what was saved
                self._stopping.wait(ERROR_RETRY)
            except Exception:
                log.exception("alerts: the reader failed; it starts again")
                self._held = None
                self._stopping.wait(ERROR_RETRY)

    def _renew(self) -> bool:
        """Take or renew the lease; whether this portal holds it."""
        if self._state is None:
            self._state = open_state_store(self._config.state.url, nonce_ttl=1,
                                           timeout=self._config.state.timeout)
        asked_at = time.monotonic()
        try:
            held = self._state.leases.hold(LEASE_KEY, self.name, self._lease_ttl, asked_at)
        except StateStoreUnavailable:
            held = False
        if held:
            if not self.is_sender:
                log.info("alerts: %s holds the lease: it sends the alert e-mails", self.name)
            # Redis started the lease no earlier than our asking.
            self._held_until = asked_at + self._lease_ttl * 0.9
            return True
        if self._held is not None or self.is_sender:
            log.warning("alerts: %s lost the lease: another portal sends the alerts", self.name)
        self._let_go()
        return False

    def _let_go(self) -> None:
        self._held_until = 0.0
        self._held = None

    def _work(self) -> None:
        """Until the next renewal: read the bus, run the engine's timers, save what changed."""
        if self._held is None:
            self._held = self._load()
        held = self._held
        renew_at = time.monotonic() + self._renew_interval
        while not self._stopping.is_set():
            now = self._clock()
            due = held.engine.next_timer()
            wait = min(renew_at - time.monotonic(), due - now if due is not None else self._renew_interval)
            changes = self._read(held, wait)
            now = self._clock()
            notifications = []
            due = held.engine.next_timer()
            if due is not None and due <= now:
                notifications = held.engine.handle_timer(now)
            cursor_due = (held.cursor != held.saved_cursor
                          and time.monotonic() - held.saved_at >= CURSOR_SAVE_INTERVAL)
            if changes or notifications or cursor_due:
                self._save(held, changes, notifications, now)
            if notifications:
                self._wake_sender.set()
            if time.monotonic() >= renew_at:
                return

    def _read(self, held: _Held, wait: float) -> list[Alert]:
        """The bus's entries after the cursor (waiting up to `wait` seconds for some) into the engine;
        the alerts they changed."""
        assert self._redis is not None
        block = max(1, round(wait * 1000)) if wait > 0 else None
        reply: Any = self._redis.xread({DEFAULT_STREAM: held.cursor}, count=READ_COUNT, block=block)
        changes = []
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                held.cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                if fields.get(b"type") != SERVER_EVENT:
                    continue  # calls, registrations...: not ours, and not worth decoding
                event = decode_event(fields)
                if isinstance(event, ServerStateChanged):
                    changed = held.engine.receive(event, self._clock())
                    if changed is not None:
                        log.info("alerts: %s %s is %s (%s)", event.role, event.server, event.state.value,
                                 event.reason)
                        changes.append(changed)
        return changes

    def _load(self) -> _Held:
        """The saved engine and bus position, or, the first time, a new engine from the bus's end
        (saved at once, so that a successor starts from there too)."""
        assert self._sessions is not None and self._redis is not None
        with self._sessions() as session:
            row = session.get(AlertEngineState, STATE_ROW)
        if row is not None:
            try:
                engine = AlertEngine.restore(json.loads(row.engine), self._timing)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("alerts: the saved alert state does not load (%s): starting afresh", exc)
                engine = AlertEngine(self._timing)
            log.info("alerts: %s takes on from bus entry %s (state %d saved by %s)", self.name, row.stream_id,
                     row.version, row.saved_by)
            return _Held(engine=engine, cursor=row.stream_id, version=row.version, saved_at=time.monotonic(),
                         saved_cursor=row.stream_id)
        newest: Any = self._redis.xrevrange(DEFAULT_STREAM, count=1)
        cursor = (newest[0][0].decode() if isinstance(newest[0][0], bytes) else str(newest[0][0])) \
            if newest else "0-0"
        held = _Held(engine=AlertEngine(self._timing), cursor=cursor, version=0, saved_at=0.0,
                     saved_cursor="")
        self._save(held, [], [], self._clock())
        return held

    def _save(self, held: _Held, changes: Sequence[Alert], notifications: Sequence[Notification],
              now: float) -> None:
        """Write the history, the e-mails and the engine's state in one transaction, if nobody
        saved since this portal did (else `_Superseded`)."""
        assert self._sessions is not None
        moment = datetime.fromtimestamp(now, UTC)
        values = {"stream_id": held.cursor, "engine": json.dumps(held.engine.snapshot()),
                  "version": held.version + 1, "saved_by": self.name, "saved_at": moment}
        try:
            with self._sessions.begin() as session:
                if held.version == 0:
                    session.add(AlertEngineState(id=STATE_ROW, **values))
                    session.flush()
                else:
                    result: Any = session.execute(
                        update(AlertEngineState)
                        .where(AlertEngineState.id == STATE_ROW, AlertEngineState.version == held.version)
                        .values(**values))
                    if result.rowcount != 1:
                        raise _Superseded
                for alert in changes:
                    _record(session, alert)
                for notification in notifications:
                    self._queue(session, notification, moment)
        except IntegrityError:
            raise _Superseded from None
        held.version += 1
        held.saved_at = time.monotonic()
        held.saved_cursor = held.cursor

    def _queue(self, session: Session, notification: Notification, moment: datetime) -> None:
        recipients = self._config.alerts.recipients
        subject = alert_mail.alert_subject(notification)
        log.info("alerts: e-mail to send: %s", subject)
        session.add(AlertEmail(
            created_at=moment, role=notification.group, status=notification.status.value,
            servers_down=",".join(alert.server for alert in notification.firing),
            servers_back=",".join(alert.server for alert in notification.resolved),
            subject=subject[:SUBJECT_MAX_LENGTH],
            body=alert_mail.alert_body(notification, now=moment, sent_by=socket.gethostname()),
            recipients=",".join(recipients),
            delivery=EmailDelivery.PENDING if recipients else EmailDelivery.FAILED,
            last_error=None if recipients else "no alerts.recipients", attempts=0, next_attempt_at=moment))

    def _prune(self) -> None:
        """Delete the history older than HISTORY_DAYS, once every PRUNE_INTERVAL."""
        assert self._sessions is not None
        if time.monotonic() - self._pruned_at < PRUNE_INTERVAL:
            return
        self._pruned_at = time.monotonic()
        before = datetime.fromtimestamp(self._clock(), UTC) - timedelta(days=HISTORY_DAYS)
        with self._sessions.begin() as session:
            alerts: Any = session.execute(delete(AlertRecord).where(AlertRecord.resolved_at < before))
            emails: Any = session.execute(delete(AlertEmail).where(
                AlertEmail.created_at < before, AlertEmail.delivery != EmailDelivery.PENDING))
        if alerts.rowcount or emails.rowcount:
            log.info("alerts: %d alerts and %d e-mails older than %d days deleted from the history",
                     alerts.rowcount, emails.rowcount, HISTORY_DAYS)

    def _send_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.is_sender:
                    self._send_due()
            except SQLAlchemyError as exc:
                log.error("alerts: the e-mails to send cannot be read or marked: %s", exc)
            except Exception:
                log.exception("alerts: the sender failed; it starts again")
            self._wake_sender.wait(self._renew_interval)
            self._wake_sender.clear()

    def _send_due(self) -> None:
        assert self._sessions is not None
        now = datetime.fromtimestamp(self._clock(), UTC)
        with self._sessions() as session:
            due = session.scalars(select(AlertEmail)
                                  .where(AlertEmail.delivery == EmailDelivery.PENDING,
                                         AlertEmail.next_attempt_at <= now)
                                  .order_by(AlertEmail.id).limit(SEND_BATCH)).all()
        for email in due:
            if self._stopping.is_set() or not self.is_sender:
                return
            if self._claim(email, now):
                self._send(email)

    def _claim(self, email: AlertEmail, now: datetime) -> bool:
        """Take `email` for sending: no other portal tries it until the claim lapses."""
        assert self._sessions is not None
        claim = timedelta(seconds=self._config.smtp.timeout * 4 + 5)  # connect, TLS, login, data
        with self._sessions.begin() as session:
            result: Any = session.execute(
                update(AlertEmail)
                .where(AlertEmail.id == email.id, AlertEmail.delivery == EmailDelivery.PENDING,
                       AlertEmail.attempts == email.attempts)
                .values(attempts=email.attempts + 1, next_attempt_at=now + claim, sent_by=self.name))
        return bool(result.rowcount == 1)

    def _send(self, email: AlertEmail) -> None:
        assert self._sessions is not None
        smtp = self._config.smtp
        message = alert_mail.alert_email(subject=email.subject, body=email.body, sender=smtp.from_address,
                                         recipients=email.recipients.split(","))
        attempts = email.attempts + 1
        try:
            alert_mail.send(smtp, message, context=self._tls_context)
        except (OSError, smtplib.SMTPException) as exc:
            delay = alert_mail.retry_after(attempts)
            now = datetime.fromtimestamp(self._clock(), UTC)
            error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]
            values: dict[str, Any] = {"last_error": error}
            if delay is None:
                values["delivery"] = EmailDelivery.FAILED
                log.error("alerts: e-mail %d (%s) not sent through %s:%d after %d attempts, given up: %s",
                          email.id, email.subject, smtp.host, smtp.port, attempts, error)
            else:
                values["next_attempt_at"] = now + timedelta(seconds=delay)
                log.error("alerts: e-mail %d (%s) not sent through %s:%d (attempt %d), again in %g s: %s",
                          email.id, email.subject, smtp.host, smtp.port, attempts, delay, error)
            with self._sessions.begin() as session:
                session.execute(update(AlertEmail).where(AlertEmail.id == email.id).values(**values))
            return
        with self._sessions.begin() as session:
            session.execute(update(AlertEmail).where(AlertEmail.id == email.id).values(
                delivery=EmailDelivery.SENT, sent_at=datetime.fromtimestamp(self._clock(), UTC),
                last_error=None))
        log.info("alerts: e-mail %d sent to %s: %s", email.id, email.recipients, email.subject)


def _record(session: Session, alert: Alert) -> None:
    """The alert's change in the history: a server down opens a record, back up closes it."""
    open_record = session.scalars(select(AlertRecord).where(
        AlertRecord.role == alert.role, AlertRecord.server == alert.server,
        AlertRecord.resolved_at.is_(None)).order_by(AlertRecord.id.desc()).limit(1)).first()
    if alert.firing:
        if open_record is None:
            session.add(AlertRecord(role=alert.role, server=alert.server, state=alert.state.value,
                                    reason=alert.reason[:REASON_MAX_LENGTH], since=alert.since))
        else:
            open_record.state = alert.state.value
            open_record.reason = alert.reason[:REASON_MAX_LENGTH]
    elif open_record is not None:
        open_record.resolved_at = alert.resolved_at

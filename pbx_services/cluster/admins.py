"""Administrator service: the portal's accounts, their passwords and lockout, and the audit log.

Passwords are hashed with scrypt (RFC 7914) under a random salt, as voicemail PINs are; a
hash records its parameters, so they can be raised later without invalidating stored ones. A wrong password
counts against the account: `lockout.failures` in a row lock it for `lockout.minutes`, during
which even the right password is refused (the answer does not say which, so a guesser learns
nothing). There is no default password: `ensure_first_admin` creates `admin` with a random
one-time password, which must be changed at the first login.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, TenantDao
from pbx_services.cluster.models import Administrator, AdminRole, AuditEntry, Tenant
from pbx_services.cluster.models.admin import ADMIN_NAME_MAX_LENGTH
from pbx_services.cluster.models.base import utcnow
from pbx_services.cluster.validation import InvalidValue, validate_domain
from pbx_services.cluster.voicemail import hash_pin, pin_matches

ADMIN_PASSWORD_MIN_LENGTH = 10
FIRST_ADMIN_NAME = "admin"
ONE_TIME_PASSWORD_BYTES = 12
AUDIT_PAGE_MAX = 1000

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$SALT$HASH`: the scrypt hash voicemail PINs are kept as."""
    return hash_pin(password)


def verify_password(password: str, stored: str) -> bool:
    return pin_matches(password, stored)


# Verified against when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_hex(8))


def validate_admin_name(value: str) -> str:
    if not value or len(value) > ADMIN_NAME_MAX_LENGTH or not _NAME_RE.fullmatch(value):
        raise InvalidValue(f"administrator name {value[:70]!r} must be 1 to {ADMIN_NAME_MAX_LENGTH} letters, "
                           "digits, '.', '_', '@' or '-', starting with a letter or digit")
    return value


def validate_admin_password(value: str) -> str:
    if len(value) < ADMIN_PASSWORD_MIN_LENGTH:
        raise InvalidValue(f"password is shorter than {ADMIN_PASSWORD_MIN_LENGTH} characters")
    return value


@dataclass(frozen=True, slots=True)
class Lockout:
    failures: int
    """Wrong passwords in a row that lock the account."""
    minutes: int
    """How long it stays locked."""


@dataclass(frozen=True, slots=True)
class AdminInfo:
    """An administrator as the portal and the CLI show it (no password hash)."""

    id: int
    name: str
    role: AdminRole
    tenant: str | None
    """The tenant's domain for a tenant administrator."""
    tenant_id: int | None
    must_change_password: bool
    locked_until: datetime | None
    password_changed_at: datetime


def _info(admin: Administrator) -> AdminInfo:
    return AdminInfo(id=admin.id, name=admin.name, role=admin.role,
                     tenant=admin.tenant.domain if admin.tenant is not None else None,
                     tenant_id=admin.tenant_id,
                     must_change_password=admin.must_change_password, locked_until=admin.locked_until,
                     password_changed_at=admin.password_changed_at)


class LoginOutcome(StrEnum):
    OK = "ok"
    WRONG = "wrong"
    """Unknown name or wrong password (not told apart)."""
    LOCKED = "locked"


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    admin: AdminInfo | None = None
    """Who logged in, with OK."""
    locked_until: datetime | None = None
    """With LOCKED (or a WRONG that just locked it): until when."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    at: datetime
    actor: str
    action: str
    target: str
    detail: str
    tenant_id: int | None
    source: str


class AdministratorDao(Dao[Administrator]):
    model = Administrator
    searchable_columns = ("name",)


class AuditDao(Dao[AuditEntry]):
    model = AuditEntry
    searchable_columns = ("actor", "action", "target", "detail")


class AdminService:
    def __init__(self, *, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def add_admin(self, name: str, *, password: str, role: AdminRole, tenant: str | None = None,
                  must_change_password: bool = False) -> AdminInfo:
        validate_admin_name(name)
        validate_admin_password(password)
        if (role is AdminRole.TENANT) != (tenant is not None):
            raise InvalidValue("tenant: a tenant administrator needs --tenant DOMAIN, and only one does")
        with self._sessions.begin() as session:
            tenant_row = _tenant(session, tenant) if tenant is not None else None
            admins = AdministratorDao(session=session)
            if admins.find_by(name=name) is not None:
                raise AlreadyExists(f"administrator {name} already exists")
            try:
                admin = admins.create(Administrator(
                    name=name, password_hash=hash_password(password), role=role, tenant=tenant_row,
                    must_change_password=must_change_password, password_changed_at=self._clock()))
            except IntegrityError:
                raise AlreadyExists(f"administrator {name} already exists") from None
            return _info(admin)

    def ensure_first_admin(self) -> str | None:
        """With no administrator at all: create `admin` with a one-time password and return it
        (to be shown once); else None."""
        with self._sessions() as session:
            if session.scalar(select(func.count()).select_from(Administrator)):
                return None
        password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
        try:
            self.add_admin(FIRST_ADMIN_NAME, password=password, role=AdminRole.SYSTEM,
                           must_change_password=True)
        except AlreadyExists:  # another portal process made it at the same moment
            return None
        return password

    def first_admin_notice(self) -> str | None:
        """`ensure_first_admin`, and the line that tells the one-time password (None: nothing made)."""
        password = self.ensure_first_admin()
        if password is None:
            return None
        return (f"no administrator yet: created '{FIRST_ADMIN_NAME}' with the one-time password {password} "
                "(shown once; it must be changed at the first login)")

    def list_admins(self) -> list[AdminInfo]:
        with self._sessions() as session:
            return [_info(admin) for admin in AdministratorDao(session=session).search(order="name").items]

    def get_admin(self, admin_id: int) -> AdminInfo:
        with self._sessions() as session:
            return _info(AdministratorDao(session=session).get_by(id=admin_id))

    def find_admin(self, admin_id: int) -> AdminInfo | None:
        with self._sessions() as session:
            admin = AdministratorDao(session=session).find_by(id=admin_id)
            return _info(admin) if admin is not None else None

    def delete_admin(self, name: str) -> None:
        with self._sessions.begin() as session:
            admins = AdministratorDao(session=session)
            admins.delete(admins.get_by(name=name))

    def set_password(self, name: str, password: str, *, must_change: bool = False) -> AdminInfo:
        """A new password (and an unlocked account); sessions opened before are logged out."""
        validate_admin_password(password)
        with self._sessions.begin() as session:
            admin = AdministratorDao(session=session).get_by(name=name)
            admin.password_hash = hash_password(password)
            admin.must_change_password = must_change
            admin.failed_logins = 0
            admin.locked_until = None
            admin.password_changed_at = self._clock()
            return _info(admin)

    def change_own_password(self, admin_id: int, *, current: str, new: str) -> AdminInfo:
        with self._sessions() as session:
            admin = AdministratorDao(session=session).get_by(id=admin_id)
            name, stored = admin.name, admin.password_hash
        if not verify_password(current, stored):
            raise InvalidValue("current password: not your current password")
        if new == current:
            raise InvalidValue("new password: must differ from the current one")
        return self.set_password(name, new)

    def authenticate(self, name: str, password: str, *, lockout: Lockout) -> LoginResult:
        """Check a login; a wrong password counts toward the lockout, a right one resets the count."""
        now = self._clock()
        with self._sessions.begin() as session:
            admin = AdministratorDao(session=session).find_by(name=name)
            if admin is None:
                verify_password(password, _DUMMY_HASH)
                return LoginResult(LoginOutcome.WRONG)
            if admin.locked_until is not None and admin.locked_until > now:
                return LoginResult(LoginOutcome.LOCKED, locked_until=admin.locked_until)
            if admin.locked_until is not None:  # the lock has expired: a fresh count
                admin.locked_until = None
                admin.failed_logins = 0
            if verify_password(password, admin.password_hash):
                admin.failed_logins = 0
                return LoginResult(LoginOutcome.OK, admin=_info(admin))
            admin.failed_logins += 1
            if admin.failed_logins >= lockout.failures:
                admin.locked_until = now + timedelta(minutes=lockout.minutes)
                return LoginResult(LoginOutcome.WRONG, locked_until=admin.locked_until)
            return LoginResult(LoginOutcome.WRONG)

    def unlock(self, name: str) -> None:
        with self._sessions.begin() as session:
            admin = AdministratorDao(session=session).get_by(name=name)
            admin.failed_logins = 0
            admin.locked_until = None

    def record(self, *, actor: str, action: str, target: str = "", detail: str = "",
               tenant_id: int | None = None, source: str = "") -> None:
        """Write one entry of the audit log."""
        with self._sessions.begin() as session:
            AuditDao(session=session).create(AuditEntry(
                at=self._clock(), actor=actor[:80], action=action[:64], target=target[:255], detail=detail,
                tenant_id=tenant_id, source=source[:64]))

    def audit_log(self, *, tenant_id: int | None = None, limit: int = 100, offset: int = 0,
                  search: str | None = None) -> tuple[int, list[AuditRecord]]:
        """The newest entries first; with `tenant_id`, only that tenant's. Returns (total, page)."""
        limit = max(1, min(limit, AUDIT_PAGE_MAX))
        criteria = {"tenant_id": tenant_id} if tenant_id is not None else {}
        with self._sessions() as session:
            found = AuditDao(session=session).search(search=search or None, order="at", direction="desc",
                                                     limit=limit, offset=max(0, offset), **criteria)
            return found.total, [AuditRecord(at=e.at, actor=e.actor, action=e.action, target=e.target,
                                             detail=e.detail, tenant_id=e.tenant_id, source=e.source)
                                 for e in found.items]


def _tenant(session: Session, domain: str) -> Tenant:
    return TenantDao(session=session).get_by(domain=validate_domain(domain))

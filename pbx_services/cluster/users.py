"""User service: add, delete, list and bulk-import the SIP users of the tenants.

A user authenticates as `extension@domain` with digest authentication, whose realm is the
tenant's domain; only the HA1 hashes of the password are stored.
"""

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound, TenantDao, UserDao
from pbx_services.cluster.models import PermissionClass, Tenant, User
from pbx_services.cluster.models.base import utcnow
from pbx_services.cluster.models.user import DEFAULT_PERMISSION, PICKUP_GROUP_MAX_LENGTH, USER_PERMISSIONS
from pbx_services.cluster.numbering import number_owner, number_owners, routes_to
from pbx_services.cluster.validation import (
    InvalidValue,
    check_range,
    parse_flag,
    validate_display_name,
    validate_domain,
    validate_email,
    validate_extension,
    validate_password,
)

T = TypeVar("T")

CSV_REQUIRED_COLUMNS = ("extension", "password")
CSV_OPTIONAL_COLUMNS = ("name", "email", "tenant", "permission", "max_calls", "pickup_group",
                        "withhold_number")
EXISTING_USERS_SHOWN = 5
"""Users named in the line that says how many of an import file already exist."""
MAX_CALLS_RANGE = range(0, 100_001)
"""A user's or tenant's concurrent-call limit (0: no limit)."""
DEFAULT_PICKUP_GROUP = "default"
"""The pickup group every user of a tenant is in unless it is given another."""
_PICKUP_GROUP_RE = re.compile(rf"[A-Za-z0-9._-]{{1,{PICKUP_GROUP_MAX_LENGTH}}}")


def parse_user_permission(text: str) -> PermissionClass:
    """The outbound permission `text` names; InvalidValue naming it and the valid ones."""
    try:
        permission = PermissionClass(text.lower())
    except ValueError:
        permission = None
    if permission not in USER_PERMISSIONS:
        raise InvalidValue(f"permission {text[:20]!r}: one of {', '.join(p.value for p in USER_PERMISSIONS)} "
                           "(emergency numbers are allowed to everyone)")
    assert permission is not None
    return permission


def parse_pickup_group(text: str) -> str | None:
    """The pickup group `text` names; None for `default` (the tenant's default group)."""
    name = text.strip()
    if name.lower() == DEFAULT_PICKUP_GROUP:
        return None
    if not _PICKUP_GROUP_RE.fullmatch(name):
        raise InvalidValue(f"pickup group {text[:40]!r}: 1 to {PICKUP_GROUP_MAX_LENGTH} letters, digits, "
                           f"'.', '_' and '-' (or {DEFAULT_PICKUP_GROUP!r}: the tenant's group)")
    return name


def check_max_calls(what: str, max_calls: int) -> int:
    check_range(f"{what}: max calls", max_calls, MAX_CALLS_RANGE, "(0: no limit)")
    return max_calls


@dataclass(frozen=True, slots=True)
class UserColumns:
    """One row of an import file: a new user's values, checked (`parse_user_columns`)."""

    extension: str
    password: str
    display_name: str | None = None
    email: str | None = None
    permission: PermissionClass = DEFAULT_PERMISSION
    max_calls: int = 0
    pickup_group: str | None = None
    withhold_number: bool = False

    def insert_values(self, tenant_id: int, domain: str, now: datetime) -> dict[str, Any]:
        """The user's row of the `users` table, for a batch insert."""
        return {"tenant_id": tenant_id, "extension": self.extension, "display_name": self.display_name,
                "email": self.email, "enabled": True, "created_at": now, "permission": self.permission,
                "max_calls": self.max_calls, "pickup_group": self.pickup_group,
                "withhold_number": self.withhold_number,
                **_credentials(self.extension, domain, self.password)}


def parse_user_columns(fields: Mapping[str, str]) -> tuple[UserColumns, list[tuple[str, str]]]:
    """The user of an import file's row (column -> stripped text; `tenant` is the importer's),
    and (column, message) for each bad column: the user is to be used only when there is none.
    An empty optional column takes the default, as `pbx user add` without its option does."""
    errors: list[tuple[str, str]] = []

    def checked(column: str, check: Callable[[str], T], default: T) -> T:
        text = fields.get(column, "")
        if not text and column not in CSV_REQUIRED_COLUMNS:
            return default
        try:
            return check(text)
        except InvalidValue as exc:
            errors.append((column, str(exc)))
            return default

    def max_calls(text: str) -> int:
        try:
            count = int(text)
        except ValueError:
            raise InvalidValue(f"max calls {text[:20]!r}: a whole number (0: no limit)") from None
        check_range("max calls", count, MAX_CALLS_RANGE, "(0: no limit)")
        return count

    user = UserColumns(
        extension=checked("extension", validate_extension, ""),
        password=checked("password", validate_password, ""),
        display_name=checked("name", validate_display_name, "") or None,
        email=checked("email", validate_email, "") or None,
        permission=checked("permission", parse_user_permission, DEFAULT_PERMISSION),
        max_calls=checked("max_calls", max_calls, 0),
        pickup_group=checked("pickup_group", parse_pickup_group, None),
        withhold_number=checked("withhold_number", lambda text: parse_flag("withhold number", text), False))
    return user, errors


def set_given(row: object, **values: object) -> None:
    """Set the columns of `row` whose value is given (not None): a `set` command's options."""
    for column, value in values.items():
        if value is not None:
            setattr(row, column, value)


def _ha1(hash_constructor: Callable[[bytes], Any], username: str, realm: str, password: str) -> str:
    """Digest HA1, hex(H(username:realm:password)) (RFC 7616 section 3.4.2).

    Local to this service until the SIP digest module offers the same function.
    """
    return str(hash_constructor(f"{username}:{realm}:{password}".encode()).hexdigest())


def _credentials(extension: str, domain: str, password: str) -> dict[str, str]:
    return {
        "ha1_md5": _ha1(hashlib.md5, extension, domain, password),
        "ha1_sha256": _ha1(hashlib.sha256, extension, domain, password),
    }


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one line of an import file cannot be imported."""

    line: int
    """Line number in the file, 1 being the header."""
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: users added, and those of the file that existed (left unchanged)."""

    imported: int
    existing: tuple[str, ...]
    """`extension@domain` of each row whose user exists already, in the file's order."""

    def existing_summary(self) -> str | None:
        """One line for every existing user, naming the first few; None when there is none."""
        count = len(self.existing)
        if not count:
            return None
        shown = ", ".join(self.existing[:EXISTING_USERS_SHOWN])
        first = f" (first {EXISTING_USERS_SHOWN})" if count > EXISTING_USERS_SHOWN else ""
        verb = "users already exist" if count != 1 else "user already exists"
        return f"{count:,} {verb}, skipped: {shown}{first}"


class CsvImportError(Exception):
    """The import file has bad rows; nothing was imported. `problems` lists them by line."""

    def __init__(self, path: Path, problems: list[RowProblem]) -> None:
        self.path = path
        self.problems = problems
        count = len(problems)
        super().__init__(f"{path}: {count} problem{'s' if count != 1 else ''}, nothing imported")


@dataclass(frozen=True, slots=True)
class _ImportRow:
    line: int
    tenant: Tenant
    user: UserColumns

    @property
    def extension(self) -> str:
        return self.user.extension


class UserService:
    """Users of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_user(
        self,
        extension: str,
        password: str,
        *,
        name: str | None = None,
        email: str | None = None,
        tenant: str | None = None,
        permission: str = DEFAULT_PERMISSION.value,
        max_calls: int = 0,
        withhold_number: bool = False,
    ) -> User:
        """A new user; `permission` is the widest class of outbound route it may dial,
        `max_calls` how many calls it may have at once (0: no limit), `withhold_number` whether
        its number is withheld on its calls out through a trunk."""
        extension = validate_extension(extension)
        validate_password(password)
        kind = parse_user_permission(permission)
        check_max_calls(f"user {extension}", max_calls)
        display_name = validate_display_name(name) if name else None
        email = validate_email(email) if email else None
        with self._sessions.begin() as session:
            owner = self._tenant(session, tenant)
            users = UserDao(session=session)
            if users.find_by(tenant_id=owner.id, extension=extension) is not None:
                raise AlreadyExists(f"user {extension}@{owner.domain} already exists")
            taken_by = number_owner(session, owner.id, extension)
            if taken_by is not None:
                raise InvalidValue(f"{extension} is already {taken_by} of {owner.domain}")
            user = User(
                tenant=owner,
                extension=extension,
                display_name=display_name,
                email=email,
                permission=kind,
                max_calls=max_calls,
                withhold_number=withhold_number,
                **_credentials(extension, owner.domain, password),
            )
            try:
                return users.create(user)
            except IntegrityError:  # added by someone else since the check above
                raise AlreadyExists(f"user {extension}@{owner.domain} already exists") from None

    def set_user(self, extension: str, *, tenant: str | None = None, permission: str | None = None,
                 max_calls: int | None = None, pickup_group: str | None = None,
                 withhold_number: bool | None = None) -> User:
        """Change the user's outbound permission, concurrent-call limit, pickup group and whether
        its number is withheld toward trunks (those given; pickup group `default`: the
        tenant's); NotFound if the tenant or the user does not exist."""
        kind = parse_user_permission(permission) if permission is not None else None
        if max_calls is not None:
            check_max_calls(f"user {extension}", max_calls)
        group = parse_pickup_group(pickup_group) if pickup_group is not None else None
        with self._sessions.begin() as session:
            owner = self._tenant(session, tenant)
            user = UserDao(session=session).find_by(tenant_id=owner.id, extension=extension)
            if user is None:
                raise NotFound("User", {"extension": extension, "tenant": owner.domain})
            set_given(user, permission=kind, max_calls=max_calls, withhold_number=withhold_number)
            if pickup_group is not None:
                user.pickup_group = group
            session.flush()
            return user

    def delete_user(self, extension: str, *, tenant: str | None = None) -> None:
        """Delete the user; raises NotFound if the tenant or the user does not exist,
        InvalidValue while an IVR menu sends calls to the extension."""
        with self._sessions.begin() as session:
            owner = self._tenant(session, tenant)
            users = UserDao(session=session)
            user = users.find_by(tenant_id=owner.id, extension=extension)
            if user is None:
                raise NotFound("User", {"extension": extension, "tenant": owner.domain})
            routes = routes_to(session, owner.id, extension)
            if routes:
                raise InvalidValue(f"user {extension}@{owner.domain} is the destination of "
                                   f"{', '.join(routes)}: change or delete them first")
            users.delete(user)

    def list_users(self, *, tenant: str | None = None) -> list[User]:
        """The users of the tenant of domain `tenant`, or of every tenant when None;
        each with its `tenant` loaded, sorted by domain then extension."""
        with self._sessions() as session:
            criteria = {"tenant_id": self._tenant(session, tenant).id} if tenant is not None else {}
            users = UserDao(session=session).find_all_by(**criteria)
        return sorted(users, key=lambda user: (user.tenant.domain, user.extension))

    def import_csv(self, path: Path) -> ImportResult:
        """Import every new user of the CSV file at `path` in one transaction.

        The header row names the columns: `extension` and `password` are required; `name`,
        `email`, `tenant` (a tenant's domain; the default tenant otherwise), `permission`,
        `max_calls`, `pickup_group` and `withhold_number` (yes or no) optional, an empty one
        taking the default as `pbx user add` does (`parse_user_columns`). Surrounding spaces
        are removed from every field. A user that exists already is skipped (left unchanged),
        so that a file can be imported again once it has grown.
        The whole file is checked first: if any row is bad, `CsvImportError` lists every bad
        row and nothing is imported. A file that cannot be opened raises OSError.
        """
        with self._sessions.begin() as session:
            rows, existing = self._read_import_file(session, path)
            now = utcnow()
            try:
                imported = UserDao(session=session).insert_many(
                    row.user.insert_values(row.tenant.id, row.tenant.domain, now) for row in rows)
            except IntegrityError:  # users added by someone else while the file was checked
                raise AlreadyExists(
                    f"{path}: some users were added while importing; nothing imported"
                ) from None
        return ImportResult(imported=imported, existing=existing)

    def _tenant(self, session: Session, domain: str | None) -> Tenant:
        return tenant_by_domain(session, domain, default_domain=self._default_domain)

    def _read_import_file(self, session: Session, path: Path) -> tuple[list[_ImportRow], tuple[str, ...]]:
        """The rows of new users, and `extension@domain` of the users that exist already."""
        tenants = {tenant.domain: tenant for tenant in TenantDao(session=session).find_all_by()}
        default_tenant = tenants.get(self._default_domain)
        problems: list[RowProblem] = []
        rows: list[_ImportRow] = []
        first_line_of: dict[tuple[str, str], int] = {}
        for line, fields in _csv_rows(_read_text(path), problems):
            try:
                row = _parse_row(line, fields, tenants, default_tenant)
            except InvalidValue as exc:
                problems.append(RowProblem(line, str(exc)))
                continue
            key = (row.tenant.domain, row.extension)
            if key in first_line_of:
                problems.append(
                    RowProblem(
                        line,
                        f"extension {row.extension} of {row.tenant.domain} "
                        f"is already on line {first_line_of[key]}",
                    )
                )
                continue
            first_line_of[key] = line
            rows.append(row)
        existing = UserDao(session=session).existing_extensions(
            (row.tenant.id, row.extension) for row in rows
        )
        skipped = tuple(f"{row.extension}@{row.tenant.domain}" for row in rows
                        if (row.tenant.id, row.extension) in existing)
        rows = [row for row in rows if (row.tenant.id, row.extension) not in existing]
        taken = number_owners(session, ((row.tenant.id, row.extension) for row in rows), besides_users=True)
        problems.extend(
            RowProblem(row.line, f"{row.extension} is already {taken[row.tenant.id, row.extension]} "
                                 f"of {row.tenant.domain}")
            for row in rows
            if (row.tenant.id, row.extension) in taken
        )
        if problems:
            raise CsvImportError(path, sorted(problems, key=lambda problem: problem.line))
        return rows, skipped


def tenant_by_domain(session: Session, domain: str | None, *, default_domain: str) -> Tenant:
    """The tenant of `domain`, or of `default_domain` when None; NotFound if there is none."""
    domain = validate_domain(domain) if domain is not None else default_domain
    return TenantDao(session=session).get_by(domain=domain)


def _read_text(path: Path) -> TextIO:
    """The file's text (UTF-8, with or without a byte order mark), ready for the csv module."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvImportError(path, [RowProblem(line, "the file is not UTF-8 text")]) from None
    return io.StringIO(text, newline="")


def _csv_rows(file: TextIO, problems: list[RowProblem]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, column -> stripped value) for each non-blank row after the header.

    Problems with the header are appended to `problems` and end the reading; a row with
    the wrong number of fields is reported and skipped.
    """
    reader = csv.reader(file, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            problems.append(RowProblem(1, "the file is empty (expected a header row)"))
            return
        columns = [name.strip().lower() for name in header]
        header_problems = _check_header(columns)
        if header_problems:
            problems.extend(RowProblem(1, message) for message in header_problems)
            return
        while True:
            line = reader.line_num + 1  # where the next row starts (a quoted field may span lines)
            fields = next(reader, None)
            if fields is None:
                return
            if not any(field.strip() for field in fields):
                continue
            if len(fields) != len(columns):
                problems.append(RowProblem(line, f"expected {len(columns)} fields, got {len(fields)}"))
                continue
            yield line, {column: field.strip() for column, field in zip(columns, fields, strict=True)}
    except csv.Error as exc:
        problems.append(RowProblem(reader.line_num, f"not valid CSV: {exc}"))


def _check_header(columns: list[str]) -> list[str]:
    known = CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS
    messages = [
        f"unknown column {column!r} (columns are: {', '.join(known)})"
        for column in columns
        if column not in known
    ]
    messages += [
        f"column {column!r} is given twice" for column in sorted(set(columns)) if columns.count(column) > 1
    ]
    messages += [f"missing column {column!r}" for column in CSV_REQUIRED_COLUMNS if column not in columns]
    return messages


def _parse_row(
    line: int, fields: dict[str, str], tenants: dict[str, Tenant], default_tenant: Tenant | None
) -> _ImportRow:
    """The row's values, checked; `InvalidValue` names every bad field of the row."""
    user, errors = parse_user_columns(fields)
    messages = [message for _, message in errors]
    domain = fields.get("tenant", "").lower()
    tenant = tenants.get(domain) if domain else default_tenant
    if tenant is None:
        messages.append(
            f"unknown tenant {domain!r}"
            if domain
            else "no tenant given and the default tenant does not exist"
        )
    if messages:
        raise InvalidValue("; ".join(messages))
    assert tenant is not None
    return _ImportRow(line=line, tenant=tenant, user=user)

import hashlib

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound, UserDao
from pbx_services.cluster.models import Tenant
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN, OTHER_DOMAIN


@pytest.fixture
def service(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> UserService:
    return UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def test_add_user_stores_ha1_hashes_not_the_password(service: UserService, session: Session) -> None:
    user = service.add_user("1001", "s3cret!", name="Alice", email="alice@example.org")

    stored = UserDao(session=session).get_by(id=user.id)
    assert stored.tenant.domain == DEFAULT_DOMAIN
    assert (stored.extension, stored.display_name, stored.email, stored.enabled) == (
        "1001",
        "Alice",
        "alice@example.org",
        True,
    )
    # RFC 7616: HA1 = H(username ":" realm ":" password), the realm being the tenant's domain.
    assert stored.ha1_md5 == hashlib.md5(b"1001:pbx.example:s3cret!").hexdigest()
    assert stored.ha1_sha256 == hashlib.sha256(b"1001:pbx.example:s3cret!").hexdigest()
    assert "s3cret!" not in repr(vars(stored))


def test_realm_of_another_tenant(service: UserService) -> None:
    user = service.add_user("1001", "s3cret!", tenant=OTHER_DOMAIN.upper())

    assert user.ha1_md5 == hashlib.md5(b"1001:other.example:s3cret!").hexdigest()


def test_same_extension_in_two_tenants(service: UserService) -> None:
    service.add_user("1001", "pass1")
    service.add_user("1001", "pass2", tenant=OTHER_DOMAIN)

    assert len(service.list_users()) == 2


def test_duplicate_user_is_refused(service: UserService) -> None:
    service.add_user("1001", "pass1")

    with pytest.raises(AlreadyExists, match="user 1001@pbx.example already exists"):
        service.add_user("1001", "pass2")


def test_unknown_tenant(service: UserService) -> None:
    with pytest.raises(NotFound, match="Tenant not found: domain='nowhere.example'"):
        service.add_user("1001", "pass1", tenant="nowhere.example")


@pytest.mark.parametrize(
    ("extension", "password", "email", "reason"),
    [
        ("10 01", "pass1", None, "may only contain"),
        ("1001", "abc", None, "password is shorter than 4 characters"),
        ("1001", "pass1", "no-at-sign", "not an email address"),
    ],
)
def test_invalid_user_is_refused(
    service: UserService, extension: str, password: str, email: str | None, reason: str
) -> None:
    with pytest.raises(InvalidValue, match=reason):
        service.add_user(extension, password, email=email)

    assert service.list_users() == []


def test_delete_user(service: UserService) -> None:
    service.add_user("1001", "pass1")
    service.add_user("1001", "pass1", tenant=OTHER_DOMAIN)

    service.delete_user("1001")

    assert [(user.tenant.domain, user.extension) for user in service.list_users()] == [(OTHER_DOMAIN, "1001")]


def test_delete_missing_user(service: UserService) -> None:
    with pytest.raises(NotFound, match="User not found: extension='1001', tenant='pbx.example'"):
        service.delete_user("1001")


def test_list_users_sorted_and_by_tenant(service: UserService) -> None:
    for extension, tenant in [("2000", None), ("1000", OTHER_DOMAIN), ("1000", None), ("3000", OTHER_DOMAIN)]:
        service.add_user(extension, "pass1", tenant=tenant)

    everyone = [(user.tenant.domain, user.extension) for user in service.list_users()]
    others = [user.extension for user in service.list_users(tenant=OTHER_DOMAIN)]

    assert everyone == [
        (OTHER_DOMAIN, "1000"),
        (OTHER_DOMAIN, "3000"),
        (DEFAULT_DOMAIN, "1000"),
        (DEFAULT_DOMAIN, "2000"),
    ]
    assert others == ["1000", "3000"]

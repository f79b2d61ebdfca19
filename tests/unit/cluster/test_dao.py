import pytest
from sqlalchemy.orm import Session

from pbx_services.cluster.dao import NotFound, TenantDao, UserDao
from pbx_services.cluster.models import Tenant, User


def add_tenants(session: Session, *domains: str) -> list[Tenant]:
    dao = TenantDao(session=session)
    return [dao.create(Tenant(name=domain.split(".")[0].title(), domain=domain)) for domain in domains]


def test_get_by_returns_the_match(session: Session) -> None:
    _, beta = add_tenants(session, "alpha.example", "beta.example")

    assert TenantDao(session=session).get_by(domain="beta.example") is beta


def test_get_by_raises_not_found_naming_the_criteria(session: Session) -> None:
    with pytest.raises(NotFound) as raised:
        TenantDao(session=session).get_by(domain="nowhere.example")

    assert str(raised.value) == "Tenant not found: domain='nowhere.example'"
    assert raised.value.model == "Tenant"
    assert raised.value.criteria == {"domain": "nowhere.example"}


def test_find_by_returns_none_when_nothing_matches(session: Session) -> None:
    add_tenants(session, "alpha.example")
    dao = TenantDao(session=session)

    assert dao.find_by(domain="nowhere.example") is None
    assert dao.find_by(domain="alpha.example") is not None


def test_find_all_by_returns_every_match_in_id_order(session: Session) -> None:
    alpha, beta, gamma = add_tenants(session, "alpha.example", "beta.example", "gamma.example")
    gamma.name = "Alpha"

    dao = TenantDao(session=session)

    assert dao.find_all_by(name="Alpha") == [alpha, gamma]
    assert dao.find_all_by() == [alpha, beta, gamma]
    assert dao.find_all_by(name="Nobody") == []


def test_unknown_column_is_our_mistake(session: Session) -> None:
    with pytest.raises(ValueError, match="Tenant has no column 'realm'"):
        TenantDao(session=session).find_by(realm="x")


def test_search_pages_and_counts(session: Session) -> None:
    add_tenants(session, *(f"t{number:02}.example" for number in range(25)))
    dao = TenantDao(session=session)

    page = dao.search(order="domain", direction="desc", limit=10, offset=10)

    assert page.total == 25
    assert [tenant.domain for tenant in page.items] == [
        f"t{number:02}.example" for number in range(14, 4, -1)
    ]


def test_search_text_looks_in_searchable_columns_case_insensitively(session: Session) -> None:
    add_tenants(session, "acme.example", "globex.example", "initech.example")
    dao = TenantDao(session=session)

    found = dao.search(search="GLOB")

    assert (found.total, [tenant.domain for tenant in found.items]) == (1, ["globex.example"])


def test_search_text_wildcards_are_literal(session: Session) -> None:
    tenant_a, tenant_b = add_tenants(session, "a.example", "b.example")
    tenant_a.name = "100% reliable"
    tenant_b.name = "1000 users"

    found = TenantDao(session=session).search(search="100%")

    assert found.items == [tenant_a]


def test_search_combines_text_and_criteria(session: Session) -> None:
    alpha, beta = add_tenants(session, "alpha.example", "beta.example")
    users = UserDao(session=session)
    for tenant in (alpha, beta):
        for extension in ("1001", "1002", "2001"):
            users.create(User(tenant=tenant, extension=extension, ha1_md5="0" * 32, ha1_sha256="0" * 64))

    found = users.search(search="100", tenant_id=beta.id)

    assert found.total == 2
    assert [(user.tenant.domain, user.extension) for user in found.items] == [
        ("beta.example", "1001"),
        ("beta.example", "1002"),
    ]


def test_search_rejects_a_bad_direction(session: Session) -> None:
    with pytest.raises(ValueError, match="direction"):
        TenantDao(session=session).search(direction="up")  # type: ignore[arg-type]


def test_delete(session: Session) -> None:
    (alpha,) = add_tenants(session, "alpha.example")
    dao = TenantDao(session=session)

    dao.delete(alpha)

    assert dao.find_by(domain="alpha.example") is None


def test_insert_many_and_existing_extensions(session: Session) -> None:
    (alpha,) = add_tenants(session, "alpha.example")
    users = UserDao(session=session)
    rows = [
        {"tenant_id": alpha.id, "extension": str(number), "ha1_md5": "0" * 32, "ha1_sha256": "0" * 64}
        for number in range(1000, 1012)
    ]

    assert users.insert_many(rows, chunk_size=5) == 12

    assert len(users.find_all_by(tenant_id=alpha.id)) == 12
    assert all(user.enabled and user.created_at is not None for user in users.find_all_by())
    asked = [(alpha.id, "1000"), (alpha.id, "1011"), (alpha.id, "999"), (alpha.id + 1, "1000")]
    assert users.existing_extensions(asked, chunk_size=2) == {(alpha.id, "1000"), (alpha.id, "1011")}

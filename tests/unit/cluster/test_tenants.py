import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.queues import QueueService
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue


def test_ensure_tenant_creates_once(sessions: sessionmaker[Session]) -> None:
    service = TenantService(sessions=sessions)

    created, was_created = service.ensure_tenant("PBX.Example", name="Example Inc.")
    again, created_again = service.ensure_tenant("pbx.example")

    assert (was_created, created_again) == (True, False)
    assert created.id == again.id
    assert (again.domain, again.name) == ("pbx.example", "Example Inc.")
    assert [tenant.domain for tenant in service.list_tenants()] == ["pbx.example"]


def test_tenant_name_defaults_to_domain(sessions: sessionmaker[Session]) -> None:
    tenant, _ = TenantService(sessions=sessions).ensure_tenant("pbx.example")

    assert tenant.name == "pbx.example"


def test_bad_domain_is_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidValue, match="not a valid DNS name"):
        TenantService(sessions=sessions).ensure_tenant("bad_domain!")


def test_a_second_tenant_is_added_once(sessions: sessionmaker[Session]) -> None:
    service = TenantService(sessions=sessions, default_domain="pbx.example")
    service.ensure_tenant("pbx.example")

    service.add_tenant("b.example", name="B Inc.")

    with pytest.raises(AlreadyExists, match="tenant b.example exists already"):
        service.add_tenant("B.example")
    assert [(t.domain, t.name, t.default) for t in service.describe_tenants()] == [
        ("b.example", "B Inc.", False), ("pbx.example", "pbx.example", True)]


def test_a_tenant_holding_users_is_deleted_only_with_everything(sessions: sessionmaker[Session]) -> None:
    service = TenantService(sessions=sessions, default_domain="pbx.example")
    service.ensure_tenant("pbx.example")
    service.add_tenant("b.example")
    users = UserService(sessions=sessions, default_domain="pbx.example")
    for tenant in ("b.example", None):
        users.add_user("1001", "s3cret-pw!", tenant=tenant)
    QueueService(sessions=sessions, default_domain="pbx.example").add_queue(
        "700", members=[("1001", 0)], tenant_domain="b.example")
    [held] = [t for t in service.describe_tenants() if t.domain == "b.example"]
    assert (held.users, held.queues) == (1, 1)

    with pytest.raises(InvalidValue, match=r"b.example still has users \(1\), queues \(1\)"):
        service.delete_tenant("b.example")
    service.delete_tenant("b.example", everything=True)

    assert [t.domain for t in service.list_tenants()] == ["pbx.example"]
    assert [(u.extension, u.tenant.domain) for u in users.list_users()] == [("1001", "pbx.example")]


def test_the_default_tenant_and_an_unknown_one_are_not_deleted(sessions: sessionmaker[Session]) -> None:
    service = TenantService(sessions=sessions, default_domain="pbx.example")
    service.ensure_tenant("pbx.example")

    with pytest.raises(InvalidValue, match="pbx.example is the default tenant"):
        service.delete_tenant("pbx.example")
    with pytest.raises(NotFound):
        service.delete_tenant("nowhere.example")

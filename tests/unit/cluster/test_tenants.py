import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.tenants import TenantService
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

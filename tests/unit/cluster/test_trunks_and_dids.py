"""The trunk and DID services: probes, codecs, number format and DID hours are checked
when saved, each bad value refused naming it, and read back as saved."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dids import DidService
from pbx_services.cluster.models import Tenant
from pbx_services.cluster.trunks import TrunkService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN


@pytest.fixture
def trunks(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> TrunkService:
    return TrunkService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


@pytest.fixture
def dids(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> DidService:
    users = UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    users.add_user("201", "s3cret!")
    users.add_user("202", "s3cret!")
    return DidService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def test_a_trunk_keeps_its_probe_interval_codecs_and_number_format(trunks: TrunkService) -> None:
    added = trunks.add_trunk("provider", host="192.0.2.10", probe_interval=10, down_after=3, up_after=1,
                             codecs="pcma, PCMU", number_format="E164", country_code="33",
                             national_prefix="0")
    assert (added.probe_interval, added.down_after, added.up_after) == (10, 3, 1)
    assert (added.codecs, added.number_format) == ("PCMA,PCMU", "e164")
    assert (added.country_code, added.national_prefix, added.international_prefix) == ("33", "0", "00")
    plain = trunks.add_trunk("plain", host="192.0.2.11")
    assert (plain.probe_interval, plain.down_after, plain.up_after) == (30, 2, 2)
    assert (plain.codecs, plain.number_format) == (None, "as-dialled")
    assert [t.name for t in trunks.list_trunks()] == ["plain", "provider"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"probe_interval": -1}, "trunk provider: probe interval -1 is out of range: 0 to 3600 seconds (0: off)"),
    ({"down_after": 0}, "trunk provider: down after 0 is out of range: 1 to 10 failed probes in a row"),
    ({"up_after": 11}, "trunk provider: up after 11 is out of range: 1 to 10 answered probes in a row"),
    ({"codecs": "PCMA,PCMX"}, "trunk provider: codec 'PCMX' is unknown; known: PCMU, PCMA, G722, opus"),
    ({"codecs": "PCMA,pcma"}, "trunk provider: codec PCMA is named twice"),
    ({"number_format": "international"}, "trunk provider: number format 'international': one of e164, "
                                         "national, as-dialled"),
    ({"number_format": "e164"}, "trunk provider: number format e164 needs --country-code"),
    ({"number_format": "e164", "country_code": "+33"}, "trunk provider: country code '+33': 1 to 3 digits"),
    ({"number_format": "e164", "country_code": "033"}, "trunk provider: country code '033'"),
    ({"national_prefix": "O"}, "trunk provider: national prefix 'O': 1 to 4 digits"),
    ({"international_prefix": ""}, "trunk provider: international prefix '': 1 to 4 digits"),
])
def test_a_bad_trunk_setting_is_refused_naming_it(trunks: TrunkService, settings: dict[str, object],
                                                  error: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        trunks.add_trunk("provider", host="192.0.2.10", **settings)  # type: ignore[arg-type]
    assert str(refused.value).startswith(error)
    assert trunks.list_trunks() == []


def test_a_did_keeps_its_hours_and_closed_destination(dids: DidService) -> None:
    added = dids.add_did("0140000000", destination="201", hours="mon-fri 09:00-17:00",
                         timezone="Europe/Paris", closed_destination="202",
                         holidays=[date(2026, 12, 25), date(2026, 1, 1), date(2026, 12, 25)])
    assert (added.hours, added.timezone, added.closed_destination) == ("mon-fri 09:00-17:00", "Europe/Paris",
                                                                       "202")
    assert added.holidays == (date(2026, 1, 1), date(2026, 12, 25))
    always = dids.add_did("0140000001", destination="201", hours="daily 00:00-24:00",
                          closed_destination="202")
    assert always.timezone == "UTC"
    plain = dids.add_did("0140000000", destination="202", replace=True)
    assert (plain.hours, plain.closed_destination, plain.holidays) == (None, None, ())
    assert [d.number for d in dids.list_dids()] == ["0140000000", "0140000001"]


@pytest.mark.parametrize(("settings", "error"), [
    ({"hours": "mon-fry 09:00-17:00", "closed_destination": "202"},
     "DID 0140000000: hours 'mon-fry 09:00-17:00': 'mon-fry' is not a day"),
    ({"hours": "mon-fri 9-17", "closed_destination": "202"},
     "DID 0140000000: hours 'mon-fri 9-17': '9' in '9-17' is not a time like 09:30"),
    ({"hours": "mon-fri 09:00-17:00"}, "DID 0140000000: --hours needs --closed-destination"),
    ({"closed_destination": "202"},
     "DID 0140000000: a closed destination, time zone or holiday needs --hours"),
    ({"hours": "mon-fri 09:00-17:00", "closed_destination": "202", "timezone": "Europe/Pariss"},
     "DID 0140000000: time zone 'Europe/Pariss' is unknown"),
    ({"hours": "mon-fri 09:00-17:00", "closed_destination": "299"},
     "DID 0140000000 closed: extension 299 does not exist in pbx.example"),
    ({"hours": "mon-fri 09:00-17:00", "closed_destination": "hangup"},
     "DID 0140000000 closed: destination 'hangup': an extension, queue:N"),
])
def test_bad_did_hours_are_refused_naming_them(dids: DidService, settings: dict[str, object],
                                               error: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        dids.add_did("0140000000", destination="201", **settings)  # type: ignore[arg-type]
    assert str(refused.value).startswith(error)
    assert dids.list_dids() == []


def test_a_did_closed_destination_cannot_be_deleted_from_under_it(dids: DidService,
                                                                  sessions: sessionmaker[Session]) -> None:
    dids.add_did("0140000000", destination="201", hours="mon-fri 09:00-17:00", closed_destination="202")
    users = UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    with pytest.raises(InvalidValue, match="DID 0140000000 closed destination"):
        users.delete_user("202")
    with pytest.raises(InvalidValue, match=r"is the destination of DID 0140000000(?! closed)"):
        users.delete_user("201")

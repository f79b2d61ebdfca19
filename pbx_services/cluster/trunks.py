"""Trunk service: the tenants' SIP trunks to providers (see `models.trunk` for what one does).

A trunk is checked when it is saved: its name, host, port and transport; a username and a
password go together (a provider's challenge needs both), and `register` needs them; its
probe interval, its codecs (names the PBX knows, each once), its number format and the
country code and prefixes that format needs. The Call Manager reads the trunks with its own
catalogue (`callmanager.trunks`).
"""

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, Dao, NotFound
from pbx_services.cluster.models import (
    NumberFormat,
    OutboundRoute,
    OutboundRouteTrunk,
    Tenant,
    Trunk,
    TrunkTransport,
)
from pbx_services.cluster.models.trunk import (
    CODECS_MAX_LENGTH,
    CREDENTIAL_MAX_LENGTH,
    DEFAULT_DOWN_AFTER,
    DEFAULT_INTERNATIONAL_PREFIX,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_UP_AFTER,
    TRUNK_NAME_MAX_LENGTH,
)
from pbx_services.cluster.users import tenant_by_domain
from pbx_services.cluster.validation import InvalidValue, check_range, validate_host

PORT_RANGE = range(1, 65536)
MAX_CALLS_RANGE = range(0, 100_001)
PROBE_INTERVAL_RANGE = range(0, 3601)
PROBES_IN_A_ROW_RANGE = range(1, 11)
TRUNK_CODECS = ("PCMU", "PCMA", "G722", "opus", "G729", "GSM", "iLBC", "speex")
"""The codecs a trunk may be restricted to, as SDP names them: those the media servers
transcode (PCMU, PCMA, G722, opus) and those phones offer that are relayed unchanged."""
_NAME_RE = re.compile(rf"[A-Za-z0-9._-]{{1,{TRUNK_NAME_MAX_LENGTH}}}")
_CALLER_ID_RE = re.compile(r"\+?[0-9]{1,31}")
_COUNTRY_CODE_RE = re.compile(r"[1-9][0-9]{0,2}")
_PREFIX_RE = re.compile(r"[0-9]{1,4}")


@dataclass(frozen=True, slots=True)
class TrunkInfo:
    """A trunk as administrators see it (no password: `has_password` says whether one is kept)."""

    tenant_domain: str
    name: str
    host: str
    port: int
    transport: str
    username: str | None
    has_password: bool
    register: bool
    max_calls: int
    caller_id: str | None
    enabled: bool
    probe_interval: int = DEFAULT_PROBE_INTERVAL
    down_after: int = DEFAULT_DOWN_AFTER
    up_after: int = DEFAULT_UP_AFTER
    codecs: str | None = None
    number_format: str = NumberFormat.AS_DIALLED.value
    country_code: str | None = None
    national_prefix: str | None = None
    international_prefix: str = DEFAULT_INTERNATIONAL_PREFIX

    @classmethod
    def of(cls, trunk: Trunk, tenant: Tenant) -> "TrunkInfo":
        return cls(tenant_domain=tenant.domain, name=trunk.name, host=trunk.host, port=trunk.port,
                   transport=TrunkTransport(trunk.transport).value, username=trunk.username,
                   has_password=trunk.password is not None, register=trunk.register,
                   max_calls=trunk.max_calls, caller_id=trunk.caller_id, enabled=trunk.enabled,
                   probe_interval=trunk.probe_interval, down_after=trunk.down_after, up_after=trunk.up_after,
                   codecs=trunk.codecs,
                   number_format=NumberFormat(trunk.number_format).value, country_code=trunk.country_code,
                   national_prefix=trunk.national_prefix, international_prefix=trunk.international_prefix)


class TrunkDao(Dao[Trunk]):
    model = Trunk
    searchable_columns = ("name", "host")


def _check_credentials(name: str, username: str | None, password: str | None, register: bool) -> None:
    if (username is None) != (password is None):
        raise InvalidValue(f"trunk {name}: a username and a password go together (a provider's "
                           "challenge needs both)")
    if register and username is None:
        raise InvalidValue(f"trunk {name}: --register needs a username and a password")


def validate_trunk_name(name: str, what: str = "trunk") -> str:
    if not _NAME_RE.fullmatch(name):
        raise InvalidValue(f"{what} name {name[:80]!r}: 1 to {TRUNK_NAME_MAX_LENGTH} letters, digits, "
                           "'.', '_' or '-'")
    return name


def parse_transport(text: str) -> TrunkTransport:
    try:
        return TrunkTransport(text.lower())
    except ValueError:
        raise InvalidValue(f"transport {text[:20]!r}: one of "
                           f"{', '.join(t.value for t in TrunkTransport)}") from None


def parse_codecs(name: str, text: str | None) -> str | None:
    """A trunk's codec list ("pcma, PCMU") as kept ("PCMA,PCMU"); None for any codec."""
    if text is None or not text.strip():
        return None
    known = {codec.upper(): codec for codec in TRUNK_CODECS}
    codecs = []
    for part in text.split(","):
        codec = known.get(part.strip().upper())
        if codec is None:
            raise InvalidValue(f"trunk {name}: codec {part.strip()[:20]!r} is unknown; known: "
                               f"{', '.join(TRUNK_CODECS)}")
        if codec in codecs:
            raise InvalidValue(f"trunk {name}: codec {codec} is named twice")
        codecs.append(codec)
    kept = ",".join(codecs)
    if len(kept) > CODECS_MAX_LENGTH:
        raise InvalidValue(f"trunk {name}: codecs: at most {CODECS_MAX_LENGTH} characters")
    return kept


def parse_number_format(name: str, text: str) -> NumberFormat:
    try:
        return NumberFormat(text.lower())
    except ValueError:
        raise InvalidValue(f"trunk {name}: number format {text[:20]!r}: one of "
                           f"{', '.join(f.value for f in NumberFormat)}") from None


def _check_numbering(name: str, number_format: NumberFormat, country_code: str | None,
                     national_prefix: str | None, international_prefix: str) -> None:
    if country_code is not None and not _COUNTRY_CODE_RE.fullmatch(country_code):
        raise InvalidValue(f"trunk {name}: country code {country_code[:10]!r}: 1 to 3 digits, not starting "
                           "with 0, without + (33, 44, 1)")
    prefixes = (("national prefix", national_prefix), ("international prefix", international_prefix))
    for what, prefix in prefixes:
        if prefix is not None and not _PREFIX_RE.fullmatch(prefix):
            raise InvalidValue(f"trunk {name}: {what} {prefix[:10]!r}: 1 to 4 digits (0, 00, 011)")
    if number_format is not NumberFormat.AS_DIALLED and country_code is None:
        raise InvalidValue(f"trunk {name}: number format {number_format.value} needs --country-code (and "
                           "--national-prefix where national numbers have one)")


class TrunkService:
    """Trunks of every tenant; `default_domain` names the tenant used when none is given."""

    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def add_trunk(self, name: str, *, host: str, port: int = 5060, transport: str = "udp",
                  username: str | None = None, password: str | None = None, register: bool = False,
                  max_calls: int = 0, caller_id: str | None = None, enabled: bool = True,
                  probe_interval: int = DEFAULT_PROBE_INTERVAL, down_after: int = DEFAULT_DOWN_AFTER,
                  up_after: int = DEFAULT_UP_AFTER, codecs: str | None = None,
                  number_format: str = NumberFormat.AS_DIALLED.value, country_code: str | None = None,
                  national_prefix: str | None = None,
                  international_prefix: str = DEFAULT_INTERNATIONAL_PREFIX, tenant_domain: str | None = None,
                  replace: bool = False, keep_password: bool = False) -> TrunkInfo:
        """Add (or, with `replace`, change) the trunk `name`; InvalidValue names what is wrong,
        AlreadyExists if the tenant has a trunk of that name and not `replace`. `keep_password`:
        a change without a password keeps the one the trunk has (a form never shows it)."""
        name = validate_trunk_name(name)
        try:
            host = validate_host(host)
        except InvalidValue as exc:
            raise InvalidValue(f"trunk {name}: host: {exc}") from None
        check_range(f"trunk {name}: port", port, PORT_RANGE)
        kind = parse_transport(transport)
        check_range(f"trunk {name}: max calls", max_calls, MAX_CALLS_RANGE, "(0: no limit)")
        for what, value in (("username", username), ("password", password)):
            if value is not None and not 0 < len(value) <= CREDENTIAL_MAX_LENGTH:
                raise InvalidValue(f"trunk {name}: {what} must be 1 to {CREDENTIAL_MAX_LENGTH} characters")
        if not keep_password:
            _check_credentials(name, username, password, register)
        if caller_id is not None and not _CALLER_ID_RE.fullmatch(caller_id):
            raise InvalidValue(f"trunk {name}: caller ID {caller_id[:40]!r} is not a number (digits, "
                               "an optional leading +)")
        check_range(f"trunk {name}: probe interval", probe_interval, PROBE_INTERVAL_RANGE, "seconds (0: off)")
        check_range(f"trunk {name}: down after", down_after, PROBES_IN_A_ROW_RANGE, "failed probes in a row")
        check_range(f"trunk {name}: up after", up_after, PROBES_IN_A_ROW_RANGE, "answered probes in a row")
        kept_codecs = parse_codecs(name, codecs)
        numbers = parse_number_format(name, number_format)
        _check_numbering(name, numbers, country_code, national_prefix, international_prefix)
        settings: dict[str, Any] = dict(host=host, port=port, transport=kind, username=username,
                                        password=password, register=register, max_calls=max_calls,
                                        caller_id=caller_id, enabled=enabled, probe_interval=probe_interval,
                                        down_after=down_after, up_after=up_after,
                                        codecs=kept_codecs, number_format=numbers, country_code=country_code,
                                        national_prefix=national_prefix,
                                        international_prefix=international_prefix)
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session)
            trunk = trunks.find_by(tenant_id=tenant.id, name=name)
            if trunk is not None and not replace:
                raise AlreadyExists(f"trunk {name} of {tenant.domain} already exists (replace it with "
                                    "--replace)")
            if keep_password:
                if password is None and trunk is not None and username is not None:
                    settings["password"] = trunk.password
                _check_credentials(name, username, settings["password"], register)
            if trunk is None:
                trunk = Trunk(tenant_id=tenant.id, name=name, **settings)
                try:
                    trunks.create(trunk)
                except IntegrityError:
                    raise AlreadyExists(f"trunk {name} of {tenant.domain} already exists") from None
            else:
                for column, value in settings.items():
                    setattr(trunk, column, value)
                session.flush()
            return TrunkInfo.of(trunk, tenant)

    def list_trunks(self, tenant_domain: str | None = None) -> list[TrunkInfo]:
        """The tenant's trunks, by name."""
        with self._sessions() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session).find_all_by(tenant_id=tenant.id)
            return sorted((TrunkInfo.of(trunk, tenant) for trunk in trunks), key=lambda t: t.name)

    def delete_trunk(self, name: str, tenant_domain: str | None = None) -> None:
        """Delete the trunk; NotFound if there is none, InvalidValue while a route uses it."""
        with self._sessions.begin() as session:
            tenant = tenant_by_domain(session, tenant_domain, default_domain=self._default_domain)
            trunks = TrunkDao(session=session)
            trunk = trunks.find_by(tenant_id=tenant.id, name=name)
            if trunk is None:
                raise NotFound("Trunk", {"name": name, "tenant": tenant.domain})
            routes = sorted(set(session.scalars(
                select(OutboundRoute.name).join(OutboundRouteTrunk)
                .where(OutboundRouteTrunk.trunk_id == trunk.id))))
            if routes:
                raise InvalidValue(f"trunk {name} of {tenant.domain} is used by route(s) "
                                   f"{', '.join(routes)}: change or delete them first")
            trunks.delete(trunk)

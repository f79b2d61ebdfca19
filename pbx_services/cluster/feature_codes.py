"""Feature codes: what a user dials to change its own settings or reach a service from its phone.

Every tenant has the default codes below; `pbx tenant set DOMAIN --feature-code dnd_on=*98`
gives one feature another code in that tenant (`dnd_on=default` gives the default back), and
the default code then means nothing there. A code is 1 to 16 of `0-9 * #`; two features of a
tenant never share one, and a code is never a number of the tenant's dial plan (an extension,
a menu...: `numbering`). Two features take a number after their code, in the same dial string
(`*721005`: forward always to 1005; `**1002`: pick up the call ringing 1002): no other code
may start with theirs, or it could never be dialled.

Where a dialled code goes (`Feature.role`): pickup is the Call Manager's own; every other
feature is answered by an application server, which is sent the feature's *service number*,
its default code (with the number after it): the servers know features by those alone, so
a tenant's own codes change nothing on them. The Call Manager reads the tenants' codes with
the rest of its directory (`callmanager.directory`), within 10 seconds of a change.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import TenantDao
from pbx_services.cluster.models import FeatureCode, ServerRole, Tenant, User
from pbx_services.cluster.models.feature_code import FEATURE_CODE_MAX_LENGTH
from pbx_services.cluster.numbering import number_owner
from pbx_services.cluster.queues import AGENT_FEATURE_CODES
from pbx_services.cluster.validation import InvalidValue, validate_domain
from pbx_services.cluster.voicemail import VOICEMAIL_MENU

_CODE_RE = re.compile(rf"[0-9*#]{{1,{FEATURE_CODE_MAX_LENGTH}}}")
DEFAULT = "default"
"""The code given in `--feature-code NAME=default` to go back to the feature's default."""


class Feature(enum.StrEnum):
    FORWARD_ON = "forward_on"
    """Forward always to the number dialled after the code (or asked for)."""
    FORWARD_OFF = "forward_off"
    DND_ON = "dnd_on"
    DND_OFF = "dnd_off"
    VOICEMAIL_MENU = "voicemail_menu"
    PICKUP = "pickup"
    """Answer a call ringing a phone of the caller's pickup group."""
    DIRECTED_PICKUP = "directed_pickup"
    """Answer the call ringing the extension dialled after the code."""
    AGENT_LOGIN = "agent_login"
    AGENT_LOGOUT = "agent_logout"
    AGENT_PAUSE = "agent_pause"
    AGENT_UNPAUSE = "agent_unpause"

    @property
    def default_code(self) -> str:
        return DEFAULT_CODES[self]

    @property
    def takes_number(self) -> bool:
        """The code is followed by a number in the same dial string."""
        return self in (Feature.FORWARD_ON, Feature.DIRECTED_PICKUP)

    @property
    def role(self) -> ServerRole | None:
        """The application servers that answer it; None: the Call Manager itself (pickup)."""
        if self in (Feature.PICKUP, Feature.DIRECTED_PICKUP):
            return None
        if self.value.startswith("agent_"):
            return ServerRole.QUEUE
        return ServerRole.IVR


_FEATURE_NAMES = frozenset(feature.value for feature in Feature)
"""Rows naming another feature (of a later version, rolled back) are ignored."""
_AGENT_CODES = {action: code for code, action in AGENT_FEATURE_CODES.items()}
DEFAULT_CODES: dict[Feature, str] = {
    Feature.FORWARD_ON: "*72",
    Feature.FORWARD_OFF: "*73",
    Feature.DND_ON: "*78",
    Feature.DND_OFF: "*79",
    Feature.VOICEMAIL_MENU: VOICEMAIL_MENU,
    Feature.PICKUP: "*8",
    Feature.DIRECTED_PICKUP: "**",
    Feature.AGENT_LOGIN: _AGENT_CODES["login"],
    Feature.AGENT_LOGOUT: _AGENT_CODES["logout"],
    Feature.AGENT_PAUSE: _AGENT_CODES["pause"],
    Feature.AGENT_UNPAUSE: _AGENT_CODES["unpause"],
}


@dataclass(frozen=True, slots=True)
class FeatureMatch:
    """A dial string that is a feature code of the tenant."""

    feature: Feature
    argument: str
    """The number dialled after the code ("" when none)."""

    @property
    def service_number(self) -> str:
        """What the application server answering it is sent: the default code, then the number."""
        return self.feature.default_code + self.argument


@dataclass(frozen=True, slots=True)
class FeatureCodeSet:
    """One tenant's code of every feature."""

    codes: dict[Feature, str]

    @classmethod
    def with_changes(cls, changes: dict[Feature, str]) -> FeatureCodeSet:
        """The defaults, with `changes` (a tenant's rows) in their place."""
        return cls({feature: changes.get(feature, feature.default_code) for feature in Feature})

    def match(self, dialed: str) -> FeatureMatch | None:
        """The feature `dialed` dials, if any: a code exactly, or the code of a feature that takes
        a number followed by one."""
        for feature, code in self.codes.items():
            if dialed == code:
                return FeatureMatch(feature, "")
        for feature, code in self.codes.items():
            if feature.takes_number and dialed.startswith(code):
                return FeatureMatch(feature, dialed[len(code):])
        return None

    def check(self) -> None:
        """InvalidValue naming the features when two share a code, or a code starts with the code
        of a feature that takes a number (it could never be dialled)."""
        by_code: dict[str, Feature] = {}
        for feature, code in self.codes.items():
            other = by_code.setdefault(code, feature)
            if other is not feature:
                raise InvalidValue(f"feature code {code}: both {other.value} and {feature.value} would "
                                   "have it")
        for feature, code in self.codes.items():
            for prefixed, prefix in self.codes.items():
                if prefixed.takes_number and prefixed is not feature and code.startswith(prefix):
                    raise InvalidValue(f"feature code {feature.value}={code} starts with {prefix}, the "
                                       f"code of {prefixed.value}, which is followed by a number: it could "
                                       "never be dialled")


@dataclass(frozen=True, slots=True)
class FeatureCodeInfo:
    feature: str
    code: str
    default: bool
    """The tenant has the default code for it."""


def validate_code(feature: Feature, code: str) -> str:
    if not _CODE_RE.fullmatch(code):
        raise InvalidValue(f"feature code {feature.value}={code[:40]!r}: 1 to {FEATURE_CODE_MAX_LENGTH} of "
                           "the digits 0-9, * and #")
    return code


def parse_assignment(text: str) -> tuple[Feature, str]:
    """(feature, code) of "NAME=CODE" (CODE `default`: the feature's default code); InvalidValue
    naming what is wrong."""
    name, equals, code = text.partition("=")
    name, code = name.strip().lower(), code.strip()
    if not equals or not name or not code:
        raise InvalidValue(f"feature code {text[:60]!r}: NAME=CODE (or NAME=default), e.g. dnd_on=*98")
    try:
        feature = Feature(name)
    except ValueError:
        raise InvalidValue(f"feature code {text[:60]!r}: no feature {name[:32]!r}; one of "
                           f"{', '.join(f.value for f in Feature)}") from None
    if code.lower() == DEFAULT:
        return feature, feature.default_code
    return feature, validate_code(feature, code)


def load_feature_codes(connection: Connection) -> dict[str, FeatureCodeSet]:
    """Every tenant's codes that are not the defaults, by domain (a tenant without any is left out)."""
    changes: dict[str, dict[Feature, str]] = {}
    rows = connection.execute(select(Tenant.domain, FeatureCode.feature, FeatureCode.code)
                              .join(Tenant, Tenant.id == FeatureCode.tenant_id))
    for domain, feature, code in rows:
        if feature in _FEATURE_NAMES:
            changes.setdefault(domain, {})[Feature(feature)] = code
    return {domain: FeatureCodeSet.with_changes(codes) for domain, codes in changes.items()}


DEFAULT_SET = FeatureCodeSet.with_changes({})


class FeatureCodeService:
    def __init__(self, *, sessions: sessionmaker[Session], default_domain: str) -> None:
        self._sessions = sessions
        self._default_domain = default_domain

    def describe(self, domain: str | None = None) -> list[FeatureCodeInfo]:
        """The tenant's code of every feature; NotFound if no tenant has `domain`."""
        with self._sessions() as session:
            codes = self._codes(session, self._tenant(session, domain))
        return [FeatureCodeInfo(feature=f.value, code=code, default=code == f.default_code)
                for f, code in codes.codes.items()]

    def set_codes(self, domain: str | None, assignments: list[str]) -> list[FeatureCodeInfo]:
        """Give features of the tenant the codes of `assignments` ("NAME=CODE"); all or none, and
        InvalidValue naming the code when two features would share one or a code is a number of
        the tenant's dial plan."""
        changes = dict(parse_assignment(text) for text in assignments)
        with self._sessions.begin() as session:
            tenant = self._tenant(session, domain)
            codes = self._codes(session, tenant)
            merged = FeatureCodeSet({**codes.codes, **changes})
            merged.check()
            for feature, code in changes.items():
                if code != codes.codes[feature]:
                    _check_not_a_number(session, tenant, feature, code)
            session.execute(delete(FeatureCode).where(FeatureCode.tenant_id == tenant.id,
                                                      FeatureCode.feature.in_([f.value for f in changes])))
            session.flush()
            session.add_all(FeatureCode(tenant_id=tenant.id, feature=feature.value, code=code)
                            for feature, code in merged.codes.items()
                            if feature in changes and code != feature.default_code)
        return self.describe(domain)

    def _tenant(self, session: Session, domain: str | None) -> Tenant:
        return TenantDao(session=session).get_by(domain=validate_domain(domain or self._default_domain))

    @staticmethod
    def _codes(session: Session, tenant: Tenant) -> FeatureCodeSet:
        rows = session.execute(select(FeatureCode.feature, FeatureCode.code)
                               .where(FeatureCode.tenant_id == tenant.id))
        return FeatureCodeSet.with_changes({Feature(feature): code for feature, code in rows
                                            if feature in _FEATURE_NAMES})


def _check_not_a_number(session: Session, tenant: Tenant, feature: Feature, code: str) -> None:
    """InvalidValue when `code` is a number of the tenant (or, for a feature followed by a
    number, the start of an extension: that extension could no longer be dialled)."""
    owner = number_owner(session, tenant.id, code)
    if owner is not None and owner != f"feature code {code}":
        raise InvalidValue(f"feature code {feature.value}={code}: {code} is already {owner} of "
                           f"{tenant.domain}")
    if feature.takes_number:
        shadowed = session.scalar(select(User.extension).where(
            User.tenant_id == tenant.id, User.extension.startswith(code, autoescape=True)).limit(1))
        if shadowed is not None:
            raise InvalidValue(f"feature code {feature.value}={code}: extension {shadowed} of "
                               f"{tenant.domain} starts with it")

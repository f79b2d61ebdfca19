"""Who the Call Manager's users are: tenants by SIP domain and users' digest credentials.

Read from the system of record and kept for a short time, so a REGISTER costs no
database round trip while a user added, changed or removed with `pbx user` takes
effect within `ttl` seconds.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import Engine, bindparam, select

from ..appserver.cache import ExpiringLru
from ..cluster.feature_codes import DEFAULT_SET, FeatureCodeSet, FeatureMatch, load_feature_codes
from ..cluster.models import CallQueue, IvrMenu, Mailbox, MeetingRoom, ServerRole, Tenant, User
from ..cluster.voicemail import DEPOSIT_PREFIX
from .auth import UserCredentials

# Built once: a lookup per REGISTER must not pay for building and compiling a statement.
_CREDENTIALS = (
    select(User.tenant_id, User.ha1_md5, User.ha1_sha256, User.permission, User.max_calls,
           User.withhold_number, Tenant.max_calls.label("tenant_max_calls"))
    .join(Tenant, Tenant.id == User.tenant_id)
    .where(Tenant.domain == bindparam("domain"), User.extension == bindparam("extension"),
           User.enabled.is_(True))
)
_DOMAINS = select(Tenant.id, Tenant.domain)
_PICKUP_GROUP = (
    select(User.pickup_group).join(Tenant, Tenant.id == User.tenant_id)
    .where(Tenant.domain == bindparam("domain"), User.extension == bindparam("extension"))
)
# The numbers of the dial plan that application servers answer, by role.
_SERVICE_NUMBERS = (
    (ServerRole.IVR, select(Tenant.domain, IvrMenu.number).join(Tenant, Tenant.id == IvrMenu.tenant_id)),
    (ServerRole.MEETING,
     select(Tenant.domain, MeetingRoom.number).join(Tenant, Tenant.id == MeetingRoom.tenant_id)),
    (ServerRole.QUEUE,
     select(Tenant.domain, CallQueue.number).join(Tenant, Tenant.id == CallQueue.tenant_id)),
    # Voicemail runs on the IVR servers: a mailbox's deposit number, vm*EXT.
    (ServerRole.IVR, select(Tenant.domain, DEPOSIT_PREFIX + User.extension)
     .join(Tenant, Tenant.id == User.tenant_id).join(Mailbox, Mailbox.user_id == User.id)),
)


class Directory:
    def __init__(self, *, engine: Engine, default_domain: str, local_names: Iterable[str] = (),
                 ttl: float = 10.0, max_cached: int = 200_000) -> None:
        """`local_names`: other names of the default tenant's domain (see `realm_for`)."""
        self._engine = engine
        self.default_domain = default_domain
        self._default_names = frozenset({default_domain, "localhost", *local_names})
        self._ttl = ttl
        self._max_cached = max_cached
        self._users: OrderedDict[tuple[str, str], tuple[float, UserCredentials | None]] = OrderedDict()
        self._domains: dict[str, int] = {}
        self._services: dict[tuple[str, str], ServerRole] = {}
        self._feature_codes: dict[str, FeatureCodeSet] = {}
        """The tenants' feature codes that are not all the defaults, by domain."""
        self._pickup_groups: ExpiringLru[tuple[str, str], str | None] = ExpiringLru(ttl=ttl,
                                                                                   max_weight=max_cached)
        self._domains_loaded_at = float("-inf")
        self._now = 0.0

    def tick(self, now: float) -> None:
        """Advance the directory's notion of time (cache expiry); the controller calls it."""
        self._now = now
        if now - self._domains_loaded_at >= self._ttl:
            with self._engine.connect() as connection:
                self._domains = {domain: tenant_id for tenant_id, domain in connection.execute(_DOMAINS)}
                self._services = {(domain, number): role for role, query in _SERVICE_NUMBERS
                                  for domain, number in connection.execute(query)}
                self._feature_codes = load_feature_codes(connection)
            self._domains_loaded_at = now

    def realm_for(self, host: str) -> str | None:
        """The tenant domain (digest realm) a request for `host` belongs to; None: none of ours.

        A tenant's domain is that tenant's. An IP address (the PBX's, as phones set up by
        address use), the default domain and its other names (`local_names`), and an empty
        host mean the default tenant. Any other name is no tenant's: the request is refused.
        Names compare without case (RFC 3261 19.1.4); the tenants' domains are kept in lower case.
        """
        host = host.lower()
        if host in self._domains:
            return host
        if not host or host in self._default_names or _is_ip_address(host):
            return self.default_domain
        return None

    def tenant_id(self, domain: str) -> int | None:
        """The id of the tenant whose SIP domain is `domain`, None if no tenant's."""
        return self._domains.get(domain)

    def credentials(self, domain: str, extension: str) -> UserCredentials | None:
        key = (domain, extension)
        cached = self._users.get(key)
        if cached is not None and self._now - cached[0] < self._ttl:
            return cached[1]
        with self._engine.connect() as connection:
            row = connection.execute(_CREDENTIALS, {"domain": domain, "extension": extension}).first()
        found = (UserCredentials(tenant_id=row.tenant_id, domain=domain, extension=extension,
                                 ha1_md5=row.ha1_md5, ha1_sha256=row.ha1_sha256,
                                 permission=str(row.permission), max_calls=row.max_calls,
                                 tenant_max_calls=row.tenant_max_calls,
                                 withhold_number=row.withhold_number) if row else None)
        self._users[key] = (self._now, found)
        self._users.move_to_end(key)
        if len(self._users) > self._max_cached:
            self._users.popitem(last=False)
        return found

    def extension_exists(self, domain: str, extension: str) -> bool:
        return self.credentials(domain, extension) is not None

    def service_role(self, domain: str, number: str) -> ServerRole | None:
        """Which application servers answer `number` of the tenant (an IVR menu's), if any."""
        return self._services.get((domain, number))

    def feature(self, domain: str, dialed: str) -> FeatureMatch | None:
        """The feature `dialed` is the code of in the tenant (`cluster.feature_codes`), if any."""
        return self._feature_codes.get(domain, DEFAULT_SET).match(dialed)

    def pickup_group(self, domain: str, extension: str) -> str | None:
        """The user's pickup group ("": its tenant's default one); None if no user has `extension`."""
        key = (domain, extension)
        entry = self._pickup_groups.lookup(key, self._now)
        if entry is not None:
            return entry.value
        with self._engine.connect() as connection:
            row = connection.execute(_PICKUP_GROUP, {"domain": domain, "extension": extension}).first()
        return self._pickup_groups.store(key, None if row is None else row.pickup_group or "", self._now)


def _is_ip_address(host: str) -> bool:
    """`host` (as a SIP URI has it: IPv6 in brackets) is an IP address, not a name."""
    try:
        ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return False
    return True

"""Typed configuration of the PBX: defaults, then a YAML file, then the environment.

Every section is a frozen pydantic model that forbids unknown keys, so a typo stops
start-up instead of being ignored. An environment variable `PBX_<SECTION>__<KEY>`
overrides one key (`PBX_SIP__PORT=5070`); list keys take a comma-separated value
(`PBX_SIP__TRANSPORTS=udp`). Every problem is raised as one `ConfigError` that names the
key, the offending value and, for the environment, the variable it came from:

    config error: sip.port: Input should be less than or equal to 65535 (got 70000)
"""

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from pbx_services.cluster.validation import validate_domain, validate_host
from pbx_services.rtp.tones import TONE_PLANS

DEFAULT_DATA_DIR = Path("/var/lib/pbx")
CONFIG_FILE_NAME = "pbx.yml"
DATABASE_FILE_NAME = "pbx.sqlite3"
DEFAULT_DOMAIN = "pbx.local"
ENV_PREFIX = "PBX_"
ENV_SEPARATOR = "__"
AUTH_SECRET_MIN_LENGTH = 32

# Keys whose value is never echoed in an error message (a database URL may hold a password).
_SECRET_KEYS = {("auth", "secret"), ("database", "url"), ("smtp", "password"),
                ("portal", "session_secret")}


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one `key: reason` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("config error: " + "; ".join(problems))
        self.problems = problems


def sqlite_url_for(data_dir: Path) -> str:
    """The URL of the SQLite database kept in `data_dir`."""
    return f"sqlite:///{(data_dir / DATABASE_FILE_NAME).absolute()}"


def _check_network(value: Any) -> Any:
    if isinstance(value, str):
        # strict: "10.0.0.1/8" is a mistake for "10.0.0.0/8", not a network
        return ipaddress.ip_network(value.strip())
    return value


SUPPORTED_DATABASES = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/NAME"
POSTGRESQL_DRIVER_INSTALL = "pip install 'pbx-services[postgresql]'"


def _check_database_url(value: str) -> str:
    """A URL of a database pbx works with, whose driver is installed: a missing one stops every
    daemon and command here, with the fix, instead of as a traceback when the engine is made."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError("not a database URL (like sqlite:////var/lib/pbx/pbx.sqlite3)") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}; {SUPPORTED_DATABASES}")
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"unknown driver {url.drivername!r}; {SUPPORTED_DATABASES}") from None
    driver = f"{backend}+{dialect.driver}"
    if dialect.is_async:
        raise ValueError(f"{driver} is an asyncio driver, which pbx does not use; {SUPPORTED_DATABASES}")
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        fix = (POSTGRESQL_DRIVER_INSTALL if driver == "postgresql+psycopg"
               else f"use postgresql+psycopg://, whose driver {POSTGRESQL_DRIVER_INSTALL} installs")
        raise ValueError(f"the driver for {driver} is not installed ({exc}): {fix}") from None
    return value


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("lists the same value twice")
    return values


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


Host = Annotated[str, AfterValidator(validate_host)]
Domain = Annotated[str, AfterValidator(validate_domain)]
Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(_check_network)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseConfig(_Section):
    url: Annotated[str, AfterValidator(_check_database_url)] = sqlite_url_for(DEFAULT_DATA_DIR)
    """SQLAlchemy URL of the system of record; SQLite in the data dir unless set."""


class SipConfig(_Section):
    host: Host = "127.0.0.1"
    """Address the SIP transports bind to."""
    port: int = Field(default=5060, ge=1, le=65535)
    transports: Annotated[tuple[Literal["udp", "tcp"], ...], Field(min_length=1), AfterValidator(_unique)] = (
        "udp",
        "tcp",
    )
    max_message_size: int = Field(default=65535, ge=1024, le=1_048_576)
    """Largest SIP message accepted, in bytes; larger ones are answered 513."""
    public_address: Host | None = None
    """Address put in Via and Contact instead of `host` when the PBX is behind NAT."""
    node_host: Host | None = None
    """An address of this host SIP also listens on, which never moves, unlike a VIP in `host`:
    keepalived's check and operators' probes use it."""
    tcp_max_connections: int = Field(default=10_000, ge=1, le=1_000_000)
    """SIP TCP connections one process holds at most (accepted and opened), kept below its
    descriptor limit beside its RTP ports and the rest; when full, a new connection takes the
    place of the oldest one that has not sent a message yet, or is refused."""
    tcp_max_connections_per_source: int = Field(default=1_000, ge=1, le=1_000_000)
    """Accepted SIP TCP connections from one IP address (phones behind one NAT share one)."""
    tcp_first_message_timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds an accepted TCP connection has to deliver its first complete SIP message."""
    tcp_idle_timeout: float = Field(default=3660.0, gt=0, le=86400)
    """Seconds without a complete SIP message or keep-alive (CRLFCRLF, RFC 5626) after which a
    TCP connection is closed. Above registrar.max_expires, so that a phone that re-registers
    but sends no keep-alive keeps the connection calls reach it on."""


class CallManagerConfig(_Section):
    default_domain: Domain = DEFAULT_DOMAIN
    """SIP domain of the default tenant: users added without a tenant belong to it."""
    local_names: tuple[Domain, ...] = ()
    """Other names phones may use as the SIP domain of the default tenant (the DNS name of the
    VIP...). An IP address always means the default tenant; a name that is neither one of these
    nor a tenant's domain is refused (403 Unknown Domain)."""
    no_answer_timeout: int = Field(default=60, ge=1, le=3600)
    """Seconds a call may ring before it ends with NO_ANSWER."""
    media_ping_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between control pings to every media endpoint."""
    media_down_after: int = Field(default=3, ge=1, le=100)
    """Missed pings in a row after which a media endpoint is down and its calls are re-homed."""
    media_up_after: int = Field(default=2, ge=1, le=100)
    """Answered pings in a row after which a down media endpoint takes calls again."""
    media_rehome_timeout: float = Field(default=15.0, gt=0, le=3600)
    """Seconds a call whose media endpoint died waits for one to take it (another, or the same
    worker restarted) before both phones get a BYE and the CDR says media_lost."""
    record_calls: bool = False
    """Record every answered call (both directions, a WAV per call; the path goes in the CDR)."""
    workers: int = Field(default=1, ge=0, le=256)
    """Call Manager processes sharing the SIP port (0: one per CPU); more than one needs state.url."""
    media_control_host: Host | None = None
    """Address of this host the media control socket binds to; `sip.host` unless set. Never the
    VIP: the media servers answer the Call Manager that asked, wherever the VIP has gone."""
    app_probe_interval: float = Field(default=1.0, gt=0, le=60)
    """Seconds between SIP OPTIONS probes of every application server (IVR, queue, meeting) worker."""
    app_down_after: int = Field(default=2, ge=1, le=100)
    """Unanswered probes in a row after which an application server worker takes no new calls."""
    app_up_after: int = Field(default=2, ge=1, le=100)
    """Answered probes in a row after which it takes calls again."""
    app_answer_timeout: float = Field(default=1.0, gt=0, le=30)
    """Seconds an application server has to answer a call before the next one of its role is tried."""
    cdr_journal_dir: Path = DEFAULT_DATA_DIR / "cdr-journal"
    """Local directory of the CDR journal: a call's CDR is on disk here before the phones are
    told the call ended, and in the database within a second (one file per worker process)."""


STATE_URL_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")


def _check_state_url(value: str) -> str:
    scheme = value.partition("://")[0]
    if "://" not in value or scheme not in STATE_URL_SCHEMES:
        raise ValueError("not a Redis URL (redis://HOST:PORT/DB, rediss://..., unix:///PATH, or "
                         "redis+sentinel://HOST:PORT,HOST:PORT/MASTER-NAME/DB)")
    return value


class StateConfig(_Section):
    url: Annotated[str, AfterValidator(_check_state_url)] | None = None
    """Redis holding what every Call Manager process shares (registrations, calls in progress,
    nonce-counts, blocked sources); none: kept in the one Call Manager process (all-in-one)."""
    timeout: float = Field(default=0.5, gt=0, le=10)
    """Seconds a Redis call may take before Redis counts as away."""


class MediaConfig(_Section):
    control_host: Host = "127.0.0.1"
    """Address the control protocol listens on (the Call Managers send to it)."""
    control_port: int = Field(default=2223, ge=1, le=65535)
    """Control port of the first worker; worker i listens on control_port + i."""
    rtp_host: Host = "127.0.0.1"
    """Address the RTP/RTCP ports bind to."""
    public_address: Host | None = None
    """Address put in SDP instead of `rtp_host` (behind NAT, or when bound to 0.0.0.0)."""
    port_min: int = Field(default=20000, ge=1024, le=65534)
    port_max: int = Field(default=29999, ge=1025, le=65535)
    """RTP port range (RTP on even ports, RTCP on the next odd one), shared out among the workers."""
    workers: int = Field(default=0, ge=0, le=256)
    """Worker processes of `pbx media`; 0 means one per CPU. The all-in-one runs one in-process."""
    rtp_timeout: int = Field(default=60, ge=1, le=86400)
    """Seconds without RTP from either leg after which a call's media is freed."""
    hold_timeout: int = Field(default=3600, ge=1, le=86400)
    """The same while the call is on hold (no RTP is expected then)."""
    recording_dir: Path = DEFAULT_DATA_DIR / "recordings"
    """Where call recordings (a stereo WAV per call) are written."""
    tone_plan: str = "us"
    """Country whose dial, ringback, busy and congestion tones are played (ITU-T E.180)."""
    embedded: bool = True
    """`pbx allinone` runs a media server in its own process (control on control_port)."""

    @field_validator("tone_plan")
    @classmethod
    def _known_tone_plan(cls, value: str) -> str:
        if value not in TONE_PLANS:
            raise ValueError(f"unknown tone plan; known: {', '.join(sorted(TONE_PLANS))}")
        return value

    @model_validator(mode="after")
    def _port_range_in_order(self) -> "MediaConfig":
        if self.port_max - self.port_min < 3:
            raise ValueError(
                f"port_min ({self.port_min}) must be at least 4 below port_max ({self.port_max})")
        return self


class AppServerConfig(_Section):
    """What every SIP application server (IVR, queue, meeting) is configured with; each role's
    section has its own defaults (ports apart, so that all fit on one host)."""

    sip_host: Host = "127.0.0.1"
    """Address SIP listens on (the Call Managers send calls to it)."""
    sip_port: int = Field(default=5090, ge=1, le=65535)
    """SIP port (UDP) of the first worker; worker i listens on sip_port + i."""
    rtp_host: Host = "127.0.0.1"
    """Address the calls' RTP ports bind to."""
    public_address: Host | None = None
    """Address put in SDP and Contact instead of the bound one (behind NAT, or bound to 0.0.0.0)."""
    port_min: int = Field(default=30000, ge=1024, le=65534)
    port_max: int = Field(default=31999, ge=1025, le=65535)
    """RTP port range (RTP on even ports), shared out among the workers."""
    workers: int = Field(default=0, ge=0, le=256)
    """Worker processes; 0 means one per CPU. The all-in-one runs one in-process."""
    rtp_timeout: int = Field(default=60, ge=1, le=86400)
    """Seconds without RTP from the caller after which a call is hung up."""
    max_call_seconds: int = Field(default=3600, ge=10, le=86400)
    """A call longer than this is hung up (a caller who forgot the phone off-hook)."""
    recording_dir: Path = DEFAULT_DATA_DIR / "recordings"
    """Where calls' recordings are written."""
    embedded: bool = True
    """`pbx allinone` runs one worker of this server in its own process."""

    @model_validator(mode="after")
    def _port_range_in_order(self) -> "AppServerConfig":
        if self.port_max - self.port_min < 3:
            raise ValueError(
                f"port_min ({self.port_min}) must be at least 4 below port_max ({self.port_max})")
        return self


class IvrConfig(AppServerConfig):
    pass


class MeetingConfig(AppServerConfig):
    sip_port: int = Field(default=5100, ge=1, le=65535)
    port_min: int = Field(default=32000, ge=1024, le=65534)
    port_max: int = Field(default=33999, ge=1025, le=65535)


class QueueConfig(AppServerConfig):
    sip_port: int = Field(default=5110, ge=1, le=65535)
    port_min: int = Field(default=34000, ge=1024, le=65534)
    port_max: int = Field(default=35999, ge=1025, le=65535)


def _check_email_address(value: str) -> str:
    if value.count("@") != 1 or not all(value.split("@")) or any(c.isspace() for c in value):
        raise ValueError("not an email address (like pbx@example.com)")
    return value


class SmtpConfig(_Section):
    """The mail server voicemail (and later alerts) is sent through; no host: no email is sent."""

    host: Host | None = None
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    """Upgrade the connection with STARTTLS before authenticating (port 587 usually)."""
    tls: bool = False
    """Speak TLS from the first byte (implicit TLS, SMTPS: port 465 usually)."""
    username: str | None = None
    password: SecretStr | None = None
    """With `username`: log in (AUTH) before sending."""
    from_address: Annotated[str, AfterValidator(_check_email_address)] = "pbx@localhost"
    """The From of the messages sent."""
    timeout: float = Field(default=10.0, gt=0, le=300)
    """Seconds one exchange with the server may take."""

    @model_validator(mode="after")
    def _login_complete(self) -> "SmtpConfig":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password: give both to log in, or neither")
        return self

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> "SmtpConfig":
        if self.starttls and self.tls:
            raise ValueError("starttls and tls: STARTTLS upgrades a plain connection, tls starts with TLS; "
                             "choose one")
        return self


class AlertsConfig(_Section):
    """E-mail alerts on servers going down and coming back (see `cluster/alerts.py` for the rules,
    which are Prometheus Alertmanager's); sent through the `smtp` section's server."""

    recipients: Annotated[tuple[Annotated[str, AfterValidator(_check_email_address)], ...],
                          AfterValidator(_unique)] = ()
    """Who gets the alert e-mails; none: no alert e-mail is sent."""
    group_wait: float = Field(default=30, ge=0, le=3600)
    """Seconds a first alert waits for others of its role, to go out in one e-mail."""
    group_interval: float = Field(default=300, gt=0, le=86400)
    """Seconds between two e-mails about one role's servers (a change waits for the next)."""
    repeat_interval: float = Field(default=14400, gt=0, le=7 * 86400)
    """Seconds after which servers still down are e-mailed about again."""

    @model_validator(mode="after")
    def _repeat_after_interval(self) -> "AlertsConfig":
        if self.repeat_interval < self.group_interval:
            raise ValueError(f"repeat_interval ({self.repeat_interval:g}) is shorter than group_interval "
                             f"({self.group_interval:g}): a group is looked at only every group_interval")
        return self


class RegistrarConfig(_Section):
    min_expires: int = Field(default=60, ge=1)
    """Shorter registrations are answered 423 Interval Too Brief."""
    max_expires: int = Field(default=3600, ge=1)
    default_expires: int = Field(default=3600, ge=1)
    max_contacts: int = Field(default=10, ge=1, le=1000)
    """Contacts kept per address of record."""

    @model_validator(mode="after")
    def _expires_in_order(self) -> "RegistrarConfig":
        if self.min_expires > self.max_expires:
            raise ValueError(
                f"min_expires ({self.min_expires}) is greater than max_expires ({self.max_expires})"
            )
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                f"default_expires ({self.default_expires}) is not between min_expires "
                f"({self.min_expires}) and max_expires ({self.max_expires})"
            )
        return self


class AuthConfig(_Section):
    secret: SecretStr
    """Key of the digest nonces; required, hex, at least 32 characters (`pbx init` makes one)."""
    nonce_ttl: int = Field(default=300, ge=1)
    """Seconds a digest nonce stays valid."""
    algorithms: Annotated[
        tuple[Literal["SHA-256", "MD5"], ...], Field(min_length=1), AfterValidator(_unique)
    ] = ("SHA-256", "MD5")
    """Digest algorithms offered in challenges, most preferred first (RFC 8760).

    Clients that do SHA-256 follow the server's order. Some older clients fail on any
    challenge set holding SHA-256 (baresip 1.0) or read only the first challenge
    (sipsak, SIPVicious): for a fleet of those, offer [MD5] or [MD5, SHA-256].
    """

    @field_validator("secret")
    @classmethod
    def _secret_is_long_hex(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < AUTH_SECRET_MIN_LENGTH:
            raise ValueError(f"must be at least {AUTH_SECRET_MIN_LENGTH} hex characters, got {len(secret)}")
        try:
            bytes.fromhex(secret)
        except ValueError:
            raise ValueError("must be hex digits only (an even number of them)") from None
        return value


class PolicyConfig(_Section):
    auth_failure_limit: int = Field(default=5, ge=1)
    """Failed digest authentications from one source within the window before it is blocked."""
    auth_failure_window: int = Field(default=60, ge=1)
    """Seconds over which authentication failures are counted."""
    block_seconds: int = Field(default=600, ge=1)
    trusted_networks: tuple[Network, ...] = ()
    """Sources never blocked (CIDRs, e.g. the trunks' and the app servers' networks)."""


class HttpConfig(_Section):
    host: Host = "127.0.0.1"
    """Address of the daemon's HTTP endpoint (/health, /metrics)."""
    port: int = Field(default=9060, ge=0, le=65535)
    """Its port; 0 turns the endpoint off."""
    max_connections: int = Field(default=64, ge=1, le=10_000)
    """Connections it holds at once; when full, a new one takes the place of the oldest that
    has not sent its request yet, so that a flood of idle connections does not shut out /health."""
    max_connections_per_source: int = Field(default=16, ge=1, le=10_000)
    """Connections from one IP address."""


PORTAL_SESSION_SECRET_MIN_LENGTH = 32


class PortalConfig(_Section):
    """The web portal and its REST API (`pbx portal`, and the all-in-one's)."""

    host: Host = "127.0.0.1"
    """Address the portal listens on."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Its HTTP(S) port; 0: the all-in-one serves no portal."""
    workers: int = Field(default=2, ge=1, le=64)
    """gunicorn worker processes of `pbx portal`."""
    tls_cert: Path | None = None
    """PEM certificate (with its chain) to serve HTTPS; give tls_key too."""
    tls_key: Path | None = None
    """PEM private key of tls_cert."""
    session_secret: SecretStr | None = None
    """Key signing the session cookies, at least 32 characters, the same on every portal host;
    unless set, derived from auth.secret (the portal refuses to start with neither)."""
    session_minutes: int = Field(default=480, ge=1, le=43200)
    """Minutes a login lasts."""
    lockout_failures: int = Field(default=5, ge=1, le=1000)
    """Wrong passwords in a row after which an administrator's account is locked."""
    lockout_minutes: int = Field(default=15, ge=1, le=10080)
    """Minutes a locked account stays locked."""
    source_failures: int = Field(default=20, ge=1, le=100_000)
    """Failed logins (a wrong password, or a name no account has) from one address within
    lockout_minutes after which that address is refused for lockout_minutes without its
    password being checked (counted in the state store when there is one, else by each
    portal process)."""

    @field_validator("session_secret")
    @classmethod
    def _session_secret_is_long(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < PORTAL_SESSION_SECRET_MIN_LENGTH:
            raise ValueError(f"must be at least {PORTAL_SESSION_SECRET_MIN_LENGTH} characters, "
                             f"got {len(value.get_secret_value())}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> "PortalConfig":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key: give both to serve HTTPS, or neither")
        return self


class LogConfig(_Section):
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)] = (
        "INFO"
    )


class PbxConfig(_Section):
    """The whole configuration; build it with `load_config` or `build_config`."""

    database: DatabaseConfig = DatabaseConfig()
    sip: SipConfig = SipConfig()
    callmanager: CallManagerConfig = CallManagerConfig()
    state: StateConfig = StateConfig()
    media: MediaConfig = MediaConfig()
    ivr: IvrConfig = IvrConfig()
    meeting: MeetingConfig = MeetingConfig()
    queue: QueueConfig = QueueConfig()
    registrar: RegistrarConfig = RegistrarConfig()
    smtp: SmtpConfig = SmtpConfig()
    alerts: AlertsConfig = AlertsConfig()
    auth: AuthConfig | None = None
    """Required by the Call Manager (`build_config(needs_auth=True)`); a media node has no use for it."""
    policy: PolicyConfig = PolicyConfig()
    http: HttpConfig = HttpConfig()
    portal: PortalConfig = PortalConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _workers_share_a_store(self) -> "PbxConfig":
        if self.callmanager.workers != 1 and self.state.url is None:
            raise ValueError("callmanager.workers: several Call Manager workers share registrations and "
                             "calls through Redis: set state.url too")
        return self

    @model_validator(mode="after")
    def _alerts_have_a_mail_server_and_a_bus(self) -> "PbxConfig":
        if self.alerts.recipients and self.smtp.host is None:
            raise ValueError("alerts.recipients: alert e-mails are sent through smtp.host: set it too")
        if self.alerts.recipients and self.state.url is None:
            raise ValueError("alerts.recipients: the portal reads the servers' events from the cluster's bus "
                             "and shares the sending with the other portals in Redis: set state.url too")
        return self

    def embedded_ports_clash(self) -> str | None:
        """Where the roles the all-in-one runs in one process would take each other's ports."""
        rtp: list[tuple[str, int, int]] = [("media", self.media.port_min, self.media.port_max)] \
            if self.media.embedded else []
        sip: list[tuple[str, int]] = [("sip", self.sip.port)]
        for name, section in (("ivr", self.ivr), ("meeting", self.meeting), ("queue", self.queue)):
            if not section.embedded:
                continue
            for other, low, high in rtp:
                if section.port_min <= high and low <= section.port_max:
                    return (f"{name}.port_min: its RTP ports {section.port_min}-{section.port_max} overlap "
                            f"{other}'s {low}-{high}")
            for other, port in sip:
                if section.sip_port == port:
                    return f"{name}.sip_port: {port} is {other}'s SIP port too"
            rtp.append((name, section.port_min, section.port_max))
            sip.append((name, section.sip_port))
        return None


def load_config(
    path: Path | None,
    *,
    env: Mapping[str, str] = os.environ,
    data_dir: Path | None = None,
    needs_auth: bool = True,
) -> PbxConfig:
    """Read the YAML file at `path` (if any), apply `env` overrides and validate.

    With `data_dir`, the default database is the SQLite file in that directory, and the
    recordings go to its `recordings/`.
    """
    document: Mapping[str, Any] = {}
    if path is not None:
        document = _read_yaml(path)
    return build_config(document, env=env, data_dir=data_dir, needs_auth=needs_auth)


def build_config(
    document: Mapping[str, Any],
    *,
    env: Mapping[str, str] = os.environ,
    data_dir: Path | None = None,
    needs_auth: bool = True,
) -> PbxConfig:
    """Validate a configuration given as the mapping a YAML file holds, with `env` overrides.

    `needs_auth`: the `auth` section (its secret) is required, as the Call Manager needs it.
    """
    layered: dict[str, Any] = {section: {} for section in PbxConfig.model_fields}
    if data_dir is not None:
        layered["database"]["url"] = sqlite_url_for(data_dir)
        layered["media"]["recording_dir"] = str(data_dir / "recordings")
        layered["ivr"]["recording_dir"] = str(data_dir / "recordings")
        layered["meeting"]["recording_dir"] = str(data_dir / "recordings")
        layered["queue"]["recording_dir"] = str(data_dir / "recordings")
        layered["callmanager"]["cdr_journal_dir"] = str(data_dir / "cdr-journal")
    _merge(layered, document)
    env_overrides, env_sources, problems = _read_env(env)
    _merge(layered, env_overrides)
    auth_missing = not layered["auth"]
    if auth_missing:
        del layered["auth"]
    key_problems: list[str] = []
    try:
        config = PbxConfig.model_validate(layered)
    except ValidationError as exc:
        key_problems = [_describe(error, env_sources) for error in exc.errors()]
    if auth_missing and needs_auth:
        key_problems.append("auth.secret: Field required")
    problems += sorted(key_problems, key=_section_order)
    if problems:
        raise ConfigError(problems)
    return config


def _section_order(problem: str) -> int:
    """Where a problem's section stands in the config (unknown sections last), to report in order."""
    section = re.split(r"[.:]", problem, maxsplit=1)[0]
    sections = list(PbxConfig.model_fields)
    return sections.index(section) if section in sections else len(sections)


def _merge(into: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for section, values in layer.items():
        if values is None:
            continue  # a section whose keys are all commented out
        if isinstance(values, Mapping) and isinstance(into.get(section), dict):
            into[section].update(values)
        else:
            into[section] = values


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key given twice instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read: {exc}"]) from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError([f"{path}: {where}: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError([f"{path}: expected a mapping of sections, got {type(document).__name__}"])
    return document


_EnvSources = dict[tuple[str, ...], str]


def _read_env(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], _EnvSources, list[str]]:
    """Turn `PBX_<SECTION>__<KEY>` variables into a layer; variables without `__` are not ours."""
    overrides: dict[str, dict[str, Any]] = {}
    sources: _EnvSources = {}
    problems: list[str] = []
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition(ENV_SEPARATOR)
        section_field = PbxConfig.model_fields.get(section)
        if section_field is None:
            problems.append(f"{section}: unknown section (from {name})")
            continue
        annotation = section_field.annotation
        section_model = next(model for model in (annotation, *get_args(annotation))
                             if isinstance(model, type) and issubclass(model, BaseModel))
        key_field = section_model.model_fields.get(key)
        if key_field is None:
            problems.append(f"{section}.{key}: unknown key (from {name})")
            continue
        is_list = get_origin(key_field.annotation) is tuple
        overrides.setdefault(section, {})[key] = (
            [item.strip() for item in value.split(",") if item.strip()] if is_list else value
        )
        sources[(section, key)] = name
    return overrides, sources, problems


def _describe(error: Any, env_sources: _EnvSources) -> str:
    location = tuple(str(part) for part in error["loc"])
    key = ".".join(location)
    if not key:
        # A rule across sections: its message names the keys itself.
        return str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    # Lists are kept as tuples (the config is frozen), but YAML and the reader call them lists.
    message = error["msg"].removeprefix("Value error, ").replace("Tuple should", "List should")
    source = env_sources.get(location[:2]) if len(location) >= 2 else None
    value = error["input"]
    if error["type"] == "missing" or location[:2] in _SECRET_KEYS or isinstance(value, Mapping):
        shown = ""
    else:
        shown = f"got {value!r}"
    if source:
        shown = f"{shown} from {source}" if shown else f"from {source}"
    return f"{key}: {message} ({shown})" if shown else f"{key}: {message}"

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pbx_services.cluster.config import ConfigError, PbxConfig, build_config, load_config, sqlite_url_for

SECRET = "0123456789abcdef" * 4


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pbx.yml"
    path.write_text(text)
    return path


def config_error(document: dict, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        build_config(document, env=env or {})
    return str(raised.value)


def test_defaults_need_only_the_secret() -> None:
    config = build_config({"auth": {"secret": SECRET}}, env={})

    assert config.sip.host == "127.0.0.1"
    assert config.sip.port == 5060
    assert config.sip.transports == ("udp", "tcp")
    assert config.sip.max_message_size == 65535
    assert config.sip.public_address is None
    assert (config.sip.tcp_max_connections, config.sip.tcp_max_connections_per_source) == (10_000, 1_000)
    assert (config.sip.tcp_first_message_timeout, config.sip.tcp_idle_timeout) == (10.0, 3660.0)
    assert (config.http.max_connections, config.http.max_connections_per_source) == (64, 16)
    assert config.callmanager.default_domain == "pbx.local"
    assert config.callmanager.no_answer_timeout == 60
    assert (config.registrar.min_expires, config.registrar.max_expires) == (60, 3600)
    assert (config.registrar.default_expires, config.registrar.max_contacts) == (3600, 10)
    assert config.auth.secret.get_secret_value() == SECRET
    assert config.auth.nonce_ttl == 300
    assert config.auth.algorithms == ("SHA-256", "MD5")
    assert config.policy.auth_failure_limit == 5
    assert config.policy.auth_failure_window == 60
    assert config.policy.block_seconds == 600
    assert config.policy.trusted_networks == ()
    assert config.log.level == "INFO"
    assert config.database.url == "sqlite:////var/lib/pbx/pbx.sqlite3"


def test_database_defaults_to_the_data_dir(tmp_path: Path) -> None:
    config = build_config({"auth": {"secret": SECRET}}, env={}, data_dir=tmp_path)

    assert config.database.url == f"sqlite:///{tmp_path}/pbx.sqlite3" == sqlite_url_for(tmp_path)


def test_database_url_may_list_every_database_host() -> None:
    url = ("postgresql+psycopg://pbx:p%40ss@/pbx?host=10.20.0.21:5432&host=10.20.0.22:5432"
           "&target_session_attrs=read-write")

    config = build_config({"auth": {"secret": SECRET}, "database": {"url": url}}, env={})

    assert config.database.url == url


SUPPORTED = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/NAME"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("foo://somewhere/db", f"database.url: unsupported database 'foo'; {SUPPORTED}"),
        ("mysql+mysqldb://pbx:s3cr3t@db/pbx", f"database.url: unsupported database 'mysql'; {SUPPORTED}"),
        ("postgresql+nodriver://pbx:s3cr3t@db/pbx",
         f"database.url: unknown driver 'postgresql+nodriver'; {SUPPORTED}"),
        ("postgresql+pg8000://pbx:s3cr3t@db/pbx",
         "database.url: the driver for postgresql+pg8000 is not installed (No module named 'pg8000'): use "
         "postgresql+psycopg://, whose driver pip install 'pbx-services[postgresql]' installs"),
        ("postgresql+asyncpg://pbx:s3cr3t@db/pbx",
         f"database.url: postgresql+asyncpg is an asyncio driver, which pbx does not use; {SUPPORTED}"),
    ],
)
def test_database_url_needs_a_supported_database_and_its_driver(url: str, expected: str) -> None:
    error = config_error({"auth": {"secret": SECRET}, "database": {"url": url}})

    assert error == f"config error: {expected}"
    assert "s3cr3t" not in error


def test_database_url_with_psycopg_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails as if not installed

    error = config_error({"auth": {"secret": SECRET}},
                         env={"PBX_DATABASE__URL": "postgresql+psycopg://pbx:s3cr3t@db/pbx"})

    assert error.startswith(
        "config error: database.url: the driver for postgresql+psycopg is not installed (")
    assert error.endswith("): pip install 'pbx-services[postgresql]' (from PBX_DATABASE__URL)")
    assert "s3cr3t" not in error


def test_yaml_file_then_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
sip:
  port: 5080
  transports: [udp]
  public_address: 203.0.113.7
auth:
  secret: {SECRET}
policy:
  trusted_networks: [10.0.0.0/8, "2001:db8::/32"]
log:
  level: debug
""",
    )
    env = {
        "PBX_SIP__PORT": "5070",
        "PBX_AUTH__ALGORITHMS": "MD5",
        "PBX_DATA_DIR": "/ignored",
        "HOME": "/root",
    }

    config = load_config(path, env=env)

    assert config.sip.port == 5070
    assert config.sip.transports == ("udp",)
    assert config.sip.public_address == "203.0.113.7"
    assert config.auth.algorithms == ("MD5",)
    assert [str(network) for network in config.policy.trusted_networks] == ["10.0.0.0/8", "2001:db8::/32"]
    assert config.log.level == "DEBUG"


def test_environment_alone_can_configure(tmp_path: Path) -> None:
    config = load_config(None, env={"PBX_AUTH__SECRET": SECRET, "PBX_SIP__TRANSPORTS": "tcp, udp"})

    assert config.sip.transports == ("tcp", "udp")


def test_empty_file_and_empty_section_take_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, ""), env={"PBX_AUTH__SECRET": SECRET}).sip.port == 5060
    assert load_config(write(tmp_path, "sip:\n"), env={"PBX_AUTH__SECRET": SECRET}).sip.port == 5060


def test_out_of_range_value_names_the_key() -> None:
    message = config_error({"sip": {"port": 70000}, "auth": {"secret": SECRET}})

    assert message == "config error: sip.port: Input should be less than or equal to 65535 (got 70000)"


def test_bad_environment_value_names_the_variable() -> None:
    message = config_error({"auth": {"secret": SECRET}}, env={"PBX_CALLMANAGER__NO_ANSWER_TIMEOUT": "9999"})

    assert message == (
        "config error: callmanager.no_answer_timeout: Input should be less than or equal to 3600"
        " (got '9999' from PBX_CALLMANAGER__NO_ANSWER_TIMEOUT)"
    )


def test_missing_secret_is_an_error() -> None:
    assert config_error({}) == "config error: auth.secret: Field required"


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("abcdef", "must be at least 32 hex characters, got 6"),
        ("z" * 40, "must be hex digits only (an even number of them)"),
    ],
)
def test_bad_secret_is_never_echoed(secret: str, reason: str) -> None:
    message = config_error({"auth": {"secret": secret}})

    assert message == f"config error: auth.secret: {reason}"
    assert secret not in message


def test_secret_is_hidden_from_repr() -> None:
    assert SECRET not in repr(build_config({"auth": {"secret": SECRET}}, env={}))


def test_unknown_keys_and_sections_are_errors() -> None:
    message = config_error({"sip": {"prot": 5060}, "sipp": {}, "auth": {"secret": SECRET}})

    assert message == "config error: sip.prot: unknown key; sipp: unknown key"


def test_unknown_environment_keys_are_errors() -> None:
    message = config_error({"auth": {"secret": SECRET}}, env={"PBX_SIP__PROT": "1", "PBX_FOO__BAR": "1"})

    assert message == (
        "config error: foo: unknown section (from PBX_FOO__BAR); sip.prot: unknown key (from PBX_SIP__PROT)"
    )


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config({"sip": {"port": 0, "transports": ["udp", "sctp"]}, "log": {"level": "LOUD"}}, env={})

    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "sip.port",
        "sip.transports.1",
        "auth.secret",
        "log.level",
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {"sip": {"transports": []}},
            "sip.transports: List should have at least 1 item after validation, not 0",
        ),
        ({"sip": {"transports": ["udp", "udp"]}}, "sip.transports: lists the same value twice"),
        ({"sip": {"host": "not a host!"}}, "sip.host: domain 'not a host!' is not a valid DNS name"),
        (
            {"sip": {"max_message_size": 100}},
            "sip.max_message_size: Input should be greater than or equal to 1024",
        ),
        (
            {"callmanager": {"no_answer_timeout": 0}},
            "callmanager.no_answer_timeout: Input should be greater than or equal to 1",
        ),
        ({"callmanager": {"default_domain": "-bad-"}}, "callmanager.default_domain: domain '-bad-' is not"),
        ({"callmanager": {"local_names": ["ok.example", "no way"]}},
         "callmanager.local_names.1: domain 'no way' is not"),
        ({"auth": {"algorithms": ["SHA-512"]}}, "auth.algorithms.0: Input should be 'SHA-256' or 'MD5'"),
        (
            {"policy": {"trusted_networks": ["10.0.0.1/8"]}},
            "policy.trusted_networks.0: 10.0.0.1/8 has host bits set",
        ),
        (
            {"policy": {"trusted_networks": ["nowhere"]}},
            "policy.trusted_networks.0: 'nowhere' does not appear",
        ),
        ({"database": {"url": "not a url"}}, "database.url: not a database URL"),
        (
            {"log": {"level": "LOUD"}},
            "log.level: Input should be 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'",
        ),
        (
            {"registrar": {"default_expires": 30}},
            "registrar: default_expires (30) is not between min_expires (60)",
        ),
        (
            {"registrar": {"min_expires": 7200}},
            "registrar: min_expires (7200) is greater than max_expires (3600)",
        ),
        ({"sip": 5060}, "sip: Input should be a valid dictionary or instance of SipConfig (got 5060)"),
        (
            {"sip": {"tcp_max_connections": -1}},
            "sip.tcp_max_connections: Input should be greater than or equal to 1 (got -1)",
        ),
        (
            {"sip": {"tcp_max_connections_per_source": 0}},
            "sip.tcp_max_connections_per_source: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"sip": {"tcp_first_message_timeout": -5}},
            "sip.tcp_first_message_timeout: Input should be greater than 0 (got -5)",
        ),
        ({"sip": {"tcp_idle_timeout": "soon"}}, "sip.tcp_idle_timeout: Input should be a valid number"),
        (
            {"http": {"max_connections": 0}},
            "http.max_connections: Input should be greater than or equal to 1 (got 0)",
        ),
        (
            {"http": {"max_connections_per_source": -1}},
            "http.max_connections_per_source: Input should be greater than or equal to 1 (got -1)",
        ),
    ],
)
def test_invalid_values_name_their_key(document: dict, expected: str) -> None:
    document = {"auth": {"secret": SECRET, **document.pop("auth", {})}, **document}

    assert config_error(document).startswith(f"config error: {expected}")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sip:\n  port: 5060\n  host: [unclosed\nauth: {}\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert str(raised.value).startswith(f"config error: {path}: line 4, column 5: ")


def test_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, f"auth:\n  secret: {SECRET}\nsip:\n  port: 5060\n  port: 5070\n")

    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})

    assert str(raised.value) == f"config error: {path}: line 5, column 3: key 'port' is given twice"


def test_file_must_hold_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, "- sip\n- auth\n"), env={})

    assert str(raised.value).endswith("expected a mapping of sections, got list")


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "absent.yml", env={})

    assert str(raised.value) == f"config error: {tmp_path / 'absent.yml'}: file not found"


def test_config_is_frozen() -> None:
    config = build_config({"auth": {"secret": SECRET}}, env={})

    with pytest.raises(ValidationError):
        config.sip.port = 5070  # type: ignore[misc]
    assert isinstance(config, PbxConfig)


def test_a_media_node_needs_no_auth_secret() -> None:
    config = build_config({"media": {"control_port": 3000}}, env={}, needs_auth=False)

    assert config.auth is None and config.media.control_port == 3000


@pytest.mark.parametrize(("document", "expected"), [
    ({}, None),
    ({"meeting": {"port_min": 30500, "port_max": 30999}},
     "meeting.port_min: its RTP ports 30500-30999 overlap ivr's 30000-31999"),
    ({"ivr": {"port_min": 29000}}, "ivr.port_min: its RTP ports 29000-31999 overlap media's 20000-29999"),
    ({"meeting": {"sip_port": 5090}}, "meeting.sip_port: 5090 is ivr's SIP port too"),
    ({"ivr": {"sip_port": 5060}}, "ivr.sip_port: 5060 is sip's SIP port too"),
    ({"ivr": {"embedded": False, "sip_port": 5060}, "meeting": {"port_min": 30500, "port_max": 30999}}, None),
])
def test_the_all_in_one_roles_need_ports_of_their_own(document: dict[str, dict[str, object]],
                                                      expected: str | None) -> None:
    config = build_config({**document, "auth": {"secret": SECRET}}, env={})
    assert config.embedded_ports_clash() == expected

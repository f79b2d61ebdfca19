"""The portal section of the config: a wrong value is refused naming its key."""

from __future__ import annotations

from typing import Any

import pytest

from pbx_services.cluster.config import ConfigError, build_config
from pbx_services.portal import session_secret

SECRET = "0123456789abcdef" * 4


def problems(portal: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as error:
        build_config({"portal": portal}, env=env or {}, needs_auth=False)
    return error.value.problems


def test_defaults() -> None:
    portal = build_config({}, env={}, needs_auth=False).portal

    assert (portal.host, portal.port, portal.workers) == ("127.0.0.1", 8080, 2)
    assert (portal.lockout_failures, portal.lockout_minutes, portal.session_minutes) == (5, 15, 480)
    assert portal.tls_cert is None and portal.session_secret is None


def test_wrong_values_name_their_key() -> None:
    assert problems({"port": 70000}) == [
        "portal.port: Input should be less than or equal to 65535 (got 70000)"]
    assert problems({"lockout_failures": 0}) == [
        "portal.lockout_failures: Input should be greater than or equal to 1 (got 0)"]
    assert problems({"tls_cert": "/etc/ssl/portal.pem"}) == [
        "portal: tls_cert and tls_key: give both to serve HTTPS, or neither"]
    assert problems({"session_minutes": "a day"})[0].startswith(
        "portal.session_minutes: Input should be a valid integer")
    assert problems({"lockout": 5}) == ["portal.lockout: unknown key"]


def test_a_short_session_secret_is_refused_without_echoing_it() -> None:
    found = problems({"session_secret": "tooshort"})

    assert found == ["portal.session_secret: must be at least 32 characters, got 8"]
    assert "tooshort" not in found[0]


def test_an_environment_variable_is_named_when_its_value_is_wrong() -> None:
    assert problems({}, env={"PBX_PORTAL__WORKERS": "0"}) == [
        "portal.workers: Input should be greater than or equal to 1 (got '0' from PBX_PORTAL__WORKERS)"]


def test_the_session_key_comes_from_the_section_or_from_auth_secret() -> None:
    own = build_config({"portal": {"session_secret": "s" * 40}}, env={}, needs_auth=False)
    derived = build_config({"auth": {"secret": SECRET}}, env={})
    neither = build_config({}, env={}, needs_auth=False)

    assert session_secret(own) == b"s" * 40
    assert len(session_secret(derived)) == 32 and SECRET.encode() not in session_secret(derived)
    with pytest.raises(ConfigError) as error:
        session_secret(neither)
    assert error.value.problems == [
        "portal.session_secret: Field required (or auth.secret, to derive it from)"]

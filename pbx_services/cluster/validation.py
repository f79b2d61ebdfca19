"""Checks of the names and secrets that administrators type, shared by config, CLI and import.

Each check returns the normalized value or raises `InvalidValue` with a message that says
exactly what is wrong and is safe to show (it never echoes a password).
"""

import ipaddress
import re

EXTENSION_MAX_LENGTH = 32
PASSWORD_MIN_LENGTH = 4
DOMAIN_MAX_LENGTH = 253
EMAIL_MAX_LENGTH = 254
DISPLAY_NAME_MAX_LENGTH = 128

_EXTENSION_RE = re.compile(r"[A-Za-z0-9._-]+")
_DOMAIN_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+")


class InvalidValue(ValueError):
    """A value given by an administrator (argument, CSV field, config key) is not acceptable."""


def validate_extension(value: str) -> str:
    """An extension is the SIP user part: letters, digits and `._-`, 1 to 32 characters."""
    if not value:
        raise InvalidValue("extension is empty")
    if len(value) > EXTENSION_MAX_LENGTH:
        raise InvalidValue(f"extension {value[:40]!r} is longer than {EXTENSION_MAX_LENGTH} characters")
    if not _EXTENSION_RE.fullmatch(value):
        raise InvalidValue(f"extension {value!r} may only contain letters, digits, '.', '_' and '-'")
    return value


def validate_password(value: str) -> str:
    if len(value) < PASSWORD_MIN_LENGTH:
        raise InvalidValue(f"password is shorter than {PASSWORD_MIN_LENGTH} characters")
    return value


def validate_domain(value: str) -> str:
    """A SIP domain (also the digest realm): a DNS name, returned lower-cased."""
    domain = value.strip().lower()
    if not domain:
        raise InvalidValue("domain is empty")
    if len(domain) > DOMAIN_MAX_LENGTH:
        raise InvalidValue(f"domain is longer than {DOMAIN_MAX_LENGTH} characters")
    if not all(_DOMAIN_LABEL_RE.fullmatch(label) for label in domain.split(".")):
        raise InvalidValue(f"domain {value!r} is not a valid DNS name")
    return domain


def validate_email(value: str) -> str:
    if len(value) > EMAIL_MAX_LENGTH or not _EMAIL_RE.fullmatch(value):
        raise InvalidValue(f"email {value!r} is not an email address")
    return value


def validate_display_name(value: str) -> str:
    if len(value) > DISPLAY_NAME_MAX_LENGTH:
        raise InvalidValue(f"name is longer than {DISPLAY_NAME_MAX_LENGTH} characters")
    return value


TRUE_WORDS = frozenset({"1", "on", "true", "yes"})
FALSE_WORDS = frozenset({"", "0", "off", "false", "no"})


def parse_flag(what: str, text: str) -> bool:
    """A yes/no value as people and tools write it (TRUE_WORDS, FALSE_WORDS, any case);
    InvalidValue naming `what` for anything else, rather than taking it for no."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidValue(f"{what}: yes or no (true or false, 1 or 0), not {text[:20]!r}")


def check_range(what: str, value: int, allowed: range, unit: str = "") -> None:
    """InvalidValue naming `what` when `value` is not in `allowed` (a range of step 1)."""
    if value not in allowed:
        raise InvalidValue(f"{what} {value} is out of range: {allowed.start} to {allowed.stop - 1}"
                           f"{' ' + unit if unit else ''}")


def validate_host(value: str) -> str:
    """An IP address (normalized) or a domain name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return validate_domain(value)

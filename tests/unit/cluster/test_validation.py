import pytest

from pbx_services.cluster.validation import (
    InvalidValue,
    validate_display_name,
    validate_domain,
    validate_email,
    validate_extension,
    validate_password,
)


@pytest.mark.parametrize("extension", ["1001", "alice", "a.b_c-d", "x" * 32])
def test_good_extensions(extension: str) -> None:
    assert validate_extension(extension) == extension


@pytest.mark.parametrize(
    ("extension", "reason"),
    [
        ("", "extension is empty"),
        ("x" * 33, "is longer than 32 characters"),
        ("10 01", "may only contain"),
        ("alice@x", "may only contain"),
        ("é", "may only contain"),
    ],
)
def test_bad_extensions(extension: str, reason: str) -> None:
    with pytest.raises(InvalidValue, match=reason):
        validate_extension(extension)


def test_password_length() -> None:
    assert validate_password("abcd") == "abcd"
    with pytest.raises(InvalidValue, match="shorter than 4") as raised:
        validate_password("abc")
    assert "abc" not in str(raised.value).replace("characters", "")


@pytest.mark.parametrize(
    ("domain", "normalized"), [("PBX.Local", "pbx.local"), ("a-b.example", "a-b.example")]
)
def test_good_domains(domain: str, normalized: str) -> None:
    assert validate_domain(domain) == normalized


@pytest.mark.parametrize("domain", ["", "-a.example", "a..example", "a_b.example", "x" * 64 + ".example"])
def test_bad_domains(domain: str) -> None:
    with pytest.raises(InvalidValue):
        validate_domain(domain)


def test_email_and_name() -> None:
    assert validate_email("jo@example.org") == "jo@example.org"
    with pytest.raises(InvalidValue, match="not an email address"):
        validate_email("jo at example.org")
    with pytest.raises(InvalidValue, match="longer than 128"):
        validate_display_name("n" * 129)

"""A service's message goes next to the field it is about."""

from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.forms import GENERAL, FieldErrors

FIELDS = ("extension", "email", "max_calls", "name")


def test_a_message_goes_to_the_field_it_starts_with() -> None:
    errors = FieldErrors()

    errors.from_invalid(InvalidValue("extension 'a b' may only contain letters"), FIELDS)
    errors.from_invalid(InvalidValue("max calls: not a whole number ('x')"), FIELDS)
    errors.from_invalid(InvalidValue("Email 'x' is not an email address"), FIELDS)

    assert errors == {"extension": "extension 'a b' may only contain letters",
                      "max_calls": "max calls: not a whole number ('x')",
                      "email": "Email 'x' is not an email address"}


def test_a_message_about_no_field_goes_above_the_form_and_the_first_one_stays() -> None:
    errors = FieldErrors()

    errors.from_invalid(InvalidValue("the tenant has reached its limit"), FIELDS)
    errors.add("name", "first")
    errors.add("name", "second")

    assert errors.general == "the tenant has reached its limit"
    assert errors == {GENERAL: "the tenant has reached its limit", "name": "first"}

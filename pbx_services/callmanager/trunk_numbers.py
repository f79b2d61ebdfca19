"""Numbers as a trunk's provider wants them written: E.164, national, or as dialled.

A number is first read as an E.164 number when it can be: `+33612345678` already is one; the
international prefix (`00` in most of the world, `011` in North America) followed by a country
code is one (`0044207946000` is `+44207946000`); the national prefix followed by a national
number is one in the trunk's country (`0612345678` is `+33612345678` with country code 33 and
national prefix 0). Anything else (an extension, a short service number like `112`, a number
without its national prefix) is not a full number: it is sent as it is.

A full number is then written in the trunk's format:

    e164         +33612345678, +44207946000
    national     0612345678 (the trunk's country), 0044207946000 (any other)
    as-dialled   whatever the route made of the dialled number, untouched

The same rewrite serves both ways: the Request-URI and the caller ID of calls to the provider,
and the caller's number of calls from it (shown to the phone and kept in the CDR), so that a
number seen on a call can be dialled back through the same routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cluster.models.trunk import DEFAULT_INTERNATIONAL_PREFIX, NumberFormat

E164_PREFIX = "+"
E164_MAX_DIGITS = 15
"""ITU-T E.164: a country code and a national number, 15 digits at most."""


@dataclass(frozen=True, slots=True)
class NumberPlan:
    """How a trunk writes numbers, and what it needs to read them."""

    number_format: NumberFormat = NumberFormat.AS_DIALLED
    country_code: str | None = None
    """The trunk's country's calling code, digits without "+": "33"."""
    national_prefix: str | None = None
    """What precedes a national number dialled inside the country: "0" (None: nothing does)."""
    international_prefix: str = DEFAULT_INTERNATIONAL_PREFIX
    """What precedes a country code dialled from inside the country: "00" or "011"."""


def as_e164(number: str, plan: NumberPlan) -> str | None:
    """`number` as an E.164 number ("+33612345678"), None when it is not a full number."""
    if number.startswith(E164_PREFIX):
        digits = number[len(E164_PREFIX):]
    elif plan.international_prefix and number.startswith(plan.international_prefix):
        digits = number[len(plan.international_prefix):]
    elif plan.country_code and plan.national_prefix and number.startswith(plan.national_prefix):
        digits = plan.country_code + number[len(plan.national_prefix):]
    else:
        return None
    # A country code never starts with 0; "+" or the prefix alone is no number.
    if not digits.isdigit() or digits.startswith("0") or not 2 < len(digits) <= E164_MAX_DIGITS:
        return None
    return E164_PREFIX + digits


def written_for_trunk(number: str, plan: NumberPlan) -> str:
    """`number` written in the trunk's format; as it is when it is not a full number."""
    if plan.number_format is NumberFormat.AS_DIALLED:
        return number
    e164 = as_e164(number, plan)
    if e164 is None:
        return number
    if plan.number_format is NumberFormat.E164:
        return e164
    digits = e164[len(E164_PREFIX):]
    if plan.country_code and digits.startswith(plan.country_code):
        return (plan.national_prefix or "") + digits[len(plan.country_code):]
    return plan.international_prefix + digits

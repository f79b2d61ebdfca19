"""Numbers read as E.164 and written in a trunk's format (`callmanager.trunk_numbers`)."""

from __future__ import annotations

import pytest

from pbx_services.callmanager.trunk_numbers import NumberPlan, as_e164, written_for_trunk
from pbx_services.cluster.models import NumberFormat

FRANCE = NumberPlan(NumberFormat.E164, country_code="33", national_prefix="0")
NORTH_AMERICA = NumberPlan(NumberFormat.E164, country_code="1", national_prefix="1",
                           international_prefix="011")
ITALY = NumberPlan(NumberFormat.E164, country_code="39")
"""No national prefix: an Italian number keeps its 0 and cannot be told from a short one."""


@pytest.mark.parametrize(("number", "plan", "e164"), [
    ("+33612345678", FRANCE, "+33612345678"),
    ("0612345678", FRANCE, "+33612345678"),
    ("0033612345678", FRANCE, "+33612345678"),
    ("0044207946000", FRANCE, "+44207946000"),
    ("00", FRANCE, None),
    ("+", FRANCE, None),
    ("0", FRANCE, None),
    ("+0612345678", FRANCE, None),
    ("000612345678", FRANCE, None),
    ("1001", FRANCE, None),
    ("112", FRANCE, None),
    ("612345678", FRANCE, None),
    ("06 12", FRANCE, None),
    ("+3361234567890123", FRANCE, None),
    ("14155550123", NORTH_AMERICA, "+14155550123"),
    ("01144207946000", NORTH_AMERICA, "+44207946000"),
    ("4155550123", NORTH_AMERICA, None),
    ("0612345678", ITALY, None),
    ("0039061234567", ITALY, "+39061234567"),
    ("0612345678", NumberPlan(NumberFormat.E164, national_prefix="0"), None),
])
def test_a_number_reads_as_e164_only_when_it_is_a_full_number(number: str, plan: NumberPlan,
                                                              e164: str | None) -> None:
    assert as_e164(number, plan) == e164


NATIONAL_FRANCE = NumberPlan(NumberFormat.NATIONAL, country_code="33", national_prefix="0")
AS_DIALLED = NumberPlan(NumberFormat.AS_DIALLED, country_code="33", national_prefix="0")


@pytest.mark.parametrize(("number", "plan", "written"), [
    ("0612345678", FRANCE, "+33612345678"),
    ("0044207946000", FRANCE, "+44207946000"),
    ("+33612345678", FRANCE, "+33612345678"),
    ("1001", FRANCE, "1001"),
    ("112", FRANCE, "112"),
    ("+33612345678", NATIONAL_FRANCE, "0612345678"),
    ("0033612345678", NATIONAL_FRANCE, "0612345678"),
    ("0612345678", NATIONAL_FRANCE, "0612345678"),
    ("+44207946000", NATIONAL_FRANCE, "0044207946000"),
    ("+14155550123", NumberPlan(NumberFormat.NATIONAL, country_code="1", national_prefix="1",
                                international_prefix="011"), "14155550123"),
    ("+39061234567", NumberPlan(NumberFormat.NATIONAL, country_code="39"), "061234567"),
    ("+33612345678", AS_DIALLED, "+33612345678"),
    ("0033612345678", AS_DIALLED, "0033612345678"),
    ("0612345678", NumberPlan(NumberFormat.E164), "0612345678"),
])
def test_a_number_is_written_in_the_trunks_format(number: str, plan: NumberPlan, written: str) -> None:
    assert written_for_trunk(number, plan) == written

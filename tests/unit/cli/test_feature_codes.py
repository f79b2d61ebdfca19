"""`pbx tenant set --feature-code`, `pbx tenant feature-codes` and `pbx user set --pickup-group`."""

from pathlib import Path

import pytest

from .conftest import run


def test_a_tenant_s_feature_codes_are_set_and_listed(initialized: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    assert run(capsys, "tenant", "set", "pbx.local", "--feature-code", "dnd_on=*98", "--feature-code",
               "pickup=#8", "--data-dir", directory) == (0, "tenant pbx.local: dnd_on *98, pickup #8\n", "")

    lines = run(capsys, "tenant", "feature-codes", "pbx.local", "--data-dir", directory)[1].splitlines()
    assert lines[0].split() == ["FEATURE", "CODE", "DEFAULT"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["dnd_on"] == ["*98", "no"] and rows["dnd_off"] == ["*79", "yes"]
    assert rows["directed_pickup"] == ["**", "yes"] and len(rows) == 11


@pytest.mark.parametrize(("code", "message"), [
    ("dnd_on=*79", "feature code *79: both dnd_on and dnd_off would have it"),
    ("dnd_on", "feature code 'dnd_on': NAME=CODE"),
    ("dnd=*9", "no feature 'dnd'"),
    ("dnd_on=*x", "1 to 16 of the digits 0-9, * and #"),
])
def test_bad_feature_codes_are_refused_naming_them(initialized: Path, capsys: pytest.CaptureFixture[str],
                                                   code: str, message: str) -> None:
    status, _, err = run(capsys, "tenant", "set", "pbx.local", "--feature-code", code, "--data-dir",
                         str(initialized))
    assert status != 0
    assert message in err


def test_a_user_s_pickup_group(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    run(capsys, "user", "add", "1001", "--password", "s3cret!", "--data-dir", directory)

    status, out, _ = run(capsys, "user", "set", "1001", "--pickup-group", "sales", "--data-dir", directory)
    assert status == 0 and "pickup group sales," in out
    status, out, _ = run(capsys, "user", "set", "1001", "--pickup-group", "default", "--data-dir", directory)
    assert status == 0 and "pickup group default," in out
    status, _, err = run(capsys, "user", "set", "1001", "--pickup-group", "a b", "--data-dir", directory)
    assert status != 0 and "pickup group 'a b': 1 to 64 letters" in err

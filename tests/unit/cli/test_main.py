import pytest

from .conftest import run


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "pbx: the following arguments are required: COMMAND (see 'pbx --help')\n"),
        (
            ["user", "add", "1001"],
            "pbx user add: the following arguments are required: --password (see 'pbx user add --help')\n",
        ),
        (["frobnicate"], "pbx: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_usage_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, *argv)

    assert (status, out) == (2, "")
    assert err.startswith(message)
    assert len(err.splitlines()) == 1


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")

    assert status == 0
    assert all(command in out
               for command in ("init", "user", "server", "cdr", "allinone", "db", "inventory", "event"))

from pathlib import Path

import pytest

from .conftest import run


def test_user_add_list_del(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)

    assert run(
        capsys,
        "user",
        "add",
        "1001",
        "--password",
        "s3cret!",
        "--name",
        "Alice Smith",
        "--email",
        "alice@example.org",
        "--data-dir",
        directory,
    ) == (0, "added user 1001@pbx.local\n", "")
    assert run(capsys, "user", "add", "1002", "--password", "s3cret!", "--data-dir", directory)[0] == 0

    status, out, _ = run(capsys, "user", "list", "--data-dir", directory)
    assert status == 0
    assert out.splitlines() == [
        "EXTENSION  DOMAIN     NAME         EMAIL              ENABLED  PERMISSION  MAX CALLS  WITHHELD",
        "1001       pbx.local  Alice Smith  alice@example.org  yes      national    -          no",
        "1002       pbx.local                                  yes      national    -          no",
    ]

    assert run(capsys, "user", "del", "1001", "--data-dir", directory) == (
        0,
        "deleted user 1001@pbx.local\n",
        "",
    )
    assert [
        line.split()[0] for line in run(capsys, "user", "list", "--data-dir", directory)[1].splitlines()
    ] == [
        "EXTENSION",
        "1002",
    ]


def test_user_list_when_empty(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "user", "list", "--data-dir", str(initialized)) == (0, "no users\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "add", "1001", "--password", "abc"], "pbx: password is shorter than 4 characters\n"),
        (
            ["user", "add", "a b", "--password", "abcd"],
            "pbx: extension 'a b' may only contain letters, digits, '.', '_' and '-'\n",
        ),
        (
            ["user", "add", "1001", "--password", "abcd", "--tenant", "nowhere.example"],
            "pbx: Tenant not found: domain='nowhere.example'\n",
        ),
        (["user", "del", "1999"], "pbx: User not found: extension='1999', tenant='pbx.local'\n"),
        (
            ["user", "list", "--tenant", "nowhere.example"],
            "pbx: Tenant not found: domain='nowhere.example'\n",
        ),
    ],
)
def test_user_mistakes_are_one_line(
    initialized: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(capsys, *argv, "--data-dir", str(initialized)) == (1, "", message)


def test_user_add_twice(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(initialized))

    assert run(capsys, "user", "add", "1001", "--password", "abcd", "--data-dir", str(initialized)) == (
        1,
        "",
        "pbx: user 1001@pbx.local already exists\n",
    )


def test_user_import(initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "users.csv"
    csv_path.write_text(
        "extension,password,name\n" + "".join(f"{n},pass{n},User {n}\n" for n in range(2000, 2050))
    )

    assert run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized)) == (
        0,
        "imported 50 users\n",
        "",
    )
    assert len(run(capsys, "user", "list", "--data-dir", str(initialized))[1].splitlines()) == 51


def test_user_import_again_names_the_existing_users_once(
    initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "users.csv"
    csv_path.write_text("extension,password\n" + "".join(f"{n},pass{n}\n" for n in range(2000, 2050)))
    assert run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized))[0] == 0
    csv_path.write_text(csv_path.read_text() + "2050,pass2050\n2051,abc\n")

    status, out, err = run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized))

    # A bad value is still reported on its line, and nothing is imported.
    assert (status, out) == (1, "")
    assert err.splitlines() == [f"pbx: {csv_path}: line 53: password is shorter than 4 characters",
                                f"pbx: {csv_path}: 1 problem, nothing imported"]

    csv_path.write_text(csv_path.read_text().replace("2051,abc\n", ""))
    assert run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized)) == (
        0,
        "imported 1 user\n50 users already exist, skipped: 2000@pbx.local, 2001@pbx.local, 2002@pbx.local, "
        "2003@pbx.local, 2004@pbx.local (first 5)\n",
        "",
    )


def test_user_import_reports_bad_rows(
    initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = tmp_path / "users.csv"
    csv_path.write_text("extension,password\n2000,pass2000\n2001,abc\n2000,pass2000\n")

    status, out, err = run(capsys, "user", "import", str(csv_path), "--data-dir", str(initialized))

    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"pbx: {csv_path}: line 3: password is shorter than 4 characters",
        f"pbx: {csv_path}: line 4: extension 2000 of pbx.local is already on line 2",
        f"pbx: {csv_path}: 2 problems, nothing imported",
    ]
    assert run(capsys, "user", "list", "--data-dir", str(initialized))[1] == "no users\n"


def test_user_import_missing_file(
    initialized: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.csv"

    assert run(capsys, "user", "import", str(missing), "--data-dir", str(initialized)) == (
        1,
        "",
        f"pbx: {missing}: No such file or directory\n",
    )


def test_user_permission_and_call_limit_are_set_and_listed(initialized: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    assert run(capsys, "user", "add", "1001", "--password", "s3cret!", "--permission", "local",
               "--data-dir", directory)[0] == 0
    assert run(capsys, "user", "set", "1001", "--permission", "International", "--max-calls", "2",
               "--data-dir", directory) == (
        0, "user 1001@pbx.local: permission international, max calls 2, pickup group default, number shown "
           "toward trunks\n", "")
    assert run(capsys, "user", "list", "--data-dir", directory)[1].splitlines()[1].split()[-3:] == [
        "international", "2", "no"]


def test_a_users_number_is_withheld_toward_trunks_and_shown_again(initialized: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    assert run(capsys, "user", "add", "1001", "--password", "s3cret!", "--withhold-number",
               "--data-dir", directory)[0] == 0
    assert run(capsys, "user", "add", "1002", "--password", "s3cret!", "--data-dir", directory)[0] == 0
    listed = run(capsys, "user", "list", "--data-dir", directory)[1].splitlines()
    assert listed[0].split()[-1] == "WITHHELD" and [line.split()[-1] for line in listed[1:]] == ["yes", "no"]

    status, out, _ = run(capsys, "user", "set", "1001", "--no-withhold-number", "--data-dir", directory)
    assert (status, out.rstrip().rsplit(", ", 1)[-1]) == (0, "number shown toward trunks")
    status, out, _ = run(capsys, "user", "set", "1002", "--withhold-number", "--data-dir", directory)
    assert (status, out.rstrip().rsplit(", ", 1)[-1]) == (0, "number withheld toward trunks")
    listed = run(capsys, "user", "list", "--data-dir", directory)[1].splitlines()
    assert [line.split()[-1] for line in listed[1:]] == ["no", "yes"]


@pytest.mark.parametrize("command", [("add", "1001", "--password", "s3cret!"), ("set", "1001")])
def test_a_bad_permission_is_refused_naming_it_and_the_valid_ones(
        initialized: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]) -> None:
    directory = str(initialized)
    if command[0] == "set":
        run(capsys, "user", "add", "1001", "--password", "s3cret!", "--data-dir", directory)
    status, _, err = run(capsys, "user", *command, "--permission", "worldwide", "--data-dir", directory)
    assert status != 0
    assert "permission 'worldwide': one of internal, local, national, international, premium" in err
    status, _, err = run(capsys, "user", *command, "--permission", "emergency", "--data-dir", directory)
    assert status != 0
    assert "permission 'emergency'" in err


def test_tenant_call_limit_is_set_and_listed(initialized: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(initialized)
    assert run(capsys, "tenant", "add", "b.example", "--max-calls", "5", "--data-dir", directory)[0] == 0
    assert run(capsys, "tenant", "set", "pbx.local", "--max-calls", "3", "--data-dir", directory) == (
        0, "tenant pbx.local: name pbx.local, max calls 3\n", "")
    lines = run(capsys, "tenant", "list", "--data-dir", directory)[1].splitlines()
    assert lines[0].split()[:5] == ["DOMAIN", "NAME", "DEFAULT", "MAX", "CALLS"]
    assert [line.split()[3] for line in lines[1:]] == ["5", "3"]
    status, _, err = run(capsys, "tenant", "set", "pbx.local", "--max-calls", "-1", "--data-dir", directory)
    assert status != 0
    assert "tenant pbx.local: max calls -1 is out of range" in err

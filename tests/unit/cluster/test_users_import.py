"""CSV import: the whole file is checked, every bad row reported, nothing imported unless all is good."""

import hashlib
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.models import Tenant, User
from pbx_services.cluster.users import CsvImportError, ImportResult, RowProblem, UserService

from .conftest import DEFAULT_DOMAIN, OTHER_DOMAIN


@pytest.fixture
def service(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> UserService:
    return UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def user_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def csv_file(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "users.csv"
    path.write_bytes(text.encode(encoding))
    return path


def problems_of(service: UserService, path: Path) -> list[str]:
    with pytest.raises(CsvImportError) as raised:
        service.import_csv(path)
    assert str(raised.value).endswith("nothing imported")
    return [str(problem) for problem in raised.value.problems]


def test_import_every_column(service: UserService, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "Extension,Password,Name,Email,Tenant\n"
        "1001,pass1001,Alice,alice@example.org,\n"
        '1002 , pass1002 ,"Bob, Jr.",,\n'
        "\n"
        f"1001,other1001,,,{OTHER_DOMAIN.upper()}\n",
    )

    assert service.import_csv(path) == ImportResult(imported=3, existing=())

    users = {(user.tenant.domain, user.extension): user for user in service.list_users()}
    assert set(users) == {(DEFAULT_DOMAIN, "1001"), (DEFAULT_DOMAIN, "1002"), (OTHER_DOMAIN, "1001")}
    alice = users[(DEFAULT_DOMAIN, "1001")]
    assert (alice.display_name, alice.email, alice.enabled) == ("Alice", "alice@example.org", True)
    assert users[(DEFAULT_DOMAIN, "1002")].display_name == "Bob, Jr."
    assert users[(DEFAULT_DOMAIN, "1002")].email is None
    assert users[(DEFAULT_DOMAIN, "1002")].ha1_md5 == hashlib.md5(b"1002:pbx.example:pass1002").hexdigest()
    other = users[(OTHER_DOMAIN, "1001")]
    assert other.ha1_sha256 == hashlib.sha256(b"1001:other.example:other1001").hexdigest()


def test_the_policy_columns_are_imported_and_empty_ones_take_the_defaults(
        service: UserService, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "extension,password,permission,max_calls,pickup_group,withhold_number\n"
        "1001,pass1001,International,2,sales,yes\n"
        "1002,pass1002,,,,\n"
        "1003,pass1003,internal,0,default,FALSE\n",
    )

    assert service.import_csv(path).imported == 3

    users = {user.extension: user for user in service.list_users()}
    assert [(u.permission.value, u.max_calls, u.pickup_group, u.withhold_number) for u in users.values()] == [
        ("international", 2, "sales", True), ("national", 0, None, False), ("internal", 0, None, False)]


def test_a_bad_policy_value_is_reported_naming_it(service: UserService, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "extension,password,permission,max_calls,pickup_group,withhold_number\n"
        "1001,pass1001,galactic,2,sales,yes\n"
        "1002,pass1002,local,many,,\n"
        "1003,pass1003,local,100001,a b,\n"
        "1004,pass1004,local,1,,maybe\n",
    )

    problems = problems_of(service, path)

    assert problems[0].startswith("line 2: permission 'galactic': one of internal, local")
    assert problems[1:] == [
        "line 3: max calls 'many': a whole number (0: no limit)",
        "line 4: max calls 100001 is out of range: 0 to 100000 (0: no limit); pickup group 'a b': 1 to 64 "
        "letters, digits, '.', '_' and '-' (or 'default': the tenant's group)",
        "line 5: withhold number: yes or no (true or false, 1 or 0), not 'maybe'",
    ]


def test_only_required_columns_and_a_bom(service: UserService, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "password,extension\r\npass1,1001\r\n", encoding="utf-8-sig")

    assert service.import_csv(path).imported == 1


def test_every_bad_row_is_reported_and_nothing_imported(
    service: UserService, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    service.add_user("1500", "pass1")
    path = csv_file(
        tmp_path,
        "extension,password,name,email,tenant\n"
        "1001,pass1,,,\n"  # 2: good
        "10 02,pass1,,,\n"  # 3: bad extension
        "1003,abc,,,\n"  # 4: short password
        "1004,,,,\n"  # 5: empty password
        "1001,pass1,,,\n"  # 6: duplicate of line 2
        "1500,pass1,,,\n"  # 7: already in the database: skipped, no problem
        "1007,pass1,,,nowhere.example\n"  # 8: unknown tenant
        "1008,pass1\n"  # 9: wrong column count
        "1009,pass1,,not-an-email,\n"  # 10: bad email
        "1001,pass1,,,other.example\n"  # 11: good: same extension, other tenant
        "x y,ab,,,\n",  # 12: two problems in one row
    )

    problems = problems_of(service, path)

    assert problems == [
        "line 3: extension '10 02' may only contain letters, digits, '.', '_' and '-'",
        "line 4: password is shorter than 4 characters",
        "line 5: password is shorter than 4 characters",
        "line 6: extension 1001 of pbx.example is already on line 2",
        "line 8: unknown tenant 'nowhere.example'",
        "line 9: expected 5 fields, got 2",
        "line 10: email 'not-an-email' is not an email address",
        "line 12: extension 'x y' may only contain letters, digits, '.', '_' and '-'; "
        "password is shorter than 4 characters",
    ]
    assert user_count(sessions) == 1


def test_users_that_exist_are_skipped_and_named_once(service: UserService, sessions: sessionmaker[Session],
                                                     tmp_path: Path) -> None:
    header = "extension,password,tenant\n"
    first = csv_file(tmp_path, header + "".join(f"{1000 + n},pass{n:04},\n" for n in range(1000)))
    assert service.import_csv(first) == ImportResult(imported=1000, existing=())

    again = tmp_path / "again.csv"
    again.write_text(header + "".join(f"{1000 + n},pass{n:04},\n" for n in range(1000))
                     + f"2000,pass2000,\n1000,pass1000,{OTHER_DOMAIN}\n")
    result = service.import_csv(again)

    assert result.imported == 2
    assert len(result.existing) == 1000
    assert result.existing_summary() == (
        "1,000 users already exist, skipped: 1000@pbx.example, 1001@pbx.example, 1002@pbx.example, "
        "1003@pbx.example, 1004@pbx.example (first 5)")
    assert user_count(sessions) == 1002


def test_one_existing_user_is_named_without_a_count_of_the_first() -> None:
    assert ImportResult(imported=0, existing=("1001@pbx.example",)).existing_summary() == (
        "1 user already exists, skipped: 1001@pbx.example")
    assert ImportResult(imported=3, existing=()).existing_summary() is None


def test_extension_too_long(service: UserService, tmp_path: Path) -> None:
    path = csv_file(tmp_path, f"extension,password\n{'9' * 33},pass1\n")

    assert problems_of(service, path) == ["line 2: extension '" + "9" * 33 + "' is longer than 32 characters"]


def test_line_numbers_count_physical_lines(service: UserService, tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'extension,password,name\n1001,pass1,"two\nlines"\n\n1002,ab,x\n')

    assert problems_of(service, path) == ["line 5: password is shorter than 4 characters"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["line 1: the file is empty (expected a header row)"]),
        ("extension,name\n1001,x\n", ["line 1: missing column 'password'"]),
        (
            "extension,password,pin\n1001,pass1,1234\n",
            ["line 1: unknown column 'pin' (columns are: extension, password, name, email, tenant, "
             "permission, max_calls, pickup_group, withhold_number)"],
        ),
        ("extension,password,extension\n", ["line 1: column 'extension' is given twice"]),
    ],
)
def test_bad_header(service: UserService, tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems_of(service, csv_file(tmp_path, text)) == expected


def test_not_utf8(service: UserService, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "extension,password,name\n1001,pass1,Andr\xe9\n", encoding="latin-1")

    assert problems_of(service, path) == ["line 2: the file is not UTF-8 text"]


def test_missing_default_tenant(
    sessions: sessionmaker[Session], tenants: dict[str, Tenant], tmp_path: Path
) -> None:
    service = UserService(sessions=sessions, default_domain="gone.example")
    path = csv_file(tmp_path, f"extension,password,tenant\n1001,pass1,\n1002,pass1,{OTHER_DOMAIN}\n")

    assert problems_of(service, path) == ["line 2: no tenant given and the default tenant does not exist"]


def test_missing_file(service: UserService, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        service.import_csv(tmp_path / "absent.csv")


def test_row_problem_text() -> None:
    assert str(RowProblem(7, "bad")) == "line 7: bad"


def test_import_100k_users(service: UserService, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    count = 100_000
    lines = ["extension,password,name,email"]
    lines += [f"{100000 + n},pw-{n:06},User {n},user{n}@example.org" for n in range(count)]
    path = csv_file(tmp_path, "\n".join(lines) + "\n")

    started = time.perf_counter()
    imported = service.import_csv(path).imported
    elapsed = time.perf_counter() - started

    assert imported == count
    assert user_count(sessions) == count
    assert elapsed < 30, f"importing {count} users took {elapsed:.1f} s"


def test_malformed_csv(service: UserService, tmp_path: Path) -> None:
    path = csv_file(tmp_path, 'extension,password\n1001,pass1\n1002,"pass2"x\n')

    assert problems_of(service, path) == ["line 3: not valid CSV: ',' expected after '\"'"]

"""What the role postgresql leaves on a primary and its replica, then a promotion by
ansible/promote-database.yml and the old primary rebuilt as the new one's replica by the
role. The tests run in file order: the last ones change who is the primary."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testinfra

REPO = Path(__file__).resolve().parents[3]
PRIMARY, REPLICA = "mpg-db1", "mpg-db2"
DATA = "/var/lib/postgresql/15/main"
UNIT = "postgresql@15-main.service"


@pytest.fixture(scope="module")
def inventory(request):
    return request.config.option.ansible_inventory


@pytest.fixture(scope="module")
def hosts(inventory):
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
            for name in (PRIMARY, REPLICA)}


def sql(host, query, database="pbx"):
    return host.run("runuser -u postgres -- psql -d %s -tAXc %s", database, query)


def value(host, query):
    result = sql(host, query)
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def eventually(check, timeout=30):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def write_and_read_back(writer, reader):
    """A row written on `writer` is read on `reader` (streamed there)."""
    token = uuid.uuid4().hex
    value(writer, "CREATE TABLE IF NOT EXISTS molecule_check (token text)")
    value(writer, f"INSERT INTO molecule_check VALUES ('{token}')")
    assert eventually(lambda: sql(reader, f"SELECT 1 FROM molecule_check WHERE token = '{token}'")
                      .stdout.strip() == "1")


def ansible_playbook(inventory, playbook, *extra):
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(playbook), *extra]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=REPO)


def test_service_is_running_and_enabled(host):
    assert host.service("postgresql").is_enabled
    assert host.service(UNIT).is_running
    assert host.socket(f"tcp://{host.ansible.get_variables()['ansible_host']}:5432").is_listening


def test_replication_is_allowed_between_the_database_hosts_only(host):
    rules = host.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    replication = [line.split() for line in rules.splitlines()
                   if line.startswith("host") and "replication" in line]
    assert sorted(rule[3] for rule in replication) == ["198.18.3.21/32", "198.18.3.22/32"]
    assert all(rule[2] == "replicator" and rule[4] == "scram-sha-256" for rule in replication)


def test_the_replication_password_is_private(host):
    pgpass = host.file("/var/lib/postgresql/.pgpass")
    assert (pgpass.user, pgpass.mode) == ("postgres", 0o600)


def test_the_primary_streams_to_the_replica_through_its_slot(hosts):
    primary, replica = hosts[PRIMARY], hosts[REPLICA]
    assert value(primary, "SELECT pg_is_in_recovery()") == "f"
    assert value(replica, "SELECT pg_is_in_recovery()") == "t"
    assert replica.file(f"{DATA}/standby.signal").exists
    assert value(primary, "SELECT slot_name, active FROM pg_replication_slots") == "mpg_db2|t"
    assert value(primary, "SELECT client_addr, state FROM pg_stat_replication") == "198.18.3.22|streaming"


def test_a_row_written_on_the_primary_is_read_on_the_replica(hosts):
    write_and_read_back(hosts[PRIMARY], hosts[REPLICA])


def test_the_replica_refuses_writes(hosts):
    result = sql(hosts[REPLICA], "CREATE TABLE refused (id int)")
    assert result.rc != 0
    assert "read-only transaction" in result.stderr


def test_promotion_fences_the_old_primary_and_the_replica_accepts_writes(hosts, inventory):
    result = ansible_playbook(inventory, REPO / "ansible/promote-database.yml",
                              "-e", f"pbx_new_primary={REPLICA}")
    assert result.returncode == 0, result.stdout[-4000:]

    old, new = hosts[PRIMARY], hosts[REPLICA]
    assert value(new, "SELECT pg_is_in_recovery()") == "f"
    value(new, "CREATE TABLE written_after_promotion (id int)")
    assert not old.service(UNIT).is_running
    assert "masked" in old.run("systemctl is-enabled %s", UNIT).stdout
    assert old.file(f"{DATA}/pbx-fenced").exists


def test_the_old_primary_is_rebuilt_as_the_new_ones_replica(hosts, inventory):
    result = ansible_playbook(inventory, REPO / "molecule/postgresql/converge.yml",
                              "-e", f"pbx_postgresql__primary={REPLICA}")
    assert result.returncode == 0, result.stdout[-4000:]

    old, new = hosts[PRIMARY], hosts[REPLICA]
    assert value(old, "SELECT pg_is_in_recovery()") == "t"
    assert not old.file(f"{DATA}/pbx-fenced").exists
    assert value(new, "SELECT slot_name, active FROM pg_replication_slots WHERE active") == "mpg_db1|t"
    assert value(old, "SELECT count(*) FROM pg_tables WHERE tablename = 'written_after_promotion'") == "1"
    write_and_read_back(new, old)

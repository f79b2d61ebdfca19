"""What only the role queue leaves on a host (the application servers' checks are in
molecule/shared/test_appserver.py): espeak-ng for the announcements, and the cluster's Redis,
without which the queue server does not start."""

from urllib.parse import quote

import yaml

CONFIG = "/etc/pbx/queue.yml"
VENV = "/opt/pbx/venv"


def variables(host):
    return host.ansible.get_variables()


def test_espeak_ng_installed(host):
    assert host.package("espeak-ng").is_installed


def test_config_names_the_clusters_redis(host):
    """pbx_common__state_url, built from the group redis_sentinel as on a site: the scenario's
    one Sentinel is on the queue host itself."""
    password = quote(variables(host)["pbx_redis__password"], safe="")
    url = f"redis+sentinel://:{password}@{variables(host)['ansible_host']}:26379/pbx/0"
    assert yaml.safe_load(host.file(CONFIG).content_string)["state"] == {"url": url}


def test_start_without_state_url_is_refused_in_one_line(host):
    """The deployed config without `state`, run by the daemon's user as its unit runs it: exit
    status 1 and the reason on one line, before anything is bound (the running server keeps
    its ports)."""
    scratch = host.check_output("mktemp -d")
    copy = f"{scratch}/queue.yml"
    drop_state = ("import sys, yaml; config = yaml.safe_load(open(sys.argv[1])); del config['state']; "
                  "yaml.safe_dump(config, open(sys.argv[2], 'w'))")
    try:
        host.check_output(f'{VENV}/bin/python -c "{drop_state}" {CONFIG} {copy}')
        host.check_output(f"chown -R pbx: {scratch}")
        refused = host.run(f"runuser -u pbx -- timeout 60 {VENV}/bin/pbx queue --config {copy}")
    finally:
        host.run(f"rm -rf {scratch}")
    assert refused.rc == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("pbx queue: config error: state.url: "), refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

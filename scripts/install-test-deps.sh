#!/usr/bin/env bash
# Installs the third-party SIP peers and reference servers that the integration
# tests (tests/data/sipp/) and the benchmarks (bench/) drive. Debian 12, as root.
# Idempotent: apt-get install leaves installed packages alone.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

packages=(
    sip-tester              # sipp 3.6: scenarios in tests/data/sipp/, load in bench/
    kamailio                # reference SIP server for bench/sip_rates.py
    kamailio-extra-modules  # optional Kamailio modules (JSON, presence, ...) for other reference configs
    rtpengine-daemon        # reference media relay (userspace) for bench/media_relay.py
    baresip-core            # headless softphone for integration tests
    sipsak                  # one-shot registration checks
    sipvicious              # svmap/svwar/svcrack: enumeration and brute-force tests
    redis-server            # the Call Manager's shared state store (tests start their own on a free port)
    procps                  # ps/pgrep used when inspecting daemons
    keepalived              # keepalived -t of the rendered config (tests/provisioning/)
    systemd                 # systemd-analyze verify of the rendered units
    debootstrap             # the lab's Debian image (scripts/lab/, tests/lab/)
    systemd-container       # systemd-nspawn: the lab's hosts
    iproute2                # ip netns: the lab's network
    iptables                # the lab's failover test cuts the link between two Call Managers
    netcat-openbsd          # ssh ProxyCommand into the lab's controller namespace
    openssh-client          # Ansible and testinfra reach the lab's hosts by ssh
    espeak-ng               # `pbx prompt say` and the demo IVR menu's prompts (tests/unit/cli/test_ivr_cli.py)
    chromium                # the portal's browser tests (Playwright drives it; never `playwright install`)
)

apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"

# Debian enables a system Kamailio service and a system rtpengine service on install;
# tests and benchmarks start their own instances on their own ports, so keep the
# packaged ones from holding 5060, rtpengine's ports (2223-2225, 30000-40000) and 6379.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now kamailio.service >/dev/null 2>&1 || true
    systemctl disable --now rtpengine-daemon.service >/dev/null 2>&1 || true
    systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi

sipp -v 2>&1 | grep -m1 -i 'sipp v' || true
kamailio -v | head -n1
rtpengine --version 2>&1 | head -n1

#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and starts the all-in-one PBX on
# embedded defaults (SQLite, in-process state) on 127.0.0.1:5060, with a demo tenant,
# extensions whose passwords it prints and an IVR menu on 800. Safe to run again: it
# keeps the data.
#
#   PBX_DATA_DIR   where the config and database live (default: ./data)
#   PBX_SIP_PORT   SIP port (default: 5060)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    packages=()
    # The venv module and a compiler for any wheel that has to be built.
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv python3-dev gcc)
    # The speech synthesizer that speaks the prompts of the demo IVR menu (and `pbx prompt say`).
    command -v espeak-ng >/dev/null 2>&1 || packages+=(espeak-ng)
    if [ "${#packages[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
    fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .

# Absolute, so that the export line printed below works from any directory.
data_dir="$(realpath -m "${PBX_DATA_DIR:-./data}")"
.venv/bin/pbx init --data-dir "$data_dir" --demo
echo
echo "Phones: register to sip:127.0.0.1:${PBX_SIP_PORT:-5060} (UDP or TCP) with an extension above as"
echo "user name and its password; dial another extension to call it, or 800 for the demo IVR menu."
echo "Stop with Ctrl-C."
echo
echo "In another terminal, the pbx command (pbx user list, pbx cdr list, ...) works on this data after:"
echo "    export PBX_DATA_DIR=$(printf %q "$data_dir")"
echo "    source $(printf %q "$PWD/.venv/bin/activate")    # or call $(printf %q "$PWD/.venv/bin/pbx")"
echo
exec .venv/bin/pbx allinone --data-dir "$data_dir" --host 127.0.0.1 --sip-port "${PBX_SIP_PORT:-5060}"

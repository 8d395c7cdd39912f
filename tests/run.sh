#!/usr/bin/env bash
# Install what the tests need and run them all:  bash tests/run.sh [pytest args]
#
# On Debian as root it installs the system packages (chromium for the browser tests),
# makes a virtualenv in .venv with the project and its test extras, and runs pytest inside
# a private network namespace that has only a loopback interface, so no test packet can
# leave the machine. Without root it skips apt-get and the namespace (install chromium
# yourself); everything else is the same.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium python3-venv iproute2 janus gcc libc6-dev)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "==> apt-get install ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "==> python3 -m venv .venv"
    python3 -m venv .venv
fi
echo "==> pip install -e .[test,bench]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,bench]'

export PYTHONUNBUFFERED=1
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
    echo "==> pytest in a network namespace with only loopback"
    exec unshare -n -- bash -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' \
        pytest "$@"
fi
echo "==> pytest (no network namespace: not root)"
exec .venv/bin/python -m pytest "$@"

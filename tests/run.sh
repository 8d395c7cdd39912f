#!/usr/bin/env bash
# Install what the tests need and run them all:  bash tests/run.sh [pytest args]
#
# On Debian as root it installs the system packages (chromium and firefox-esr for the
# browser tests, coturn for the TURN test), makes a virtualenv in .venv with the project
# and its test extras, installs the pinned Firefox driver (tests/browser/firefox, npm ci:
# puppeteer-core, no browser download), and runs pytest inside a private network
# namespace, so no test packet can leave the machine. Without root it skips apt-get and the
# namespace (install the browsers and coturn yourself); everything else is the same.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium firefox-esr coturn redis-server janus gcc libc6-dev python3-venv iproute2)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    # Node runs the Firefox driver; any Node >= 18 with npm will do (Debian's or another).
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
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

driver=tests/browser/firefox
lock=$driver/package-lock.json
if command -v npm >/dev/null && ! [ "$driver/node_modules/.package-lock.json" -nt "$lock" ]; then
    echo "==> npm ci in $driver"
    npm ci --prefix "$driver" --no-audit --no-fund --loglevel=error
fi

# The namespace has loopback and one veth pair whose both ends stay inside it, with a
# default route into it: Firefox gathers no ICE candidate at all without a default route
# (it ignores loopback), and whatever is sent to that route dies on the other end.
NETNS_SETUP='ip link set lo up
ip link add kaamos0 type veth peer name kaamos1
ip addr add 10.255.0.1/24 dev kaamos0
ip link set kaamos1 up && ip link set kaamos0 up
ip route add default via 10.255.0.2 dev kaamos0'

export PYTHONUNBUFFERED=1
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null && command -v ip >/dev/null; then
    echo "==> pytest in a network namespace that reaches nothing outside"
    exec unshare -n -- bash -c "$NETNS_SETUP"' && exec .venv/bin/python -m pytest "$@"' \
        pytest "$@"
fi
echo "==> pytest (no network namespace: not root)"
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Installs Debian's chromium where we can (Debian, root), for the console's end-to-end tests
# (tests/test_live_browser.py, tests/test_live_view.py) and bench/bench_live.py. playwright (a pip
# test dependency) drives /usr/bin/chromium; nothing here or there downloads a browser build.
set -u
PACKAGES=(chromium)

have_all() {
    [ -x /usr/bin/chromium ] || return 1
    command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: trust the chromium found
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

have_all && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: not root on Debian; install ${PACKAGES[*]} yourself to run the browser tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
have_all

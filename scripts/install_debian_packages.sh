#!/usr/bin/env bash
# Installs Debian packages that the tests need, where we can (Debian, as root); `make test` calls it
# through install_xvfb.sh, install_chromium.sh and install_node.sh.
#   usage: install_debian_packages.sh PROGRAM FOR PACKAGE...
#   PROGRAM: the command whose presence (with every PACKAGE installed) means there is nothing to do;
#   FOR: what the packages are for, in the messages.
set -u
program=$1
purpose=$2
shift 2
packages=("$@")

have_all() {
    command -v "$program" >/dev/null 2>&1 || return 1
    command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: trust the program found
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

have_all && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "$(basename "$0"): not root on Debian; install ${packages[*]} yourself for $purpose" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
have_all

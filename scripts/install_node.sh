#!/usr/bin/env bash
# Installs Node.js where it is missing (Debian, root): pyright (`make test`'s type check of
# hardware/ and acquisition/) is a JavaScript program; its PyPI wrapper bundles pyright itself but
# runs it on the system's `node`, and would otherwise try to download a Node.js build at run time.
set -u
command -v node >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_node: not root on Debian; install Node.js (the 'nodejs' package) for pyright" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends nodejs >/dev/null
command -v node >/dev/null 2>&1

#!/usr/bin/env bash
# Installs Debian's chromium where we can (Debian, root), for the console's end-to-end tests
# (tests/test_live_browser.py, tests/test_live_view.py) and bench/bench_live.py. playwright (a pip
# test dependency) drives /usr/bin/chromium; nothing here or there downloads a browser build.
exec bash "$(dirname "$0")/install_debian_packages.sh" chromium "the browser tests" chromium

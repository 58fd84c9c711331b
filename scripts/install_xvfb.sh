#!/usr/bin/env bash
# Installs what the SLM display-window tests need where we can (Debian, root), so that they run
# in a real X server instead of skipping (tests/test_exulus_display.py, tests/xvfb.py):
#   xvfb            the virtual X server (GLX and RandR 1.5 monitors)
#   libgl1-mesa-dri Mesa's software OpenGL driver (llvmpipe), used by Xvfb's GLX and by pyglet
#   libglx-mesa0    the GLX client library libGL dispatches to
#   libxrandr2      RandR 1.5 monitors: how the driver lists the screens and how the tests make them
#   libx11-6        Xlib (pyglet, the screenshots)
set -u
PACKAGES=(xvfb libgl1-mesa-dri libglx-mesa0 libxrandr2 libx11-6)

have_all() {
    command -v Xvfb >/dev/null 2>&1 || return 1
    command -v dpkg-query >/dev/null 2>&1 || return 0  # not Debian: trust the Xvfb found
    local p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
    done
}

have_all && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_xvfb: not root on Debian; install ${PACKAGES[*]} yourself to run the window tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
have_all

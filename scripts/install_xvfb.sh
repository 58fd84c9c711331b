#!/usr/bin/env bash
# Installs what the SLM display-window tests need where we can (Debian, root), so that they run
# in a real X server instead of skipping (tests/test_exulus_display.py, tests/xvfb.py):
#   xvfb            the virtual X server (GLX and RandR 1.5 monitors)
#   libgl1-mesa-dri Mesa's software OpenGL driver (llvmpipe), used by Xvfb's GLX and by pyglet
#   libglx-mesa0    the GLX client library libGL dispatches to
#   libxrandr2      RandR 1.5 monitors: how the driver lists the screens and how the tests make them
#   libx11-6        Xlib (pyglet, the screenshots)
exec bash "$(dirname "$0")/install_debian_packages.sh" Xvfb "the display-window tests" \
    xvfb libgl1-mesa-dri libglx-mesa0 libxrandr2 libx11-6

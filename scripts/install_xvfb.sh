#!/usr/bin/env bash
# Installs Xvfb and Mesa's software OpenGL where we can (Debian, root), so that the
# SLM display-window tests run in a real X server instead of skipping.
set -u
command -v Xvfb >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_xvfb: not root on Debian; install xvfb yourself to run the window tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq xvfb libgl1-mesa-dri libglx-mesa0 x11-utils >/dev/null
command -v Xvfb >/dev/null 2>&1

"""Starts and stops a private Xvfb server for the display-window tests.

``Xvfb -displayfd`` picks a free display number itself, so parallel test runs never collide.
Several monitors on one X screen are made the way a desktop makes them: as RandR 1.5 monitors
(what ``xrandr --setmonitor`` does), set here through libXrandr with ctypes so that no extra
package is needed. Xvfb cannot lay out several ``-screen``s side by side under ``+xinerama``
(every head lands at 0,0), so one wide screen split into monitors is the faithful setup.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from hardware.drivers.monitors import XRRMonitorInfo  # the same RandR 1.5 struct the driver reads

START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Head:
    """One monitor of the virtual desktop."""

    name: str
    x: int
    y: int
    width: int
    height: int
    primary: bool = False


class _ScreenResources(ctypes.Structure):  # the head of XRRScreenResources
    _fields_ = [
        ("timestamp", ctypes.c_ulong),
        ("configTimestamp", ctypes.c_ulong),
        ("ncrtc", ctypes.c_int),
        ("crtcs", ctypes.POINTER(ctypes.c_ulong)),
        ("noutput", ctypes.c_int),
        ("outputs", ctypes.POINTER(ctypes.c_ulong)),
    ]


def xvfb_missing_reason() -> str | None:
    """Why the window tests cannot run here, or None when they can."""
    if shutil.which("Xvfb") is None:
        return "Xvfb is not installed (Debian: apt-get install xvfb; `make test` does it when root)"
    for lib in ("X11", "Xrandr", "GL"):
        if ctypes.util.find_library(lib) is None:
            return f"lib{lib} is not installed (Debian: apt-get install xvfb libgl1-mesa-dri libglx-mesa0)"
    return None


def _set_monitors(display_name: str, heads: list[Head]) -> None:
    """Replaces the X screen's monitors by ``heads`` (RandR 1.5 SetMonitor)."""
    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    xrr = ctypes.CDLL(ctypes.util.find_library("Xrandr"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    int_p = ctypes.POINTER(ctypes.c_int)
    xrr.XRRQueryVersion.argtypes = [ctypes.c_void_p, int_p, int_p]
    xrr.XRRGetScreenResources.restype = ctypes.POINTER(_ScreenResources)
    xrr.XRRGetScreenResources.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    xrr.XRRFreeScreenResources.argtypes = [ctypes.c_void_p]
    xrr.XRRAllocateMonitor.restype = ctypes.POINTER(XRRMonitorInfo)
    xrr.XRRAllocateMonitor.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xrr.XRRSetMonitor.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(XRRMonitorInfo)]
    xrr.XRRFreeMonitors.argtypes = [ctypes.c_void_p]

    dpy = x11.XOpenDisplay(display_name.encode())
    if not dpy:
        raise RuntimeError(f"cannot connect to Xvfb at {display_name}")
    try:
        major, minor = ctypes.c_int(), ctypes.c_int()
        xrr.XRRQueryVersion(dpy, ctypes.byref(major), ctypes.byref(minor))
        if (major.value, minor.value) < (1, 5):
            raise RuntimeError(f"Xvfb's RandR is {major.value}.{minor.value}; monitors need 1.5")
        root = x11.XDefaultRootWindow(dpy)
        res = xrr.XRRGetScreenResources(dpy, root)
        # Xvfb has one output, "screen". Giving it to the first head removes the automatic
        # monitor that would otherwise cover the whole wide screen.
        screen_output = res.contents.outputs[0] if res and res.contents.noutput else 0
        xrr.XRRFreeScreenResources(res)
        for i, head in enumerate(heads):
            uses_output = i == 0 and screen_output
            mon = xrr.XRRAllocateMonitor(dpy, 1 if uses_output else 0)
            m = mon.contents
            m.name = x11.XInternAtom(dpy, head.name.encode(), 0)
            m.primary = int(head.primary)
            m.automatic = 0
            m.x, m.y, m.width, m.height = head.x, head.y, head.width, head.height
            # Physical size in mm at 96 dpi; the SLM driver never uses it.
            m.mwidth, m.mheight = round(head.width * 25.4 / 96), round(head.height * 25.4 / 96)
            if uses_output:
                m.noutput = 1
                m.outputs[0] = screen_output
            xrr.XRRSetMonitor(dpy, root, mon)
            xrr.XRRFreeMonitors(mon)
        x11.XSync(dpy, 0)
    finally:
        x11.XCloseDisplay(dpy)


def _die_with_parent() -> None:
    """Runs in the Xvfb child before exec: a killed test run must not leave the server behind.

    The signal comes when the *thread* that started Xvfb ends, so start it on a long-lived one.
    """
    libc = ctypes.CDLL(None)
    pr_set_pdeathsig = 1  # linux/prctl.h
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class XvfbServer:
    """A running Xvfb with one screen of ``width``×``height`` split into ``heads``."""

    def __init__(self, width: int, height: int, heads: list[Head] | None = None, depth: int = 24):
        self.width, self.height = width, height
        self.heads = list(heads or [])
        # Xvfb's stderr goes to a file: a pipe nobody reads could fill up and block the server.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x{depth}",
                 "-nolisten", "tcp", "-noreset", "+extension", "GLX", "+extension", "RANDR"],
                pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=self._log,
                preexec_fn=_die_with_parent if os.uname().sysname == "Linux" else None,
            )
            os.close(write_fd)
            write_fd = -1
            self.display = f":{self._read_display_number(read_fd)}"
        except BaseException:
            if write_fd >= 0:
                os.close(write_fd)
            self.stop()
            raise
        finally:
            os.close(read_fd)
        try:
            if self.heads:
                _set_monitors(self.display, self.heads)
        except BaseException:
            self.stop()
            raise

    def _read_display_number(self, read_fd: int) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        text = b""
        while not text.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(left, 0))
            if not ready:
                raise RuntimeError(f"Xvfb did not start within {START_TIMEOUT_S:g} s")
            chunk = os.read(read_fd, 64)
            if not chunk:
                self._proc.wait(timeout=5)
                raise RuntimeError(f"Xvfb exited before it was ready: {self.log_tail()}")
            text += chunk
        return int(text.strip())

    def stop(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        with contextlib.suppress(OSError):
            self._log.close()

    def log_tail(self, chars: int = 300) -> str:
        """The end of Xvfb's own messages, for error reports."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace").strip()[-chars:]

    def __enter__(self) -> XvfbServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class _XImage(ctypes.Structure):  # the head of XImage (Xlib.h); the rest is never read here
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
        ("red_mask", ctypes.c_ulong),
        ("green_mask", ctypes.c_ulong),
        ("blue_mask", ctypes.c_ulong),
    ]


_ZPIXMAP = 2
_ALL_PLANES = 0xFFFFFFFFFFFFFFFF


def screenshot_rgb(display_name: str, x: int, y: int, width: int, height: int):
    """The root window's pixels in a rectangle, as the X server holds them: (height, width, 3) uint8.

    This is XGetImage on the root window, the same request ``xwd -root`` makes: it sees what
    the server composes on screen, independently of the GL context that drew it.
    """
    import numpy as np

    x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XGetImage.restype = ctypes.POINTER(_XImage)
    x11.XGetImage.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_uint,
                              ctypes.c_uint, ctypes.c_ulong, ctypes.c_int]
    x11.XDestroyImage.argtypes = [ctypes.POINTER(_XImage)]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(display_name.encode())
    if not dpy:
        raise RuntimeError(f"cannot connect to {display_name}")
    try:
        img = x11.XGetImage(dpy, x11.XDefaultRootWindow(dpy), x, y, width, height, _ALL_PLANES, _ZPIXMAP)
        if not img:
            raise RuntimeError(f"XGetImage of {width}x{height}+{x}+{y} failed")
        try:
            im = img.contents
            masks = (im.red_mask, im.green_mask, im.blue_mask)
            if im.bits_per_pixel != 32 or masks != (0xFF0000, 0xFF00, 0xFF):
                raise RuntimeError(f"unexpected X image format: {im.bits_per_pixel} bpp, masks "
                                   f"{im.red_mask:#x}/{im.green_mask:#x}/{im.blue_mask:#x}")
            raw = np.ctypeslib.as_array(im.data, shape=(height * im.bytes_per_line,)).copy()
            little = im.byte_order == 0  # LSBFirst: a pixel is B, G, R, X in memory
        finally:
            x11.XDestroyImage(img)
    finally:
        x11.XCloseDisplay(dpy)
    px = raw.reshape(height, im.bytes_per_line)[:, : width * 4].reshape(height, width, 4)
    return px[..., [2, 1, 0]] if little else px[..., [1, 2, 3]]

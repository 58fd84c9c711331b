"""The host's monitors, and the choice of the one that is the SLM.

On X11 the monitors are RandR 1.5 monitors (``xrandr --listmonitors``: one per active output, or
as the desktop defines them), read through libXrandr with ctypes. Elsewhere, and on an X server
without RandR 1.5, they are pyglet's screens. The operator's primary screen is the one the
system flags as primary, or else the one at the desktop origin (always the primary on Windows
and macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import asdict, dataclass
from typing import cast

from hardware.errors import DeviceError, DeviceNotFound, DriverMissing

# EXULUS-HD2 panel: 1920×1200 pixels (Thorlabs EXULUS-HD2 spec sheet; docs/design.md, "The rig").
EXULUS_PANEL_PX = (1200, 1920)  # (rows, cols)


@dataclass(frozen=True)
class Monitor:
    index: int
    x: int
    y: int
    width: int
    height: int
    primary: bool
    name: str = ""

    def describe(self) -> str:
        flag = " primary" if self.primary else ""
        name = f" {self.name}" if self.name else ""
        return f"{self.index}:{name} {self.width}x{self.height}+{self.x}+{self.y}{flag}"


def uses_x11() -> bool:
    return sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd"))


class XRRMonitorInfo(ctypes.Structure):  # XRRMonitorInfo, Xrandr.h (RandR 1.5)
    _fields_ = [
        ("name", ctypes.c_ulong),
        ("primary", ctypes.c_int),
        ("automatic", ctypes.c_int),
        ("noutput", ctypes.c_int),
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("mwidth", ctypes.c_int),
        ("mheight", ctypes.c_int),
        ("outputs", ctypes.POINTER(ctypes.c_ulong)),
    ]


def _load_x11() -> tuple[ctypes.CDLL, ctypes.CDLL | None]:
    path = ctypes.util.find_library("X11")
    if path is None:
        raise DriverMissing("slm", "libX11 is not installed (Debian: apt-get install libx11-6)")
    x11 = ctypes.CDLL(path)
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XDefaultRootWindow.restype = ctypes.c_ulong
    x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x11.XGetAtomName.restype = ctypes.c_void_p
    x11.XGetAtomName.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    x11.XFree.argtypes = [ctypes.c_void_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xrr_path = ctypes.util.find_library("Xrandr")
    if xrr_path is None:
        return x11, None
    xrr = ctypes.CDLL(xrr_path)
    int_p = ctypes.POINTER(ctypes.c_int)
    xrr.XRRQueryVersion.argtypes = [ctypes.c_void_p, int_p, int_p]
    xrr.XRRQueryExtension.argtypes = [ctypes.c_void_p, int_p, int_p]
    if not hasattr(xrr, "XRRGetMonitors"):  # libXrandr older than 1.5
        return x11, None
    xrr.XRRGetMonitors.restype = ctypes.POINTER(XRRMonitorInfo)
    xrr.XRRGetMonitors.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, int_p]
    xrr.XRRFreeMonitors.argtypes = [ctypes.c_void_p]
    return x11, xrr


def _x11_monitors(display_name: str | None) -> list[Monitor] | None:
    """RandR 1.5 monitors, [] when no X server answers, None when RandR 1.5 is unavailable."""
    x11, xrr = _load_x11()
    name = display_name if display_name is not None else os.environ.get("DISPLAY")
    if not name:
        return []
    dpy = x11.XOpenDisplay(name.encode())
    if not dpy:
        return []
    try:
        if xrr is None:
            return None
        event_base, error_base = ctypes.c_int(), ctypes.c_int()
        if not xrr.XRRQueryExtension(dpy, ctypes.byref(event_base), ctypes.byref(error_base)):
            return None
        major, minor = ctypes.c_int(), ctypes.c_int()
        if not xrr.XRRQueryVersion(dpy, ctypes.byref(major), ctypes.byref(minor)):
            return None
        if (major.value, minor.value) < (1, 5):
            return None
        count = ctypes.c_int()
        infos = xrr.XRRGetMonitors(dpy, x11.XDefaultRootWindow(dpy), 1, ctypes.byref(count))
        if not infos:
            return None
        monitors = []
        try:
            for i in range(count.value):
                m = infos[i]
                atom_name = x11.XGetAtomName(dpy, m.name) if m.name else None
                label = ctypes.string_at(atom_name).decode(errors="replace") if atom_name else ""
                if atom_name:
                    x11.XFree(atom_name)
                monitors.append(Monitor(i, m.x, m.y, m.width, m.height, bool(m.primary), label))
        finally:
            xrr.XRRFreeMonitors(infos)
        return monitors
    finally:
        x11.XCloseDisplay(dpy)


def _pyglet_monitors(display_name: str | None) -> list[Monitor]:
    try:
        import pyglet
    except ImportError:
        raise DriverMissing("slm", "pyglet is not installed (pip install pyglet==2.1.19)") from None
    pyglet.options.shadow_window = False  # no hidden GL context on the caller's thread
    from pyglet import display as pyglet_display

    try:
        if uses_x11():
            from pyglet.display.xlib import XlibDisplay

            screens = XlibDisplay(name=cast(str, display_name)).get_screens()  # None: $DISPLAY
        else:
            screens = pyglet_display.get_display().get_screens()
    except Exception:  # noqa: BLE001 - no display reachable is "no monitors", not a crash
        return []
    flags = [bool(getattr(s, "is_primary", False)) for s in screens]
    return [Monitor(i, s.x, s.y, s.width, s.height, flags[i], getattr(s, "name", "") or "")
            for i, s in enumerate(screens)]


def _with_primary(monitors: list[Monitor]) -> list[Monitor]:
    """Flags the monitor at the desktop origin as primary when the system flags none."""
    if any(m.primary for m in monitors):
        return monitors
    return [Monitor(m.index, m.x, m.y, m.width, m.height, (m.x, m.y) == (0, 0), m.name) for m in monitors]


def find_monitors(display_name: str | None = None) -> list[Monitor]:
    """The monitors of the display (X11: ``display_name`` or $DISPLAY); [] when none is reachable."""
    monitors = _x11_monitors(display_name) if uses_x11() else None
    if monitors is None:
        monitors = _pyglet_monitors(display_name)
    return _with_primary(monitors)


def list_monitors(display_name: str | None = None) -> list[dict]:
    """The monitors as dicts {index, x, y, width, height, primary, name} (``speckle-lab devices``).

    Returns [] when no display is reachable; raises DriverMissing when the libraries are absent.
    """
    return [asdict(m) for m in find_monitors(display_name)]


def choose_monitor(monitors: list[Monitor], monitor: int | str = "auto", allow_primary: bool = False,
                   panel_px: tuple[int, int] = EXULUS_PANEL_PX) -> Monitor:
    """The SLM's monitor: by index, or "auto" = the one non-primary monitor of the panel's size.

    The operator's primary screen is refused unless ``allow_primary``.
    """
    rows, cols = panel_px
    found = ", ".join(m.describe() for m in monitors) or "none"
    if not monitors:
        raise DeviceNotFound("slm", "no monitor found (no display reachable: is DISPLAY set and the "
                             "EXULUS-HD2 connected over HDMI?)")
    if monitor == "auto":
        sized = [m for m in monitors if (m.height, m.width) == (rows, cols)]
        if not sized:
            raise DeviceNotFound("slm", f"no {cols}x{rows} monitor found (monitors: {found}); is the "
                                 "EXULUS-HD2 connected over HDMI and enabled as a display?")
        usable = sized if allow_primary else [m for m in sized if not m.primary]
        if not usable:
            raise DeviceError("slm", f"the only {cols}x{rows} monitor ({sized[0].describe()}) is the "
                              "operator's primary screen; set slm.allow_primary = true to use it anyway")
        if len(usable) > 1:
            which = ", ".join(str(m.index) for m in usable)
            raise DeviceNotFound("slm", f"monitors {which} are all {cols}x{rows}; set slm.monitor to "
                                 f"the SLM's index (monitors: {found})")
        return usable[0]
    if isinstance(monitor, bool) or not isinstance(monitor, int):
        raise ValueError(f"slm.monitor must be a monitor index or 'auto' (got {monitor!r})")
    if not 0 <= monitor < len(monitors):
        raise DeviceNotFound("slm", f"no monitor {monitor} (monitors: {found})")
    chosen = monitors[monitor]
    if chosen.primary and not allow_primary:
        raise DeviceError("slm", f"monitor {monitor} is the operator's primary screen; set "
                          "slm.allow_primary = true to use it anyway")
    if (chosen.height, chosen.width) != (rows, cols):
        raise DeviceNotFound("slm", f"monitor {chosen.describe()} is not the EXULUS-HD2's {cols}x{rows} "
                             "panel; set slm.monitor to the SLM's index or 'auto'")
    return chosen

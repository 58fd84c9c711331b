"""The EXULUS-HD2 as a display: a borderless full-screen window on the SLM's monitor.

The SLM takes its phase pattern over HDMI as an ordinary 1920×1200 monitor (docs/design.md, "The rig").
Only the central 800×800 window carries the pattern; the rest of the panel is black. Each SLM
pixel is one screen pixel: the pattern is copied with glBlitFramebuffer at 1:1 and GL_NEAREST,
so nothing is scaled or filtered, and gray g is drawn as RGB (g, g, g).

The window lives on its own thread, which owns the GL context and pumps the window's events, so
the window never freezes and callers never block on the event loop; they feed it through a queue
and wait for its answer with a timeout. Errors on that thread reach the caller as
``DeviceError("slm", ...)``.

Read-back: the pixels are read with glReadPixels from the buffer that the flip puts on screen,
just before the flip. Reading GL_FRONT after the flip is not portable: Mesa's software GL under
Xvfb returns black for it, and some Intel drivers return stale data (libavg issue #634).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from hardware.drivers.monitors import (
    EXULUS_PANEL_PX,
    Monitor,
    choose_monitor,
    find_monitors,
    list_monitors,
    uses_x11,
)
from hardware.errors import DeviceError, DeviceTimeout, DriverMissing
from speckle_core.text import one_line

__all__ = ["ExulusDisplay", "list_monitors", "window_origin_px", "check_gray", "EXULUS_PANEL_PX"]

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 15.0  # window creation: GL context and the first black frame
CALL_TIMEOUT_S = 5.0  # one show or read-back; a 60 Hz flip takes 17 ms
CLOSE_TIMEOUT_S = 5.0
POLL_S = 0.02  # how often the idle thread pumps window events
PLACEMENT_TIMEOUT_S = 2.0  # a window manager may take a moment to place a full-screen window

# One window per process: pyglet keeps its current GL context in a module global.
_OPEN_LOCK = threading.Lock()
_OPEN_DISPLAYS: weakref.WeakSet[ExulusDisplay] = weakref.WeakSet()


@atexit.register
def _close_open_displays() -> None:  # a window left open must not die mid-GL call at exit
    for display in list(_OPEN_DISPLAYS):
        with contextlib.suppress(Exception):
            display.close()


def window_origin_px(panel_px: tuple[int, int], window_px: tuple[int, int],
                     offset_px: tuple[int, int]) -> tuple[int, int]:
    """(row, col) of the pattern window's top-left pixel: centred on the panel, then shifted.

    Raises ValueError when the shifted window does not fit on the panel.
    """
    (p_rows, p_cols), (w_rows, w_cols), (d_rows, d_cols) = panel_px, window_px, offset_px
    if w_rows < 1 or w_cols < 1:
        raise ValueError(f"the pattern window must be at least 1x1 pixel (got {w_rows}x{w_cols})")
    row0 = (p_rows - w_rows) // 2 + d_rows
    col0 = (p_cols - w_cols) // 2 + d_cols
    if row0 < 0 or col0 < 0 or row0 + w_rows > p_rows or col0 + w_cols > p_cols:
        raise ValueError(f"a {w_rows}x{w_cols} window shifted by ({d_rows}, {d_cols}) px from the centre "
                         f"leaves the {p_rows}x{p_cols} panel")
    return row0, col0


def check_gray(gray: object, window_px: tuple[int, int]) -> np.ndarray:
    """``gray`` as a C-contiguous uint8 array of the window's shape; a one-line ValueError otherwise."""
    if not isinstance(gray, np.ndarray):
        raise ValueError(f"slm: show_gray needs a numpy uint8 array of shape {tuple(window_px)} "
                         f"(got {type(gray).__name__})")
    if gray.dtype != np.uint8:
        raise ValueError(f"slm: show_gray needs uint8 gray levels (got dtype {gray.dtype}); "
                         "convert through the phase LUT first")
    if gray.shape != tuple(window_px):
        raise ValueError(f"slm: show_gray needs shape {tuple(window_px)}, the SLM window (got {gray.shape})")
    return np.ascontiguousarray(gray)


@dataclass
class _Request:
    kind: str  # "show", "read", "close"
    gray: np.ndarray | None = None
    result: object = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.done = threading.Event()


class ExulusDisplay:
    """A full-screen window on the SLM's monitor showing an 8-bit gray pattern in a central window.

    ``monitor`` is a monitor index or "auto" (the one non-primary 1920×1200 monitor);
    ``window_offset_px`` shifts the pattern window (rows, cols) from the panel centre;
    ``display_name`` is the X display (default $DISPLAY; ignored off X11).
    """

    def __init__(self, monitor: int | str = "auto", *, window_px: tuple[int, int] = (800, 800),
                 window_offset_px: tuple[int, int] = (0, 0), allow_primary: bool = False,
                 panel_px: tuple[int, int] = EXULUS_PANEL_PX, vsync: bool = True,
                 display_name: str | None = None, open_timeout_s: float = OPEN_TIMEOUT_S,
                 call_timeout_s: float = CALL_TIMEOUT_S):
        self._window_px = (int(window_px[0]), int(window_px[1]))
        self._panel_px = (int(panel_px[0]), int(panel_px[1]))
        self._origin_px = window_origin_px(self._panel_px, self._window_px,
                                           (int(window_offset_px[0]), int(window_offset_px[1])))
        self._call_timeout_s = float(call_timeout_s)
        self._closed = True
        self._thread: threading.Thread | None = None
        if uses_x11() and display_name is None:
            display_name = os.environ.get("DISPLAY")
        self._display_name = display_name
        self.monitor: Monitor = choose_monitor(find_monitors(display_name), monitor, allow_primary,
                                               self._panel_px)
        if not _OPEN_LOCK.acquire(blocking=False):
            raise DeviceError("slm", "another SLM window is already open in this process; close it first")
        self._requests: queue.Queue[_Request] = queue.Queue()
        self._ready = threading.Event()
        self._fatal: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, args=(vsync,), name="slm-display", daemon=True)
        self._thread.start()
        if not self._ready.wait(open_timeout_s):
            self._abandon()
            raise DeviceTimeout("slm", f"the SLM window did not open within {open_timeout_s:g} s")
        if self._fatal is not None:
            err = self._fatal
            self._abandon()
            raise _as_device_error(err, "cannot open the SLM window") from err
        _OPEN_DISPLAYS.add(self)
        log.info("SLM window open on monitor %s, pattern at row %d col %d",
                 self.monitor.describe(), *self._origin_px)

    # ----------------------------------------------------------------- public API

    @property
    def window_px(self) -> tuple[int, int]:
        return self._window_px

    @property
    def origin_px(self) -> tuple[int, int]:
        """(row, col) of the pattern window's top-left pixel on the panel."""
        return self._origin_px

    def show_gray(self, gray: np.ndarray) -> float:
        """Shows ``gray`` after a vsync'd flip; returns the flip's ``time.monotonic()``."""
        pattern = check_gray(gray, self._window_px).copy()  # the caller may reuse its array
        return float(self._call(_Request("show", gray=pattern)))

    def read_back(self) -> np.ndarray:
        """The gray levels in the pattern window of the buffer on screen: uint8 window_px."""
        return self._call(_Request("read"))

    def close(self) -> None:
        """Closes the window and stops its thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._requests.put(_Request("close"))
            thread.join(CLOSE_TIMEOUT_S)
            if thread.is_alive():
                log.warning("the SLM display thread did not stop within %g s", CLOSE_TIMEOUT_S)
                return  # keep the lock: the stuck thread may still own the GL context
        _OPEN_LOCK.release()

    def __enter__(self) -> ExulusDisplay:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- caller side

    def _call(self, request: _Request) -> Any:
        if self._closed:
            raise DeviceError("slm", "the SLM window is closed")
        if self._fatal is not None or self._thread is None or not self._thread.is_alive():
            raise DeviceError("slm", f"the SLM display thread has stopped ({_one_line(self._fatal)})")
        self._requests.put(request)
        if not request.done.wait(self._call_timeout_s):
            raise DeviceTimeout("slm", f"the SLM window did not answer '{request.kind}' within "
                                f"{self._call_timeout_s:g} s")
        if request.error is not None:
            raise _as_device_error(request.error, f"{request.kind} failed") from request.error
        return request.result

    def _abandon(self) -> None:
        """Stops a thread that failed to open; the lock is kept if it will not stop."""
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            self._requests.put(_Request("close"))
            self._thread.join(CLOSE_TIMEOUT_S)
            if self._thread.is_alive():
                return
        _OPEN_LOCK.release()

    # ----------------------------------------------------------------- display thread

    def _run(self, vsync: bool) -> None:
        try:
            window = _Window(self.monitor, self._display_name, self._panel_px, self._window_px,
                             self._origin_px, vsync)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            self._fatal = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                window.pump_events()
                try:
                    request = self._requests.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if request.kind == "close":
                    request.done.set()
                    return
                try:
                    if request.kind == "show":
                        assert request.gray is not None  # show_gray always sends one
                        request.result = window.show(request.gray)
                    elif request.kind == "read":
                        request.result = window.read_back()
                    else:
                        raise ValueError(f"unknown request {request.kind!r}")
                except BaseException as e:  # noqa: BLE001 - handed to the caller
                    request.error = e
                finally:
                    request.done.set()
        except BaseException as e:  # noqa: BLE001 - the next call reports it
            self._fatal = e
            log.error("the SLM display thread stopped: %s", _one_line(e))
        finally:
            with contextlib.suppress(Exception):
                window.close()
            self._fail_pending()

    def _fail_pending(self) -> None:
        """Answers requests queued behind a stop, so that no caller waits for its timeout."""
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            reason = _one_line(self._fatal)
            request.error = DeviceError("slm", f"the SLM display thread has stopped ({reason})")
            request.done.set()


def _one_line(e: BaseException | None) -> str:
    if e is None:
        return "no error recorded"
    return one_line(e, with_type=not isinstance(e, DeviceError))


def _as_device_error(e: BaseException, what: str) -> DeviceError:
    if isinstance(e, DeviceError):
        return e
    return DeviceError("slm", f"{what}: {_one_line(e)}")


class _Window:
    """The pyglet window and its GL objects. Used only on the display thread."""

    def __init__(self, monitor: Monitor, display_name: str | None, panel_px: tuple[int, int],
                 window_px: tuple[int, int], origin_px: tuple[int, int], vsync: bool):
        try:
            import pyglet
        except ImportError:
            raise DriverMissing("slm", "pyglet is not installed (pip install pyglet==2.1.19)") from None
        pyglet.options.shadow_window = False  # our context lives on this thread only
        pyglet.options.dpi_scaling = "real"  # 1 SLM pixel = 1 framebuffer pixel
        from pyglet import gl

        self._gl = gl
        self._pyglet = pyglet
        self._panel_px, self._window_px = panel_px, window_px
        rows, cols = window_px
        row0, col0 = origin_px
        # GL's window origin is the bottom-left pixel; the pattern's row 0 is the top one.
        self._gl_x0, self._gl_y0 = col0, panel_px[0] - row0 - rows
        self._display = None
        self._window = None
        self._displayed = np.zeros(window_px, np.uint8)
        self._pattern = np.zeros(window_px, np.uint8)
        self._gl_ready = False
        try:
            self._open(monitor, display_name, vsync)
        except BaseException:
            self.close()
            raise

    def _open(self, monitor: Monitor, display_name: str | None, vsync: bool) -> None:
        pyglet = self._pyglet
        screen = self._screen_for(monitor, display_name)
        self._window = pyglet.window.Window(fullscreen=True, screen=screen, vsync=vsync,
                                            style=pyglet.window.Window.WINDOW_STYLE_BORDERLESS,
                                            caption="speckle-lab SLM", visible=True)
        self._window.set_mouse_visible(False)
        window = self._window

        @window.event
        def on_close():  # Alt-F4 or Escape must not take the pattern off the SLM mid-run
            log.warning("ignored a request to close the SLM window; speckle-lab closes it itself")
            return pyglet.event.EVENT_HANDLED

        @window.event
        def on_key_press(symbol, modifiers):
            return pyglet.event.EVENT_HANDLED

        @window.event
        def on_expose():  # uncovered: the server may have lost the pixels, draw them again
            if self._gl_ready:
                self._draw_and_flip()
            return pyglet.event.EVENT_HANDLED

        self._check_geometry(monitor)
        self._make_gl_objects()
        self._gl_ready = True
        self.show(self._pattern)  # black until the first pattern

    def _screen_for(self, monitor: Monitor, display_name: str | None):
        pyglet = self._pyglet
        if uses_x11():
            from pyglet.display.xlib import XlibDisplay, XlibScreen

            try:
                self._display = XlibDisplay(name=cast(str, display_name))  # None: $DISPLAY
            except Exception as e:  # noqa: BLE001 - pyglet's NoSuchDisplayException
                raise DeviceError("slm", f"cannot connect to X display {display_name!r}: {e}") from None
            # A screen of exactly the chosen RandR monitor (pyglet lists CRTCs, not monitors).
            return XlibScreen(self._display, monitor.x, monitor.y, monitor.width, monitor.height)
        for screen in pyglet.display.get_display().get_screens():
            if (screen.x, screen.y, screen.width, screen.height) == (monitor.x, monitor.y, monitor.width,
                                                                     monitor.height):
                return screen
        raise DeviceError("slm", f"monitor {monitor.describe()} disappeared before the window opened")

    def _check_geometry(self, monitor: Monitor) -> None:
        window = self._open_window
        deadline = time.monotonic() + PLACEMENT_TIMEOUT_S
        want_size = (self._panel_px[1], self._panel_px[0])
        while True:
            window.dispatch_events()
            size = tuple(window.get_framebuffer_size())
            place = tuple(window.get_location())
            if size == want_size and place == (monitor.x, monitor.y):
                return
            if time.monotonic() > deadline:
                raise DeviceError("slm", f"the window is {size[0]}x{size[1]} at {place}, not the panel's "
                                  f"{want_size[0]}x{want_size[1]} at ({monitor.x}, {monitor.y}); "
                                  "turn display scaling off for the SLM's monitor")
            time.sleep(POLL_S)

    def _make_gl_objects(self) -> None:
        gl = self._gl
        rows, cols = self._window_px
        self._tex = gl.GLuint()
        gl.glGenTextures(1, self._tex)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self._tex)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, gl.GL_NEAREST)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, gl.GL_NEAREST)
        gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGBA8, cols, rows, 0, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE,
                        None)
        self._fbo = gl.GLuint()
        gl.glGenFramebuffers(1, self._fbo)
        gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, self._fbo)
        gl.glFramebufferTexture2D(gl.GL_READ_FRAMEBUFFER, gl.GL_COLOR_ATTACHMENT0, gl.GL_TEXTURE_2D,
                                  self._tex, 0)
        status = gl.glCheckFramebufferStatus(gl.GL_READ_FRAMEBUFFER)
        gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, 0)
        if status != gl.GL_FRAMEBUFFER_COMPLETE:
            raise DeviceError("slm", f"the GL driver cannot render to an RGBA8 texture (status {status:#x})")
        self._rgba = np.empty((rows, cols, 4), np.uint8)
        self._rgba[..., 3] = 255
        self._read_rgba = np.empty((rows, cols, 4), np.uint8)
        gl.glDisable(gl.GL_FRAMEBUFFER_SRGB)
        gl.glDisable(gl.GL_DITHER)

    @property
    def _open_window(self):
        if self._window is None:
            raise DeviceError("slm", "the SLM window is not open")
        return self._window

    def pump_events(self) -> None:
        self._open_window.dispatch_events()

    def show(self, gray: np.ndarray) -> float:
        gl = self._gl
        rows, cols = self._window_px
        self._open_window.switch_to()
        self._rgba[..., :3] = gray[::-1, :, None]  # bottom row first, as GL stores textures
        gl.glBindTexture(gl.GL_TEXTURE_2D, self._tex)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, cols, rows, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE,
                           self._rgba.ctypes.data)
        self._pattern = gray
        return self._draw_and_flip()

    def _draw_and_flip(self) -> float:
        gl = self._gl
        rows, cols = self._window_px
        x0, y0 = self._gl_x0, self._gl_y0
        gl.glBindFramebuffer(gl.GL_DRAW_FRAMEBUFFER, 0)
        gl.glDrawBuffer(gl.GL_BACK)
        gl.glViewport(0, 0, self._panel_px[1], self._panel_px[0])
        gl.glClearColor(0.0, 0.0, 0.0, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, self._fbo)
        gl.glBlitFramebuffer(0, 0, cols, rows, x0, y0, x0 + cols, y0 + rows, gl.GL_COLOR_BUFFER_BIT,
                             gl.GL_NEAREST)
        # Read the buffer about to go on screen (see the module docstring for why not GL_FRONT).
        gl.glBindFramebuffer(gl.GL_READ_FRAMEBUFFER, 0)
        gl.glReadBuffer(gl.GL_BACK)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        gl.glReadPixels(x0, y0, cols, rows, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE, self._read_rgba.ctypes.data)
        err = gl.glGetError()
        if err != gl.GL_NO_ERROR:
            raise DeviceError("slm", f"OpenGL error {err:#x} while drawing the pattern")
        self._open_window.flip()  # waits for vertical blank when vsync is on
        gl.glFinish()  # returns once the swap has been executed
        flip_s = time.monotonic()
        self._displayed = self._read_rgba[::-1].copy()
        return flip_s

    def read_back(self) -> np.ndarray:
        rgb = self._displayed[..., :3]
        gray = rgb[..., 0]
        if not (np.array_equal(gray, rgb[..., 1]) and np.array_equal(gray, rgb[..., 2])):
            raise DeviceError("slm", "the displayed window is not gray (R, G, B differ): colour "
                              "management or dithering is altering the pattern")
        return gray.copy()

    def close(self) -> None:
        if self._window is not None:
            with contextlib.suppress(Exception):
                if not self._gl_ready:
                    raise RuntimeError("no GL objects yet")
                self._window.switch_to()
                gl = self._gl
                gl.glDeleteFramebuffers(1, self._fbo)
                gl.glDeleteTextures(1, self._tex)
            self._window.close()
            self._window = None
        if self._display is not None:
            from pyglet.libs.x11 import xlib

            with contextlib.suppress(Exception):
                loop: Any = self._pyglet.app.platform_event_loop  # X11's loop: select_devices not typed
                loop.select_devices.discard(self._display)
            with contextlib.suppress(Exception):
                xlib.XCloseDisplay(self._display._display)
            self._display = None

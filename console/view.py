"""``speckle-lab acquire … --view [PORT]``: the console page, read-only, watching a run.

``RunView`` is the engine's observer and the server's source at once. The engine thread calls its
``on_*`` methods; each only stores references (a frame, a pattern: never copied, never modified by
the engine afterwards) or appends to a bounded deque, under the GIL, and returns: it never waits
for the server, never does I/O and never raises (``guarded``). The server thread reads them when a
page is connected. ``start_view`` serves it from a daemon thread: whatever happens to that thread,
the run goes on and writes the same bytes (tests/test_live_view.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import time
from collections import deque

import numpy as np

from console.slot import LatestSlot
from console.source import CommandError, FrameItem

log = logging.getLogger("speckle_lab.console")

LOG_LINES = 60
RATE_WINDOW = 50  # pairs/s over the last this many pairs
STABILITY_POINTS = 5000  # the reference correlations kept for the plot (a page gets each once)
# What a glance at a night run needs, and no more: every ms of CPU the view spends, in this process
# or in the browser's, is taken from a CPU-bound run (bench/bench_acquire.py --only-view). The page
# is updated once per 1/VIEW_MAX_FPS s (frame, statistics, status, pattern and plot together) with
# the frame binned to at most VIEW_DISPLAY_PX a side (the page scales it up).
VIEW_MAX_FPS = 1.0
VIEW_DISPLAY_PX = 400
VIEW_NICE = 10  # the view's threads yield the CPU to the run's
LINGER_S = 1.0 / VIEW_MAX_FPS + 0.5  # after the run, pages still connected get the final status


def guarded(fn):
    """An observer method: an exception inside it is logged once and swallowed (never reaches the
    engine); after one failure the method is disabled for the rest of the run."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if fn.__name__ in self.failed:
            return None
        try:
            return fn(self, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - the view must never disturb the run
            self.failed.add(fn.__name__)
            with contextlib.suppress(Exception):
                print(f"speckle-lab: view: {fn.__name__} failed ({type(e).__name__}: {e}); "
                      "the run goes on", file=sys.stderr)
            return None

    return wrapper


class _LogTail(logging.Handler):
    def __init__(self, view: RunView):
        super().__init__(logging.INFO)
        self.view = view
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.view.log.append(self.format(record))
            self.view.version += 1


class RunView:
    """What the page shows of a run; fed by the engine (``on_*``), read by the server."""

    readonly = True

    def __init__(self, total: int = 0, done: int = 0, threshold: float | None = None, title: str = "",
                 clock=time.monotonic):
        self.frames = LatestSlot()
        self.slm = LatestSlot()
        self.failed: set[str] = set()
        self.version = 0
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.stability: deque[tuple[int, int, str, float, float]] = deque(maxlen=STABILITY_POINTS)
        self.stability_total = 0  # references seen (the deque keeps the last STABILITY_POINTS)
        self.threshold = threshold
        self.title = title
        self.clients = 0
        self._clock = clock
        self._t0 = clock()
        self._times: deque[tuple[float, int]] = deque(maxlen=RATE_WINDOW)
        self.run = {"done": done, "total": total, "block": None, "exposure_us": None, "rate": None,
                    "eta_s": None, "elapsed_s": 0.0, "finished": False, "message": "", "exit_code": None}

    # -- the engine's side ----------------------------------------------------------------------------
    @guarded
    def on_frame(self, kind: str, gray: np.ndarray | None, frame, what: str = "") -> None:
        """A frame the engine captured (pair, reference, exposure probe) and the SLM pattern shown."""
        # references only: the full scale of a deeper frame is found by the server, not here
        info = {"kind": kind, "what": what}
        sat = getattr(frame, "saturated_fraction", None)  # the camera's own (a colour sensor's red)
        if sat is not None:
            info["camera_saturated"] = sat
        item = FrameItem(frame.image, None, frame.timestamp_s, frame.exposure_us, 0.0, None, info)
        self.frames.put(item)
        if gray is not None:
            self.slm.put(gray)
        self.run["exposure_us"] = frame.exposure_us

    @guarded
    def on_progress(self, done: int, total: int, label: str) -> None:
        now = self._clock()
        self._times.append((now, done))
        r = self.run
        r.update(done=done, total=total, block=label, elapsed_s=now - self._t0)
        if len(self._times) >= 2:
            (t_a, n_a), (t_b, n_b) = self._times[0], self._times[-1]
            if t_b > t_a and n_b > n_a:
                r["rate"] = (n_b - n_a) / (t_b - t_a)
                r["eta_s"] = (total - done) / r["rate"]
        self.version += 1

    @guarded
    def on_reference(self, index: int, label: str, correlation: float) -> None:
        n = self.stability_total
        self.stability.append((n, index, label, float(correlation), self._clock() - self._t0))
        self.stability_total = n + 1
        self.version += 1

    @guarded
    def on_finished(self, exit_code: int, message: str) -> None:
        self.run.update(finished=True, message=message, exit_code=exit_code, eta_s=0.0,
                        elapsed_s=self._clock() - self._t0)
        self.version += 1

    def log_handler(self) -> logging.Handler:
        return _LogTail(self)

    # -- the server's side ---------------------------------------------------------------------------
    def status_version(self) -> int:
        return self.version

    def status(self) -> dict:
        return {"mode": "view", "rig": self.title, "run": dict(self.run), "log": list(self.log),
                "references": self.stability_total, "threshold": self.threshold}

    def stability_since(self, n: int) -> tuple[int, list[list[float]]]:
        """(first, points) of the stability series from its ``n``-th point on, each ``[number,
        correlation]`` (numbered from 0 over the run; the oldest past STABILITY_POINTS are gone,
        so ``first`` may be above ``n``)."""
        points = [[p[0], round(p[3], 6)] for p in list(self.stability) if p[0] >= n]
        return (points[0][0] if points else max(n, self.stability_total)), points

    def command(self, message: dict) -> dict:
        raise CommandError("read-only: this page watches an acquisition run; nothing can be changed")

    def clients_changed(self, n: int) -> None:
        self.clients = n
        log.info("view: %d page%s watching", n, "" if n == 1 else "s")


@contextlib.contextmanager
def start_view(view: RunView, sock, title: str = "speckle-lab run"):
    """Serves ``view`` on the bound socket ``sock`` from a daemon thread while the block runs; the
    page's log tail follows the ``speckle_lab`` logger. Nothing here can stop the run: a server that
    fails is logged and left alone."""
    from console.server import ServerThread, build_app, url_of

    handler = view.log_handler()
    root = logging.getLogger("speckle_lab")
    root.addHandler(handler)
    thread = None
    try:
        try:
            app = build_app(view, max_fps=VIEW_MAX_FPS, title=title, display_px=VIEW_DISPLAY_PX, paced=True)
            thread = ServerThread(app, sock, nice=VIEW_NICE).start()
            print(f"speckle-lab: watching the run at {url_of(sock)}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - the run goes on without its view
            print(f"speckle-lab: view: could not start ({type(e).__name__}: {e}); the run goes on",
                  file=sys.stderr)
        yield view
    finally:
        root.removeHandler(handler)
        if thread is not None and view.clients:
            time.sleep(LINGER_S)  # let the pages get the final status
        if thread is not None:
            with contextlib.suppress(Exception):
                thread.stop()

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
VIEW_MAX_FPS = 5.0  # enough to glance at a run; each frame shown costs statistics and a JPEG
VIEW_NICE = 10  # the view's threads yield the CPU to the run's (bench/bench_acquire.py)
LINGER_S = 1.0  # after the run, pages still connected get this long to receive the final status


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
        self.stability: deque[dict] = deque(maxlen=5000)
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
        image = frame.image
        top = 255 if image.dtype == np.uint8 else (1 << max(int(image.max()).bit_length(), 8)) - 1
        item = FrameItem(image, top, frame.timestamp_s, frame.exposure_us, 0.0, None,
                         {"kind": kind, "what": what})
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
        self.stability.append({"index": index, "block": label, "corr": float(correlation),
                               "t": self._clock() - self._t0})
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
                "stability": list(self.stability), "threshold": self.threshold}

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
            app = build_app(view, max_fps=VIEW_MAX_FPS, title=title)
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

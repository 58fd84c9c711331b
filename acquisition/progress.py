"""Progress of a run without the live bar (``acquire --no-progress``, a night script, a log file).

``ProgressLog`` prints a line at least every ``interval_s`` (default a minute) to stderr and to the
run's log, from a timer thread, so that a run stuck on a device still shows it is alive (and how
long it has been since the last pair)::

    progress: 1234/18000 pairs (6.9 %), 4.1 pairs/s, ETA 1 h 08 min, block 3/12: diffuser 120 at 20 mm

The rate counts only this session's pairs (a resumed run does not claim the pairs of the last one);
the ETA is the pairs left at that rate.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("speckle_lab.acquire")

LOG_EVERY_S = 60.0


def format_duration(s: float) -> str:
    s = max(0, round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {sec:02d} s" if m else f"{sec} s")


class ProgressLog:
    """``update(done, total, label)`` from the engine; a line every ``interval_s`` from a thread."""

    def __init__(self, total: int, already: int, interval_s: float = LOG_EVERY_S,
                 emit: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic):
        self.total, self.already = int(total), int(already)
        self.done, self.label = int(already), "starting"
        self.interval_s = float(interval_s)
        self._emit = emit or _to_stderr_and_log
        self._clock = clock
        self._t0 = clock()
        self._last_pair_t = self._t0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="progress-log", daemon=True)

    def update(self, done: int, total: int, label: str) -> None:
        with self._lock:
            self.done, self.total, self.label = int(done), int(total), label
            self._last_pair_t = self._clock()

    def line(self) -> str:
        with self._lock:
            done, total, label, last = self.done, self.total, self.label, self._last_pair_t
        now = self._clock()
        elapsed = max(now - self._t0, 1e-9)
        session = done - self.already
        rate = session / elapsed
        pct = 100.0 * done / total if total else 100.0
        eta = format_duration((total - done) / rate) if rate > 0 else "unknown"
        text = (f"progress: {done}/{total} pairs ({pct:.1f} %), {rate:.2f} pairs/s, ETA {eta}, "
                f"{label}")
        if now - last >= self.interval_s and done < total:
            text += f" (no pair finished for {format_duration(now - last)})"
        return text

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._emit(self.line())

    def __enter__(self) -> ProgressLog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _to_stderr_and_log(text: str) -> None:
    log.info(text)
    print(text, file=sys.stderr, flush=True)

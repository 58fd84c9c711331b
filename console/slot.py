"""A one-slot buffer between a producer that must never wait (the camera loop, the acquisition
engine) and consumers that want only the newest item (the view server).

``put`` replaces whatever is there and returns at once: it takes a lock held only for a few
assignments by either side, never across I/O. A consumer asks for an item newer than the one it
already has (``wait_newer``) and gets the newest; the ones it missed are counted as dropped.
"""

from __future__ import annotations

import threading
from typing import Any


class LatestSlot:
    """Holds the newest item and its sequence number (1, 2, ...; 0 = nothing yet)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._item: Any = None
        self._seq = 0
        self._taken = 0  # the newest seq any consumer has taken
        self.dropped = 0  # items replaced before any consumer took them

    @property
    def seq(self) -> int:
        return self._seq

    def put(self, item: Any) -> int:
        """Stores ``item`` as the newest, replacing the last; never blocks. Returns its seq."""
        with self._cond:
            if self._seq > self._taken:
                self.dropped += 1
            self._seq += 1
            self._item = item
            self._cond.notify_all()
            return self._seq

    def latest(self) -> tuple[int, Any]:
        """(seq, item) of the newest item, without waiting ((0, None) when there is none)."""
        with self._cond:
            return self._seq, self._item

    def wait_newer(self, seq: int, timeout_s: float | None = None) -> tuple[int, Any] | None:
        """The newest (seq, item) with a seq above ``seq``; waits up to ``timeout_s`` for one
        (None when none came)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > seq, timeout_s):
                return None
            self._taken = max(self._taken, self._seq)
            self._cond.notify_all()
            return self._seq, self._item

    def wait_taken(self, seq: int, timeout_s: float | None = None) -> bool:
        """Waits until a consumer has taken item ``seq`` (or a newer one); False on timeout. Lets a
        producer that computes its items (a simulated camera) make no more than are looked at."""
        with self._cond:
            return self._cond.wait_for(lambda: self._taken >= seq, timeout_s)

"""Clocks: the time base a rig's devices share (``Rig.clock``).

Real devices run on the host's monotonic clock. The simulated rig runs on a ``SimClock``: virtual
time that moves only when something waits on it (``sleep``) or when the simulated camera exposes,
so anything that depends on the time since an SLM flip (liquid-crystal settling) is the same on
every run, whatever the host's load. Code that waits for a device (the settle time after a flip)
waits with the rig's clock: ``flip = rig.slm.show_gray(g); rig.clock.sleep(...)``.
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on this clock (only differences mean anything)."""
        ...

    def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` on this clock."""
        ...


class RealClock:
    """The host's clock: ``time.monotonic`` and ``time.sleep``."""

    simulated = False

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimClock:
    """Virtual time for the simulated rig: advanced by ``sleep`` and ``advance``, never by the host.

    With ``real_waits``, ``sleep`` also waits that long on the host (virtual time advances by exactly
    the same amount, so frames are unchanged): a run then takes as long as its waits say, as on the
    bench (``[sim] real_time_waits``; tests that interrupt a run mid-way rely on it).
    """

    simulated = True

    def __init__(self, start_s: float = 0.0, real_waits: bool = False):
        self._now = float(start_s)
        self.real_waits = bool(real_waits)

    def monotonic(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        if self.real_waits and seconds > 0:
            time.sleep(float(seconds))

    def advance(self, seconds: float) -> None:
        s = float(seconds)
        if not math.isfinite(s):
            raise ValueError(f"clock: cannot advance by {seconds!r} s")
        if s > 0:
            self._now += s


REAL_CLOCK = RealClock()

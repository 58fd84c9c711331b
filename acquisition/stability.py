"""The drift monitor: a reference pattern recaptured every N pairs, compared with its first capture.

Within one block (diffuser and distance fixed) the speckle of a fixed pattern is fixed; drift of
the diffuser, the laser or the mounts decorrelates it. The figure is the Pearson correlation
coefficient of the reference frame with the block's first reference capture (1 = no drift). Below
``threshold`` the engine pauses and asks the operator, or stops cleanly when unattended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two frames (1.0 for two identical constant frames).

    From the sums (BLAS dot products in float64): exact enough for camera counts, whose sums of
    squares stay far below 2**53, and ~10× faster than centring copies of 800×800 frames.
    """
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    n = x.size
    sx, sy = x.sum(), y.sum()
    vx = float(x @ x - sx * sx / n)
    vy = float(y @ y - sy * sy / n)
    cov = float(x @ y - sx * sy / n)
    if vx <= 0.0 or vy <= 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return cov / float(np.sqrt(vx * vy))


@dataclass
class StabilityMonitor:
    threshold: float
    _baseline: dict[int, np.ndarray] = field(default_factory=dict)

    def set_baseline(self, block: int, frame: np.ndarray) -> None:
        self._baseline[block] = frame

    def has_baseline(self, block: int) -> bool:
        return block in self._baseline

    def check(self, block: int, frame: np.ndarray) -> tuple[float, bool]:
        """(correlation with the block's first reference, whether it is at or above threshold).

        The first reference of a block becomes its baseline (correlation 1).
        """
        base = self._baseline.get(block)
        if base is None:
            self._baseline[block] = frame
            return 1.0, True
        corr = pearson(base, frame)
        return corr, corr >= self.threshold

"""Auto exposure per block, and dark frames.

Auto exposure (once per block of one diffuser and distance; the engine stores the result so a
resumed run reuses it rather than deciding again):

- probe frames of a few of the block's objects are captured at a trial exposure;
- the statistic is the ``target_percentile`` of each probe's pixels (the largest over probes),
  and the saturated share (pixels at the camera maximum, the largest over probes);
- the exposure is scaled so that statistic lands at ``target_fraction`` of the camera maximum.
  Camera response is linear in exposure (exposure × irradiance, DESIGN.md "Camera"), so one step
  usually suffices; a saturated probe hides the true level, so then it steps down and bisects;
- it stops when the statistic is within ``tolerance`` of its target and no more than
  ``max_saturated_fraction`` of pixels saturate, or after ``max_iterations`` (keeping the last
  exposure that met the saturation limit).

Dark frames: the mean of ``n`` frames with the laser blocked, at the block's exposure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AutoExposureSettings:
    target_percentile: float = 99.0  # which pixel statistic to place (percent)
    target_fraction: float = 0.75  # ... at this share of the camera maximum
    max_saturated_fraction: float = 0.001  # no more than this share of pixels at the maximum
    tolerance: float = 0.1  # relative: accept when within ±10 % of the target
    max_iterations: int = 10
    min_exposure_us: float = 1.0
    max_exposure_us: float = 1_000_000.0


@dataclass(frozen=True)
class ExposureResult:
    exposure_us: float
    saturated_fraction: float
    statistic: float  # the target percentile at that exposure, in counts
    iterations: int
    converged: bool


def frame_statistics(images: list[np.ndarray], percentile: float, max_value: int) -> tuple[float, float]:
    """(largest ``percentile`` over the images, largest saturated share over the images)."""
    stat = max(float(np.percentile(im, percentile)) for im in images)
    sat = max(float(np.count_nonzero(im >= max_value)) / im.size for im in images)
    return stat, sat


def auto_expose(probe: Callable[[float, int], tuple[float, list[np.ndarray]]], start_us: float,
                max_value: int, settings: AutoExposureSettings = AutoExposureSettings()) -> ExposureResult:
    """Finds the block's exposure.

    ``probe(exposure_us, iteration)`` sets the camera to ``exposure_us``, captures the probe frames
    and returns (the exposure the camera applied, the frames). Keeps a bracket: ``lo`` the longest
    exposure known to meet the saturation limit, ``hi`` the shortest known to break it; each step
    aims at the target linearly and stays inside the bracket (bisecting it geometrically when the
    linear aim falls outside). Converged: within tolerance of the target, or the saturation limit
    binds (the bracket is narrower than the tolerance).
    """
    s = settings
    target = s.target_fraction * max_value
    exposure = min(max(start_us, s.min_exposure_us), s.max_exposure_us)
    lo: ExposureResult | None = None
    hi = math.inf
    last: ExposureResult | None = None
    for it in range(1, s.max_iterations + 1):
        applied, images = probe(exposure, it)
        stat, sat = frame_statistics(images, s.target_percentile, max_value)
        last = ExposureResult(applied, sat, stat, it, False)
        if sat <= s.max_saturated_fraction:
            if lo is None or applied >= lo.exposure_us:
                lo = last
            if abs(stat - target) <= s.tolerance * target or hi <= applied * (1 + s.tolerance):
                return ExposureResult(applied, sat, stat, it, True)
        else:
            hi = min(hi, applied)
            if lo is not None and hi <= lo.exposure_us * (1 + s.tolerance):
                return ExposureResult(lo.exposure_us, lo.saturated_fraction, lo.statistic, it, True)
        if stat >= max_value:
            aim = applied / 4  # the level is hidden by saturation: step down fast
        elif stat <= 0:
            aim = applied * 4
        else:
            aim = applied * min(max(target / stat, 0.1), 10.0)
        low = lo.exposure_us if lo is not None else 0.0
        if not low < aim < hi:
            aim = math.sqrt(max(low, applied / 16) * hi) if math.isfinite(hi) else aim
        nxt = min(max(aim, s.min_exposure_us), s.max_exposure_us)
        if math.isclose(nxt, applied, rel_tol=1e-6):
            break  # at a limit of the exposure range
        exposure = nxt
    if lo is not None:
        return lo
    return last


def mean_dark(frames: list[np.ndarray]) -> np.ndarray:
    """The mean of dark frames as float32."""
    acc = np.zeros(frames[0].shape, dtype=np.float64)
    for fr in frames:
        acc += fr
    return (acc / len(frames)).astype(np.float32)

"""Auto exposure per block, and dark frames.

Auto exposure (once per block of one diffuser and distance; the engine stores the result so a
resumed run reuses it rather than deciding again):

- probe frames of a few of the block's objects are captured at a trial exposure;
- the statistic is the ``target_percentile`` of each probe's pixels (the largest over probes),
  and the saturated share (pixels at the camera maximum, the largest over probes);
- the exposure is scaled so that statistic lands at ``target_level`` of the camera maximum.
  Camera response is linear in exposure (exposure × irradiance, docs/simulation.md), so one step
  usually suffices; a saturated probe hides the true level, so then it steps down and bisects;
- it stops when the statistic is within ``tolerance`` of its target and no more than
  ``max_saturated_fraction`` of pixels saturate, or after ``max_iterations`` (keeping the last
  exposure that met the saturation limit).

The settings are the protocol's ``[camera.auto_exposure]`` table as validated
(``protocols.schema.AutoExposureConfig``), with its names: ``target_percentile``, ``target_level``,
``max_saturated_fraction``, ``start_us``, ``min_us``, ``max_us``.

Dark frames: the mean of ``n`` frames with the laser blocked, at the block's exposure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from protocols.schema import AutoExposureConfig

TOLERANCE = 0.1  # relative: accept when within ±10 % of the target
MAX_ITERATIONS = 10


@dataclass(frozen=True)
class ExposureResult:
    exposure_us: float
    saturated_fraction: float
    statistic: float  # the target percentile at that exposure, in counts
    iterations: int
    converged: bool


def percentile(im: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of a frame (numpy's linear interpolation); integer frames go through
    a histogram (one pass, ~10× faster than sorting 800×800 pixels)."""
    if im.dtype.kind != "u" or im.dtype.itemsize > 2:
        return float(np.percentile(im, q))
    cdf = np.cumsum(np.bincount(im.ravel()))
    pos = q / 100.0 * (im.size - 1)  # fractional rank, as np.percentile's "linear" method
    lo, frac = int(np.floor(pos)), pos - np.floor(pos)
    v_lo = int(np.searchsorted(cdf, lo + 1))  # value of the (lo)-th smallest pixel, 0-based
    v_hi = int(np.searchsorted(cdf, min(lo + 2, im.size)))
    return float(v_lo + frac * (v_hi - v_lo))


def frame_statistics(images: list[np.ndarray], q: float, max_value: int) -> tuple[float, float]:
    """(largest ``q``-th percentile over the images, largest saturated share over the images)."""
    stat = max(percentile(im, q) for im in images)
    sat = max(float(np.count_nonzero(im >= max_value)) / im.size for im in images)
    return stat, sat


def saturation_level(images: list[np.ndarray], max_saturated_fraction: float) -> float:
    """The pixel value exceeded by ``max_saturated_fraction`` of the pixels (largest over images):
    the level that reaches the camera maximum when the limit of saturated pixels is just met."""
    q = 100.0 * (1.0 - max_saturated_fraction)
    return max(percentile(im, q) for im in images)


def auto_expose(probe: Callable[[float, int], tuple[float, list[np.ndarray]]], start_us: float,
                max_value: int, settings: AutoExposureConfig | None = None, *, tolerance: float = TOLERANCE,
                max_iterations: int = MAX_ITERATIONS) -> ExposureResult:
    """Finds the block's exposure.

    ``probe(exposure_us, iteration)`` sets the camera to ``exposure_us``, captures the probe frames
    and returns (the exposure the camera applied, the frames). Keeps a bracket: ``lo`` the longest
    exposure known to meet the saturation limit, ``hi`` the shortest known to break it; each step
    aims at the target linearly, but no further than where the saturation limit would be met
    (predicted linearly from the pixel distribution), and stays inside the bracket (bisecting it
    geometrically when the aim falls outside). Converged: within tolerance of the target, or the
    saturation limit binds (the saturation level is within tolerance of the maximum, or the
    bracket is narrower than the tolerance).
    """
    s = settings if settings is not None else AutoExposureConfig()
    tol = tolerance
    target = s.target_level * max_value
    exposure = min(max(start_us, s.min_us), s.max_us)
    lo: ExposureResult | None = None
    hi = math.inf
    last: ExposureResult | None = None
    for it in range(1, max_iterations + 1):
        applied, images = probe(exposure, it)
        stat, sat = frame_statistics(images, s.target_percentile, max_value)
        last = ExposureResult(applied, sat, stat, it, False)
        if sat <= s.max_saturated_fraction:
            if lo is None or applied >= lo.exposure_us:
                lo = last
            bound = saturation_level(images, s.max_saturated_fraction) >= max_value * (1 - tol)
            if abs(stat - target) <= tol * target or bound or hi <= applied * (1 + tol):
                return ExposureResult(applied, sat, stat, it, True)
        else:
            hi = min(hi, applied)
            if lo is not None and hi <= lo.exposure_us * (1 + tol):
                return ExposureResult(lo.exposure_us, lo.saturated_fraction, lo.statistic, it, True)
        aim = _aim(last, images, target, max_value, s, tol)
        low = lo.exposure_us if lo is not None else 0.0
        if not low < aim < hi:
            aim = math.sqrt(max(low, applied / 16) * hi) if math.isfinite(hi) else aim
        nxt = min(max(aim, s.min_us), s.max_us)
        if math.isclose(nxt, applied, rel_tol=1e-6):
            break  # at a limit of the exposure range
        exposure = nxt
    if lo is not None:
        return lo
    assert last is not None  # max_iterations >= 1: at least one probe ran
    return last


def _aim(probe: ExposureResult, images: list[np.ndarray], target: float, max_value: int,
         s: AutoExposureConfig, tol: float) -> float:
    """The next exposure to try, before the bracket: linearly at the target, but no further than
    where the saturation limit would just be met."""
    applied, stat = probe.exposure_us, probe.statistic
    if stat >= max_value:
        return applied / 4  # the level is hidden by saturation: step down fast
    if stat <= 0:
        return applied * 4
    aim = applied * min(max(target / stat, 0.1), 10.0)
    if probe.saturated_fraction <= s.max_saturated_fraction:
        # Linear response: the exposure at which the saturation limit would just be met.
        # A black level makes this an underestimate, so it is approached from below.
        level = saturation_level(images, s.max_saturated_fraction)
        if level > 0:
            aim = min(aim, applied * max_value / level * (1 - tol / 2))
    return aim


def mean_dark(frames: list[np.ndarray]) -> np.ndarray:
    """The mean of dark frames as float32."""
    acc = np.zeros(frames[0].shape, dtype=np.float64)
    for fr in frames:
        acc += fr
    return (acc / len(frames)).astype(np.float32)

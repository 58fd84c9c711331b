"""Live frame statistics for the console: histogram, maximum, saturation, speckle contrast, grain
size and a focus figure. Each is cheap enough to compute on every 800×800 frame at the camera's rate
on a 2-core CPU (bench/bench_live.py); the checks against numpy, scikit-image and speckle theory are
in tests/test_live_stats.py.

- **contrast** C = σ_I / ⟨I⟩ of the intensity after the black level is removed (Goodman, *Speckle
  Phenomena in Optics*, 2007, eq. 3.15: C = 1 for fully developed polarised speckle, < 1 when an
  unscattered part remains or the grain is averaged by the pixels).
- **grain** the full width at half maximum, in pixels, of the normalised intensity autocovariance
  (the mean of its row and column cuts through the origin). For speckle it is the usual measure of
  the mean speckle size (Goodman 2007, sec. 4.4: the autocovariance is |μ_A|², the squared modulus
  of the field's coherence factor, the Fourier transform of the pupil). Computed by FFT
  (Wiener–Khinchin) on the central ``GRAIN_CROP`` pixels square, zero-padded to avoid wrap-around.
- **sharpness** the variance of the 4-neighbour Laplacian over the squared mean (dimensionless, so
  an exposure change does not move it; larger = sharper: the classic "variance of Laplacian" focus
  measure, Pech-Pacheco et al., ICPR 2000). Border pixels are left out.
- **saturated** share of pixels at or above the camera's maximum value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

HIST_BINS = 256
GRAIN_CROP = 256  # the grain is measured on the central 256×256 pixels (the FFT stays ~3 ms)


@dataclass(frozen=True)
class FrameStats:
    max: int
    mean: float
    saturated_fraction: float
    contrast: float  # σ/μ after the black level
    grain_px: float  # FWHM of the intensity autocovariance, NaN when undefined
    sharpness: float  # var(Laplacian) / mean², NaN for a black frame
    histogram: list[int]  # HIST_BINS counts over 0..max_value
    black_level: float

    def to_json(self) -> dict:
        d = asdict(self)
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def value_counts(image: np.ndarray, max_value: int) -> np.ndarray:
    """How many pixels hold each value 0..max_value (one bincount: the other figures derive from it)."""
    return np.bincount(image.ravel(), minlength=max_value + 1)[: max_value + 1]


def histogram(image: np.ndarray, max_value: int, bins: int = HIST_BINS,
              counts: np.ndarray | None = None) -> np.ndarray:
    """Counts in ``bins`` equal bins over 0..max_value, as
    ``np.histogram(image, bins, range=(0, max_value + 1))``, from the value counts."""
    counts = value_counts(image, max_value) if counts is None else counts
    if max_value + 1 == bins:
        return counts.astype(np.int64)
    edges = (np.arange(max_value + 1, dtype=np.int64) * bins) // (max_value + 1)
    return np.bincount(edges, weights=counts, minlength=bins).astype(np.int64)


def contrast(image: np.ndarray, black_level: float = 0.0, counts: np.ndarray | None = None) -> float:
    """σ/μ of the intensity above ``black_level`` (0 for a uniform frame, NaN for a black one).

    Integer frames: exact, from the value counts (no float copy of the frame)."""
    if image.dtype.kind == "u" and image.dtype.itemsize <= 2:
        counts = value_counts(image, int(np.iinfo(image.dtype).max)) if counts is None else counts
        v = np.arange(counts.size, dtype=np.float64) - black_level
        n = float(counts.sum())
        mu = float(counts @ v) / n
        var = float(counts @ (v - mu) ** 2) / n
    else:
        x = image.astype(np.float64) - black_level
        mu, var = float(x.mean()), float(x.var())
    if mu <= 0:
        return float("nan")
    return float(np.sqrt(max(var, 0.0))) / mu


def _half_width(profile: np.ndarray) -> float:
    """Distance from index 0 at which a profile falling from 1 first reaches 0.5 (linear interp)."""
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    a, b = float(profile[k - 1]), float(profile[k])
    return (k - 1) + (a - 0.5) / (a - b)


def autocovariance(image: np.ndarray, crop: int = GRAIN_CROP) -> np.ndarray:
    """The normalised intensity autocovariance of the central ``crop`` square for shifts up to half
    the crop, origin at [0, 0] (1 at zero shift). By FFT, zero-padded by half the crop so those
    shifts are a linear (not circular) correlation, and unbiased (each shift divided by its number
    of overlapping pixel pairs)."""
    import scipy.fft

    h, w = image.shape
    ch, cw = min(crop, h), min(crop, w)
    r0, c0 = (h - ch) // 2, (w - cw) // 2
    x = image[r0:r0 + ch, c0:c0 + cw].astype(np.float32)
    x -= x.mean()
    mh, mw = ch // 2, cw // 2  # the largest shifts kept
    shape = (scipy.fft.next_fast_len(ch + mh, real=True), scipy.fft.next_fast_len(cw + mw, real=True))
    f = scipy.fft.rfft2(x, s=shape)
    acov = scipy.fft.irfft2(f.real**2 + f.imag**2, s=shape)[: mh + 1, : mw + 1]
    acov /= (ch - np.arange(mh + 1))[:, None] * (cw - np.arange(mw + 1))[None, :]
    zero = acov[0, 0]
    if zero <= 0:
        return np.zeros_like(acov)
    return acov / zero


def grain_px(image: np.ndarray, crop: int = GRAIN_CROP) -> float:
    """FWHM in pixels of the normalised intensity autocovariance: mean of its row and column cuts
    (NaN for a uniform frame, or a grain wider than the crop)."""
    a = autocovariance(image, crop)
    if a[0, 0] == 0:
        return float("nan")
    return float(_half_width(a[0, :]) + _half_width(a[:, 0]))


def sharpness(image: np.ndarray) -> float:
    """var(∇²I) / ⟨I⟩² with the 4-neighbour Laplacian, interior pixels only (NaN for a black frame)."""
    if min(image.shape) < 3:
        return float("nan")
    x = image.astype(np.float32)
    lap = np.add(x[:-2, 1:-1], x[2:, 1:-1])
    lap += x[1:-1, :-2]
    lap += x[1:-1, 2:]
    lap -= 4 * x[1:-1, 1:-1]
    mu = float(x.mean(dtype=np.float64))
    if mu <= 0:
        return float("nan")
    flat = lap.ravel()
    m = float(flat.mean(dtype=np.float64))
    var = float(np.dot(flat, flat)) / flat.size - m * m  # a BLAS dot: ~3× faster than .var()
    return max(var, 0.0) / mu**2


def frame_stats(image: np.ndarray, max_value: int, black_level: float = 0.0,
                saturation_level: int | None = None) -> FrameStats:
    """Every figure the console shows for one frame. ``saturation_level``: the output value at which
    the sensor really clips when that is below ``max_value`` (a colour sensor's red channel read as
    mono: the camera's ``saturation_level`` attribute); pixels at or above it count as saturated."""
    counts = value_counts(image, max_value)
    sat = max_value if saturation_level is None else min(int(saturation_level), max_value)
    return FrameStats(
        max=int(np.flatnonzero(counts)[-1]),
        mean=float(counts @ np.arange(counts.size, dtype=np.float64)) / image.size,
        saturated_fraction=float(counts[sat:].sum()) / image.size,
        contrast=contrast(image, black_level, counts if image.dtype.itemsize <= 2 else None),
        grain_px=grain_px(image),
        sharpness=sharpness(image),
        histogram=histogram(image, max_value, counts=counts).tolist(),
        black_level=float(black_level),
    )

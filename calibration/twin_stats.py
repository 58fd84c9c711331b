"""A captured run's speckle statistics, computed the same way on the run and on its simulated twin.

Frames are dark-subtracted (the block's mean dark frame) and divided by their exposure, so every
level is in counts per µs. For each block (one diffuser at one distance), over its objects:

- ``level``: the mean irradiance;
- ``contrast``: σ/μ of each frame, averaged (Goodman, "Speckle Phenomena in Optics", §3: 1 for fully
  developed speckle, less when unscattered light adds a coherent background);
- ``autocov``: the radially averaged intensity autocovariance, its lag 0 left out (it carries the
  pixel noise); the grain size is its half width at half maximum, the maximum extrapolated to lag 0
  from lags 1 and 2 (ac(r) ≈ p·(1 − r²/ℓ²) near 0: p = (4·ac(1) − ac(2))/3);
- with the empty slot's frames of the same objects at the same distance: the regression of the
  frame I_d on the empty-slot frame I_e over all pixels, I_d ≈ α·I_e + β (α pooled over the
  diffuser's distances, β per distance), and their Pearson correlation. The unscattered field is
  ⟨e^{iφ}⟩ times the object's field, so α = exp(−σφ²) for a Gaussian phase screen
  (docs/calibration.md, eq. 5), and β is the scattered light the iris lets through,
  (1 − α)·S(θ0)·I0, whose share S falls as the scattering angle θ0 grows;
- ``decorrelation``: the Pearson correlation of each object's frame with its frame at the run's
  smallest distance (per diffuser and distance).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

MAX_LAG = 40  # pixels of the radial autocovariance kept


@dataclass
class Block:
    diffuser: str
    distance_mm: float
    exposure_us: float
    objects: list[int]
    frames: list[np.ndarray]  # float32, dark-subtracted, counts per µs


@dataclass
class BlockStats:
    level: float
    contrast: float
    autocov: np.ndarray
    grain_px: float
    alpha: float = math.nan  # regression on the empty-slot frame, pooled over the diffuser's distances
    sxy: float = 0.0  # Σ (I_d − mean)(I_e − mean) over the block's pixels, for the pooled α
    sxx: float = 0.0  # Σ (I_e − mean)²
    beta_share: float = math.nan  # β / (mean level of the empty-slot frames)
    corr_empty: float = math.nan
    decorrelation: float = math.nan  # correlation with the frame at the smallest distance
    spread: dict[str, float] = field(default_factory=dict)  # a twin's: each statistic's std between screens


@dataclass
class RunStats:
    blocks: dict[tuple[str, float], BlockStats] = field(default_factory=dict)
    empty: str | None = None

    @property
    def diffusers(self) -> list[str]:
        return sorted({d for d, _ in self.blocks if d != self.empty})

    @property
    def distances(self) -> list[float]:
        return sorted({z for _, z in self.blocks})

    def grain_px(self) -> float:
        """The grain size: the median over the diffusers at the smallest distance, where the camera
        images the diffuser and the grain is set by the iris alone (farther away a small window's
        own angular size can limit it too)."""
        z0 = min(self.distances)
        vals = [s.grain_px for (d, z), s in self.blocks.items()
                if d != self.empty and z == z0 and math.isfinite(s.grain_px)]
        return float(np.median(vals)) if vals else math.nan


def _fast_len(n: int) -> int:
    """scipy.fft's next fast FFT length at or above ``n``."""
    import scipy.fft as sfft

    fast = sfft.next_fast_len(n)
    if fast is None:  # scipy's stub allows it; a positive target always has a fast length
        raise ValueError(f"no FFT length for {n} points")
    return fast


# (FFT shape, ring index of each kept shift, the kept-shift mask, overlap counts, ring sizes)
_Rings = tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@functools.lru_cache(maxsize=8)
def _rings(h: int, w: int, lag: int) -> _Rings:
    """(FFT shape, ring index of each kept shift, the kept-shift mask, overlap counts, ring sizes) for
    (h, w) frames: the same for every frame of a ROI, so computed once."""
    import scipy.fft as sfft

    shape = (_fast_len(h + lag + 1), _fast_len(w + lag + 1))  # no wrap-around up to lag
    yy, xx = np.indices(shape)
    rbin = np.rint(np.hypot(np.minimum(yy, shape[0] - yy), np.minimum(xx, shape[1] - xx))).astype(int)
    mask = rbin <= lag
    spectrum = np.asarray(sfft.rfft2(np.ones((h, w)), s=shape))  # scipy.fft's stubs: a tuple
    overlap = np.asarray(sfft.irfft2(np.abs(spectrum) ** 2, s=shape))[mask]
    counts = np.bincount(rbin[mask], minlength=lag + 1)
    return shape, rbin[mask], mask, np.maximum(overlap, 1.0), np.maximum(counts, 1)


def radial_autocov(frames: list[np.ndarray], max_lag: int = MAX_LAG) -> np.ndarray:
    """The mean over ``frames`` of the radially averaged autocovariance, lags 0..max_lag (pixels).

    Zero-padded FFTs give the linear (not circular) correlation; each shift is divided by the number
    of pixel pairs that overlap at it, then shifts are averaged in rings of integer radius.
    """
    import scipy.fft as sfft

    h, w = frames[0].shape
    lag = min(max_lag, h // 3, w // 3)
    shape, rbin, mask, overlap, counts = _rings(h, w, lag)
    acc = np.zeros(lag + 1)
    for f in frames:
        x = f - f.mean()
        spectrum = np.asarray(sfft.rfft2(x, s=shape))  # scipy.fft's stubs: a tuple
        ac = np.asarray(sfft.irfft2(np.abs(spectrum) ** 2, s=shape))[mask] / overlap
        acc += np.bincount(rbin, weights=ac, minlength=lag + 1) / counts
    return acc / len(frames)


def grain_hwhm(ac: np.ndarray) -> float:
    """Half width at half maximum of a radial autocovariance, lag 0 excluded (see the module doc)."""
    if len(ac) < 4 or ac[1] <= 0:
        return math.nan
    peak = (4.0 * ac[1] - ac[2]) / 3.0
    half = 0.5 * peak
    for r in range(1, len(ac)):
        if ac[r] < half:
            if r == 1:
                return 1.0 * (peak - half) / max(peak - ac[1], 1e-30)
            return (r - 1) + (ac[r - 1] - half) / max(ac[r - 1] - ac[r], 1e-30)
    return math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def block_stats(block: Block) -> BlockStats:
    frames = block.frames
    level = float(np.mean([f.mean() for f in frames]))
    contrast = float(np.mean([f.std() / f.mean() for f in frames if f.mean() > 0])) if level > 0 else math.nan
    ac = radial_autocov(frames)
    return BlockStats(level, contrast, ac, grain_hwhm(ac))


def regression_sums(block: Block, empty: Block) -> tuple[float, float, float, float, float]:
    """(Σ(d − d̄)(e − ē), Σ(e − ē)², d̄, ē, mean Pearson r) over the pixels of the objects that
    ``block`` and the empty-slot block share: the pieces of the regression I_d ≈ α·I_e + β."""
    by_object = dict(zip(empty.objects, empty.frames, strict=True))
    pairs = [(f, by_object[o]) for o, f in zip(block.objects, block.frames, strict=True) if o in by_object]
    if not pairs:
        return 0.0, 0.0, math.nan, math.nan, math.nan
    d = np.concatenate([p[0].ravel() for p in pairs]).astype(np.float64)
    e = np.concatenate([p[1].ravel() for p in pairs]).astype(np.float64)
    sxy = float(((d - d.mean()) * (e - e.mean())).sum())
    sxx = float(((e - e.mean()) ** 2).sum())
    r = float(np.mean([_pearson(a, b) for a, b in pairs]))
    return sxy, sxx, float(d.mean()), float(e.mean()), r


def run_stats(blocks: list[Block], empty: str | None) -> RunStats:
    """Every statistic of the module doc for a run's blocks."""
    out = RunStats(empty=empty)
    index = {(b.diffuser, b.distance_mm): b for b in blocks}
    for key, b in index.items():
        out.blocks[key] = block_stats(b)
    z0 = min(z for _, z in index)
    means: dict[tuple[str, float], tuple[float, float]] = {}
    for (d, z), b in index.items():
        s = out.blocks[(d, z)]
        if empty is not None and d != empty and (empty, z) in index:
            s.sxy, s.sxx, d_mean, e_mean, s.corr_empty = regression_sums(b, index[(empty, z)])
            means[(d, z)] = (d_mean, e_mean)
        near = index.get((d, z0))
        if near is not None:
            first = dict(zip(near.objects, near.frames, strict=True))
            rs = [_pearson(f, first[o]) for o, f in zip(b.objects, b.frames, strict=True) if o in first]
            s.decorrelation = float(np.mean(rs)) if rs else math.nan
    # α pooled over each diffuser's distances (weighted by the empty frame's variance, which is
    # small at 0 mm where the phase object images as a flat field); β per block from it.
    for d in {d for d, _ in means}:
        keys = [k for k in means if k[0] == d]
        sxx = sum(out.blocks[k].sxx for k in keys)
        alpha = sum(out.blocks[k].sxy for k in keys) / sxx if sxx > 0 else math.nan
        for k in keys:
            d_mean, e_mean = means[k]
            out.blocks[k].alpha = alpha
            out.blocks[k].beta_share = (d_mean - alpha * e_mean) / e_mean if e_mean > 0 else math.nan
    return out


def average_stats(many: list[RunStats]) -> RunStats:
    """The mean of several realisations' statistics (the twin's, over diffuser screens), with each
    statistic's spread between them (``BlockStats.spread``)."""
    if len(many) == 1:
        return many[0]
    out = RunStats(empty=many[0].empty)
    for key in many[0].blocks:
        items = [m.blocks[key] for m in many]
        fields, spread = {}, {}
        for name in ("level", "contrast", "grain_px", "alpha", "beta_share", "corr_empty", "decorrelation",
                     "sxy", "sxx"):
            vals = [getattr(s, name) for s in items]
            ok = all(math.isfinite(v) for v in vals)
            fields[name] = float(np.mean(vals)) if ok else math.nan
            spread[name] = float(np.std(vals, ddof=1)) if ok else math.nan
        fields["autocov"] = np.mean([s.autocov for s in items], axis=0)
        out.blocks[key] = BlockStats(**fields, spread=spread)
    return out

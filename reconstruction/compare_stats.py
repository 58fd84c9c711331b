"""Bootstrap confidence intervals for per-image metrics, and paired differences between models.

Every figure of ``speckle-lab compare`` is a mean of per-image metrics over a set of pairs. Pairs of
the same face (object) are not independent: one face is seen through several diffusers and distances,
and a face that is easy is easy in all of them. So the bootstrap resamples faces, not pairs (a cluster
bootstrap, Davison & Hinkley 1997, §3.8): each replicate draws K of the K faces with replacement and
takes the mean over all the pairs of the drawn faces. Where each face has one pair (one cell of the
table: one diffuser at one distance), this is the ordinary bootstrap over images.

- :func:`mean_ci`: the mean and its percentile 95 % interval;
- :func:`paired_difference`: the mean of per-image differences between two models scored on the same
  pairs (paired bootstrap: the same faces drawn for both), its interval, a two-sided bootstrap p-value
  and ``significant`` = the interval excludes 0 (and rests on at least ``MIN_FACES`` faces);
- :func:`holm`: Holm's step-down adjustment of a family of p-values (Holm 1979), for the many cells
  compared at once.

Small samples: with fewer than 2 faces there is no interval (``nan``); with fewer than ``MIN_FACES``
faces the interval is shown but no difference is called significant, because a percentile bootstrap
of so few clusters covers the truth far less often than 95 % (Davison & Hinkley 1997, §5.3).

Pure numpy; deterministic for a given ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
MIN_FACES = 10  # fewest faces (clusters) for a difference to be called significant


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float
    n: int  # pairs (images)
    clusters: int  # faces resampled

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Difference(Interval):
    p: float  # two-sided bootstrap p-value of "no difference" (1 with fewer than MIN_FACES faces)
    significant: bool  # the 95 % interval excludes 0, from at least MIN_FACES faces

    def as_dict(self) -> dict:
        return asdict(self)


def _clusters(values: np.ndarray, clusters) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums and counts of ``values`` (one cluster per image when ``clusters`` is None)."""
    if clusters is None:
        return values.astype(np.float64), np.ones(len(values))
    clusters = np.asarray(clusters)
    if clusters.shape != values.shape:
        raise ValueError(f"clusters shape {clusters.shape} differs from values shape {values.shape}")
    _, inverse = np.unique(clusters, return_inverse=True)
    return (np.bincount(inverse, weights=values.astype(np.float64)),
            np.bincount(inverse).astype(np.float64))


def bootstrap_means(values, clusters=None, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the mean of ``values``, resampling clusters with replacement.

    Replicate b draws cluster indices ``rng.integers(0, K, K)`` (row b of one (n_boot, K) draw) and
    returns sum(values of the drawn clusters) / count(their images)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"need a non-empty 1-D array of per-image values (got shape {values.shape})")
    if not np.all(np.isfinite(values)):
        raise ValueError("per-image values must be finite (PSNR of a perfect image is inf: leave it out)")
    sums, counts = _clusters(values, clusters)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sums), size=(n_boot, len(sums)))
    return sums[draw].sum(axis=1) / counts[draw].sum(axis=1)


def _percentiles(reps: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return float(lo), float(hi)


def _n_clusters(values: np.ndarray, clusters) -> int:
    return len(values) if clusters is None else len(np.unique(np.asarray(clusters)))


def mean_ci(values, clusters=None, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Interval:
    """Mean of ``values`` with its percentile bootstrap interval (clusters resampled; nan for one face)."""
    values = np.asarray(values, dtype=np.float64)
    reps = bootstrap_means(values, clusters, n_boot, seed)
    k = _n_clusters(values, clusters)
    lo, hi = _percentiles(reps, level) if k >= 2 else (np.nan, np.nan)
    return Interval(float(values.mean()), lo, hi, int(len(values)), int(k))


def paired_difference(a, b, clusters=None, n_boot: int = N_BOOT, seed: int = 0,
                      level: float = LEVEL) -> Difference:
    """Mean of ``a - b`` (two models' per-image metrics on the same pairs, aligned), its interval, the
    two-sided bootstrap p-value (2 × the smaller share of replicates on either side of 0, at most 1)
    and whether the interval excludes 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} and {b.shape}")
    d = a - b
    reps = bootstrap_means(d, clusters, n_boot, seed)
    k = _n_clusters(d, clusters)
    if k < 2:
        return Difference(float(d.mean()), np.nan, np.nan, int(len(d)), int(k), 1.0, False)
    lo, hi = _percentiles(reps, level)
    p = min(1.0, 2 * min(float(np.mean(reps <= 0)), float(np.mean(reps >= 0))))
    if k < MIN_FACES:
        p = 1.0  # too few faces to trust the interval's coverage: never called significant
    significant = k >= MIN_FACES and (lo > 0 or hi < 0)
    return Difference(float(d.mean()), lo, hi, int(len(d)), int(k), p, bool(significant))


def holm(pvalues, alpha: float = 1 - LEVEL) -> list[bool]:
    """Holm's step-down test: which of a family of p-values stay significant at family-wise ``alpha``."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    keep = np.zeros(len(p), dtype=bool)
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        keep[i] = True
    return keep.tolist()

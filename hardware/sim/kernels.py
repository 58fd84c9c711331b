"""Compiled per-pixel kernels of the simulated rig (numba), and the row bands they run on.

Every kernel is ``@njit(nogil=True, cache=True)`` without ``fastmath``: no reassociation and no
fused multiply-add, so a pixel's value depends only on its inputs, whatever the thread count. The
work is split into row bands run by a small thread pool of this module (``run_bands``), not by
numba's ``parallel=True``: its default threading layer aborts the process when two Python threads
launch kernels at once (the live console captures in a thread), and a pool re-made after ``fork``
keeps forked test workers and acquisition children safe.

Random numbers are counter-based: pixel i of a frame draws ``splitmix64(key + (i + 1)·φ64)``, a
hash of the frame's 64-bit key (derived from the pair's identity, hardware/sim/devices.py) and the
pixel's index (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
2014). So a frame's noise is the same for any band split, thread count or call order.

From one 64-bit draw a pixel takes a standard normal (the top 16 bits index a 65536-entry table
of normal quantiles, midpoints of equal-probability bins; the two outermost bins are refined by
the next 16 bits through a second table down to 2⁻³³, so the tails reach ±6.4σ instead of being
cut at ±4.3σ) and a uniform from the low 32 bits, independent of the normal's bits.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy.special import ndtri

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S16, _S32, _S48 = np.uint64(16), np.uint64(32), np.uint64(48)
_LOW16, _LOW32 = np.uint64(0xFFFF), np.uint64(0xFFFFFFFF)

# Normal quantiles at the midpoints of 65536 equal-probability bins; the outermost bin on each
# side is split again into 65536 (TAIL: the lower one; the upper one is its mirror image).
NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536.0).astype(np.float32)
NORMAL_TAIL = ndtri((np.arange(65536) + 0.5) / 65536.0**2).astype(np.float32)
MAX_POISSON_TERMS = 200  # the inversion below stops here (only reached for λ ≫ its cut)
_INV_K = np.array([0.0] + [1.0 / k for k in range(1, MAX_POISSON_TERMS + 1)])


@njit(nogil=True, cache=True, inline="always")
def _splitmix64(key, index):  # pragma: no cover - compiled
    z = key + (np.uint64(index) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(nogil=True, cache=True, inline="always")
def _normal(h, table, tail):  # pragma: no cover - compiled
    """A standard normal from the top 32 bits of ``h`` (see the module doc)."""
    i = np.int64(h >> _S48)
    if i == 0:
        return tail[np.int64((h >> _S32) & _LOW16)]
    if i == 65535:
        return -tail[np.int64((h >> _S32) & _LOW16)]
    return table[i]


@njit(nogil=True, cache=True)
def _poisson(lam, u, inv_k):  # pragma: no cover - compiled
    """Poisson(λ) by inversion of its CDF at the uniform ``u`` (exact up to float64 rounding)."""
    p = math.exp(-lam)
    cdf = p
    k = 0
    while u > cdf and k < MAX_POISSON_TERMS:
        k += 1
        p *= lam * inv_k[k]
        cdf += p
    return k


@njit(nogil=True, cache=True, inline="always")
def _normal_electrons(lam, read_noise, h, table, tail):  # pragma: no cover - compiled
    """λ electrons (float32) with shot and read noise as one skew-corrected normal (see below)."""
    z = _normal(h, table, tail)
    v = lam + read_noise * read_noise
    iv = np.float32(1.0) / v
    b = lam * iv * np.float32(1.0 / 6.0)
    a2 = b * b * iv
    return lam + (np.float32(math.sqrt(v)) * z + b * (z * z - np.float32(1.0))) * (np.float32(1.0) - a2)


@njit(nogil=True, cache=True, inline="always")
def _electrons(lam, read_noise, exact_below, key, index, table, tail, inv_k):  # pragma: no cover
    """One pixel's electrons (float32) for a mean of λ electrons (float32), shot and read noise.

    Exact Poisson by inversion where λ < ``exact_below``, plus Normal(0, σr²). Above it, one
    normal of the summed variance v = λ + σr², skew-corrected to the sum's third cumulant λ
    (Cornish–Fisher to first order: √v·z + b(z² − 1) with b = λ/(6v), i.e. skewness 6b/√v; its
    variance v(1 + 2a²), a = b/√v, is brought back to v by the factor 1 − a²): the mean, the
    variance and the skewness of Poisson(λ) + N(0, σr²). Float32 arithmetic on this path.
    """
    h = _splitmix64(key, index)
    if lam < exact_below:
        u = (np.float64(h & _LOW32) + 0.5) * (1.0 / 4294967296.0)
        z = np.float64(_normal(h, table, tail))
        return np.float32(_poisson(np.float64(lam), u, inv_k) + np.float64(read_noise) * z)
    return _normal_electrons(lam, read_noise, h, table, tail)


@njit(nogil=True, cache=True, inline="always")
def _codes_rows(irr, lit, site_scale, dark, noise, exact, read_noise, exact_below, key, to_adu, black,
                adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """Rows r0..r1 of the ADC codes (float32, into ``codes``); returns how many red sites clipped.

    λ = irradiance × site_scale[row parity, col parity] + dark (electrons); with ``noise``, the
    electrons of ``_electrons`` (``exact``: with its exact Poisson branch); codes =
    clip(rint(electrons × to_adu + black), 0, adc_max).
    """
    cols = codes.shape[1]
    clipped = 0
    top = adc_max - np.float32(0.5)
    for r in range(r0, r1):
        pr = r & 1
        s0, s1 = site_scale[pr, 0], site_scale[pr, 1]
        for c in range(cols):
            lam = (s1 if c & 1 else s0) * irr[r, c] + dark if lit else dark
            if noise:
                if exact:
                    lam = _electrons(lam, read_noise, exact_below, key, r * cols + c, table, tail, inv_k)
                else:
                    lam = _normal_electrons(lam, read_noise, _splitmix64(key, r * cols + c), table, tail)
            codes[r, c] = lam * to_adu + black
        if pr == red_r:  # the red sites that reached the top code
            for c in range(red_c, cols, 2):
                clipped += codes[r, c] >= top
        for c in range(cols):
            codes[r, c] = min(max(np.rint(codes[r, c]), np.float32(0.0)), adc_max)
    return clipped


@njit(nogil=True, cache=True)
def _sensor_band(irr, lit, site_scale, dark, noise, read_noise, exact_below, key, to_adu, black,
                 adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """``_codes_rows`` without the exact Poisson branch (``exact_below`` ≤ 0: the normal path only)."""
    return _codes_rows(irr, lit, site_scale, dark, noise, False, read_noise, exact_below, key, to_adu,
                       black, adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1)


@njit(nogil=True, cache=True)
def _sensor_band_exact(irr, lit, site_scale, dark, noise, read_noise, exact_below, key, to_adu, black,
                       adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """``_codes_rows`` with the exact Poisson branch below ``exact_below``."""
    return _codes_rows(irr, lit, site_scale, dark, noise, True, read_noise, exact_below, key, to_adu,
                       black, adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1)


@njit(nogil=True, cache=True)
def _electrons_flat(lam, read_noise, exact_below, key, table, tail, inv_k):  # pragma: no cover
    """``_electrons`` for each λ of a 1-D array, pixel index = array index (the sampler's tests)."""
    out = np.empty(lam.shape[0], np.float32)
    for i in range(lam.shape[0]):
        out[i] = _electrons(lam[i], read_noise, exact_below, key, i, table, tail, inv_k)
    return out


@njit(nogil=True, cache=True, inline="always")
def _mirror(i, n):  # pragma: no cover - compiled
    """numpy's "reflect" padding by one sample: −1 → 1, n → n − 2 (a 1-long axis stays at 0)."""
    if i < 0:
        return min(1, n - 1)
    if i >= n:
        return max(n - 2, 0)
    return i


@njit(nogil=True, cache=True, inline="always")
def _grey(codes, weights, scale, r, c, up, dn, lf, rt):  # pragma: no cover - compiled
    """Y/full scale at (r, c), clipped to 0..1: the stencil of ``_grey_band``."""
    pr, pc = r & 1, c & 1
    y = weights[pr, pc, 0] * codes[r, c]
    y += weights[pr, pc, 1] * (codes[r, lf] + codes[r, rt])
    y += weights[pr, pc, 2] * (codes[up, c] + codes[dn, c])
    y += weights[pr, pc, 3] * ((codes[up, lf] + codes[up, rt]) + (codes[dn, lf] + codes[dn, rt]))
    return min(max(y * scale, np.float32(0.0)), np.float32(1.0))


@njit(nogil=True, cache=True)
def _grey_band(codes, weights, scale, gamma, out, r0, r1):  # pragma: no cover - compiled
    """Rows r0..r1 of the 8-bit grey image: bilinear demosaic and Y = wR·R + wG·G + wB·B folded
    into one stencil per colour site, Y = a·centre + b·(left + right) + c·(up + down) + d·(the 4
    diagonals), ``weights[row parity, col parity] = (a, b, c, d)``; then Y/full scale, clipped to
    0..1, to the power 1/γ (when γ ≠ 1), × 255.999, truncated to uint8. Borders are mirrored."""
    rows, cols = codes.shape
    inv_gamma = np.float32(1.0 / gamma)
    top = np.float32(255.999)
    for r in range(r0, r1):
        up, dn = _mirror(r - 1, rows), _mirror(r + 1, rows)
        for c in (0, cols - 1):  # the mirrored edge columns
            y = _grey(codes, weights, scale, r, c, up, dn, _mirror(c - 1, cols), _mirror(c + 1, cols))
            out[r, c] = np.uint8((y ** inv_gamma if gamma != 1.0 else y) * top)
        if gamma == 1.0:  # the common case, without a branch in the loop
            for c in range(1, cols - 1):
                out[r, c] = np.uint8(_grey(codes, weights, scale, r, c, up, dn, c - 1, c + 1) * top)
        else:
            for c in range(1, cols - 1):
                y = _grey(codes, weights, scale, r, c, up, dn, c - 1, c + 1)
                out[r, c] = np.uint8(y ** inv_gamma * top)


@njit(nogil=True, cache=True)
def _window_field_band(lut, gray, screen, out, r0, r1):  # pragma: no cover - compiled
    """out = LUT[gray] × screen over rows r0..r1 (complex64): the SLM field behind the diffuser."""
    for r in range(r0, r1):
        for c in range(gray.shape[1]):
            out[r, c] = lut[gray[r, c]] * screen[r, c]


@njit(nogil=True, cache=True)
def _intensity_band(field, out, r0, r1):  # pragma: no cover - compiled
    """out = re² + im² over rows r0..r1 (float32)."""
    for r in range(r0, r1):
        for c in range(field.shape[1]):
            v = field[r, c]
            out[r, c] = v.real * v.real + v.imag * v.imag


# -- row bands on a thread pool -----------------------------------------------------------------------
MIN_BAND_PIXELS = 65536  # a band's worth of work below which one thread does the whole frame
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)
_pool_lock = threading.Lock()
_threads = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def set_threads(n: int) -> int:
    """Set how many threads run the bands (tests check the bytes do not depend on it); the old value."""
    global _threads
    old, _threads = _threads, max(1, int(n))
    return old


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != threads:
            _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="sim-kernel"))
        return _pool[2]


def run_bands(kernel: Callable[..., object], rows: int, cols: int, *args: object) -> list:
    """``kernel(*args, r0, r1)`` over row bands covering 0..rows; the kernels' results, in band order."""
    bands = min(_threads, max(1, rows * cols // MIN_BAND_PIXELS), rows)
    if bands <= 1:
        return [kernel(*args, 0, rows)]
    edges = [rows * k // bands for k in range(bands + 1)]
    pool = _executor(_threads)
    futures = [pool.submit(kernel, *args, edges[k], edges[k + 1]) for k in range(bands)]
    return [f.result() for f in futures]


# -- the public entry points ----------------------------------------------------------------------------
def window_field(lut: np.ndarray, gray: np.ndarray, screen: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = lut[gray] * screen`` (complex64; ``out`` and ``screen`` may be views)."""
    run_bands(_window_field_band, gray.shape[0], gray.shape[1], lut, gray, screen, out)


def intensity(field: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """|field|² (float32) as re·re + im·im, the same bytes as numpy's two products and a sum."""
    if out is None:
        out = np.empty(field.shape, np.float32)
    run_bands(_intensity_band, field.shape[0], field.shape[1], field, out)
    return out


def sensor_codes(irr: np.ndarray, lit: bool, site_scale: np.ndarray, dark: float, noise: bool,
                 read_noise: float, exact_below: float, key: int, to_adu: float, black: float,
                 adc_max: int, red_at: tuple[int, int], codes: np.ndarray) -> int:
    """Fill ``codes`` (float32, the ROI) with the ADC codes; returns how many red sites clipped."""
    f32 = np.float32
    band = _sensor_band_exact if exact_below > 0 else _sensor_band
    counts = run_bands(band, codes.shape[0], codes.shape[1], irr, bool(lit),
                       np.ascontiguousarray(site_scale, f32), f32(dark), bool(noise), f32(read_noise),
                       f32(exact_below), np.uint64(key), f32(to_adu), f32(black), f32(adc_max),
                       int(red_at[0]), int(red_at[1]), NORMAL_TABLE, NORMAL_TAIL, _INV_K, codes)
    return int(sum(counts))


def grey8(codes: np.ndarray, stencil: np.ndarray, scale: float, gamma: float, out: np.ndarray) -> None:
    """The 8-bit grey image of the codes into ``out`` (uint8): ``_grey_band`` over every row."""
    run_bands(_grey_band, codes.shape[0], codes.shape[1], codes, stencil, np.float32(scale),
              np.float32(gamma), out)


def electrons(lam: np.ndarray, read_noise: float, exact_below: float, key: int) -> np.ndarray:
    """The sensor's noisy electrons for a 1-D array of means (float32), as a frame draws them."""
    return _electrons_flat(np.ascontiguousarray(lam, np.float32), np.float32(read_noise),
                           np.float32(exact_below), np.uint64(key), NORMAL_TABLE, NORMAL_TAIL, _INV_K)


def frame_key(seed_words: np.ndarray) -> np.uint64:
    """The 64-bit key of a frame's noise from a SeedSequence's state (two uint32 words)."""
    return np.uint64(int(seed_words[0]) | (int(seed_words[1]) << 32))

"""The simulated rig's per-pixel kernels, compiled by numba (hardware/sim/kernels.py runs them).

Every kernel is ``@njit(nogil=True, cache=True, error_model="numpy")`` (a division by zero gives
inf, as in numpy, with no test for it in the loop) without ``fastmath``: no reassociation and no
fused multiply-add, so a pixel's value is one fixed sequence of IEEE operations, whatever the
thread count, and the same as numpy's in hardware/sim/reference.py (tests/test_sim_kernels.py
compares them byte for byte). Each takes its rows r0..r1 last, for ``kernels.run_bands``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hardware.sim.kernels import (
    GOLDEN,
    LOW16,
    LOW32,
    MAX_POISSON_TERMS,
    MIX1,
    MIX2,
    S27,
    S30,
    S31,
    S32,
    S48,
)


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _splitmix64(key, index):  # pragma: no cover - compiled
    z = key + (np.uint64(index) + np.uint64(1)) * GOLDEN
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _normal(h, table, tail):  # pragma: no cover - compiled
    """A standard normal from the top 32 bits of ``h`` (see the module doc)."""
    i = np.int64(h >> S48)
    if i == 0:
        return tail[np.int64((h >> S32) & LOW16)]
    if i == 65535:
        return -tail[np.int64((h >> S32) & LOW16)]
    return table[i]


@njit(nogil=True, cache=True, error_model="numpy")
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


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _skewed_normal(lam, read_noise, z):  # pragma: no cover - compiled
    """λ electrons (float32) with shot and read noise as one skew-corrected normal (see below),
    from the standard normal ``z``."""
    v = lam + read_noise * read_noise
    iv = np.float32(1.0) / v
    b = lam * iv * np.float32(1.0 / 6.0)
    a2 = b * b * iv
    return lam + (np.float32(math.sqrt(v)) * z + b * (z * z - np.float32(1.0))) * (np.float32(1.0) - a2)


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _normal_electrons(lam, read_noise, h, table, tail):  # pragma: no cover - compiled
    """``_skewed_normal`` with the normal of the draw ``h``."""
    return _skewed_normal(lam, read_noise, _normal(h, table, tail))


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
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
        u = (np.float64(h & LOW32) + 0.5) * (1.0 / 4294967296.0)
        z = np.float64(_normal(h, table, tail))
        return np.float32(_poisson(np.float64(lam), u, inv_k) + np.float64(read_noise) * z)
    return _normal_electrons(lam, read_noise, h, table, tail)


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _row_electrons(mean, read_noise, exact, exact_below, key, base, table, tail, inv_k, to_adu, black,
                   z, out):  # pragma: no cover - compiled
    """One row's noisy electrons × to_adu + black into ``out`` from its means: the draws (a hash
    and a table look-up per pixel) into ``z``, the skew-corrected normals in a loop of its own
    (which LLVM vectorises), then, with ``exact``, the exact Poisson of the pixels below the cut."""
    cols = out.shape[0]
    for c in range(cols):
        z[c] = _normal(_splitmix64(key, base + c), table, tail)
    for c in range(cols):
        out[c] = _skewed_normal(mean[c], read_noise, z[c]) * to_adu + black
    if exact:
        for c in range(cols):
            if mean[c] < exact_below:
                e = _electrons(mean[c], read_noise, exact_below, key, base + c, table, tail, inv_k)
                out[c] = e * to_adu + black


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _row_adc(out, adc_max, red_c, count_red):  # pragma: no cover - compiled
    """Scaled electrons → ADC codes in place, clip(rint(x), 0, adc_max); returns how many red
    sites (columns red_c, red_c + 2, …, when ``count_red``) reached the top code."""
    cols = out.shape[0]
    clipped = 0
    if count_red:
        top = adc_max - np.float32(0.5)
        for c in range(red_c, cols, 2):
            clipped += out[c] >= top
    zero = np.float32(0.0)
    for c in range(cols):
        out[c] = min(max(np.rint(out[c]), zero), adc_max)
    return clipped


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _codes_rows(irr, lit, site_scale, dark, noise, exact, read_noise, exact_below, key, to_adu, black,
                adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """Rows r0..r1 of the ADC codes (float32, into ``codes``); returns how many red sites clipped.

    λ = irradiance × site_scale[row parity, col parity] + dark (electrons); with ``noise``, the
    electrons of ``_electrons`` (``exact``: with its exact Poisson branch); codes =
    clip(rint(electrons × to_adu + black), 0, adc_max).

    Each row runs as separate loops over contiguous row buffers, so that LLVM vectorises the
    arithmetic ones; a pixel's operations and their order are those of ``_electrons``, so the
    bytes are those of one fused loop per pixel, at 2.5× its speed (bench/RESULTS.md, "Issue 16:
    the sensor pass").
    """
    cols = codes.shape[1]
    clipped = 0
    site = np.empty((2, cols), np.float32)  # site_scale along a row of either parity
    for p in range(2):
        for c in range(cols):
            site[p, c] = site_scale[p, c & 1]
    mean = np.empty(cols, np.float32)
    z = np.empty(cols, np.float32)
    for r in range(r0, r1):
        out = codes[r]
        if lit:
            s, x = site[r & 1], irr[r]
            for c in range(cols):
                mean[c] = s[c] * x[c] + dark
        else:
            mean[:] = dark
        if noise:
            _row_electrons(mean, read_noise, exact, exact_below, key, r * cols, table, tail, inv_k, to_adu,
                           black, z, out)
        else:
            for c in range(cols):
                out[c] = mean[c] * to_adu + black
        clipped += _row_adc(out, adc_max, red_c, (r & 1) == red_r)
    return clipped


@njit(nogil=True, cache=True, error_model="numpy")
def sensor_band(irr, lit, site_scale, dark, noise, read_noise, exact_below, key, to_adu, black,
                 adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """``_codes_rows`` without the exact Poisson branch (``exact_below`` ≤ 0: the normal path only)."""
    return _codes_rows(irr, lit, site_scale, dark, noise, False, read_noise, exact_below, key, to_adu,
                       black, adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1)


@njit(nogil=True, cache=True, error_model="numpy")
def sensor_band_exact(irr, lit, site_scale, dark, noise, read_noise, exact_below, key, to_adu, black,
                       adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1):  # pragma: no cover
    """``_codes_rows`` with the exact Poisson branch below ``exact_below``."""
    return _codes_rows(irr, lit, site_scale, dark, noise, True, read_noise, exact_below, key, to_adu,
                       black, adc_max, red_r, red_c, table, tail, inv_k, codes, r0, r1)


@njit(nogil=True, cache=True, error_model="numpy")
def electrons_flat(lam, read_noise, exact_below, key, table, tail, inv_k):  # pragma: no cover
    """``_electrons`` for each λ of a 1-D array, pixel index = array index (the sampler's tests)."""
    out = np.empty(lam.shape[0], np.float32)
    for i in range(lam.shape[0]):
        out[i] = _electrons(lam[i], read_noise, exact_below, key, i, table, tail, inv_k)
    return out


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _mirror(i, n):  # pragma: no cover - compiled
    """numpy's "reflect" padding by one sample: −1 → 1, n → n − 2 (a 1-long axis stays at 0)."""
    if i < 0:
        return min(1, n - 1)
    if i >= n:
        return max(n - 2, 0)
    return i


@njit(nogil=True, cache=True, error_model="numpy", inline="always")
def _grey(codes, weights, scale, r, c, up, dn, lf, rt):  # pragma: no cover - compiled
    """Y/full scale at (r, c), clipped to 0..1: the stencil of ``grey_band``."""
    pr, pc = r & 1, c & 1
    y = weights[pr, pc, 0] * codes[r, c]
    y += weights[pr, pc, 1] * (codes[r, lf] + codes[r, rt])
    y += weights[pr, pc, 2] * (codes[up, c] + codes[dn, c])
    y += weights[pr, pc, 3] * ((codes[up, lf] + codes[up, rt]) + (codes[dn, lf] + codes[dn, rt]))
    return min(max(y * scale, np.float32(0.0)), np.float32(1.0))


@njit(nogil=True, cache=True, error_model="numpy")
def grey_band(codes, weights, scale, gamma, out, r0, r1):  # pragma: no cover - compiled
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


@njit(nogil=True, cache=True, error_model="numpy")
def window_field_band(lut, gray, screen, out, r0, r1):  # pragma: no cover - compiled
    """out = LUT[gray] × screen over rows r0..r1 (complex64): the SLM field behind the diffuser."""
    for r in range(r0, r1):
        for c in range(gray.shape[1]):
            out[r, c] = lut[gray[r, c]] * screen[r, c]


@njit(nogil=True, cache=True, error_model="numpy")
def intensity_band(field, out, r0, r1):  # pragma: no cover - compiled
    """out = re² + im² over rows r0..r1 (float32)."""
    for r in range(r0, r1):
        for c in range(field.shape[1]):
            v = field[r, c]
            out[r, c] = v.real * v.real + v.imag * v.imag


@njit(nogil=True, cache=True, error_model="numpy")
def zero_band(a, r0, r1):  # pragma: no cover - compiled
    """a[r0:r1] = 0 (complex64)."""
    for r in range(r0, r1):
        for c in range(a.shape[1]):
            a[r, c] = 0

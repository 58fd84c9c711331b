"""The simulated rig's per-pixel kernels in numpy: the readable reference of hardware/sim/compiled.py.

Each function does, array-wide, the same IEEE float32/float64 operations in the same order as its
compiled twin, so both give the same bytes (tests/test_sim_kernels.py). hardware/sim/kernels.py
runs these for small frames, where numba's start-up (importing it, readying its compiler) would
cost more than the arithmetic; the compiled kernels for the rest.
"""

from __future__ import annotations

import numpy as np

from hardware.sim.kernels import GOLDEN, LOW16, LOW32, MAX_POISSON_TERMS, MIX1, MIX2, S27, S30, S31, S32, S48

F32 = np.float32


def splitmix64(key: np.uint64, index: np.ndarray) -> np.ndarray:
    """splitmix64(key + (index + 1)·φ64) for an array of pixel indices (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = key + (index.astype(np.uint64) + np.uint64(1)) * GOLDEN
        z = (z ^ (z >> S30)) * MIX1
        z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


def normal(h: np.ndarray, table: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """The standard normals of the draws ``h`` (float32): see compiled._normal."""
    i = (h >> S48).astype(np.int64)
    t = tail[((h >> S32) & LOW16).astype(np.int64)]
    return np.where(i == 0, t, np.where(i == 65535, -t, table[i]))


def poisson(lam: np.ndarray, u: np.ndarray, inv_k: np.ndarray) -> np.ndarray:
    """Poisson(λ) by inversion at the uniforms ``u`` (float64), as compiled._poisson, element-wise."""
    p = np.exp(-lam)
    cdf = p.copy()
    k = np.zeros(lam.shape, np.int64)
    for _ in range(MAX_POISSON_TERMS):
        more = u > cdf
        if not more.any():
            break
        k[more] += 1
        p[more] *= lam[more] * inv_k[k[more]]
        cdf[more] += p[more]
    return k


def electrons(lam: np.ndarray, read_noise: np.float32, exact_below: np.float32, key: np.uint64,
              index: np.ndarray, table: np.ndarray, tail: np.ndarray, inv_k: np.ndarray) -> np.ndarray:
    """The noisy electrons (float32) of means ``lam`` (float32) at pixel indices ``index``."""
    h = splitmix64(key, index)
    z = normal(h, table, tail)
    v = lam + read_noise * read_noise
    with np.errstate(divide="ignore", invalid="ignore"):  # v = 0 only where the exact branch rules
        iv = F32(1.0) / v
        b = lam * iv * F32(1.0 / 6.0)
        a2 = b * b * iv
        out = lam + (np.sqrt(v) * z + b * (z * z - F32(1.0))) * (F32(1.0) - a2)
    exact = lam < exact_below
    if exact.any():
        u = ((h[exact] & LOW32).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
        k = poisson(lam[exact].astype(np.float64), u, inv_k)
        out[exact] = (k + np.float64(read_noise) * z[exact].astype(np.float64)).astype(np.float32)
    return out


def sensor_codes(irr, lit, site_scale, dark, noise, read_noise, exact_below, key, to_adu, black,
                 adc_max, red_r, red_c, table, tail, inv_k, codes) -> int:
    """The ADC codes of the whole frame into ``codes``; how many red sites clipped (as
    compiled._codes_rows)."""
    rows, cols = codes.shape
    if lit:
        scale = np.tile(site_scale, (-(-rows // 2), -(-cols // 2)))[:rows, :cols]
        lam = scale * irr + dark
    else:
        lam = np.full((rows, cols), dark, np.float32)
    if noise:
        index = np.arange(rows * cols, dtype=np.uint64).reshape(rows, cols)
        lam = electrons(lam, read_noise, exact_below, key, index, table, tail, inv_k)
    x = lam * to_adu + black
    clipped = int(np.count_nonzero(x[red_r::2, red_c::2] >= adc_max - F32(0.5)))
    np.copyto(codes, np.minimum(np.maximum(np.rint(x), F32(0.0)), adc_max))
    return clipped


def grey8(codes: np.ndarray, weights: np.ndarray, scale: np.float32, gamma: np.float32,
          out: np.ndarray) -> None:
    """The 8-bit grey image (as compiled._grey_band) into ``out``: y = a·centre + b·(l + r) +
    c·(u + d) + d·((ul + ur) + (dl + dr)), borders mirrored, then scale, clip, γ, 8 bits."""
    rows, cols = codes.shape
    tile = (-(-rows // 2), -(-cols // 2))
    a, b, c, d = (np.tile(weights[:, :, k], tile)[:rows, :cols] for k in range(4))
    p = np.pad(codes, 1, mode="reflect")
    y = a * codes
    y = y + b * (p[1:-1, :-2] + p[1:-1, 2:])
    y = y + c * (p[:-2, 1:-1] + p[2:, 1:-1])
    y = y + d * ((p[:-2, :-2] + p[:-2, 2:]) + (p[2:, :-2] + p[2:, 2:]))
    y = np.minimum(np.maximum(y * scale, F32(0.0)), F32(1.0))
    if gamma != 1.0:
        y = y ** F32(1.0 / float(gamma))
    np.copyto(out, (y * F32(255.999)).astype(np.uint8))


def window_field(lut: np.ndarray, gray: np.ndarray, screen: np.ndarray, out: np.ndarray) -> None:
    """out = lut[gray] × screen (complex64), as (ac − bd) + i(ad + bc) in float32: numba's complex
    product (numpy's own may fuse a multiply-add, one rounding fewer)."""
    f = np.take(lut, gray)
    a, b, c, d = np.real(f), np.imag(f), np.real(screen), np.imag(screen)
    np.real(out)[...] = a * c - b * d  # views into out
    np.imag(out)[...] = a * d + b * c


def intensity(field: np.ndarray, out: np.ndarray) -> None:
    """out = re·re + im·im (float32)."""
    re, im = np.real(field), np.imag(field)
    np.multiply(re, re, out=out)
    out += im * im

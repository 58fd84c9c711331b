"""The DCC1645C colour sensor and the uc480 driver's output (field chain step 5).

The DCC1645C is a Bayer (RGGB) CMOS sensor. Every mode starts from the mosaic:

electrons = Poisson(irradiance × flux × exposure × filter(633 nm) × white-balance gain
                    + dark current × exposure) + Normal(0, read noise)
ADC codes = round(electrons / gain + black level), clipped to the 10-bit range: each pixel clips
            at the full well on its own, so under red light the red pixels clip first;
raw8      = the top 8 bits of each pixel's code (the mosaic itself);
mono8     = the driver's grey image: bilinear demosaic of the codes → Y = wR·R + wG·G + wB·B
            (``grey_weights_rgb``) → gamma → 8 bits. Under 633 nm light, Y reaches only about
            0.37 of full scale when the red channel clips (``Sensor.saturation_code``).

The white-balance gains act as the uc480's hardware colour gains, before the ADC. Shot noise is
drawn exactly (Poisson) where the mean is below ``POISSON_EXACT_BELOW`` electrons and as a
Gaussian of the same mean and variance above it: the normal approximation's error there is far
below one 8-bit step, and a full Poisson draw of an 800×800 frame costs about 30 ms. The Gaussian
draws come by inverse CDF from 16-bit uniform integers through a 65536-entry quantile table:
exact to 1e-5 in variance, tails cut at ±4.3σ (about 10 pixels of an 800×800 frame would fall
beyond), and 1.4 ms per frame instead of 5 for numpy's float32 ziggurat.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from hardware.sim.config import SensorSpec

POISSON_EXACT_BELOW = 10.0  # electrons; one 8-bit output step is full_well/255 ≈ 23.5 e⁻
COLOR_MODES = ("mono8", "raw8")
_NORMAL_QUANTILES = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)


def standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 samples by inverse CDF of 16-bit uniforms (see the module doc)."""
    return np.take(_NORMAL_QUANTILES, rng.integers(0, 65536, shape, dtype=np.uint16))


_WEIGHT_MAPS: dict[tuple, np.ndarray] = {}


def _weight_maps(shape: tuple[int, int], red_at: tuple[int, int],
                 weights: tuple[float, float, float]) -> np.ndarray:
    """Per-pixel weights (4, rows, cols) of the centre, the row pair, the column pair and the 4
    diagonals in Y: bilinear demosaic and grey conversion folded into one stencil per site."""
    key = (shape, red_at, weights)
    if key not in _WEIGHT_MAPS:
        wr, wg, wb = weights
        # (centre, left+right, up+down, diagonals) at R, Gr (green in a red row), Gb, B sites
        site = {"R": (wr, wg / 4, wg / 4, wb / 4), "Gr": (wg, wr / 2, wb / 2, 0.0),
                "Gb": (wg, wb / 2, wr / 2, 0.0), "B": (wb, wg / 4, wg / 4, wr / 4)}
        maps = np.empty((4, *shape), np.float32)
        r0, c0 = red_at
        for name, (dr, dc) in (("R", (0, 0)), ("Gr", (0, 1)), ("Gb", (1, 0)), ("B", (1, 1))):
            for k in range(4):
                maps[k, (r0 + dr) % 2::2, (c0 + dc) % 2::2] = site[name][k]
        if len(_WEIGHT_MAPS) > 16:
            _WEIGHT_MAPS.clear()
        _WEIGHT_MAPS[key] = maps
    return _WEIGHT_MAPS[key]


def demosaic_grey(codes: np.ndarray, red_at: tuple[int, int], weights: tuple[float, float, float],
                  buffers: dict | None = None) -> np.ndarray:
    """Bilinear demosaic of an RGGB mosaic, then Y = wR·R + wG·G + wB·B (float32, same shape).

    ``red_at`` = (row, col) parity of the red sites in this array. Bilinear interpolation: at a
    red (blue) site green is the mean of the 4 edge neighbours and blue (red) of the 4 diagonal
    ones; at a green site red and blue are the means of the 2 neighbours along the row or column
    that holds them. The borders are mirrored (which keeps the colour pattern). Both steps are
    linear, so Y = a·centre + b·(left + right) + c·(up + down) + d·(diagonals), with weights
    a..d per colour site (``_weight_maps``): about a dozen contiguous passes over the frame.
    ``buffers`` (a dict kept by the caller) holds the work arrays between calls: fresh 2.5 MB
    arrays cost more in page faults than the arithmetic. The result is one of them when given.
    """
    rows, cols = codes.shape
    a, b, c, d = _weight_maps(codes.shape, tuple(red_at), tuple(weights))
    buf = {} if buffers is None else buffers
    if buf.get("shape") != codes.shape:
        buf.clear()
        buf.update(shape=codes.shape, p=np.empty((rows + 2, cols + 2), np.float32),
                   v=np.empty((rows, cols + 2), np.float32), w=np.empty(codes.shape, np.float32),
                   y=np.empty(codes.shape, np.float32))
    p, vfull, work, y = buf["p"], buf["v"], buf["w"], buf["y"]
    p[1:-1, 1:-1] = codes  # mirror padding by one pixel (numpy's "reflect")
    p[0, 1:-1], p[-1, 1:-1] = codes[1], codes[-2]
    p[:, 0], p[:, -1] = p[:, 2], p[:, -3]
    np.add(p[:-2], p[2:], out=vfull)  # up + down, one column wider on each side
    np.multiply(codes, a, out=y)
    np.add(p[1:-1, :-2], p[1:-1, 2:], out=work)  # left + right
    work *= b
    y += work
    np.multiply(vfull[:, 1:-1], c, out=work)
    y += work
    np.add(vfull[:, :-2], vfull[:, 2:], out=work)  # the 4 diagonals
    work *= d
    y += work
    return y


class Sensor:
    max_value = 255  # 8-bit output modes

    def __init__(self, spec: SensorSpec, color_mode: str, sensor_px: tuple[int, int], noise: bool):
        if color_mode not in COLOR_MODES:
            raise ValueError(f"color mode {color_mode!r} is not simulated (choose one of {COLOR_MODES})")
        self.spec, self.color_mode, self.sensor_px, self.noise = spec, color_mode, sensor_px, noise
        self.adc_max = (1 << spec.adc_bits) - 1
        self.gain_e_per_adu = spec.full_well_e / (self.adc_max - spec.black_level_adu)
        self._gains: dict[tuple[int, int], np.ndarray] = {}
        self._buffers: dict = {}  # demosaic work arrays, reused frame to frame

    def red_at(self, roi: tuple[int, int]) -> tuple[int, int]:
        """(row, col) parity of the red sites in a centred ROI (RGGB from the sensor's corner)."""
        r0 = (self.sensor_px[0] - roi[0]) // 2
        c0 = (self.sensor_px[1] - roi[1]) // 2
        return r0 % 2, c0 % 2

    def site_gain(self, roi: tuple[int, int]) -> np.ndarray:
        """Per-pixel filter transmittance × white-balance gain of a centred ROI (float32)."""
        if roi not in self._gains:
            t = np.array(self.spec.bayer_rgb_at_633nm, np.float32) * np.array(self.spec.white_balance_rgb,
                                                                               np.float32)
            pr, pc = self.red_at(roi)
            rows = (np.arange(roi[0]) + pr) % 2
            cols = (np.arange(roi[1]) + pc) % 2
            table = np.array([[t[0], t[1]], [t[1], t[2]]], np.float32)  # RGGB
            self._gains[roi] = table[rows[:, None], cols[None, :]]
        return self._gains[roi]

    def bayer(self, roi: tuple[int, int]) -> np.ndarray:
        """The mosaic's per-pixel gain (the name kept for callers of the raw8 model)."""
        return self.site_gain(roi)

    def mean_electrons(self, irradiance: np.ndarray | None, exposure_us: float,
                       roi: tuple[int, int]) -> np.ndarray:
        """Expected electrons per pixel (float32); ``irradiance`` None means the laser is blocked."""
        dark = np.float32(self.spec.dark_current_e_per_s * exposure_us * 1e-6)
        if irradiance is None:
            return np.full(roi, dark, np.float32)
        lam = irradiance * np.float32(self.spec.flux_e_per_us * exposure_us)
        lam *= self.site_gain(roi)
        lam += dark
        return lam

    @property
    def saturation_code(self) -> int:
        """The output value at which the red channel just clips under 633 nm light.

        mono8: Y of a uniform field whose red pixels sit at the top code and whose green and blue
        pixels carry their filters' share; raw8: the top code. Frames at or above it have clipped
        red pixels, so this, not 255, is what the saturation check and auto exposure must use.
        """
        if self.color_mode == "raw8":
            return self.max_value
        spec = self.spec
        t = np.array(spec.bayer_rgb_at_633nm) * np.array(spec.white_balance_rgb)
        span = self.adc_max - spec.black_level_adu
        codes = np.minimum(spec.black_level_adu + span * t / t[0], self.adc_max)
        y = float(np.dot(spec.grey_weights_rgb, codes))
        return int(self._to_8bit(np.array([[y]], np.float32))[0, 0])

    def _to_8bit(self, y: np.ndarray) -> np.ndarray:
        """Grey codes (10-bit scale, float32, modified in place) → gamma → 8 bits (uint8)."""
        y *= np.float32(1.0 / self.adc_max)
        np.clip(y, 0.0, 1.0, out=y)
        if self.spec.gamma != 1.0:
            np.power(y, np.float32(1.0 / self.spec.gamma), out=y)
        y *= np.float32(255.999)
        return y.astype(np.uint8)

    def read_out(self, lam: np.ndarray, rng: np.random.Generator | None,
                 roi: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
        """One frame: (8-bit output, share of red pixels clipped), with noise when ``rng`` is given.

        ``roi`` (default: ``lam``'s shape) places the ROI on the sensor's colour pattern.
        """
        spec = self.spec
        roi = tuple(lam.shape) if roi is None else roi
        electrons = self._electrons(lam, rng)
        electrons *= np.float32(1.0 / self.gain_e_per_adu)
        electrons += np.float32(spec.black_level_adu)
        pr, pc = self.red_at(roi)
        red = electrons[pr::2, pc::2]
        red_clipped = float(np.count_nonzero(red >= self.adc_max - 0.5)) / max(red.size, 1)
        np.clip(electrons, 0.0, np.float32(self.adc_max), out=electrons)
        np.rint(electrons, out=electrons)  # the ADC's codes
        if self.color_mode == "raw8":  # the top 8 bits of each code
            electrons *= np.float32(1.0 / (1 << (spec.adc_bits - 8)))
            return electrons.astype(np.uint8), red_clipped
        y = demosaic_grey(electrons, (pr, pc), spec.grey_weights_rgb, self._buffers)
        return self._to_8bit(y), red_clipped

    def _electrons(self, lam: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Electrons per pixel: ``lam`` with shot and read noise (float32, a new array)."""
        if rng is None or not self.noise:
            return lam.copy()
        spec = self.spec
        n = standard_normal(rng, lam.shape)
        electrons = lam + np.float32(spec.read_noise_e**2)
        np.sqrt(electrons, out=electrons)
        electrons *= n
        electrons += lam
        low = np.flatnonzero(lam < POISSON_EXACT_BELOW)
        if low.size:
            flat_n = n.ravel()
            shot = rng.poisson(lam.ravel()[low]).astype(np.float32)
            electrons.ravel()[low] = shot + np.float32(spec.read_noise_e) * flat_n[low]
        return electrons

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

The white-balance gains act as the uc480's hardware colour gains, before the ADC. The chain runs
in two compiled passes (hardware/sim/kernels.py): expected electrons, noise and the ADC per pixel,
then the demosaic, grey formula, gamma and 8 bits. Shot noise is exact Poisson (by inversion)
where the mean is below ``POISSON_EXACT_BELOW`` electrons; above it, a normal of the same mean and
variance as shot plus read noise, skew-corrected to their third cumulant (docs/simulation.md,
"The sensor's noise" gives the cut's justification and the test that checks it). The noise is
counter-based: pixel i of a frame hashes (frame key, i), so a frame's bytes depend on its key
alone, never on a running generator or the thread count.
"""

from __future__ import annotations

import threading

import numpy as np

from hardware.sim import kernels
from hardware.sim.config import SensorSpec

# Where shot noise is drawn exactly (docs/simulation.md, "The sensor's noise"). Above λ = 10 e⁻ the
# skew-corrected normal of Poisson(λ) + N(0, σr²) is within sampling noise of the exact law (a
# Kolmogorov distance under 0.001 in 10⁶ draws, tests/test_sim_noise.py) whatever the read noise.
# Below it, it is too when the read noise is at least READ_NOISE_MASKS_E: N(0, σr²) smooths away
# the integer steps of the electron count (their Fourier component is damped by exp(−2π²σr²)),
# so a sensor that noisy (the default 8 e⁻) never needs the slower exact draws.
POISSON_EXACT_BELOW = 10.0
READ_NOISE_MASKS_E = 2.0
COLOR_MODES = ("mono8", "raw8")


def grey_stencil(red_at: tuple[int, int], weights: tuple[float, float, float]) -> np.ndarray:
    """(2, 2, 4) float32: at array parity (row, col), the weights (a, b, c, d) of the centre, the
    row pair, the column pair and the 4 diagonals in Y: the bilinear demosaic and the grey
    formula folded into one stencil per colour site (red sites at parity ``red_at``).

    Bilinear interpolation: at a red (blue) site green is the mean of the 4 edge neighbours and
    blue (red) of the 4 diagonal ones; at a green site red and blue are the means of the 2
    neighbours along the row or column that holds them.
    """
    wr, wg, wb = weights
    # (centre, left+right, up+down, diagonals) at R, Gr (green in a red row), Gb, B sites
    site = {"R": (wr, wg / 4, wg / 4, wb / 4), "Gr": (wg, wr / 2, wb / 2, 0.0),
            "Gb": (wg, wb / 2, wr / 2, 0.0), "B": (wb, wg / 4, wg / 4, wr / 4)}
    out = np.empty((2, 2, 4), np.float32)
    for name, (dr, dc) in (("R", (0, 0)), ("Gr", (0, 1)), ("Gb", (1, 0)), ("B", (1, 1))):
        out[(red_at[0] + dr) % 2, (red_at[1] + dc) % 2] = site[name]
    return out


def demosaic_grey(codes: np.ndarray, red_at: tuple[int, int],
                  weights: tuple[float, float, float]) -> np.ndarray:
    """Y = wR·R + wG·G + wB·B of the bilinear demosaic of an RGGB mosaic (float32, same shape;
    borders mirrored, which keeps the colour pattern): numpy, for tests and figures."""
    a, b, c, d = np.moveaxis(grey_stencil(red_at, weights), 2, 0)
    rows, cols = codes.shape
    tile = (-(-rows // 2), -(-cols // 2))
    a, b, c, d = (np.tile(m, tile)[:rows, :cols] for m in (a, b, c, d))
    p = np.pad(codes.astype(np.float32), 1, mode="reflect")
    lr = p[1:-1, :-2] + p[1:-1, 2:]
    ud = p[:-2, 1:-1] + p[2:, 1:-1]
    diag = (p[:-2, :-2] + p[:-2, 2:]) + (p[2:, :-2] + p[2:, 2:])
    return a * codes + b * lr + c * ud + d * diag


class Sensor:
    max_value = 255  # 8-bit output modes

    def __init__(self, spec: SensorSpec, color_mode: str, sensor_px: tuple[int, int], noise: bool):
        if color_mode not in COLOR_MODES:
            raise ValueError(f"color mode {color_mode!r} is not simulated (choose one of {COLOR_MODES})")
        self.spec, self.color_mode, self.sensor_px, self.noise = spec, color_mode, sensor_px, noise
        self.adc_max = (1 << spec.adc_bits) - 1
        self.gain_e_per_adu = spec.full_well_e / (self.adc_max - spec.black_level_adu)
        self._gains: dict[tuple[int, int], np.ndarray] = {}
        self._local = threading.local()  # per-thread work arrays (_codes)

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

    @property
    def exact_below(self) -> float:
        """Mean electrons below which shot noise is drawn exactly (0: never; see the constants)."""
        return POISSON_EXACT_BELOW if self.spec.read_noise_e < READ_NOISE_MASKS_E else 0.0

    def _codes(self, shape: tuple[int, int]) -> np.ndarray:
        """The ADC codes' work array, kept per thread between frames (a fresh 2.5 MB array costs
        page faults comparable to the arithmetic)."""
        codes = getattr(self._local, "codes", None)
        if codes is None or codes.shape != shape:
            codes = self._local.codes = np.empty(shape, np.float32)
        return codes

    def site_scale(self, red_at: tuple[int, int], exposure_us: float) -> np.ndarray:
        """(2, 2) float32: electrons per unit irradiance at each array parity (row, col), red sites
        at ``red_at``: flux × exposure × filter transmittance × white-balance gain."""
        t = np.array(self.spec.bayer_rgb_at_633nm) * np.array(self.spec.white_balance_rgb)
        t = t * (self.spec.flux_e_per_us * exposure_us)
        out = np.empty((2, 2), np.float32)
        pr, pc = red_at
        out[pr, pc], out[pr, 1 - pc], out[1 - pr, pc], out[1 - pr, 1 - pc] = t[0], t[1], t[1], t[2]
        return out

    def expose(self, irradiance: np.ndarray | None, exposure_us: float, roi: tuple[int, int],
               key: int | None) -> tuple[np.ndarray, float]:
        """One frame from the noiseless irradiance over ``roi`` (None: the laser blocked), with the
        noise of the 64-bit ``key`` (None: noiseless): (8-bit output, share of red pixels clipped)."""
        dark = self.spec.dark_current_e_per_s * exposure_us * 1e-6
        scale = self.site_scale(self.red_at(roi), exposure_us)
        return self._read(irradiance, scale, dark, key, roi)

    def read_out(self, lam: np.ndarray, key: int | None = None,
                 roi: tuple[int, int] | None = None) -> tuple[np.ndarray, float]:
        """One frame for the expected electrons ``lam`` (as ``expose``); ``roi`` (default: ``lam``'s
        shape) places it on the sensor's colour pattern."""
        roi = (int(lam.shape[0]), int(lam.shape[1])) if roi is None else roi
        return self._read(lam, np.ones((2, 2), np.float32), 0.0, key, roi)

    def _read(self, source: np.ndarray | None, scale: np.ndarray, dark: float, key: int | None,
              roi: tuple[int, int]) -> tuple[np.ndarray, float]:
        spec = self.spec
        red_at = self.red_at(roi)
        shape = (int(roi[0]), int(roi[1]))
        lit = source is not None
        irr = np.ascontiguousarray(source, np.float32) if lit else np.zeros((1, 1), np.float32)
        codes = self._codes(shape)
        noise = self.noise and key is not None
        clipped = kernels.sensor_codes(
            irr, lit, scale, dark, noise, spec.read_noise_e, self.exact_below,
            0 if key is None else int(key), 1.0 / self.gain_e_per_adu, spec.black_level_adu,
            self.adc_max, red_at, codes)
        red_sites = len(range(red_at[0], shape[0], 2)) * len(range(red_at[1], shape[1], 2))
        red_clipped = clipped / max(red_sites, 1)
        if self.color_mode == "raw8":  # the top 8 bits of each code
            codes *= np.float32(1.0 / (1 << (spec.adc_bits - 8)))
            return codes.astype(np.uint8), red_clipped
        image = np.empty(shape, np.uint8)
        kernels.grey8(codes, grey_stencil(red_at, spec.grey_weights_rgb), 1.0 / self.adc_max,
                      spec.gamma, image)
        return image, red_clipped

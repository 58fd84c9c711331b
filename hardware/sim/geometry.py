"""Geometry of the simulated rig's field chain: derived constants, the one FFT grid, the iris.

(docs/simulation.md, "Sampling".) One grid per ROI for every camera distance, sized for the
stage's farthest reach plus a guard of 3 Airy radii; an apodised iris so that every grid samples
the same pupil; and the largest ``imaging_na`` whose |E|² the camera samples without aliasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import special

from speckle_core.errors import UserError

Px2 = tuple[int, int]
GUARD_AIRY_RADII = 3.0  # grid margin beyond the geometric spread, in Airy first-zero radii
EDGE_SUPPORT_SIGMAS = 5.0  # the apodised iris is cut to zero this many edge widths past ν_c
# |E|² has twice the field's bandwidth. It is sampled without aliasing when its band edge
# 2·ν_max (ν_max: where the apodised iris is cut) stays within the camera's Nyquist frequency.
INTENSITY_NYQUIST_SHARE = 1.0


@dataclass(frozen=True)
class Geometry:
    """Derived constants of the chain; every length in µm."""

    wavelength_um: float
    dx_diffuser_um: float  # diffuser-plane sample = SLM pixel × f2/f1
    camera_px_um: float
    m_relay: float  # f2/f1
    m_imaging: float  # L3–L4 magnification: camera pixel / diffuser sample
    window: Px2  # illuminated SLM window, (rows, cols) samples
    sensor: Px2
    relay_cutoff_per_um: float  # relay pupil cut-off, diffuser-plane spatial frequency
    iris_cutoff_per_um: float  # iris cut-off (the edge's 50 % point), diffuser plane: NA/λ
    iris_edge: float  # rms width of the iris's apodised edge, as a share of the cut-off
    na_camera: float  # camera-side NA = imaging_na / M2
    relay_corners: bool  # clip the corners of the sampled band too (see SimConfig.relay_pupil_corners)
    max_distance_mm: float  # the farthest the stage can put the camera from z = 0

    @classmethod
    def from_rig(cls, rig) -> Geometry:
        sim, cam = rig.sim, rig.camera
        lam = sim.wavelength_nm / 1000.0
        m1 = sim.relay_f2_mm / sim.relay_f1_mm
        dx = sim.slm_pixel_um * m1
        m2 = cam.pixel_um / dx
        relay_nu_slm = (sim.relay_pupil_mm * 500.0) / (lam * sim.relay_f1_mm * 1000.0)
        st = rig.stage
        reach = max(abs(st.travel_mm[0] - st.zero_mm), abs(st.travel_mm[1] - st.zero_mm))
        geo = cls(wavelength_um=lam, dx_diffuser_um=dx, camera_px_um=cam.pixel_um, m_relay=m1,
                  m_imaging=m2, window=tuple(rig.slm.window_px), sensor=tuple(cam.sensor_px),
                  relay_cutoff_per_um=relay_nu_slm / m1, iris_cutoff_per_um=sim.imaging_na / lam,
                  iris_edge=sim.iris_edge, na_camera=sim.imaging_na / m2,
                  relay_corners=sim.relay_pupil_corners, max_distance_mm=reach)
        limit = geo.max_imaging_na()
        if sim.imaging_na > limit:
            raise UserError(f"rig: sim.imaging_na {sim.imaging_na:g} is beyond {limit:.4f}, the largest "
                            f"the {cam.pixel_um:g} µm camera sampling supports without aliasing |E|²")
        return geo

    @property
    def iris_support_per_um(self) -> float:
        """Where the apodised iris is cut to zero (diffuser-plane frequency)."""
        return self.iris_cutoff_per_um * (1.0 + EDGE_SUPPORT_SIGMAS * self.iris_edge)

    def max_imaging_na(self) -> float:
        """The largest diffuser-side NA whose |E|² the camera samples without aliasing.

        At the camera the field's band reaches ν_max = (NA/λ)(1 + 5·edge)/M2 and |E|²'s reaches
        2·ν_max; it must stay within the pixel's Nyquist frequency 1/(2·pitch). (The field's own
        band, NA/λ ≤ 1/(2·dx), is then met twice over.)
        """
        nyq_cam = INTENSITY_NYQUIST_SHARE * 0.5 / self.camera_px_um
        support = 1.0 + EDGE_SUPPORT_SIGMAS * self.iris_edge
        return nyq_cam / 2.0 * self.m_imaging * self.wavelength_um / support

    @property
    def grain_px(self) -> float:
        """Mean speckle size λ/(2·NA) at the camera, in pixels (Goodman, Speckle Phenomena §4.4)."""
        return self.wavelength_um / (2.0 * self.na_camera) / self.camera_px_um

    @property
    def airy_radius_px(self) -> float:
        """First zero of the iris's Airy pattern at the camera, 0.61·λ/NA, in pixels (Born & Wolf §8.5)."""
        return 0.61 * self.wavelength_um / self.na_camera / self.camera_px_um

    def spread_px(self, distance_mm: float) -> float:
        """How far light at the iris's outer angle moves sideways over ``distance_mm``, in pixels.

        The outer angle is where the apodised edge has fallen to 2 % (ν_c + 2σ)."""
        angle = math.asin(min(self.na_camera * (1.0 + 2.0 * self.iris_edge), 0.99))
        return abs(distance_mm) * 1000.0 * math.tan(angle) / self.camera_px_um

    def guard_px(self) -> int:
        return int(math.ceil(GUARD_AIRY_RADII * self.airy_radius_px))

    def grid_shape(self, roi: Px2) -> Px2:
        """The one FFT grid for a ROI, whatever the camera distance.

        The grid is periodic: light that leaves one edge re-enters at the other. It must not land
        in the ROI at any distance the stage reaches, so each side needs N ≥ (ROI + window)/2 +
        the spread at the stage's farthest reach + a guard of ``GUARD_AIRY_RADII`` Airy radii for
        the iris's diffraction tails, and N ≥ ROI. One grid for every distance means one
        sampling of the iris and hence frames at different distances differ only by the physics
        (test_sim_physics: the same frame on grids N and 1.5N).
        """
        spread = int(math.ceil(self.spread_px(self.max_distance_mm))) + self.guard_px()

        def side(r: int, w: int) -> int:
            n = sfft.next_fast_len(max(r, w, (r + w + 1) // 2 + spread))
            if n is None:  # scipy's stub allows it; a positive target always has a fast length
                raise ValueError(f"no FFT length for ROI side {r} and window side {w}")
            return n

        return side(roi[0], self.window[0]), side(roi[1], self.window[1])


def iris_amplitude(nu_per_um: np.ndarray, cutoff_per_um: float, edge: float) -> np.ndarray:
    """The apodised iris: 1 inside, ½·erfc((ν − ν_c)/(√2·σ)) across the edge, σ = edge·ν_c.

    A hard disc sampled on an FFT grid is pixelated differently on every grid, and its Airy tails
    (amplitude ∝ r^(−3/2)) wrap around the periodic grid; the frame then depends on the grid
    (0.954 correlation between 840² and 864²). An edge smooth on the scale of a few spectral samples
    makes the pupil a fixed, smooth function that every grid samples alike, and its diffraction
    tails fall off fast. The 50 % point stays at ν_c = NA/λ. ``edge`` 0 gives the hard disc.
    """
    if edge <= 0.0:
        return (nu_per_um <= cutoff_per_um).astype(np.float64)
    sigma = edge * cutoff_per_um
    amp = 0.5 * special.erfc((nu_per_um - cutoff_per_um) / (math.sqrt(2.0) * sigma))
    amp[nu_per_um > cutoff_per_um + EDGE_SUPPORT_SIGMAS * sigma] = 0.0
    return amp

"""The simulated rig's numerics (issue 16): one grid, a smooth iris, a guard that holds, validity bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from hardware.lut import PhaseLUT
from hardware.sim import build_sim_devices
from speckle_core.errors import UserError
from tests._sim_helpers import blocks, pearson, small_config, small_rig

pytestmark = pytest.mark.timeout(120)


def mean_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-pixel |a − b| relative to the mean of b."""
    return float(np.abs(a - b).mean() / b.mean())


def frames_on_grids(window: int, diffuser: str, z: float, scale: float):
    slm, cam, stage, changer = small_rig(window=window)
    optics = cam._bench.optics
    roi = (window, window)
    field = optics.slm_field(blocks(window, 1) * np.uint8(128))
    n = optics.plan(roi).shape[0]
    m = int(round(scale * n))
    a = optics.irradiance(field, diffuser, z, roi).astype(np.float64)
    b = optics.irradiance(field, diffuser, z, roi, grid=(m, m)).astype(np.float64)
    return a, b


@pytest.mark.parametrize("diffuser, z", [("120", 0.0), ("120", 40.0), ("1500", 20.0)])
def test_the_same_frame_on_grids_n_and_1_5n_agrees(diffuser, z):
    a, b = frames_on_grids(256, diffuser, z, 1.5)
    assert pearson(a, b) >= 0.995
    assert mean_error(a, b) <= 0.03


def test_the_grid_is_one_for_every_distance_and_holds_the_spread_and_guard():
    slm, cam, stage, changer = small_rig(window=256)
    geo, optics = cam._bench.geometry, cam._bench.optics
    shape = optics.plan((256, 256)).shape
    for z in (0.0, 20.0, 50.0):
        stage.move_to_mm(z)
        cam.capture(100, key=("a", z))
        assert {plan.shape for plan in optics._plans.values()} == {shape}
    reach = geo.spread_px(geo.max_distance_mm) + 3 * geo.airy_radius_px
    assert shape[0] >= 256 + reach  # (ROI + window)/2 + spread at the stage's end + 3 Airy radii


def test_the_guard_keeps_wrapped_diffraction_out_of_the_roi_edges():
    # at the stage's farthest reach, the ROI's outer 16-px frame (where wrapped light would land
    # first) matches a grid three times as wide
    slm, cam, stage, changer = small_rig(window=256)
    optics, reach = cam._bench.optics, cam._bench.geometry.max_distance_mm
    field = optics.slm_field(blocks(256, 2) * np.uint8(128))
    n = optics.plan((256, 256)).shape[0]
    a = optics.irradiance(field, "120", reach, (256, 256)).astype(np.float64)
    b = optics.irradiance(field, "120", reach, (256, 256), grid=(3 * n, 3 * n)).astype(np.float64)
    edge = np.ones(a.shape, bool)
    edge[16:-16, 16:-16] = False
    assert mean_error(a[edge], b[edge]) < 0.01


def soft_iris_axial_correlation(z_um: float, nu_c: float, edge: float, lam: float) -> float:
    """|∫A²(ν)·exp(iπλzν²) d²ν|² / (∫A² d²ν)²: the intensity correlation of fully developed speckle
    between z = 0 and z behind a pupil of intensity transmission A² (Goodman, Speckle Phenomena in
    Optics, 2007, §4.5.2; for a hard disc it is sinc²(z·NA²/2λ), normalised sinc)."""
    def a2(nu):
        return (0.5 * special.erfc((nu - nu_c) / (math.sqrt(2.0) * edge * nu_c))) ** 2

    top = nu_c * (1 + 6 * edge)
    re = integrate.quad(lambda n: a2(n) * math.cos(math.pi * lam * z_um * n * n) * n, 0, top, limit=200)[0]
    im = integrate.quad(lambda n: a2(n) * math.sin(math.pi * lam * z_um * n * n) * n, 0, top, limit=200)[0]
    norm = integrate.quad(lambda n: a2(n) * n, 0, top, limit=200)[0]
    return (re * re + im * im) / norm**2


def test_decorrelation_between_0_and_10_mm_matches_theory():
    slm, cam, stage, changer = small_rig(window=512)  # the default iris: NA 0.0038, 25-px grain
    geo, optics = cam._bench.geometry, cam._bench.optics
    field = optics.slm_field(np.zeros((512, 512), np.uint8))
    f0 = optics.irradiance(field, "120", 0.0, (512, 512))  # 120 grit: fully developed speckle
    f10 = optics.irradiance(field, "120", 10.0, (512, 512))
    lam, na = geo.wavelength_um, geo.na_camera
    soft = soft_iris_axial_correlation(10_000.0, na / lam, geo.iris_edge, lam)
    hard = float(np.sinc(10_000.0 * na**2 / (2 * lam)) ** 2)
    assert abs(soft - hard) < 0.005  # the apodised edge barely moves the theory
    assert pearson(f0, f10) == pytest.approx(soft, abs=0.01)


def test_an_imaging_na_beyond_the_sampling_limit_is_refused_naming_the_key_and_limit():
    with pytest.raises(UserError, match=r"sim\.imaging_na 0\.04 is beyond 0\.0316") as err:
        build_sim_devices(small_config(imaging_na=0.04), PhaseLUT.linear(256))
    assert "\n" not in str(err.value)


def test_the_largest_supported_imaging_na_does_not_alias_the_intensity():
    # at the limit, |E|²'s spectrum lies inside the camera's Nyquist band: no power in the last bins
    slm, cam, stage, changer = small_rig(window=128, imaging_na=0.0316)
    irr = cam._bench.optics.irradiance(cam._bench.optics.slm_field(np.zeros((128, 128), np.uint8)),
                                       "120", 0.0, None, grid_roi=(128, 128)).astype(np.float64)
    spec = np.abs(np.fft.fftshift(np.fft.fft2(irr - irr.mean()))) ** 2
    n = spec.shape[0]
    border = np.ones(spec.shape, bool)
    border[2:-2, 2:-2] = False
    assert spec[border].sum() < 1e-6 * spec.sum()
    assert n > 128

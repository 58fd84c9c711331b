"""The simulated rig checked like physics (issue 4): speckle statistics, energy, grain, decorrelation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft as sfft
from scipy.optimize import brentq
from scipy.special import j1

from hardware.sim.diffuser import scatter_angle_rad
from tests._sim_helpers import blocks, irradiance, pearson, small_rig

pytestmark = pytest.mark.timeout(60)


def test_noiseless_speckle_has_unit_contrast():
    # fully developed speckle: σ/μ = 1 (Goodman); 120 grit scatters far beyond the iris
    slm, cam, stage, changer = small_rig(window=192, imaging_na=0.015)
    irr = irradiance(cam, np.zeros((192, 192), np.uint8), "120", 20.0)[32:-32, 32:-32]
    assert irr.std() / irr.mean() == pytest.approx(1.0, abs=0.1)


def test_propagation_conserves_energy_over_the_full_field():
    # the angular-spectrum step is unitary: behind the iris, the energy is the same at every z,
    # and the phase-only SLM and diffuser absorb nothing
    slm, cam, stage, changer = small_rig(window=64, imaging_na=0.03, relay_pupil_mm=200.0)
    optics = cam._bench.optics
    plan = optics.plan((64, 64), shape=(160, 160))
    assert plan.relay_mask is None
    behind = optics.diffuser_field(optics.slm_field(blocks(64, 1) * np.uint8(128)), "1500", plan)
    e_in = float(np.sum(np.abs(behind.astype(np.complex128)) ** 2))
    assert e_in == pytest.approx(64 * 64, rel=1e-5)
    energies = []
    for z in (0.0, 20.0, 40.0):
        out = optics.camera_field(behind.copy(), z, plan)
        energies.append(float(np.sum(np.abs(out.astype(np.complex128)) ** 2)))
    assert max(energies) - min(energies) < 1e-5 * energies[0]
    assert 0.2 * e_in < energies[0] < e_in  # the iris keeps the ballistic light, drops the wide scatter


def test_grain_size_matches_the_iris_theory():
    # intensity autocovariance of speckle behind a circular pupil: [2J1(v)/v]², v = 2π·NA·r/λ;
    # its half width at half maximum is v½ = 1.616…
    na = 0.015
    slm, cam, stage, changer = small_rig(window=256, imaging_na=na)
    irr = irradiance(cam, np.zeros((256, 256), np.uint8), "120", 0.0)[32:-32, 32:-32]
    d = irr - irr.mean()
    acov = sfft.ifft2(np.abs(sfft.fft2(d, s=(384, 384))) ** 2).real
    profile = (acov[0, :40] + acov[:40, 0]) / (2 * acov[0, 0])
    k = int(np.argmax(profile < 0.5))
    measured_px = k - 1 + (profile[k - 1] - 0.5) / (profile[k - 1] - profile[k])
    v_half = brentq(lambda v: (2 * j1(v) / v) ** 2 - 0.5, 0.5, 3.0)
    geo = cam._bench.geometry
    theory_px = v_half * geo.wavelength_um / (2 * math.pi * geo.na_camera) / geo.camera_px_um
    assert measured_px == pytest.approx(theory_px, rel=0.2)


def test_frames_decorrelate_progressively_with_distance():
    slm, cam, stage, changer = small_rig(window=384)
    gray = blocks(384, 2) * np.uint8(128)
    f0, f20, f40 = (irradiance(cam, gray, "600", z) for z in (0.0, 20.0, 40.0))
    assert pearson(f0, f20) > pearson(f0, f40) + 0.05


def test_the_same_pattern_twice_gives_the_same_frame_apart_from_noise():
    slm, cam, stage, changer = small_rig(noise=True)
    a, b = blocks(128, 4) * np.uint8(128), blocks(128, 5) * np.uint8(128)
    slm.show_gray(a)
    first = cam.capture(100, key=("pair", "x", 0)).image
    slm.show_gray(b)
    cam.capture(100, key=("pair", "y", 0))
    slm.show_gray(a)
    again = cam.capture(100, key=("pair", "x", 1)).image
    assert not np.array_equal(first, again)  # different keys: different noise
    assert pearson(first, again) > 0.95


def test_coarser_grit_scatters_wider_as_theory_says():
    slm, cam, stage, changer = small_rig(window=256)
    optics = cam._bench.optics
    plan = optics.plan((256, 256))
    geo = optics.geo
    fy = sfft.fftfreq(plan.shape[0], d=geo.dx_diffuser_um)[:, None]
    spreads = {}
    for name in ("120", "220", "600", "1500"):
        field = optics.diffuser_field(optics.slm_field(np.zeros((256, 256), np.uint8)), name, plan)
        power = np.abs(sfft.fft2(field)) ** 2
        spreads[name] = geo.wavelength_um * math.sqrt(float((power * fy**2).sum() / power.sum()))
    assert spreads["120"] > spreads["220"] > spreads["600"] > spreads["1500"]
    for name in ("120", "220"):  # strong scatterers: no ballistic light, the geometric θ0 holds
        theory = scatter_angle_rad(cam._bench.sim.diffusers[name], cam._bench.sim.glass_index)
        assert spreads[name] == pytest.approx(theory, rel=0.2)


def test_different_objects_give_clearly_different_frames():
    slm, cam, stage, changer = small_rig(window=192, imaging_na=0.015)
    f1 = irradiance(cam, blocks(192, 6) * np.uint8(128), "120", 20.0)
    f2 = irradiance(cam, blocks(192, 7) * np.uint8(128), "120", 20.0)
    assert pearson(f1, f2) < 0.5


def test_fine_grit_lets_ballistic_light_show_the_object():
    # 1500 grit: exp(−σφ²) ≈ 20 % passes unscattered, so a frame correlates with the bare object's frame
    slm, cam, stage, changer = small_rig(window=256)
    gray = blocks(256, 8) * np.uint8(128)
    frame = irradiance(cam, gray, "1500", 20.0)
    other = irradiance(cam, blocks(256, 9) * np.uint8(128), "1500", 20.0)
    contrast = frame.std() / frame.mean()
    assert contrast < 0.9  # partially developed speckle
    assert pearson(frame, other) < 0.8


def test_a_relay_pupil_inside_the_band_removes_the_spatial_frequencies_beyond_it():
    slm, cam, stage, changer = small_rig(window=128, relay_pupil_mm=10.0)  # 26 cycles/mm at the SLM
    optics = cam._bench.optics
    plan = optics.plan((128, 128))
    assert plan.relay_mask is not None
    changer.select("1500")
    field = optics.diffuser_field(optics.slm_field(blocks(128, 3) * np.uint8(128)), "1500", plan)
    screen = np.ones(plan.shape, np.complex64)
    screen[plan.canvas] = optics.screen_field("1500")[plan.canvas_crop]
    relayed = np.abs(sfft.fft2(field / screen)) ** 2  # the field before the diffuser
    outside = plan.nu2_diffuser > optics.geo.relay_cutoff_per_um**2 * 1.0001
    assert relayed[outside].sum() < 1e-9 * relayed.sum()


def test_pruned_ffts_give_the_same_field_as_the_full_grid():
    slm, cam, stage, changer = small_rig(window=128)
    optics = cam._bench.optics
    field = optics.slm_field(blocks(128, 5) * np.uint8(128))
    plan = optics.plan((128, 128))
    for z in (0.0, 40.0):
        full = optics.camera_field(optics.diffuser_field(field, "600", plan), z, plan)[plan.roi]
        fast = optics.camera_field_roi(field, "600", z, (128, 128))
        assert np.abs(fast - full).max() < 1e-5 * np.abs(full).max()

"""The SLM's own faults (issue 16): unmodulated light, fringing, phase flicker, a Gaussian beam.

Each is checked on the field leaving the SLM against its expected effect, using a 0/π
checkerboard, whose zero order (mean field) vanishes on a perfect SLM.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

from hardware.sim.config import SimConfig
from tests._sim_helpers import blocks, pearson, small_rig

pytestmark = pytest.mark.timeout(60)
W = 64


def checkerboard() -> np.ndarray:
    """Gray 0 / 128 (phase 0 / π on the linear 256-level LUT) in a pixel checkerboard."""
    return ((np.indices((W, W)).sum(axis=0) % 2) * 128).astype(np.uint8)


def zero_order_share(field: np.ndarray) -> float:
    """|mean field|² / mean |field|²: the share of the light in the zero order."""
    return float(abs(field.mean()) ** 2 / np.mean(np.abs(field) ** 2))


def test_every_slm_fault_is_off_by_default():
    sim = SimConfig()
    faults = (sim.slm_unmodulated_share, sim.slm_fringing_um, sim.slm_flicker_rad, sim.slm_beam_waist_mm)
    assert faults == (0, 0, 0, 0)
    slm, cam, stage, changer = small_rig(window=W)
    assert zero_order_share(cam._bench.optics.slm_field(checkerboard())) < 1e-10


@pytest.mark.parametrize("eta", [0.02, 0.1])
def test_unmodulated_light_puts_its_share_in_the_zero_order(eta):
    slm, cam, stage, changer = small_rig(window=W, slm_unmodulated_share=eta)
    field = cam._bench.optics.slm_field(checkerboard())
    assert zero_order_share(field) == pytest.approx(eta, rel=1e-4)
    assert np.mean(np.abs(field) ** 2) == pytest.approx(1.0, rel=1e-5)  # no light lost or gained


def test_unmodulated_light_lowers_the_frame_correlation_with_the_ideal_slm():
    gray = blocks(128, 3) * np.uint8(128)
    frames = {}
    for eta in (0.0, 0.1):
        slm, cam, stage, changer = small_rig(window=128, slm_unmodulated_share=eta)
        optics = cam._bench.optics
        frames[eta] = optics.irradiance(optics.slm_field(gray), "1500", 20.0, (128, 128))
    assert 0.7 < pearson(frames[0.0], frames[0.1]) < 0.99


@pytest.mark.parametrize("width_um", [1.0, 3.0])
def test_fringing_leaks_the_neighbours_phase_as_the_ramp_model_says(width_um):
    # each pixel takes ε = width/(8·pitch) of each of its 4 opposite-phase neighbours: phases move
    # to a and π − a with a = 4επ, so the zero order holds sin²(a) of the light
    slm, cam, stage, changer = small_rig(window=W, slm_fringing_um=width_um)
    field = cam._bench.optics.slm_field(checkerboard())[1:-1, 1:-1]  # the window's edge pixels have 3
    a = 4 * (width_um / 64.0) * math.pi
    assert zero_order_share(field) == pytest.approx(math.sin(a) ** 2, rel=1e-3)
    uniform = cam._bench.optics.slm_field(np.full((W, W), 128, np.uint8))
    assert np.allclose(uniform, uniform[0, 0])  # a uniform pattern has no edges to fringe


def test_flicker_moves_the_pi_level_by_its_amplitude_at_60_hz():
    amp = 0.3
    slm, cam, stage, changer = small_rig(window=W, slm_flicker_rad=amp)
    optics = cam._bench.optics
    quarter = 1.0 / (4 * 60.0)
    assert zero_order_share(optics.slm_field(checkerboard(), 0.0)) < 1e-10  # sin(0) = 0
    # at the ripple's peak the π pixels sit at π + A: the zero order holds sin²(A/2)
    assert zero_order_share(optics.slm_field(checkerboard(), quarter)) == pytest.approx(
        math.sin(amp / 2) ** 2, rel=1e-3)
    assert zero_order_share(optics.slm_field(checkerboard(), 1.0 / 60.0)) < 1e-8  # one period on


def test_flicker_makes_repeated_frames_differ_while_the_slm_is_still():
    slm, cam, stage, changer = small_rig(window=128, slm_flicker_rad=0.5)
    slm.show_gray(blocks(128, 2) * np.uint8(128))
    cam.configure((128, 128), 3000)  # each capture moves the bench clock by 3 ms: a new ripple phase
    a, b = cam.capture(100, key=("a",)).image, cam.capture(100, key=("a",)).image
    assert not np.array_equal(a, b)


def test_a_gaussian_beam_lights_the_window_as_its_profile_says():
    # light in the window relative to a flat top: [√(π/2)·w/L · erf(L/(√2·w))]² for a square of side L
    waist_mm = 0.4
    slm, cam, stage, changer = small_rig(window=W, slm_beam_waist_mm=waist_mm)
    field = cam._bench.optics.slm_field(np.zeros((W, W), np.uint8))
    side = W * 8.0 / 1000.0
    per_axis = math.sqrt(math.pi / 2) * waist_mm / side * erf(side / (math.sqrt(2) * waist_mm))
    assert np.mean(np.abs(field) ** 2) == pytest.approx(per_axis**2, rel=0.01)
    assert abs(field[W // 2, W // 2]) == pytest.approx(1.0, abs=0.01)

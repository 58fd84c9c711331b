"""The simulated SLM's hidden response (hardware/sim/slm_response.py) and its virtual clock."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.clock import SimClock
from hardware.lut import PhaseLUT
from hardware.rig import RigConfig, build_rig, load_rig
from hardware.sim import build_sim_devices
from hardware.sim.operator import ScriptedOperator
from hardware.sim.slm_response import SlmResponseSpec, true_phase_curve, true_pi_gray

pytestmark = pytest.mark.timeout(60)


def rig_devices(slm: dict, window: int = 32, **sim):
    cfg = RigConfig.model_validate({
        "slm": {"window_px": [window, window]},
        "changer": {"slots": {"1": "1500", "2": "empty"}},
        "sim": {"seed": 1, "noise": False, "slm": slm, **sim}})
    slm_dev, cam, stage, changer = build_sim_devices(cfg, PhaseLUT.linear(256))
    cam.configure((window, window), 200.0)
    changer.select("1500")
    return slm_dev, cam


def test_the_hidden_curve_is_monotone_and_reaches_pi_at_the_hidden_gray():
    spec = SlmResponseSpec(phase_curve="nonlinear", pi_gray=171.0, gamma=1.6, saturation=1.2)
    phase = true_phase_curve(spec, 632.8, "full-wave")
    assert phase[0] == 0 and np.all(np.diff(phase) > 0)
    assert true_pi_gray(spec, 632.8, "full-wave") == pytest.approx(171.0, abs=1e-6)
    slope = np.diff(phase)
    assert slope[:20].mean() < slope[100:140].mean()  # a threshold region: not a straight line


def test_half_wave_stroke_and_a_longer_wavelength_give_less_phase_per_gray():
    spec = SlmResponseSpec(phase_curve="nonlinear", pi_gray=120.0)
    full = true_phase_curve(spec, 632.8, "full-wave")
    assert np.allclose(true_phase_curve(spec, 632.8, "half-wave"), full / 2)
    assert np.all(true_phase_curve(spec, 780.0, "full-wave")[1:] < full[1:])
    assert true_pi_gray(spec, 780.0, "full-wave") > 125


def test_the_sim_camera_sees_the_hidden_curve_not_the_rigs_lut():
    slm, cam = rig_devices({"phase_curve": "nonlinear", "pi_gray": 150.0})
    gray = np.full((32, 32), 150, np.uint8)
    assert np.allclose(cam._bench.optics.lut_phase[150], np.pi, atol=1e-5)
    slm.show_gray(gray)
    assert cam.capture(100, key=("a",)).image.any()


def test_settling_is_the_same_on_every_run_for_the_same_delay():
    frames = []
    for _ in range(2):
        slm, cam = rig_devices({"rise_ms": 8.0, "fall_ms": 20.0})
        clock = cam._bench.clock
        slm.show_gray(np.zeros((32, 32), np.uint8))
        clock.sleep(1.0)
        slm.show_gray(np.full((32, 32), 128, np.uint8))
        clock.sleep(0.005)
        frames.append(cam.capture(100, key=("a",)).image)
    assert np.array_equal(frames[0], frames[1])


def test_the_phase_relaxes_with_the_rise_and_fall_time_constants():
    slm, cam = rig_devices({"rise_ms": 5.0, "fall_ms": 15.0, "slow_share": 0.2, "slow_factor": 3.0})
    lc, clock = cam._bench.lc, cam._bench.clock
    low, high = np.zeros((32, 32), np.uint8), np.full((32, 32), 200, np.uint8)
    target = lc.curve[200]
    slm.show_gray(low)
    clock.sleep(2.0)
    t0 = slm.show_gray(high)
    up = lc.phase(t0 + 0.005)[0, 0]
    assert up == pytest.approx(target * (1 - (0.8 * np.exp(-1) + 0.2 * np.exp(-1 / 3))), rel=1e-4)
    clock.sleep(2.0)
    t1 = slm.show_gray(low)
    down = lc.phase(t1 + 0.015)[0, 0]
    assert down == pytest.approx(target * (0.8 * np.exp(-1) + 0.2 * np.exp(-1 / 3)), rel=1e-4)


def test_a_flip_before_the_last_settled_starts_from_the_blend():
    slm, cam = rig_devices({"rise_ms": 10.0, "fall_ms": 10.0})
    lc, clock = cam._bench.lc, cam._bench.clock
    slm.show_gray(np.full((32, 32), 200, np.uint8))
    clock.sleep(0.010)  # one time constant: 63 % of the way
    mid = lc.phase(clock.monotonic())[0, 0]
    slm.show_gray(np.zeros((32, 32), np.uint8))
    assert lc.phase(clock.monotonic())[0, 0] == pytest.approx(mid)


def test_the_simulated_rig_hands_its_virtual_clock_to_the_rig():
    rig = build_rig(load_rig(), ScriptedOperator())
    assert isinstance(rig.clock, SimClock)
    t = rig.clock.monotonic()
    rig.clock.sleep(0.25)
    assert rig.clock.monotonic() == pytest.approx(t + 0.25)


def test_rise_without_fall_is_refused():
    with pytest.raises(ValueError, match="rise_ms and fall_ms"):
        SlmResponseSpec(rise_ms=3.0)

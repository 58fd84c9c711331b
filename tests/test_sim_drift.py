"""Drift that moves things (issue 16): the diffuser sliding sideways and the beam tilting.

Theory, for fully developed speckle imaged through the iris (intensity transmission A²(ν)):
the frame correlation is |μ|², where μ is the normalised field correlation (Goodman, Speckle
Phenomena in Optics, 2007, §4.4 and §5.5):
- diffuser slid by s (the camera at z = 0 images it, so the speckle moves with it; the same pixels
  compared): μ(s) = ∫A²(ν)·J0(2πνs)·2πν dν / ∫A²·2πν dν; for a hard iris [2J1(v)/v], v = 2π·NA·s/λ;
- beam tilted by α (the spectrum slides by α/λ across the iris): μ(α) = ∫A(ν)A(ν − α/λ) d²ν / ∫A²
  d²ν, the iris's transfer function (its autocorrelation); for a hard iris the circular OTF,
  (2/π)(acos q − q√(1 − q²)), q = α/(2·NA).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from acquisition.stability import StabilityMonitor
from hardware.sim.optics import Drift, iris_amplitude
from tests._sim_helpers import blocks, pearson, small_rig

pytestmark = pytest.mark.timeout(120)
NA, WINDOW, CROP = 0.0075, 384, 32  # 12.7-px grains; the outer 32 px (window-edge fall-off) left out
# A fine screen (σφ 3.1 rad, w 6 µm): ~50 phase cells per speckle grain, so the intensity is close
# to Gaussian speckle (with few cells per grain, as for 120 grit here, correlations run ~0.05 high).
FINE = {"rms_height_um": 0.6, "corr_length_um": 6.0}
SEEDS = (0, 1, 2)  # the correlations are averaged over three diffusers (each frame: ~600 grains)


def speckle_rig(seed: int, **sim):
    diffusers = {name: FINE for name in ("120", "220", "600", "1500")}
    return small_rig(window=WINDOW, imaging_na=NA, diffuser_drift_um_per_hour=1.0, seed=seed,
                     diffusers=diffusers, **sim)


def mean_correlations(edge: float, drifts: list[Drift]) -> list[float]:
    """Frame correlation between the rig at rest and each drift, averaged over SEEDS."""
    out = np.zeros(len(drifts))
    for seed in SEEDS:
        slm, cam, stage, changer = speckle_rig(seed, iris_edge=edge)
        optics = cam._bench.optics
        field = optics.slm_field(np.zeros((WINDOW, WINDOW), np.uint8))

        def frame(drift, optics=optics, field=field):
            irr = optics.irradiance(field, "120", 0.0, (WINDOW, WINDOW), drift=drift)
            return irr[CROP:-CROP, CROP:-CROP].astype(np.float64)

        rest = frame(Drift())
        out += [pearson(rest, frame(d)) for d in drifts]
    return list(out / len(SEEDS))


def soft_shift_correlation(s_um: float, nu_c: float, edge: float) -> float:
    def a2(nu):
        return (0.5 * special.erfc((nu - nu_c) / (math.sqrt(2.0) * edge * nu_c))) ** 2

    top = nu_c * (1 + 6 * edge)
    num = integrate.quad(lambda n: a2(n) * special.j0(2 * math.pi * n * s_um) * n, 0, top, limit=200)[0]
    den = integrate.quad(lambda n: a2(n) * n, 0, top, limit=200)[0]
    return (num / den) ** 2


def soft_tilt_correlation(shift_per_um: float, nu_c: float, edge: float) -> float:
    n = 801
    nu = np.linspace(-2 * nu_c, 2 * nu_c, n)
    fx, fy = np.meshgrid(nu, nu)
    a = iris_amplitude(np.hypot(fx, fy), nu_c, edge)
    b = iris_amplitude(np.hypot(fx - shift_per_um, fy), nu_c, edge)
    return float((a * b).sum() / (a * a).sum()) ** 2


@pytest.mark.parametrize("edge", [0.0, 0.1])
def test_frame_correlation_against_diffuser_shift_follows_the_airy_pattern(edge):
    lam, nu_c = 0.6328, NA / 0.6328
    vs = (1.0, 2.2, 3.5)
    shifts = [v * lam / (2 * math.pi * NA) for v in vs]  # v = 2π·NA·s/λ, diffuser side
    measured = mean_correlations(edge, [Drift(shift_um=s) for s in shifts])
    for v, s, got in zip(vs, shifts, measured, strict=True):
        if edge == 0.0:  # a hard iris: [2J1(v)/v]²
            theory = (2 * special.j1(v) / v) ** 2
        else:  # the apodised iris (the default): its own pupil's Hankel transform, squared
            theory = soft_shift_correlation(s, nu_c, edge)
        assert got == pytest.approx(theory, abs=0.04), v


@pytest.mark.parametrize("edge", [0.0, 0.1])
def test_frame_correlation_against_beam_tilt_follows_the_iris_transfer_function_squared(edge):
    lam, nu_c = 0.6328, NA / 0.6328
    qs = (0.2, 0.45, 0.7)  # q = α/(2·NA): the tilt as a share of the transfer function's width
    measured = mean_correlations(edge, [Drift(tilt_rad=2 * q * NA) for q in qs])
    for q, got in zip(qs, measured, strict=True):
        if edge == 0.0:  # a hard iris: the circular OTF, squared
            theory = ((2 / math.pi) * (math.acos(q) - q * math.sqrt(1 - q * q))) ** 2
        else:  # the apodised iris: its amplitude's normalised autocorrelation, squared
            theory = soft_tilt_correlation(math.sin(2 * q * NA) / lam, nu_c, edge)
        assert got == pytest.approx(theory, abs=0.04), q


def test_a_fractional_slide_is_the_shift_of_a_whole_one_split_in_two():
    slm, cam, stage, changer = speckle_rig(0)
    optics, dx = cam._bench.optics, cam._bench.geometry.dx_diffuser_um
    whole = optics.slid_phase("1500", 3 * dx)
    half = optics.slid_phase("1500", 2.5 * dx)
    rest = optics.slid_phase("1500", 0.0)
    assert np.array_equal(whole[:, 40:-40], rest[:, 43:-37])  # −x by three samples
    # the same fractional shift from two slabs two samples apart agrees (to 0.05 rad of a 3-rad
    # rms screen: the screen is not strictly band-limited, so sinc interpolation differs slightly)
    assert np.abs(optics.slid_phase("1500", 0.5 * dx)[:, 42:-38] - half[:, 40:-40]).max() < 0.05
    # the half-sample shift lies between its neighbours: closer to their mean than to either
    mid = 0.5 * (rest[:, 42:-38] + rest[:, 43:-37])
    err = np.abs(half[:, 40:-40] - mid).mean()
    assert err < 0.3 * np.abs(rest[:, 42:-38] - rest[:, 43:-37]).mean()


@pytest.mark.parametrize("knob", ["diffuser_drift_um_per_hour", "beam_tilt_urad_per_hour"])
def test_the_stability_monitor_catches_the_drift(knob):
    rate = {"diffuser_drift_um_per_hour": 100.0, "beam_tilt_urad_per_hour": 10_000.0}[knob]
    # 60 s per capture: the diffuser slides 1.7 µm, or the beam tilts 0.17 mrad, per capture
    slm, cam, stage, changer = small_rig(window=128, noise=True, capture_period_s=60.0, **{knob: rate})
    still = small_rig(window=128, noise=True, capture_period_s=60.0)
    monitors = {"drift": StabilityMonitor(threshold=0.9), "still": StabilityMonitor(threshold=0.9)}
    verdicts: dict[str, list[bool]] = {"drift": [], "still": []}
    for name, (s, c) in {"drift": (slm, cam), "still": (still[0], still[1])}.items():
        s.show_gray(blocks(128, 1) * np.uint8(128))
        c.configure((128, 128), 20_000)
        for i in range(12):
            c.capture(100, key=("pair", i))
            verdicts[name].append(monitors[name].check(0, c.capture(100, key=("reference", i)).image)[1])
    assert all(verdicts["still"])
    assert verdicts["drift"][1] and not verdicts["drift"][-1]

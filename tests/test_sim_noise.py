"""The simulated sensor's noise: the counter-based draws, the Poisson sampler and its cut, and the
photon transfer law (variance = mean + read noise²) through the whole read-out."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from hardware.sim import kernels
from hardware.sim.config import SensorSpec
from hardware.sim.sensor import POISSON_EXACT_BELOW, READ_NOISE_MASKS_E, Sensor

pytestmark = pytest.mark.timeout(120)


def draws(lam: float, read_noise: float, n: int, key: int = 7, exact_below: float = POISSON_EXACT_BELOW):
    return kernels.electrons(np.full(n, lam, np.float32), read_noise, exact_below, key).astype(np.float64)


def ks_to_exact(e: np.ndarray, lam: float, read_noise: float) -> float:
    """Kolmogorov distance between the draws and Poisson(λ) + N(0, σr²), on 600 points."""
    e = np.sort(e)
    xs = np.linspace(e[int(e.size * 0.0005)], e[int(e.size * 0.9995)], 600)
    empirical = np.searchsorted(e, xs, side="right") / e.size
    k = np.arange(0, int(lam + 20 * np.sqrt(lam) + 60))
    pmf = stats.poisson.pmf(k, lam)
    if read_noise > 0:
        exact = (pmf[None, :] * stats.norm.cdf((xs[:, None] - k[None, :]) / read_noise)).sum(axis=1)
    else:
        exact = stats.poisson.cdf(np.floor(xs), lam)
    return float(np.abs(empirical - exact).max())


def test_the_normal_draws_are_standard_with_tails_past_4_3_sigma():
    z = draws(0.0, 1.0, 2_000_000, exact_below=0.0)  # λ = 0 on the normal path: e = σr·z
    assert abs(z.mean()) < 0.003 and z.std() == pytest.approx(1.0, abs=0.002)
    assert np.mean(np.abs(z) > 2) == pytest.approx(2 * stats.norm.sf(2), abs=0.0005)
    # the refined outermost bins: a 16-bit table alone would stop at ±4.3σ
    assert np.mean(np.abs(z) > 4.0) == pytest.approx(2 * stats.norm.sf(4.0), rel=0.3)
    assert np.abs(z).max() > 4.5


@pytest.mark.parametrize("read_noise", [8.0, 1.0])
@pytest.mark.parametrize("lam", [0.3, 4.0, 9.9, 10.1, 50.0, 2000.0])
def test_electrons_follow_the_photon_transfer_law(lam, read_noise):
    e = draws(lam, read_noise, 200_000)
    var = lam + read_noise**2
    assert e.mean() == pytest.approx(lam, abs=4 * np.sqrt(var / e.size))
    assert e.var() == pytest.approx(var, rel=0.02)


def test_a_low_read_noise_sensor_draws_exact_poisson_below_the_cut():
    e = draws(4.0, 0.0, 200_000)
    assert np.array_equal(e, np.round(e))  # whole electrons
    counts = np.bincount(e.astype(int), minlength=20)[:20] / e.size
    assert np.abs(counts - stats.poisson.pmf(np.arange(20), 4.0)).max() < 0.004


def test_the_skew_correction_gives_the_poisson_third_cumulant_above_the_cut():
    e = draws(20.0, 0.0, 1_000_000)
    assert stats.skew(e) == pytest.approx(1 / np.sqrt(20.0), abs=0.01)  # Poisson: 1/√λ


@pytest.mark.parametrize(("lam", "read_noise"), [(0.5, 8.0), (4.0, 8.0), (10.0, 8.0), (100.0, 8.0),
                                                 (1000.0, 8.0), (2.0, 2.0), (30.0, 0.5)])
def test_the_draws_are_within_sampling_noise_of_the_exact_law(lam, read_noise):
    """Kolmogorov distance to Poisson(λ) + N(0, σr²): 400 000 exact draws give about 0.0014."""
    assert ks_to_exact(draws(lam, read_noise, 400_000), lam, read_noise) < 0.003


def test_below_2_e_read_noise_the_normal_approximation_would_show_so_those_sensors_draw_exactly():
    lam, read_noise = 2.0, 0.3
    assert read_noise < READ_NOISE_MASKS_E
    assert Sensor(SensorSpec(read_noise_e=read_noise), "raw8", (64, 64), True).exact_below == 10.0
    assert Sensor(SensorSpec(read_noise_e=8.0), "raw8", (64, 64), True).exact_below == 0.0
    approx = draws(lam, read_noise, 400_000, exact_below=0.0)
    exact = draws(lam, read_noise, 400_000)
    assert ks_to_exact(approx, lam, read_noise) > 0.01  # the integer steps show through
    assert ks_to_exact(exact, lam, read_noise) < 0.003


@pytest.mark.parametrize("mean_e", [4.0, 100.0])
def test_the_read_out_codes_follow_the_photon_transfer_law(mean_e):
    # full well 959 e⁻ over 1023 − 64 codes: 1 e⁻ per 10-bit count, 4 e⁻ per 8-bit step; the black
    # level of 64 counts keeps the noise clear of the ADC's zero. raw8: each pixel's own code.
    sensor = Sensor(SensorSpec(full_well_e=959.0, read_noise_e=8.0, black_level_adu=64), "raw8",
                    (1024, 1280), noise=True)
    lam = np.full((300, 300), mean_e, np.float32)
    image, _ = sensor.read_out(lam, key=1)
    out = image.astype(np.float64) * 4.0
    assert out.var() == pytest.approx(mean_e + 64.0 + 16.0 / 12.0, rel=0.1)


def test_a_frames_noise_is_the_same_for_any_thread_count_and_differs_between_keys():
    sensor = Sensor(SensorSpec(), "mono8", (1024, 1280), noise=True)
    irr = np.random.default_rng(0).exponential(0.002, (512, 512)).astype(np.float32)
    frames = []
    old = kernels.set_threads(1)
    try:
        for threads in (1, 2, 3):
            kernels.set_threads(threads)
            frames.append(sensor.expose(irr, 2000.0, (512, 512), key=99)[0])
    finally:
        kernels.set_threads(old)
    assert all(np.array_equal(frames[0], f) for f in frames[1:])
    assert not np.array_equal(frames[0], sensor.expose(irr, 2000.0, (512, 512), key=100)[0])


def test_draws_are_uncorrelated_between_keys_and_between_neighbouring_pixels():
    a, b = draws(50.0, 8.0, 200_000, key=1), draws(50.0, 8.0, 200_000, key=2)
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01
    assert abs(np.corrcoef(a[:-800], a[800:])[0, 1]) < 0.01  # the pixel below, in an 800-wide frame


def test_two_python_threads_reading_out_at_once_get_the_bytes_of_one_thread():
    from concurrent.futures import ThreadPoolExecutor

    sensor = Sensor(SensorSpec(), "mono8", (1024, 1280), noise=True)
    irr = np.random.default_rng(1).exponential(0.002, (512, 512)).astype(np.float32)
    alone = [sensor.expose(irr, 2000.0, (512, 512), key=k)[0] for k in range(6)]
    with ThreadPoolExecutor(2) as pool:  # as the live console's capture thread beside the engine
        together = list(pool.map(lambda k: sensor.expose(irr, 2000.0, (512, 512), key=k)[0], range(6)))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))

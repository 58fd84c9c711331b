"""Auto exposure on a linear camera model, and dark-frame averaging."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.exposure import TOLERANCE, auto_expose, frame_statistics, mean_dark, percentile
from protocols.schema import AutoExposureConfig

IRRADIANCE = np.random.default_rng(0).exponential(1.0, (32, 32))  # speckle-like counts per µs


def linear_probe(counts_per_us: float, max_value: int = 255):
    calls = []

    def probe(exposure_us, iteration):
        calls.append(exposure_us)
        img = np.clip(np.rint(IRRADIANCE * counts_per_us * exposure_us), 0, max_value).astype(np.uint16)
        return exposure_us, [img]

    return probe, calls


def test_converges_to_the_target_percentile():
    s = AutoExposureConfig(target_percentile=99.0, target_level=0.5, max_saturated_fraction=0.001)
    probe, _ = linear_probe(0.01)
    res = auto_expose(probe, 100.0, 255, s)
    assert res.converged
    assert res.statistic == pytest.approx(0.5 * 255, rel=TOLERANCE)
    assert res.saturated_fraction <= s.max_saturated_fraction


def test_backs_off_from_a_saturated_start():
    probe, calls = linear_probe(1.0)
    res = auto_expose(probe, 10_000.0, 255)
    assert calls[1] < calls[0]
    assert res.converged and res.saturated_fraction <= 0.001


def test_stops_where_the_saturation_limit_binds_before_the_target():
    # exponential speckle: p99.9 is 1.5 x p99, so p99 at 90 % of full scale saturates > 0.1 %
    s = AutoExposureConfig(target_percentile=99.0, target_level=0.9, max_saturated_fraction=0.001)
    probe, _ = linear_probe(0.01)
    res = auto_expose(probe, 100.0, 255, s)
    assert res.converged and res.saturated_fraction <= 0.001 and res.statistic < 0.9 * 255


def test_gives_the_best_unsaturated_exposure_when_it_cannot_converge():
    probe, _ = linear_probe(0.01)
    res = auto_expose(probe, 1.0, 255, max_iterations=1)
    assert not res.converged and res.exposure_us == 1.0


def test_respects_the_maximum_exposure():
    probe, calls = linear_probe(1e-9)
    res = auto_expose(probe, 100.0, 255, AutoExposureConfig(max_us=1000.0, start_us=100.0))
    assert max(calls) <= 1000.0 and not res.converged


def test_statistics_take_the_worst_probe():
    a = np.zeros((10, 10), np.uint8)
    b = np.full((10, 10), 255, np.uint8)
    stat, sat = frame_statistics([a, b], 50, 255)
    assert stat == 255 and sat == 1.0


def test_mean_dark_averages_frames_as_float():
    dark = mean_dark([np.full((2, 2), 1, np.uint8), np.full((2, 2), 2, np.uint8)])
    assert dark.dtype == np.float32 and np.all(dark == 1.5)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("q", [0.0, 1.0, 50.0, 99.0, 99.9, 100.0])
def test_histogram_percentile_matches_numpy(dtype, q):
    im = np.random.default_rng(3).integers(0, 200, (37, 41)).astype(dtype)
    assert percentile(im, q) == pytest.approx(float(np.percentile(im, q)))

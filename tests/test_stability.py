"""The drift monitor's correlation and threshold."""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.stability import StabilityMonitor, pearson

RNG = np.random.default_rng(1)
SPECKLE = RNG.exponential(50.0, (32, 32))


def test_pearson_matches_numpy_corrcoef():
    other = SPECKLE + RNG.normal(0, 20, SPECKLE.shape)
    assert pearson(SPECKLE, other) == pytest.approx(np.corrcoef(SPECKLE.ravel(), other.ravel())[0, 1])


def test_pearson_of_constant_frames_is_defined():
    flat = np.ones((4, 4))
    assert pearson(flat, flat) == 1.0 and pearson(flat, 2 * flat) == 0.0


def test_first_reference_of_a_block_is_its_baseline():
    mon = StabilityMonitor(threshold=0.9)
    assert mon.check(0, SPECKLE) == (1.0, True)
    assert mon.check(0, SPECKLE + 1)[1]


def test_a_decorrelated_reference_falls_below_threshold():
    mon = StabilityMonitor(threshold=0.9)
    mon.check(0, SPECKLE)
    corr, ok = mon.check(0, RNG.exponential(50.0, SPECKLE.shape))
    assert abs(corr) < 0.2 and not ok


def test_blocks_have_separate_baselines():
    mon = StabilityMonitor(threshold=0.9)
    mon.check(0, SPECKLE)
    assert mon.check(1, RNG.exponential(50.0, SPECKLE.shape)) == (1.0, True)

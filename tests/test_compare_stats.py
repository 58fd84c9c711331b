"""reconstruction.compare_stats: bootstrap intervals over faces, paired differences, Holm's correction."""

import numpy as np
import pytest

from reconstruction.compare_stats import MIN_FACES, bootstrap_means, holm, mean_ci, paired_difference


def test_bootstrap_means_equal_a_direct_loop_over_the_same_draws():
    rng = np.random.default_rng(1)
    values = rng.random(13)
    faces = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 7])
    reps = bootstrap_means(values, faces, n_boot=50, seed=7)
    draw = np.random.default_rng(7).integers(0, 8, size=(50, 8))  # the documented draw: K of K faces
    for b in range(50):
        drawn = np.concatenate([values[faces == k] for k in draw[b]])
        assert reps[b] == pytest.approx(drawn.mean(), rel=1e-12)


def test_interval_is_the_2_5_and_97_5_percentiles_of_the_replicates():
    values = np.random.default_rng(2).random(40)
    ci = mean_ci(values, n_boot=500, seed=3)
    reps = bootstrap_means(values, n_boot=500, seed=3)
    assert ci.lo == pytest.approx(np.percentile(reps, 2.5))
    assert ci.hi == pytest.approx(np.percentile(reps, 97.5))
    assert ci.mean == pytest.approx(values.mean()) and ci.n == 40 and ci.clusters == 40


def test_interval_of_a_large_normal_sample_matches_normal_theory():
    values = np.random.default_rng(4).normal(0.5, 0.1, size=2500)
    ci = mean_ci(values, n_boot=4000, seed=0)
    half = 1.96 * values.std() / np.sqrt(len(values))  # the textbook 95 % interval of a mean
    assert (ci.hi - ci.lo) / 2 == pytest.approx(half, rel=0.1)
    assert (ci.lo + ci.hi) / 2 == pytest.approx(values.mean(), abs=half / 5)


def test_repeated_pairs_of_one_face_count_as_one_draw():
    face_means = np.random.default_rng(5).random(20)
    values = np.repeat(face_means, 3)  # each face seen three times, identically
    faces = np.repeat(np.arange(20), 3)
    clustered = mean_ci(values, faces, n_boot=300, seed=1)
    per_face = mean_ci(face_means, n_boot=300, seed=1)
    assert (clustered.lo, clustered.hi) == pytest.approx((per_face.lo, per_face.hi))
    assert (clustered.n, clustered.clusters) == (60, 20)


def test_a_consistent_improvement_is_significant():
    rng = np.random.default_rng(6)
    b = rng.random(30)
    a = b + 0.05 + rng.normal(0, 0.02, 30)
    d = paired_difference(a, b, n_boot=1000)
    assert d.significant and d.lo > 0 and d.p < 0.01


def test_identical_models_differ_insignificantly():
    rng = np.random.default_rng(7)
    a = rng.random(30)
    d = paired_difference(a, a + rng.normal(0, 0.02, 30), n_boot=1000)
    assert d.lo < 0 < d.hi and not d.significant


def test_pairing_finds_a_small_shift_that_hides_in_the_spread_between_faces():
    rng = np.random.default_rng(8)
    difficulty = rng.random(40)  # faces differ much more than the models do
    a, b = difficulty + 0.01, difficulty
    unpaired_overlap = mean_ci(a).lo < mean_ci(b).hi
    assert unpaired_overlap and paired_difference(a, b).significant


def test_one_face_has_no_interval_and_few_faces_are_never_significant():
    one = mean_ci(np.array([0.5, 0.6]), np.array([3, 3]))
    assert np.isnan(one.lo) and np.isnan(one.hi) and one.clusters == 1
    few = paired_difference(np.full(MIN_FACES - 1, 0.9), np.full(MIN_FACES - 1, 0.1))
    assert few.lo > 0 and not few.significant


def test_holm_step_down():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, 0.03 > 0.05/2 -> stop
    assert holm([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]


def test_infinite_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        mean_ci(np.array([1.0, np.inf]))

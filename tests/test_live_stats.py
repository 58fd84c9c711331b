"""The console's frame statistics, checked against numpy, scikit-image and speckle theory."""

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from console.stats import autocovariance, contrast, frame_stats, grain_px, histogram, sharpness


def speckle(n: int, pupil_radius: float, seed: int = 0) -> np.ndarray:
    """Fully developed speckle: a circular-Gaussian field through a circular pupil of
    ``pupil_radius`` frequency samples (Goodman 2007, ch. 4), as intensity."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(n) * n
    pupil = (f[:, None] ** 2 + f[None, :] ** 2) <= pupil_radius**2
    field = np.fft.ifft2(pupil * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))))
    return np.abs(field) ** 2


def airy_fwhm_px(n: int, pupil_radius: float) -> float:
    """FWHM of |2 J1(x)/x|², x = 2π R r / n: the intensity autocovariance behind a circular pupil."""
    x_half = scipy.optimize.brentq(lambda x: (2 * scipy.special.j1(x) / x) ** 2 - 0.5, 0.5, 3.0)
    return 2 * x_half * n / (2 * np.pi * pupil_radius)


def test_histogram_equals_numpy_histogram_for_8_bit_frames():
    img = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    assert np.array_equal(histogram(img, 255), np.histogram(img, 256, range=(0, 256))[0])


def test_histogram_of_10_bit_frames_bins_four_values_each():
    img = np.random.default_rng(1).integers(0, 1024, (40, 40), dtype=np.uint16)
    assert np.array_equal(histogram(img, 1023), np.histogram(img, 256, range=(0, 1024))[0])


def test_max_mean_and_saturated_fraction_equal_numpy():
    img = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    s = frame_stats(img, 255)
    assert s.max == img.max()
    assert s.mean == pytest.approx(img.mean())
    assert s.saturated_fraction == np.count_nonzero(img == 255) / img.size


def test_saturation_level_below_max_counts_pixels_from_there():
    img = np.array([[10, 96], [97, 255]], np.uint8)
    assert frame_stats(img, 255, saturation_level=96).saturated_fraction == 0.75


def test_contrast_of_integer_frame_equals_numpy_std_over_mean_above_black():
    img = np.random.default_rng(3).integers(5, 200, (50, 50), dtype=np.uint8)
    x = img.astype(np.float64) - 5
    assert contrast(img, 5.0) == pytest.approx(x.std() / x.mean(), rel=1e-12)


def test_contrast_of_fully_developed_speckle_is_one():
    # Goodman 2007, eq. 3.15: exponential intensity statistics, σ/μ = 1
    assert contrast(speckle(256, 20)) == pytest.approx(1.0, abs=0.03)


def test_contrast_of_a_uniform_frame_is_zero_and_of_a_black_frame_undefined():
    assert contrast(np.full((8, 8), 100, np.uint8)) == 0.0
    assert np.isnan(contrast(np.zeros((8, 8), np.uint8)))


@pytest.mark.parametrize("radius", [10, 20, 40])
def test_grain_size_matches_the_airy_autocovariance_of_a_circular_pupil(radius):
    measured = np.mean([grain_px(speckle(256, radius, seed)) for seed in range(6)])
    assert measured == pytest.approx(airy_fwhm_px(256, radius), rel=0.04)


def test_autocovariance_equals_a_direct_sum_at_small_shifts():
    img = np.random.default_rng(4).random((32, 32)).astype(np.float32)
    a = autocovariance(img, crop=32)
    x = img - img.mean()
    for dr, dc in [(0, 1), (1, 0), (3, 2)]:
        direct = np.mean(x[: 32 - dr, : 32 - dc] * x[dr:, dc:]) / np.mean(x * x)
        assert a[dr, dc] == pytest.approx(direct, rel=1e-4, abs=1e-6)


def test_grain_of_a_uniform_frame_is_undefined():
    assert np.isnan(grain_px(np.full((64, 64), 7, np.uint8)))


def test_sharpness_is_laplacian_variance_over_mean_squared_as_skimage_computes_it():
    from skimage.filters import laplace

    img = np.random.default_rng(5).integers(0, 256, (40, 40), dtype=np.uint8)
    lap = laplace(img.astype(np.float64), ksize=3)[1:-1, 1:-1]  # the 4-neighbour kernel, interior
    assert sharpness(img) == pytest.approx(lap.var() / img.mean() ** 2, rel=1e-5)


def test_sharpness_falls_as_the_image_is_blurred():
    from scipy.ndimage import gaussian_filter

    img = speckle(128, 30) * 50
    values = [sharpness(gaussian_filter(img, s)) for s in (0, 1, 2, 4)]
    assert values == sorted(values, reverse=True)


def test_stats_to_json_turns_undefined_figures_into_null():
    d = frame_stats(np.zeros((16, 16), np.uint8), 255).to_json()
    assert d["contrast"] is None and d["grain_px"] is None and d["sharpness"] is None
    assert len(d["histogram"]) == 256 and d["histogram"][0] == 256

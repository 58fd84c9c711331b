"""The metrics match scikit-image (SSIM, PSNR), scipy (PCC) and set arithmetic (Jaccard)."""

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from reconstruction import metrics


def _images(seed=0, shape=(3, 32, 40)):
    rng = np.random.default_rng(seed)
    target = (rng.random(shape) > 0.5).astype(np.float64)
    prediction = np.clip(target * 0.7 + rng.random(shape) * 0.4, 0, 1)
    return prediction, target


def test_ssim_matches_scikit_image_gaussian_window():
    p, t = _images()
    ref = np.mean([structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                         data_range=1) for a, b in zip(p, t, strict=True)])
    assert metrics.ssim(p, t) == pytest.approx(ref, abs=1e-6)


def test_ssim_of_an_image_with_itself_is_one():
    p, _ = _images()
    assert metrics.ssim(p, p) == pytest.approx(1.0, abs=1e-9)


def test_psnr_matches_scikit_image():
    p, t = _images(1)
    ref = np.mean([peak_signal_noise_ratio(b, a, data_range=1) for a, b in zip(p, t, strict=True)])
    assert metrics.psnr(p, t) == pytest.approx(ref, abs=1e-6)


def test_pcc_is_per_image_pearson_averaged():
    p, t = _images(2)
    ref = np.mean([pearsonr(a.ravel(), b.ravel())[0] for a, b in zip(p, t, strict=True)])
    assert metrics.pcc(p, t) == pytest.approx(ref, abs=1e-6)


def test_jaccard_thresholds_prediction_at_half():
    t = np.array([[1, 1, 0, 0]], dtype=float)
    p = np.array([[0.9, 0.4, 0.6, 0.1]])  # TP, FN, FP, TN
    assert metrics.jaccard(p, t) == pytest.approx(1 / 3)


def test_jaccard_matches_set_arithmetic_on_random_masks():
    p, t = _images(3)
    pb, tb = p >= 0.5, t >= 0.5
    ref = np.mean([(a & b).sum() / (a | b).sum() for a, b in zip(pb, tb, strict=True)])
    assert metrics.jaccard(p, t) == pytest.approx(ref, abs=1e-12)


def test_single_image_and_batch_agree():
    p, t = _images(4)
    assert metrics.ssim(p[0], t[0]) == pytest.approx(metrics.ssim_per_image(p, t)[0])


def test_torch_tensors_are_accepted():
    p, t = _images(5)
    assert metrics.pcc(torch.from_numpy(p), torch.from_numpy(t)) == pytest.approx(metrics.pcc(p, t))


def test_torch_ssim_matches_numpy_ssim():
    p, t = _images(6, shape=(2, 24, 24))
    fast = metrics.ssim_torch(torch.from_numpy(p)[:, None].float(), torch.from_numpy(t)[:, None].float())
    assert fast.numpy() == pytest.approx(metrics.ssim_per_image(p, t), abs=1e-5)


def test_npcc_loss_is_minus_pcc():
    p, t = _images(7)
    loss = metrics.npcc_loss(torch.from_numpy(p), torch.from_numpy(t))
    assert float(loss) == pytest.approx(-metrics.pcc(p, t), abs=1e-6)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differs"):
        metrics.pcc(np.zeros((4, 4)), np.zeros((5, 5)))

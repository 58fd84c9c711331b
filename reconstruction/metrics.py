"""Reconstruction metrics (docs/design.md, "Metrics"): PCC, SSIM, Jaccard index and PSNR.

Every function takes ``(prediction, target)`` in [0, 1], shape (H, W) or (B, H, W), as numpy arrays
or torch tensors, computes per image and returns the mean over the batch as a Python float.

- PCC: Pearson correlation of the pixel values of one image pair.
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window, sigma 1.5, data_range 1, K1 0.01, K2 0.03,
  population (not sample) covariances; the mean of the SSIM map over the pixels whose window lies
  inside the image. This equals scikit-image's ``structural_similarity(gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1)`` (checked in tests/test_metrics.py).
- Jaccard: |P and T| / |P or T| with the prediction thresholded at 0.5 (``>= 0.5``) and the target at
  0.5; two empty masks count as 1.
- PSNR: 10 log10(1 / MSE), data_range 1; a perfect image gives ``inf``.

``ssim_torch`` is the same SSIM on torch tensors (B, 1, H, W) for the training progress bar.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

SSIM_SIGMA = 1.5
SSIM_WIN = 11  # truncate = (11 - 1) / 2 / 1.5 gives an 11x11 window, as scikit-image does
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _as_batch(a, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor
        a = a.detach().float().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] == 1:  # (B, 1, H, W) model output
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected shape (H, W) or (B, H, W), got {a.shape}")
    return a


def _pair(prediction, target) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_batch(prediction, "prediction"), _as_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from target shape {t.shape}")
    return p, t


def pcc_per_image(prediction, target) -> np.ndarray:
    p, t = _pair(prediction, target)
    p = p.reshape(len(p), -1)
    t = t.reshape(len(t), -1)
    p = p - p.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    denom = np.sqrt((p * p).sum(axis=1) * (t * t).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(axis=1) / denom
    return np.where(denom > 0, r, 0.0)  # a constant image correlates with nothing


def pcc(prediction, target) -> float:
    """Pearson correlation coefficient per image, averaged over the batch."""
    return float(pcc_per_image(prediction, target).mean())


def _gauss(img: np.ndarray) -> np.ndarray:
    truncate = ((SSIM_WIN - 1) / 2) / SSIM_SIGMA
    return ndimage.gaussian_filter(img, sigma=SSIM_SIGMA, truncate=truncate, mode="reflect")


def ssim_per_image(prediction, target) -> np.ndarray:
    p, t = _pair(prediction, target)
    c1, c2 = (SSIM_K1 * 1.0) ** 2, (SSIM_K2 * 1.0) ** 2  # data_range 1
    pad = (SSIM_WIN - 1) // 2
    out = np.empty(len(p))
    for i, (x, y) in enumerate(zip(p, t, strict=True)):
        if min(x.shape) < SSIM_WIN:
            raise ValueError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}, got {x.shape}")
        ux, uy = _gauss(x), _gauss(y)
        vx = _gauss(x * x) - ux * ux
        vy = _gauss(y * y) - uy * uy
        cxy = _gauss(x * y) - ux * uy
        s = ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out[i] = s[pad:-pad, pad:-pad].mean()  # scikit-image crops the border it cannot trust
    return out


def ssim(prediction, target) -> float:
    """Mean SSIM (Gaussian 11x11 window, sigma 1.5, data_range 1) per image, averaged."""
    return float(ssim_per_image(prediction, target).mean())


def jaccard_per_image(prediction, target) -> np.ndarray:
    p, t = _pair(prediction, target)
    pb = (p >= 0.5).reshape(len(p), -1)
    tb = (t >= 0.5).reshape(len(t), -1)
    inter = (pb & tb).sum(axis=1)
    union = (pb | tb).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def jaccard(prediction, target) -> float:
    """Jaccard index (intersection over union) of the prediction thresholded at 0.5."""
    return float(jaccard_per_image(prediction, target).mean())


def psnr_per_image(prediction, target) -> np.ndarray:
    p, t = _pair(prediction, target)
    mse = ((p - t) ** 2).reshape(len(p), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10 * np.log10(1.0 / np.maximum(mse, 1e-300)), math.inf)


def psnr(prediction, target) -> float:
    """Peak signal-to-noise ratio in dB (data_range 1) per image, averaged."""
    return float(psnr_per_image(prediction, target).mean())


def all_per_image(prediction, target) -> dict[str, np.ndarray]:
    """The four metrics per image, keyed ``pcc``, ``ssim``, ``jaccard``, ``psnr``."""
    return {"pcc": pcc_per_image(prediction, target), "ssim": ssim_per_image(prediction, target),
            "jaccard": jaccard_per_image(prediction, target), "psnr": psnr_per_image(prediction, target)}


# --- torch versions, for training-time monitoring (checked against the numpy ones) -------------

def _gauss_kernel_1d(torch, device, dtype):
    r = torch.arange(SSIM_WIN, device=device, dtype=dtype) - (SSIM_WIN - 1) / 2
    g = torch.exp(-(r * r) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim_torch(prediction, target):
    """SSIM per image of (B, 1, H, W) tensors in [0, 1], as a (B,) float32 tensor.

    Same definition as :func:`ssim` (separable Gaussian, reflect padding, border crop).
    """
    import torch
    import torch.nn.functional as F

    x = prediction.detach().float()
    y = target.detach().float()
    if x.ndim == 3:
        x, y = x[:, None], y[:, None]
    g = _gauss_kernel_1d(torch, x.device, x.dtype)
    gh, gv = g.view(1, 1, 1, -1), g.view(1, 1, -1, 1)
    pad = (SSIM_WIN - 1) // 2

    def blur(a):
        # scipy's "reflect" (d c b a | a b c d) is torch's "symmetric": pad by mirroring with the edge
        a = torch.cat([a[..., :, :pad].flip(-1), a, a[..., :, -pad:].flip(-1)], dim=-1)
        a = torch.cat([a[..., :pad, :].flip(-2), a, a[..., -pad:, :].flip(-2)], dim=-2)
        return F.conv2d(F.conv2d(a, gh), gv)

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    cxy = blur(x * y) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * cxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s[..., pad:-pad, pad:-pad].mean(dim=(1, 2, 3))


def npcc_loss(prediction, target):
    """Negative Pearson correlation per image, averaged (the paper's NPCC loss); float32."""
    x = prediction.float().flatten(1)
    y = target.float().flatten(1)
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    r = (x * y).sum(dim=1) / (x.norm(dim=1) * y.norm(dim=1) + 1e-8)
    return -r.mean()

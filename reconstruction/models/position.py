"""2-D absolute sinusoidal position encoding, paper eq. 4.

Eq. 4 as printed: for the index t of a feature-map axis and channel index k = 0 … d−1,
    f(t, k) = sin(t / 1000^k)  if k is even,   cos(t / 1000^k)  if k is odd,
and P_t = (P_{x,t}; P_{y,t}) ∈ R^{d_model}: the x- and y-encodings are stacked along channels, so each axis
gets d = d_model / 2 channels (the paper's "three-dimensional" encoding is this (channel, y, x) tensor).

Oddity: with the exponent k un-normalised, 1000^k overflows the useful range after k = 1 (t / 1000^2 < 1e-4
for t ≤ 100), so all channels k ≥ 2 are (nearly) constant 0 or 1 and only sin(t) carries position, which
aliases every 2π pixels. ``mode="eq4"`` computes the formula literally (tested against it); the model default
``mode="eq4-scaled"`` keeps eq. 4's base 1000 and its per-channel sin/cos parity but normalises the exponent
to k / d, so the wavelengths span 2π … 2π·1000^((d−1)/d) pixels, as in Vaswani et al. 2017
(base 10000^(2i/d)).
"""

from __future__ import annotations

import torch

POSITION_MODES = ("eq4", "eq4-scaled")


def sinusoid_1d(length: int, d: int, mode: str = "eq4-scaled") -> torch.Tensor:
    """f(t, k) of eq. 4 for t = 0 … length−1, k = 0 … d−1; returns (d, length) float64."""
    if mode not in POSITION_MODES:
        raise ValueError(f"position encoding mode must be one of {POSITION_MODES} (got {mode!r})")
    t = torch.arange(length, dtype=torch.float64)
    k = torch.arange(d, dtype=torch.float64)
    exponent = k if mode == "eq4" else k / d
    angle = t[None, :] / torch.pow(torch.tensor(1000.0, dtype=torch.float64), exponent)[:, None]
    even = (torch.arange(d) % 2 == 0)[:, None]
    return torch.where(even, torch.sin(angle), torch.cos(angle))


def position_encoding_2d(height: int, width: int, d_model: int, mode: str = "eq4-scaled") -> torch.Tensor:
    """P of eq. 4 as a (d_model, height, width) float32 map: channels [0, d_model/2) encode x (column),
    channels [d_model/2, d_model) encode y (row)."""
    if d_model % 2:
        raise ValueError(f"position encoding needs an even d_model (got {d_model})")
    half = d_model // 2
    px = sinusoid_1d(width, half, mode)[:, None, :].expand(half, height, width)
    py = sinusoid_1d(height, half, mode)[:, :, None].expand(half, height, width)
    return torch.cat([px, py], dim=0).float()

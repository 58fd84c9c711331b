"""Puffed down-sampling (paper Fig. 2) and leaky up-sampling (paper Fig. 3).

Puffed: a five-layer "sandwich" autoencoder — Conv-BN-ReLU ×2 expanding the channels 4× (C → 4C → 4C),
2×2 max-pool, Conv-BN-ReLU ×2 compressing to half the expanded width (4C → 4C → 2C). The output has 2C
channels at half the resolution, so channels double per level as in a classic UNet (the paper's "two times
smaller" is read as half of the expanded 4C).
Leaky: a bottleneck with bilinear interpolation in the middle — Conv-BN-ReLU ×2 compressing (C → C/4 → C/4),
×2 bilinear interpolation, Conv-BN-ReLU ×2 (C/4 → C/4 → C/2). Output C/2 channels at twice the resolution.
SpT UNet-B ("bottleneck for the first and third convolution layers"): layers 1 and 3 of both modules become
1×1 → 3×3 → 1×1 residual bottlenecks at half their output width (He et al. 2016).

Shortcuts (``shortcut=True``, the default; ``False`` rebuilds the plain stacks; not drawn in Figs. 2–3):
each module adds a projection shortcut (He et al. 2016, ResNet option B) around its conv stack: max-pool,
then 1×1 Conv-BN to the output width for puffed; bilinear ×2, then 1×1 Conv-BN for leaky; and the
bottlenecks are residual, as He et al.'s are. Without them SpT UNet-B's scaffold is a plain stack of ~50
Conv-BN-ReLU layers (the bottlenecks triple layers 1 and 3), which did not train on speckle data (training
loss stuck at the mean-face floor; docs/model.md "Training fault").
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BottleneckConv(nn.Module):
    """ResNet bottleneck (He et al. 2016), a cheaper stand-in for one 3×3 layer: 1×1 (→ c_out/2) → 3×3 →
    1×1 (→ c_out) Conv-BN (ReLU after the first two), plus the input (1×1 Conv-BN projection when the width
    changes), then ReLU."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True):
        super().__init__()
        mid = max(c_out // 2, 1)
        self.body = nn.Sequential(ConvBNReLU(c_in, mid, 1), ConvBNReLU(mid, mid, 3),
                                  nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (_projection(c_in, c_out) if c_in != c_out else nn.Identity()) if shortcut else None

    def forward(self, x):
        out = self.body(x)
        return F.relu(out if self.shortcut is None else out + self.shortcut(x))


def _layer(c_in: int, c_out: int, bottleneck: bool, shortcut: bool) -> nn.Module:
    return BottleneckConv(c_in, c_out, shortcut) if bottleneck else ConvBNReLU(c_in, c_out)


class PuffedDown(nn.Module):
    """(B, C, H, W) → (B, 2C, H/2, W/2) through C → 4C → 4C → pool → 4C → 2C (Fig. 2)."""

    def __init__(self, c_in: int, bottleneck: bool = False, widths=(2, 4, 4, 2), shortcut: bool = True):
        super().__init__()
        w = [c_in] + [round(m * c_in) for m in widths]
        self.expand = nn.Sequential(_layer(w[0], w[1], bottleneck, shortcut), ConvBNReLU(w[1], w[2]))
        self.pool = nn.MaxPool2d(2)
        self.compress = nn.Sequential(_layer(w[2], w[3], bottleneck, shortcut), ConvBNReLU(w[3], w[4]))
        self.shortcut = _projection(c_in, w[4]) if shortcut else None

    def forward(self, x):
        out = self.compress(self.pool(self.expand(x)))
        return out if self.shortcut is None else out + self.shortcut(self.pool(x))


class LeakyUp(nn.Module):
    """(B, C, H, W) → (B, C/2, 2H, 2W) through C → C/4 → C/4 → bilinear ×2 → C/4 → C/2 (Fig. 3)."""

    def __init__(self, c_in: int, bottleneck: bool = False, squeeze: int = 4, shortcut: bool = True):
        super().__init__()
        narrow = max(c_in // squeeze, 1)
        self.squeeze = nn.Sequential(_layer(c_in, narrow, bottleneck, shortcut), ConvBNReLU(narrow, narrow))
        self.expand = nn.Sequential(_layer(narrow, narrow, bottleneck, shortcut),
                                    ConvBNReLU(narrow, c_in // 2))
        self.shortcut = _projection(c_in, c_in // 2) if shortcut else None

    def forward(self, x):
        out = self.expand(_up2(self.squeeze(x)))
        return out if self.shortcut is None else out + self.shortcut(_up2(x))


def _up2(x):
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _projection(c_in: int, c_out: int) -> nn.Sequential:
    """ResNet projection shortcut (He et al. 2016, option B): 1×1 Conv-BN, no ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

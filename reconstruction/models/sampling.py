"""Puffed down-sampling (paper Fig. 2) and leaky up-sampling (paper Fig. 3).

Puffed: a five-layer "sandwich" autoencoder — Conv-BN-ReLU ×2 expanding the channels 4× (C → 4C → 4C),
2×2 max-pool, Conv-BN-ReLU ×2 compressing to half the expanded width (4C → 4C → 2C). The output has 2C
channels at half the resolution, so channels double per level as in a classic UNet (the paper's "two times
smaller" is read as half of the expanded 4C).
Leaky: a bottleneck with bilinear interpolation in the middle — Conv-BN-ReLU ×2 compressing (C → C/4 → C/4),
×2 bilinear interpolation, Conv-BN-ReLU ×2 (C/4 → C/4 → C/2). Output C/2 channels at twice the resolution.
SpT UNet-B ("bottleneck for the first and third convolution layers"): layers 1 and 3 of both modules become
1×1 → 3×3 → 1×1 bottlenecks at half their output width (He et al. 2016).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int = 3):
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class BottleneckConv(nn.Sequential):
    """1×1 (→ c_out/2) → 3×3 → 1×1 (→ c_out), each Conv-BN-ReLU: a cheaper stand-in for one 3×3 layer."""

    def __init__(self, c_in: int, c_out: int):
        mid = max(c_out // 2, 1)
        super().__init__(ConvBNReLU(c_in, mid, 1), ConvBNReLU(mid, mid, 3), ConvBNReLU(mid, c_out, 1))


def _layer(c_in: int, c_out: int, bottleneck: bool) -> nn.Module:
    return BottleneckConv(c_in, c_out) if bottleneck else ConvBNReLU(c_in, c_out)


class PuffedDown(nn.Module):
    """(B, C, H, W) → (B, 2C, H/2, W/2) through C → 4C → 4C → pool → 4C → 2C (Fig. 2)."""

    def __init__(self, c_in: int, bottleneck: bool = False, widths=(2, 4, 4, 2)):
        super().__init__()
        w = [c_in] + [round(m * c_in) for m in widths]
        self.expand = nn.Sequential(_layer(w[0], w[1], bottleneck), ConvBNReLU(w[1], w[2]))
        self.pool = nn.MaxPool2d(2)
        self.compress = nn.Sequential(_layer(w[2], w[3], bottleneck), ConvBNReLU(w[3], w[4]))

    def forward(self, x):
        return self.compress(self.pool(self.expand(x)))


class LeakyUp(nn.Module):
    """(B, C, H, W) → (B, C/2, 2H, 2W) through C → C/4 → C/4 → bilinear ×2 → C/4 → C/2 (Fig. 3)."""

    def __init__(self, c_in: int, bottleneck: bool = False, squeeze: int = 4):
        super().__init__()
        narrow = max(c_in // squeeze, 1)
        self.squeeze = nn.Sequential(_layer(c_in, narrow, bottleneck), ConvBNReLU(narrow, narrow))
        self.expand = nn.Sequential(_layer(narrow, narrow, bottleneck), ConvBNReLU(narrow, c_in // 2))

    def forward(self, x):
        x = self.squeeze(x)
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.expand(x)

"""SpT UNet and SpT UNet-B (paper Fig. 1, Table 2).

Layout for an N×N input (N divisible by 8), channels C0 = ``base_channels``:

    stem  Conv-BN-ReLU 1 → C0                                         at N      (skip s0)
    enc1  PuffedDown C0 → 2C0,  EncoderBlock                          at N/2    (skip e1)
    enc2  PuffedDown 2C0 → 4C0, EncoderBlock                          at N/4    (skip e2)
    enc3  PuffedDown 4C0 → 8C0, EncoderBlock                          at N/8
    dec1  DecoderBlock, MHCA query = embedded label or learned query  at N/8
    up    LeakyUp 8C0 → 4C0;  dec2 DecoderBlock, MHCA query = e2      at N/4
    up    LeakyUp 4C0 → 2C0;  dec3 DecoderBlock, MHCA query = e1      at N/2
    up    LeakyUp 2C0 → C0;   head Conv-BN-ReLU [up, s0] → C0, 1×1 conv → 1 logit map   at N

Attention never runs at full resolution (N² = 40 000 tokens at N = 200); the level-1 blocks at N/2
(10 000 tokens) use few, narrow heads, so their T²-cost stays within the paper's MAC budget.
The first decoder block's query: the paper feeds the "embedded label" (f(Q*) of eq. 3), which does not exist
at inference. ``forward_logits(x)`` uses a learned query map (one parameter per channel and position at N/8);
with ``label_query=True``, ``forward_logits(x, label)`` embeds the label instead (8×8 stride-8 patch
convolution), for experiments only: a model trained with the label query sees the answer and cannot be used
without it.

``attention=False`` is the attention ablation (``spt-unet-b:no-attention`` in ``speckle-lab compare``): the
same network with every MHA/MHCA output zero; each decoder block adds its normalised query (e2, e1, or the
learned query) to its stream, so the skip maps still reach the decoder (attention.py).
"""

from __future__ import annotations

import torch
from torch import nn

from reconstruction.models.attention import DecoderBlock, EncoderBlock
from reconstruction.models.base import ReconstructionModel
from reconstruction.models.position import POSITION_MODES
from reconstruction.models.sampling import ConvBNReLU, LeakyUp, PuffedDown

# Hyper-parameters chosen so the 200×200 counts match paper Table 2 (see docs/model.md for the measurements).
_COMMON = {"base_channels": 24, "head_dim": (4, 8, 24), "pos_mode": "eq4-scaled", "puff_widths": (2, 4, 4, 2),
           "label_query": False, "shortcuts": True, "attention": True}
VARIANTS: dict[str, dict] = {
    # Level 1 (N/2): one head of 8 dims, not two of 4 as before issue 18: the same W^Q/K/V/O shapes,
    # parameters and MACs, but half the softmax work, which is what the N/2 attention's CPU time is
    # (docs/model.md "Speed"). Checkpoints store their heads: those saved with (2, 4, 8) × (4, 8, 24)
    # rebuild as they were.
    "spt-unet": {**_COMMON, "heads": (1, 4, 8), "head_dim": (8, 8, 24), "ffn_ratio": (4, 4, 12),
                 "bottleneck": False},
    # UNet-B: half the heads and half the FFN width (paper, Table 2 paragraph), bottleneck sampling convs.
    "spt-unet-b": {**_COMMON, "heads": (1, 2, 4), "ffn_ratio": (2, 2, 6), "bottleneck": True},
}
LEVELS = 3


def _positive(key: str, values, count: int, kind: type) -> tuple:
    """``values`` as ``count`` positive numbers of ``kind``, else a one-line ValueError naming ``key``."""
    try:
        items = list(values)
        out = tuple(kind(v) for v in items)
        ok = (len(out) == count and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
              and all(v > 0 and v == w for v, w in zip(out, items, strict=True)))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{key} must be {count} positive {kind.__name__} value(s) (got {values!r})")
    return out


def _switch(key: str, value) -> None:
    """An on/off hyper-parameter must be true or false: ``--model-arg attention=maybe`` would otherwise
    build the model with attention (any non-empty string is truthy) and say nothing."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false (got {value!r})")


class SpTUNet(ReconstructionModel):
    def __init__(self, name: str, image_size: int, base_channels: int, heads, head_dim, ffn_ratio,
                 bottleneck: bool, pos_mode: str, puff_widths=(2, 4, 4, 2), label_query: bool = False,
                 shortcuts: bool = True, attention: bool = True):
        super().__init__()
        heads, head_dim = _positive("heads", heads, LEVELS, int), _positive("head_dim", head_dim, LEVELS, int)
        ffn_ratio = _positive("ffn_ratio", ffn_ratio, LEVELS, float)
        puff_widths = _positive("puff_widths", puff_widths, 4, float)
        (base_channels,) = _positive("base_channels", [base_channels], 1, int)
        for key, value in (("bottleneck", bottleneck), ("label_query", label_query), ("shortcuts", shortcuts),
                           ("attention", attention)):
            _switch(key, value)
        if pos_mode not in POSITION_MODES:
            raise ValueError(f"pos_mode must be one of {POSITION_MODES} (got {pos_mode!r})")
        self.config = {"name": name, "image_size": image_size, "base_channels": base_channels,
                       "heads": list(heads), "head_dim": list(head_dim), "ffn_ratio": list(ffn_ratio),
                       "bottleneck": bottleneck, "pos_mode": pos_mode,
                       "puff_widths": list(puff_widths), "label_query": bool(label_query),
                       "shortcuts": bool(shortcuts), "attention": bool(attention)}
        chans = [base_channels * 2**i for i in range(LEVELS + 1)]
        sizes = [image_size // 2**i for i in range(LEVELS + 1)]

        def block_args(level: int) -> dict:  # level 1 … 3
            c = chans[level]
            i = level - 1
            return {"d_model": c, "size": sizes[level], "heads": heads[i], "head_dim": head_dim[i],
                    "ffn_hidden": round(ffn_ratio[i] * c), "pos_mode": pos_mode, "attention": bool(attention)}

        self.stem = ConvBNReLU(1, chans[0])
        # shortcuts: ResNet projection shortcuts in the sampling modules (docs/model.md "Training fault")
        self.down = nn.ModuleList(PuffedDown(chans[i], bottleneck, tuple(puff_widths), shortcuts)
                                  for i in range(LEVELS))
        self.encoders = nn.ModuleList(EncoderBlock(**block_args(i + 1)) for i in range(LEVELS))
        # decoders[0] at level 3 (N/8), decoders[1] at level 2, decoders[2] at level 1
        self.decoders = nn.ModuleList(DecoderBlock(**block_args(LEVELS - i)) for i in range(LEVELS))
        self.up = nn.ModuleList(LeakyUp(chans[LEVELS - i], bottleneck, shortcut=shortcuts)
                                for i in range(LEVELS))
        self.query = nn.Parameter(torch.randn(1, chans[LEVELS], sizes[LEVELS], sizes[LEVELS]) * 0.02)
        # f(Q*) of eq. 3 for the label: only built on request, so the default model has no parameter that
        # training leaves unused (DistributedDataParallel would otherwise need find_unused_parameters=True).
        self.label_embed = (nn.Conv2d(1, chans[LEVELS], kernel_size=2**LEVELS, stride=2**LEVELS)
                            if label_query else None)
        self.head = nn.Sequential(ConvBNReLU(2 * chans[0], chans[0]), nn.Conv2d(chans[0], 1, 1))
        self._channels_last()

    @classmethod
    def variant(cls, name: str, image_size: int, **overrides) -> SpTUNet:
        params = dict(VARIANTS[name])
        unknown = set(overrides) - set(params)
        if unknown:
            raise ValueError(f"{name}: unknown hyper-parameter(s) {', '.join(sorted(unknown))}")
        params.update(overrides)
        return cls(name, image_size, **params)

    def first_query(self, batch: int, label: torch.Tensor | None) -> torch.Tensor:
        """Q* of the first decoder block: the embedded label if given, else the learned query."""
        if label is None:
            return self.query.expand(batch, -1, -1, -1)
        if self.label_embed is None:
            name = self.config["name"]
            raise ValueError(f"{name}: a label query needs a model built with label_query=True")
        return self.label_embed(label)

    def forward_logits(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        s0 = self.stem(self._input(x))
        h, skips = s0, []
        for down, enc in zip(self.down, self.encoders, strict=True):
            h = enc(down(h))
            skips.append(h)
        queries = [self.first_query(x.shape[0], label), skips[1], skips[0]]
        for i, (dec, up) in enumerate(zip(self.decoders, self.up, strict=True)):
            h = up(dec(h, queries[i]))
        return self.head(torch.cat([s0, h], dim=1))

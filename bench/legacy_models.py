"""The reconstruction models as they were before issue 18 (commit ba9e5c9), for benchmarks only.

``bench/bench_models.py`` and ``bench/bench_train.py`` time today's models against these in the same run;
``tests/test_models.py`` checks that a checkpoint saved by them still loads into today's code and gives
the same outputs. Never imported by runtime code. Differences from today's ``reconstruction.models``:
NCHW (no channels_last), per-head tensors copied to contiguous before SDPA, and SpT UNet's default level-1
attention of 2 heads × 4 dims (today 1 head × 8 dims; same parameters and MACs).
"""

# ruff: noqa: E501
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.models.base import ReconstructionModel
from reconstruction.models.position import POSITION_MODES, position_encoding_2d
from reconstruction.models.sampling import ConvBNReLU, LeakyUp, PuffedDown


class MultiHeadAttention2d(nn.Module):
    """MHA(Q, K, V) = Concat(head_1 … head_H) W^O, head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V) (eq. 2);
    used as MHCA (eq. 3) when the query map differs from the key/value map. W are 1×1 convolutions."""

    def __init__(self, d_model: int, heads: int, head_dim: int):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.w_q = nn.Conv2d(d_model, inner, 1)
        self.w_k = nn.Conv2d(d_model, inner, 1)
        self.w_v = nn.Conv2d(d_model, inner, 1)
        self.w_o = nn.Conv2d(inner, d_model, 1)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, _, h, w = t.shape
        # (B, heads, tokens, head_dim), contiguous: the fused SDPA kernels (CPU flash too) need a unit last
        # stride, else SDPA falls back to the math path that materialises the tokens × tokens matrix.
        return t.reshape(b, self.heads, self.head_dim, h * w).transpose(2, 3).contiguous()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, _, h, w = q.shape
        # eq. 1 with the scale 1/sqrt(head_dim) (SDPA's default); see the module docstring.
        out = F.scaled_dot_product_attention(self._split(self.w_q(q)), self._split(self.w_k(k)),
                                             self._split(self.w_v(v)))
        out = out.transpose(2, 3).reshape(b, self.heads * self.head_dim, h, w)
        return self.w_o(out)


class FeedForward2d(nn.Sequential):
    """Position-wise FFN: 1×1 conv d_model → hidden, GELU, 1×1 conv hidden → d_model."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__(nn.Conv2d(d_model, hidden, 1), nn.GELU(), nn.Conv2d(hidden, d_model, 1))


class _PositionMixin(nn.Module):
    def _init_position(self, d_model: int, size: int, mode: str) -> None:
        # eq. 4 map, added to the normalised query and key inputs (not the values, as in DETR).
        self.register_buffer("pos", position_encoding_2d(size, size, d_model, mode)[None], persistent=False)


class EncoderBlock(_PositionMixin):
    """Pre-BN encoder block (Fig. 1c): x += MHA(BN(x)); x += FFN(BN(x))."""

    def __init__(self, d_model: int, size: int, heads: int, head_dim: int, ffn_hidden: int, pos_mode: str):
        super().__init__()
        self._init_position(d_model, size, pos_mode)
        self.norm_attn, self.attn = nn.BatchNorm2d(d_model), MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_ffn, self.ffn = nn.BatchNorm2d(d_model), FeedForward2d(d_model, ffn_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm_attn(x)
        qk = n + self.pos
        x = x + self.attn(qk, qk, n)
        return x + self.ffn(self.norm_ffn(x))


class DecoderBlock(_PositionMixin):
    """Pre-BN decoder block (Fig. 1d): x += MHA(BN(x)); x += MHCA(f(Q*), BN(x), BN(x)); x += FFN(BN(x)).
    The query Q* of the cross-attention is given by the caller (embedded label / learned query / skip map)
    and normalised here by its own BN (f of eq. 3)."""

    def __init__(self, d_model: int, size: int, heads: int, head_dim: int, ffn_hidden: int, pos_mode: str):
        super().__init__()
        self._init_position(d_model, size, pos_mode)
        self.norm_attn, self.attn = nn.BatchNorm2d(d_model), MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_query = nn.BatchNorm2d(d_model)
        self.norm_cross, self.cross = nn.BatchNorm2d(d_model), MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_ffn, self.ffn = nn.BatchNorm2d(d_model), FeedForward2d(d_model, ffn_hidden)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        n = self.norm_attn(x)
        qk = n + self.pos
        x = x + self.attn(qk, qk, n)
        n = self.norm_cross(x)
        x = x + self.cross(self.norm_query(query) + self.pos, n + self.pos, n)
        return x + self.ffn(self.norm_ffn(x))


# --- SpT UNet (reconstruction/models/spt_unet.py) ---

# Hyper-parameters chosen so the 200×200 counts match paper Table 2 (see docs/model.md for the measurements).
_COMMON = {"base_channels": 24, "head_dim": (4, 8, 24), "pos_mode": "eq4-scaled", "puff_widths": (2, 4, 4, 2),
           "label_query": False, "shortcuts": True}
VARIANTS: dict[str, dict] = {
    "spt-unet": {**_COMMON, "heads": (2, 4, 8), "ffn_ratio": (4, 4, 12), "bottleneck": False},
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


class LegacySpTUNet(ReconstructionModel):
    def __init__(self, name: str, image_size: int, base_channels: int, heads, head_dim, ffn_ratio,
                 bottleneck: bool, pos_mode: str, puff_widths=(2, 4, 4, 2), label_query: bool = False,
                 shortcuts: bool = True):
        super().__init__()
        heads, head_dim = _positive("heads", heads, LEVELS, int), _positive("head_dim", head_dim, LEVELS, int)
        ffn_ratio = _positive("ffn_ratio", ffn_ratio, LEVELS, float)
        puff_widths = _positive("puff_widths", puff_widths, 4, float)
        (base_channels,) = _positive("base_channels", [base_channels], 1, int)
        if pos_mode not in POSITION_MODES:
            raise ValueError(f"pos_mode must be one of {POSITION_MODES} (got {pos_mode!r})")
        self.config = {"name": name, "image_size": image_size, "base_channels": base_channels,
                       "heads": list(heads), "head_dim": list(head_dim), "ffn_ratio": list(ffn_ratio),
                       "bottleneck": bottleneck, "pos_mode": pos_mode,
                       "puff_widths": list(puff_widths), "label_query": bool(label_query),
                       "shortcuts": bool(shortcuts)}
        chans = [base_channels * 2**i for i in range(LEVELS + 1)]
        sizes = [image_size // 2**i for i in range(LEVELS + 1)]

        def block_args(level: int) -> dict:  # level 1 … 3
            c = chans[level]
            i = level - 1
            return {"d_model": c, "size": sizes[level], "heads": heads[i], "head_dim": head_dim[i],
                    "ffn_hidden": round(ffn_ratio[i] * c), "pos_mode": pos_mode}

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

    @classmethod
    def variant(cls, name: str, image_size: int, **overrides) -> LegacySpTUNet:
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
        self._check_input(x)
        s0 = self.stem(x)
        h, skips = s0, []
        for down, enc in zip(self.down, self.encoders, strict=True):
            h = enc(down(h))
            skips.append(h)
        queries = [self.first_query(x.shape[0], label), skips[1], skips[0]]
        for i, (dec, up) in enumerate(zip(self.decoders, self.up, strict=True)):
            h = up(dec(h, queries[i]))
        return self.head(torch.cat([s0, h], dim=1))


# --- CNN UNet (reconstruction/models/unet.py) ---


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LegacyUNet(ReconstructionModel):
    def __init__(self, image_size: int, base_channels: int = 60, depth: int = 3):
        super().__init__()
        for key, value in (("base_channels", base_channels), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer (got {value!r})")
        if image_size % 2**depth:
            multiple = 2**depth
            raise ValueError(f"unet depth {depth}: image_size must divide by {multiple} (got {image_size})")
        self.config = {"name": "unet", "image_size": image_size, "base_channels": base_channels,
                       "depth": depth}
        chans = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(1, chans[0])])
        self.down.extend(double_conv(chans[i], chans[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.dec = nn.ModuleList(double_conv(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward_logits(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x)
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i > 0:
                h = self.pool(h)
            h = block(h)
            skips.append(h)
        skips.pop()
        for up, dec in zip(self.up, self.dec, strict=True):
            h = dec(torch.cat([skips.pop(), up(h)], dim=1))
        return self.head(h)


def build_legacy_model(name: str, image_size: int, **overrides) -> nn.Module:
    """The pre-issue-18 model ``name`` (``spt-unet``, ``spt-unet-b`` or ``unet``)."""
    if name == "unet":
        return LegacyUNet(image_size, **overrides)
    return LegacySpTUNet.variant(name, image_size, **overrides)

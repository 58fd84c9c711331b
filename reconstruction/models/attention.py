"""Multi-head attention (paper eqs. 1–2) and multi-head cross-attention (eq. 3) on (B, C, H, W) feature maps,
and the pre-batch-norm transformer encoder/decoder blocks built from them (paper Fig. 1 b–d).

Tokens are the H·W pixels of a feature map, d_model = C channels. Eq. 1 prints softmax(QKᵀ / d_k), with d_k
the side of the feature map; we use the usual 1/√d_head scale (Vaswani et al. 2017): 1/d_k would make the
logits depend on the image size, and with d_k = 100 it flattens the softmax to near-uniform at initialisation.
Each head has a fixed width ``head_dim``; SpT UNet-B halves the head count (paper: "the number of heads or
parallel attention layers ... decreased by 50%"), which halves the projection width and the attention cost.

Speed (issue 18, docs/model.md "Speed"): on a CPU the N/2 attention is bound by the softmax over its
10⁸ scores per head, not by multiply-accumulates, so the cost grows with the number of heads, not their
width. Tokens are taken from the (B, C, H, W) map without copies when it is channels_last (the models run
channels_last): a (B, H·W, heads, head_dim) view with a unit last stride, as SDPA's fused kernels need.

``attention=False`` builds the blocks of the attention ablation (``spt-unet-b:no-attention``): no MHA or
MHCA at all (their outputs are zero), and the decoder adds the normalised query f(Q*) itself to its stream,
so the skip maps, which otherwise enter only as cross-attention queries, still reach the decoder.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.models.position import position_encoding_2d


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

    def _tokens(self, t: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, heads, H·W, head_dim) with a unit last stride (else SDPA falls back to the math
        path that materialises the tokens × tokens matrix, ~3.7× slower); a view for channels_last input."""
        b, _, h, w = t.shape
        return t.permute(0, 2, 3, 1).reshape(b, h * w, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        b, _, h, w = q.shape
        # eq. 1 with the scale 1/sqrt(head_dim); see the module docstring.
        out = sdpa(self._tokens(self.w_q(q)), self._tokens(self.w_k(k)), self._tokens(self.w_v(v)))
        # back to (B, C, H, W); a view (channels_last) when SDPA returns its (B, T, heads, D) layout
        out = out.transpose(1, 2).reshape(b, h, w, self.heads * self.head_dim).permute(0, 3, 1, 2)
        return self.w_o(out)


CPU_SDPA_MIN_DIM = 16  # head widths below this are zero-padded to it on a CPU (see sdpa)
_PAD = {"on": True}


@contextlib.contextmanager
def exact_heads():
    """Within it, sdpa never pads (MAC counting on a real CPU counts the model's own head widths)."""
    before = _PAD["on"]
    _PAD["on"] = False
    try:
        yield
    finally:
        _PAD["on"] = before


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(QKᵀ/√d) V over (B, heads, T, d) with d = the true head width, by torch's fused SDPA.

    On a CPU a head narrower than ``CPU_SDPA_MIN_DIM`` is zero-padded to it first: torch's CPU flash
    attention backward runs 4-9× slower at d = 4 or 8 than at d = 16 (its vectorised paths want
    wider heads; measured in bench/RESULTS.md, issue 18), and the level-1 heads of both SpT models
    are 8 and 4 wide. The result is exactly the same: zero columns add nothing to QKᵀ, the padded
    output columns are zero and dropped, the scale stays 1/√d, and their gradients are discarded."""
    d = q.shape[-1]
    if q.device.type != "cpu" or d >= CPU_SDPA_MIN_DIM or not _PAD["on"]:
        return F.scaled_dot_product_attention(q, k, v)
    pad = (0, CPU_SDPA_MIN_DIM - d)
    out = F.scaled_dot_product_attention(F.pad(q, pad), F.pad(k, pad), F.pad(v, pad), scale=d ** -0.5)
    return out[..., :d]


class FeedForward2d(nn.Sequential):
    """Position-wise FFN: 1×1 conv d_model → hidden, GELU, 1×1 conv hidden → d_model."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__(nn.Conv2d(d_model, hidden, 1), nn.GELU(), nn.Conv2d(hidden, d_model, 1))


class _PositionMixin(nn.Module):
    def _init_position(self, d_model: int, size: int, mode: str) -> None:
        # eq. 4 map, added to the normalised query and key inputs (not the values, as in DETR).
        self.register_buffer("pos", position_encoding_2d(size, size, d_model, mode)[None], persistent=False)


class EncoderBlock(_PositionMixin):
    """Pre-BN encoder block (Fig. 1c): x += MHA(BN(x)); x += FFN(BN(x)).
    ``attention=False`` (the ablation): x += FFN(BN(x)) only."""

    def __init__(self, d_model: int, size: int, heads: int, head_dim: int, ffn_hidden: int, pos_mode: str,
                 attention: bool = True):
        super().__init__()
        self.attention = attention
        if attention:
            self._init_position(d_model, size, pos_mode)
            self.norm_attn = nn.BatchNorm2d(d_model)
            self.attn = MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_ffn, self.ffn = nn.BatchNorm2d(d_model), FeedForward2d(d_model, ffn_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention:
            n = self.norm_attn(x)
            qk = n + self.pos
            x = x + self.attn(qk, qk, n)
        return x + self.ffn(self.norm_ffn(x))


class DecoderBlock(_PositionMixin):
    """Pre-BN decoder block (Fig. 1d): x += MHA(BN(x)); x += MHCA(f(Q*), BN(x), BN(x)); x += FFN(BN(x)).
    The query Q* of the cross-attention is given by the caller (embedded label / learned query / skip map)
    and normalised here by its own BN (f of eq. 3). ``attention=False`` (the ablation): both attention
    outputs are zero and x += f(Q*) passes the query (the skip map) on; then x += FFN(BN(x))."""

    def __init__(self, d_model: int, size: int, heads: int, head_dim: int, ffn_hidden: int, pos_mode: str,
                 attention: bool = True):
        super().__init__()
        self.attention = attention
        if attention:
            self._init_position(d_model, size, pos_mode)
            self.norm_attn = nn.BatchNorm2d(d_model)
            self.attn = MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_query = nn.BatchNorm2d(d_model)
        if attention:
            self.norm_cross = nn.BatchNorm2d(d_model)
            self.cross = MultiHeadAttention2d(d_model, heads, head_dim)
        self.norm_ffn, self.ffn = nn.BatchNorm2d(d_model), FeedForward2d(d_model, ffn_hidden)

    def forward(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        if not self.attention:
            x = x + self.norm_query(query)
            return x + self.ffn(self.norm_ffn(x))
        n = self.norm_attn(x)
        qk = n + self.pos
        x = x + self.attn(qk, qk, n)
        n = self.norm_cross(x)
        x = x + self.cross(self.norm_query(query) + self.pos, n + self.pos, n)
        return x + self.ffn(self.norm_ffn(x))

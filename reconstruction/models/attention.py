"""Multi-head attention (paper eqs. 1–2) and multi-head cross-attention (eq. 3) on (B, C, H, W) feature maps,
and the pre-batch-norm transformer encoder/decoder blocks built from them (paper Fig. 1 b–d).

Tokens are the H·W pixels of a feature map, d_model = C channels. Eq. 1 prints softmax(QKᵀ / d_k), with d_k
the side of the feature map; we use the usual 1/√d_head scale (Vaswani et al. 2017): 1/d_k would make the
logits depend on the image size, and with d_k = 100 it flattens the softmax to near-uniform at initialisation.
Each head has a fixed width ``head_dim``; SpT UNet-B halves the head count (paper: "the number of heads or
parallel attention layers ... decreased by 50%"), which halves the projection width and the attention cost.
"""

from __future__ import annotations

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

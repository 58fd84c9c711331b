"""Shared contract of every speckle-lab reconstruction model.

Input (B, 1, N, N) float in [0, 1]; ``model(x)`` returns the sigmoid output (B, 1, N, N) in [0, 1];
``model.forward_logits(x)`` returns the pre-sigmoid logits (for BCE-with-logits under mixed precision);
``model.config`` is a plain dict (name, image_size, hyper-parameters) from which ``build_model`` rebuilds it.

The SpT models run channels_last (NHWC in memory; issue 18): their 4-D weights are stored so, and
``_input`` converts the input, so callers pass ordinary tensors; attention then takes its tokens from an
NHWC map without a copy. The CNN UNet stays NCHW: channels_last measured slower for its training step on
this project's CPU (bench/RESULTS.md).
"""

from __future__ import annotations

import torch
from torch import nn


class ReconstructionModel(nn.Module):
    """Subclasses implement ``forward_logits``; ``forward`` applies the sigmoid (paper: Sigmoid output)."""

    config: dict

    def forward_logits(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x, label))

    def _channels_last(self) -> None:
        """Stores the 4-D parameters and buffers channels_last (call at the end of ``__init__``)."""
        self.to(memory_format=torch.channels_last)

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` checked (a one-line ValueError for a wrong shape) and made channels_last."""
        self._check_input(x)
        return x.contiguous(memory_format=torch.channels_last)

    def _check_input(self, x: torch.Tensor) -> None:
        n = self.config["image_size"]
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != n or x.shape[3] != n:
            raise ValueError(
                f"{self.config['name']}: expected input of shape (B, 1, {n}, {n}), got {tuple(x.shape)}"
            )

"""Parameter and multiply-accumulate counts (MACs = torch.utils.flop_counter total / 2, as issue 6 asks)."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from reconstruction.models.attention import exact_heads

aten = torch.ops.aten


def _cpu_flash_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # torch's counter knows the CUDA SDPA kernels but not the CPU flash kernel: same formula (QKᵀ and AV).
    return sdpa_flop_count(query, key, value)


CUSTOM_FLOPS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_sdpa_flops}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int | None = None, batch: int = 1, device: str = "meta") -> int:
    """MACs of one forward pass for a (batch, 1, N, N) input, per image. ``device="meta"`` costs no compute:
    the model is copied to the meta device (shapes only)."""
    n = image_size or model.config["image_size"]
    if device == "meta":
        model = _meta_copy(model)
    x = torch.zeros(batch, 1, n, n, device=device)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False, custom_mapping=CUSTOM_FLOPS) as counter, exact_heads():
            model(x)  # the model's own head widths, not the CPU's zero-padded ones (attention.sdpa)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2 // batch


def _meta_copy(model: nn.Module) -> nn.Module:
    from reconstruction.models import model_from_config

    with torch.device("meta"):
        return model_from_config(model.config)

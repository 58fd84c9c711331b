"""Reconstruction models: SpT UNet, SpT UNet-B (paper, Table 2) and a CNN UNet baseline.

``build_model(name, image_size)`` is the only entry point the rest of speckle-lab uses; checkpoints store
``model.config`` and rebuild with ``build_model(**config)``-style calls via :func:`model_from_config`.
"""

from __future__ import annotations

import operator

from torch import nn

MODEL_NAMES = ("spt-unet", "spt-unet-b", "unet")
SIZE_MULTIPLE = 8  # three 2× down-samplings in every model


def _check(name: str, image_size) -> int:
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")
    try:
        size = operator.index(image_size)  # ints and numpy integers, not floats or strings
    except TypeError:
        size = None
    if size is None or isinstance(image_size, bool) or size < 16 or size % SIZE_MULTIPLE:
        raise ValueError(
            f"image_size must be an integer >= 16 divisible by {SIZE_MULTIPLE} (got {image_size!r})"
        )
    return size


def build_model(name: str, image_size: int, **overrides) -> nn.Module:
    """Build model ``name`` for (B, 1, image_size, image_size) inputs; ``overrides`` set hyper-parameters
    (as stored in ``model.config``)."""
    image_size = _check(name, image_size)
    if name == "unet":
        from reconstruction.models.unet import UNet

        return UNet(image_size, **overrides)
    from reconstruction.models.spt_unet import SpTUNet

    return SpTUNet.variant(name, image_size, **overrides)


def model_from_config(config: dict) -> nn.Module:
    """Rebuild a model from its ``model.config`` dict (as saved in a checkpoint)."""
    cfg = dict(config)
    try:
        name, size = cfg.pop("name"), cfg.pop("image_size")
    except KeyError as exc:
        raise ValueError(f"model config lacks {exc.args[0]!r}") from None
    if name != "unet":
        # checkpoints saved before the sampling shortcuts (docs/model.md "Training fault") lack the key
        cfg.setdefault("shortcuts", False)
        cfg.setdefault("attention", True)  # saved before the attention ablation existed (issue 18)
    return build_model(name, size, **cfg)


__all__ = ["MODEL_NAMES", "build_model", "model_from_config"]

"""speckle-lab checkpoints: plain ``.pt`` files that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only (no pickled classes):

- ``format``: ``"speckle-lab-checkpoint/1"``;
- ``model_config``: the model's ``config`` dict (``reconstruction.models.model_from_config`` rebuilds it);
- ``model``: the state dict;
- ``optimizer``, ``scheduler``, ``scaler``: their state dicts (``scaler`` may be empty);
- ``epoch``: epochs completed; ``history``: per-epoch lists (``train_loss``, ``test_loss``, ...);
- ``train_config``: the options the run was started with (loss, schedule, selection, seed, test faces);
- ``rng``: the torch CPU (and CUDA) generator states and Python's ``random`` state.

Newer checkpoints also hold ``batch`` and ``partial`` (a stop inside an epoch), ``run_identity`` (hashes of
the run's objects and protocol, ``reconstruction.data.run_identity``), ``eval_sizes`` and ``selected_on``;
older ones load without them.

Writes are atomic (temp file in the same folder, fsync, rename), so a kill never leaves half a file.
Loading refuses a file that is not one, a model config out of bounds, weights that are not finite, and a
model too large for this machine's memory (estimated before anything is allocated).
"""

from __future__ import annotations

from pathlib import Path

from speckle_core.errors import UserError
from speckle_core.text import one_line

FORMAT = "speckle-lab-checkpoint/1"
REQUIRED_KEYS = ("format", "model_config", "model", "epoch", "history", "train_config")


def save_checkpoint(state: dict, path: str | Path) -> None:
    """Serialises in memory first, then writes atomically (``reconstruction.runtime.atomic_write``): a full
    disk is one line naming the file and leaves no temp file behind."""
    import io

    import torch

    from reconstruction.runtime import atomic_write

    buf = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buf)
    atomic_write(path, lambda fh: fh.write(buf.getbuffer()), what="checkpoint")


MAX_IMAGE_SIZE = 4096  # the paper works at 200; anything past this is a tampered file, not a model


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Loads and checks a checkpoint; anything else is a one-line :class:`UserError`."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise UserError(f"{path}: not a speckle-lab checkpoint (not a PyTorch .pt archive)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            AttributeError, TypeError, IndexError, UnicodeDecodeError, OSError) as e:
        msg = one_line(e)
        if "Weights only load failed" in msg:  # a pickle of arbitrary Python objects: refused, not run
            msg = "it holds Python objects other than tensors and plain data; refused by weights_only"
        reason = msg[:160] or type(e).__name__
        raise UserError(f"{path}: not a speckle-lab checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a speckle-lab checkpoint (no format {FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise UserError(f"{path}: not a speckle-lab checkpoint (missing keys: {', '.join(missing)})")
    cfg = state["model_config"]
    if not isinstance(cfg, dict) or "name" not in cfg or "image_size" not in cfg:
        raise UserError(f"{path}: model_config: must hold name and image_size (got {cfg!r})"[:300])
    size = cfg["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= MAX_IMAGE_SIZE:
        raise UserError(f"{path}: model_config.image_size: must be an integer 8..{MAX_IMAGE_SIZE} "
                        f"(got {size!r})"[:300])
    _check_finite_weights(state["model"], path)
    return state


def _check_finite_weights(weights, path: Path) -> None:
    import torch

    if not isinstance(weights, dict):
        raise UserError(f"{path}: model: must be a state dict (got {type(weights).__name__})")
    for name, t in weights.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path}: model.{name}: holds NaN or infinite weights (a diverged run?)"[:300])


def model_from_checkpoint(state: dict, path: str | Path = "checkpoint", device=None, batch: int = 1):
    """The model of a loaded checkpoint, weights in place, in eval mode (memory checked first)."""
    from reconstruction.models import model_from_config
    from reconstruction.runtime import check_model_memory

    if device is not None:
        check_model_memory(state["model_config"], batch, device, training=False,
                           where=f"{path}: model_config")
    try:
        model = model_from_config(state["model_config"])
        model.load_state_dict(state["model"])
    except (ValueError, RuntimeError, TypeError, KeyError, ImportError) as e:
        reason = one_line(e, 200)
        raise UserError(f"{path}: model does not match its config ({reason})") from None
    return model.eval()

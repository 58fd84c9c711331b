"""The options of a training run (:class:`TrainConfig`): defaults, bounds and validation, in one place.

The CLI (``reconstruction.cli``) takes its defaults and ``--loss`` choices from here, and every
checkpoint stores ``asdict(cfg)`` as ``train_config``. Imports nothing heavy (no numpy, no torch), so
``speckle-lab --help`` stays fast.

To add an option: add a field with its default below (and its bound in ``_BOUNDS`` or a check in
``validate``), read it where it acts (``reconstruction.train`` / ``reconstruction.runtime``), and add
a click option in ``reconstruction/cli.py`` with ``default=DEFAULTS["name"]``. Checkpoints written
before the option existed resume with its default.

Schedule (paper, "Data processing"): Adam with an L2 regulariser, learning rate 1e-4 for the first half
of the epochs, 1e-5 for the next quarter and 1e-6 for the last quarter (200 epochs = 100/50/50).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields

from speckle_core.errors import UserError

LOSSES = ("bce", "npcc", "bce+npcc")
CLOCKS = ("wall", "cpu")  # what a time budget counts (compare --clock): elapsed, or CPU time per thread
WEIGHT_DECAY = 1e-5  # the paper's "L2 norm regularizer" has no stated weight; a common Adam L2 value
LR_FRACTIONS = (0.5, 0.75)  # 100/50/50 of 200 epochs (paper)
LR_GAMMA = 0.1  # 1e-4 -> 1e-5 -> 1e-6 (paper)
MAX_IMAGE_SIZE = 4096  # the paper works at 200; memory is checked as well before anything is allocated

# integer options: (lowest, highest)
_INT_BOUNDS = {"epochs": (1, 1_000_000), "batch_size": (1, 65536), "image_size": (16, MAX_IMAGE_SIZE),
               "seed": (0, 2**31 - 2), "eval_max": (1, 10**9), "max_pairs": (1, 10**12)}
# float options: (lowest, highest, lowest allowed itself)
_FLOAT_BOUNDS = {"lr": (0.0, 10.0, False), "weight_decay": (0.0, 1.0, True),
                 "test_fraction": (0.0, 1.0, True), "clip_grad_norm": (0.0, 1e12, False)}
_INCLUSIVE_TOP = {"lr", "weight_decay"}


@dataclass
class TrainConfig:
    run: str
    out_dir: str
    model: str = "spt-unet"
    model_args: dict = field(default_factory=dict)
    image_size: int = 200
    epochs: int = 200
    batch_size: int = 2
    loss: str = "bce"
    lr: float = 1e-4
    weight_decay: float = WEIGHT_DECAY
    seed: int = 0
    diffusers: list | None = None
    max_pairs: int | None = None
    test_fraction: float = 0.1
    eval_max: int = 256
    device: str = "auto"
    # Optional: clip the global gradient norm (the paper does not clip). At the demo's 1e-3 and batch 8
    # the SpT UNet diverged once at epoch 42 on the quick dataset (docs/model.md, time to SSIM 0.9).
    clip_grad_norm: float | None = None
    test_objects: list | None = None  # filled in at start; stored so evaluation uses the same faces

    def validate(self, where: str = "") -> None:
        """Every option in range; else a one-line UserError naming it (``--lr`` or ``WHERE.lr``)."""
        for name in _INT_BOUNDS:
            value = getattr(self, name)
            if value is None and name == "max_pairs":
                continue
            check_int(name, value, where)
        for name, (lo, hi, lo_ok) in _FLOAT_BOUNDS.items():
            value = getattr(self, name)
            if value is None and name == "clip_grad_norm":
                continue
            top_ok = name in _INCLUSIVE_TOP
            if not _number_in(value, lo, hi, lo_ok, top_ok):
                rng = f"{'[' if lo_ok else '('}{lo:g}, {hi:g}{']' if top_ok else ')'}"
                raise UserError(f"{_label(name, where)}: must be a finite number in {rng} (got {value!r})")
        if self.loss not in LOSSES:
            raise UserError(f"{_label('loss', where)}: choose one of {', '.join(LOSSES)} (got {self.loss!r})")
        if not isinstance(self.model_args, dict):
            raise UserError(f"{_label('model_args', where)}: must be a table of KEY=VALUE "
                            f"(got {self.model_args!r})"[:300])
        for name in ("diffusers", "test_objects"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, list):
                raise UserError(f"{_label(name, where)}: must be a list (got {value!r})"[:300])
        if self.test_objects is not None and not all(isinstance(o, int) and not isinstance(o, bool)
                                                      for o in self.test_objects):
            raise UserError(f"{_label('test_objects', where)}: must be object indices "
                            f"(got {self.test_objects!r})"[:300])

    def milestones(self) -> list[int]:
        """Epochs (0-based) at which the learning rate drops tenfold: 50 % and 75 % of the run."""
        return [max(1, round(f * self.epochs)) for f in LR_FRACTIONS]

    def lr_at(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under the paper's schedule for ``epochs``."""
        return self.lr * LR_GAMMA ** sum(epoch >= m for m in self.milestones())


def check_int(name: str, value, where: str = "") -> None:
    """``value`` an integer within ``name``'s bounds (``_INT_BOUNDS``); else a one-line UserError naming
    it. Also evaluate's ``--batch-size``, which shares train's bounds."""
    lo, hi = _INT_BOUNDS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UserError(f"{_label(name, where)}: must be an integer {lo}..{hi} (got {value!r})")


def _number_in(value, lo: float, hi: float, lo_ok: bool, hi_ok: bool) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return (lo <= value if lo_ok else lo < value) and (value <= hi if hi_ok else value < hi)


def _label(name: str, where: str) -> str:
    return f"{where}.{name}" if where else f"--{name.replace('_', '-')}"


def from_stored(stored, where: str, **overrides) -> TrainConfig:
    """A TrainConfig from a checkpoint's ``train_config`` (validated); a tampered one is a UserError."""
    if not isinstance(stored, dict):
        raise UserError(f"{where}: must be a table (got {type(stored).__name__})")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise UserError(f"{where}: unknown option {unknown[0]!r}"[:300])
    try:
        cfg = TrainConfig(**{**stored, **overrides})
    except TypeError as e:
        raise UserError(f"{where}: {e}"[:300]) from None
    cfg.validate(where)
    return cfg


DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}

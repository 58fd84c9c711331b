"""Training, single process or under ``torchrun`` (DDP), with exact resume.

Schedule (paper, "Data processing"): Adam with an L2 regulariser, learning rate 1e-4 for the first
half of the epochs, 1e-5 for the next quarter and 1e-6 for the last quarter (200 epochs = 100/50/50),
batch 2. The paper gives no L2 weight: we use ``weight_decay = 1e-5`` (Adam's coupled L2 term, i.e.
"Adam with L2", not AdamW). Losses: ``bce`` (cross-entropy on the logits), ``npcc`` (negative Pearson
correlation of the sigmoid output, per image) or ``bce+npcc`` (their sum).

Data: the training role on the training faces minus the test faces (``reconstruction.data``);
after each epoch the loss and SSIM of a fixed, seeded subset (``eval_max`` pairs) of the test set
(training distances, unseen faces) and of the validation set (validation distance, seen faces) are
recorded in the history (``history.json`` and every checkpoint): the curves of the paper's Fig. 7.

Mixed precision on CUDA (bfloat16 where supported, else float16 with a gradient scaler); the losses
are computed in float32. Under ``torchrun`` every process trains on its shard of each epoch
(``DistributedSampler``, per-process batch = ``batch_size``), BatchNorm statistics stay per process,
and only rank 0 writes files and prints.

Files in ``out_dir``: ``last.pt`` (every epoch, atomic), ``best.pt`` (best test SSIM so far),
``history.json``. ``resume=True`` continues ``last.pt`` exactly: model, optimiser, scheduler, scaler,
RNG states, epoch and history; the epoch order comes from (seed, epoch), so it needs no state.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError

LOSSES = ("bce", "npcc", "bce+npcc")
WEIGHT_DECAY = 1e-5  # the paper's "L2 norm regularizer" has no stated weight; a common Adam L2 value
LR_STEPS = (1.0, 0.1, 0.01)  # 1e-4, 1e-5, 1e-6 (paper)
LR_FRACTIONS = (0.5, 0.75)  # 100/50/50 of 200 epochs


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

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise UserError(f"--loss: choose one of {', '.join(LOSSES)} (got {self.loss!r})")
        for name in ("epochs", "batch_size", "image_size"):
            if int(getattr(self, name)) < 1:
                raise UserError(f"--{name.replace('_', '-')}: must be >= 1 (got {getattr(self, name)})")
        if not 0 <= self.test_fraction < 1:
            raise UserError(f"--test-fraction: must be in [0, 1) (got {self.test_fraction})")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise UserError(f"--max-pairs: must be >= 1 (got {self.max_pairs})")
        if self.clip_grad_norm is not None and not (0 < self.clip_grad_norm < math.inf):
            raise UserError(f"--clip-grad-norm: must be a positive number (got {self.clip_grad_norm})")

    def milestones(self) -> list[int]:
        return [max(1, round(f * self.epochs)) for f in LR_FRACTIONS]


# --- processes and devices --------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1


def _init_dist(device_name: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    backend = "nccl" if device_name.startswith("cuda") else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str = "auto", local_rank: int = 0):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device: unknown device {name!r} (auto, cpu, cuda, cuda:N, mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {name}: MPS is not available on this machine")
    return dev


def amp_settings(device):
    """(autocast dtype or None, use a gradient scaler) for a device."""
    import torch

    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


# --- losses and evaluation --------------------------------------------------------------------

def compute_loss(logits, target, kind: str):
    import torch.nn.functional as F

    from reconstruction.metrics import npcc_loss

    logits = logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "npcc":
        return npcc_loss(logits.sigmoid(), target)
    return F.binary_cross_entropy_with_logits(logits, target) + npcc_loss(logits.sigmoid(), target)


def _all_sum(values: list[float], dist: Dist, device) -> list[float]:
    if not dist.on:
        return values
    import torch
    import torch.distributed as tdist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return t.tolist()


def evaluate_loss_ssim(model, cache, positions, cfg: TrainConfig, device, dist: Dist) -> tuple[float, float]:
    """Mean loss and SSIM over ``positions`` (sharded over processes)."""
    import torch

    from reconstruction.metrics import ssim_torch

    dtype, _ = amp_settings(device)
    mine = positions[dist.rank::dist.world]
    loss_sum = ssim_sum = 0.0
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), max(8, cfg.batch_size)):
            x, y = cache.batch(mine[i:i + max(8, cfg.batch_size)])
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = model.forward_logits(x)
            loss_sum += float(compute_loss(logits, y, cfg.loss)) * len(x)
            ssim_sum += float(ssim_torch(logits.float().sigmoid(), y).sum())
    model.train(was_training)
    loss_sum, ssim_sum, n = _all_sum([loss_sum, ssim_sum, float(len(mine))], dist, device)
    if n == 0:
        return math.nan, math.nan
    return loss_sum / n, ssim_sum / n


# --- data selection ---------------------------------------------------------------------------

def select_sets(cache, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Positions (into the cache) of the train, test and validation sets."""
    from reconstruction.data import split_test_objects

    idx = cache.index
    if cfg.diffusers:
        unknown = sorted(set(map(str, cfg.diffusers)) - set(idx.diffuser.tolist()))
        if unknown:
            raise UserError(f"--diffuser: {', '.join(unknown)} not in {idx.path} "
                            f"(has {', '.join(sorted(set(idx.diffuser.tolist())))})")
    if cfg.test_objects is None:
        cfg.test_objects = split_test_objects(idx, cfg.test_fraction, cfg.seed)
    train_objs = sorted(set(np.unique(idx.object_index[idx.select(faces=["train"])]).tolist())
                        - set(cfg.test_objects))
    sets = {
        "train": idx.select(roles=["train"], faces=["train"], diffusers=cfg.diffusers, objects=train_objs),
        "test": idx.select(roles=["train"], faces=["train"], diffusers=cfg.diffusers,
                           objects=cfg.test_objects),
        "validation": idx.select(roles=["validation"], faces=["train"], diffusers=cfg.diffusers),
    }
    rng = np.random.default_rng(cfg.seed + 1)
    if cfg.max_pairs is not None and len(sets["train"]) > cfg.max_pairs:
        sets["train"] = np.sort(rng.choice(sets["train"], size=cfg.max_pairs, replace=False))
    for name in ("test", "validation"):  # a fixed subset per run for the per-epoch curves
        if len(sets[name]) > cfg.eval_max:
            sets[name] = np.sort(rng.choice(sets[name], size=cfg.eval_max, replace=False))
    if len(sets["train"]) == 0:
        raise UserError(f"{idx.path}: no training pairs (role 'train', training faces, done) "
                        "for this selection")
    return sets


# --- the loop ---------------------------------------------------------------------------------

def _rng_state(device) -> dict:
    import torch

    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def json_safe(value):
    """NaN and infinity (e.g. no test set) become null, so the JSON files stay standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(data), indent=1, allow_nan=False))
    os.replace(tmp, path)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, log=print, stop_when=None) -> dict:
    """Trains per ``cfg``; returns the history. Under torchrun, call it in every process.

    ``stop_when(record) -> bool`` (optional, single process) ends training after an epoch whose
    history record satisfies it (the benchmark's "time to SSIM 0.9").
    """
    import torch

    from reconstruction.checkpoint import load_checkpoint, save_checkpoint
    from reconstruction.data import prepare_cache
    from reconstruction.metrics import ssim_torch
    from reconstruction.models import build_model

    cfg.validate()
    out = Path(cfg.out_dir)
    last = out / "last.pt"
    state = None
    if resume:
        state = load_checkpoint(last) if last.is_file() else None
        if state is None:
            raise UserError(f"{last}: no checkpoint to resume (train without --resume first)")
        try:
            cfg = TrainConfig(**{**state["train_config"], "run": cfg.run, "out_dir": cfg.out_dir,
                                 "device": cfg.device})
        except TypeError as e:
            raise UserError(f"{last}: train_config: {e}") from None
    elif last.exists():
        raise UserError(f"{last}: already exists; use --resume to continue, or choose another --out")

    auto = "cuda" if torch.cuda.is_available() else "cpu"
    dist = _init_dist(cfg.device if cfg.device != "auto" else auto)
    device = pick_device(cfg.device, dist.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    try:  # before the cache, so a bad model option fails at once
        model = build_model(cfg.model, cfg.image_size, **cfg.model_args)
    except (ValueError, TypeError) as e:
        raise UserError(f"--model {cfg.model}: {e}") from None
    model.to(device)

    # the cache: rank 0 builds it, the others wait and open it
    if dist.main:
        cache = prepare_cache(cfg.run, cfg.image_size, fallback_dir=out)
    if dist.on:
        torch.distributed.barrier()
    if not dist.main:
        cache = prepare_cache(cfg.run, cfg.image_size, fallback_dir=out)
    sets = select_sets(cache, cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones(), gamma=0.1)
    amp_dtype, use_scaler = amp_settings(device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    history: dict[str, list] = {k: [] for k in ("epoch", "lr", "train_loss", "train_ssim", "test_loss",
                                                "test_ssim", "validation_loss", "validation_ssim", "epoch_s")}
    start_epoch = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        history = {k: list(v) for k, v in state["history"].items()}
        start_epoch = int(state["epoch"])
        _set_rng_state(state["rng"], device)
    net = _Logits.wrap(model)
    if dist.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(len(sets["train"])), num_replicas=dist.world, rank=dist.rank,
                                 shuffle=True, seed=cfg.seed, drop_last=False)
    if dist.main and state is not None:
        log(f"resume: {last} after epoch {start_epoch} of {cfg.epochs}, with the options the run started "
            f"with (model {cfg.model}, loss {cfg.loss}, batch {cfg.batch_size}, seed {cfg.seed})")
    if dist.main:
        log(f"train: {cfg.model} at {cfg.image_size}x{cfg.image_size} on {device} x{dist.world}; "
            f"{len(sets['train'])} train / {len(sets['test'])} test / {len(sets['validation'])} validation "
            f"pairs; cache {cache.folder}")
    best = max([s for s in history["test_ssim"] if s == s] or [-math.inf])

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        order = sets["train"][np.fromiter(iter(sampler), dtype=np.int64)]
        batches = [order[i:i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        net.train()
        loss_sum = ssim_sum = 0.0
        n_seen = 0
        bar = _Bar(len(batches), f"epoch {epoch + 1}/{cfg.epochs}", enabled=progress and dist.main)
        with bar:
            for b in batches:
                x, y = cache.batch(b)
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = net(x)
                loss = compute_loss(logits, y, cfg.loss)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad_norm is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                batch_ssim = float(ssim_torch(logits.detach().float().sigmoid(), y).mean())
                loss_sum += float(loss.detach()) * len(x)
                ssim_sum += batch_ssim * len(x)
                n_seen += len(x)
                bar.advance(loss_sum / n_seen, ssim_sum / n_seen)
        lr_now = optimizer.param_groups[0]["lr"]
        scheduler.step()
        loss_sum, ssim_sum, n_all = _all_sum([loss_sum, ssim_sum, float(n_seen)], dist, device)
        test_loss, test_ssim = evaluate_loss_ssim(model, cache, sets["test"], cfg, device, dist)
        val_loss, val_ssim = evaluate_loss_ssim(model, cache, sets["validation"], cfg, device, dist)
        record = {"epoch": epoch + 1, "lr": lr_now, "train_loss": loss_sum / n_all,
                  "train_ssim": ssim_sum / n_all, "test_loss": test_loss, "test_ssim": test_ssim,
                  "validation_loss": val_loss, "validation_ssim": val_ssim,
                  "epoch_s": time.perf_counter() - t0}
        for k, v in record.items():
            history[k].append(v)
        if dist.main:
            ckpt = {"model_config": dict(model.config), "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if use_scaler else {}, "epoch": epoch + 1,
                    "history": history, "train_config": asdict(cfg), "rng": _rng_state(device),
                    "world_size": dist.world}
            save_checkpoint(ckpt, last)
            score = test_ssim if test_ssim == test_ssim else record["train_ssim"]
            if score > best:
                best = score
                save_checkpoint(ckpt, out / "best.pt")
            _write_json(out / "history.json", history)
            log(f"epoch {epoch + 1}/{cfg.epochs}: loss {record['train_loss']:.4f} "
                f"SSIM {record['train_ssim']:.4f}"
                f" | test loss {test_loss:.4f} SSIM {test_ssim:.4f} | validation SSIM {val_ssim:.4f}"
                f" | lr {lr_now:.0e} | {record['epoch_s']:.1f} s")
        if dist.on:
            torch.distributed.barrier()
        if stop_when is not None and stop_when(record):
            break
    if dist.on:
        torch.distributed.destroy_process_group()
    return history


class _Logits:
    """Wraps a model so ``forward`` returns logits: DDP synchronises gradients only through ``forward``."""

    @staticmethod
    def wrap(model):
        import torch

        class Logits(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, x):
                return self.inner.forward_logits(x)

        return Logits(model)


class _Bar:
    """A rich progress bar with the running loss and SSIM; silent when disabled."""

    def __init__(self, total: int, title: str, enabled: bool):
        self.enabled = enabled
        self.total, self.title = total, title

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TextColumn("loss {task.fields[loss]:.4f} SSIM {task.fields[ssim]:.4f}"),
                              TimeRemainingColumn(), transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(self.title, total=self.total, loss=math.nan, ssim=math.nan)
        return self

    def advance(self, loss: float, ssim: float) -> None:
        if self.enabled:
            self.p.update(self.task, advance=1, loss=loss, ssim=ssim)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False

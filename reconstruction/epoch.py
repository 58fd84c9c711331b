"""One epoch of training and the per-epoch evaluation (the steps ``reconstruction.train`` runs).

Loss and SSIM sums stay on the device; :func:`evaluate_sets` reads the epoch's sums, the test and
validation sums and the first non-finite step back to the host in one transfer (one sync per epoch on
a GPU). Losses: ``bce`` (cross-entropy on the logits), ``npcc`` (negative Pearson correlation of the
sigmoid output, per image; ``reconstruction.metrics.npcc_loss``) or ``bce+npcc`` (their sum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from reconstruction.runtime import Dist, autocast, to_device
from reconstruction.train_config import TrainConfig
from speckle_core.errors import UserError

if TYPE_CHECKING:
    from reconstruction.train import Trainer

SUM_KEYS = ("loss", "ssim", "n", "nonfinite", "stop")  # the per-epoch sums read in one host sync


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


def _sum_dtype(device):
    import torch

    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


def _count(n: int, device):
    """``n`` as a float32 scalar made on ``device`` by a fill: no host-to-device copy, which on CUDA
    (pageable memory, blocking) would wait for the stream, i.e. sync once per step."""
    import torch

    return torch.full((), float(n), dtype=torch.float32, device=device)


def evaluate_sums(model, cache, positions, cfg: TrainConfig, device, dist: Dist):
    """Device tensor [loss sum, SSIM sum, n] over ``positions`` (this process's shard); no host sync."""
    import torch

    from reconstruction.metrics import ssim_torch

    mine = positions[dist.rank::dist.world]
    sums = torch.zeros(3, dtype=_sum_dtype(device), device=device)
    step = max(8, cfg.batch_size)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), step):
            x, y = cache.batch(mine[i:i + step])
            x, y = to_device(x, device), to_device(y, device)
            with autocast(device):
                logits = model.forward_logits(x)
            sums += torch.stack([compute_loss(logits, y, cfg.loss).detach() * len(x),
                                 ssim_torch(logits.float().sigmoid(), y).sum(),
                                 _count(len(x), device)]).to(sums.dtype)
    model.train(was_training)
    return sums


def evaluate_loss_ssim(model, cache, positions, cfg: TrainConfig, device, dist: Dist) -> tuple[float, float]:
    """Mean loss and SSIM over ``positions`` (sharded over processes)."""
    from reconstruction.runtime import all_sum

    loss, ssim, n = all_sum(evaluate_sums(model, cache, positions, cfg, device, dist), dist).tolist()
    return (loss / n, ssim / n) if n else (math.nan, math.nan)


# --- one epoch -----------------------------------------------------------------------------

def epoch_batches(t: Trainer, epoch: int) -> list[np.ndarray]:
    """This process's batches of ``epoch``: a permutation seeded by (seed, epoch)."""
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(range(len(t.sets["train"])), num_replicas=t.dist.world, rank=t.dist.rank,
                                 shuffle=True, seed=t.cfg.seed, drop_last=False)
    sampler.set_epoch(epoch)
    order = t.sets["train"][np.fromiter(iter(sampler), dtype=np.int64)]
    return [order[i:i + t.cfg.batch_size] for i in range(0, len(order), t.cfg.batch_size)]


def train_step(t: Trainer, positions):
    """One optimiser step; returns device tensors (loss, SSIM sum, n) without a host sync."""
    import torch

    from reconstruction.metrics import ssim_torch

    x, y = t.cache.batch(positions)
    x, y = to_device(x, t.device), to_device(y, t.device)
    with autocast(t.device):
        logits = t.net(x)
    loss = compute_loss(logits, y, t.cfg.loss)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if t.cfg.clip_grad_norm is not None:
        t.scaler.unscale_(t.optimizer)  # clip the true gradients, not the loss-scaled ones
        torch.nn.utils.clip_grad_norm_(t.net.parameters(), t.cfg.clip_grad_norm)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    return loss.detach(), ssim_torch(logits.detach().float().sigmoid(), y).sum(), len(x)


@dataclass
class EpochSums:
    """Device-side sums of an epoch (SUM_KEYS) and the first non-finite step (-1: none)."""

    sums: object
    first_bad: object
    batches_done: int
    n_batches: int


def run_epoch(t: Trainer, epoch: int, stop, progress: bool) -> EpochSums:
    """Trains one epoch (from ``t.start_batch`` when resuming inside it); stops early, single process
    only, after the step in which ``stop`` was set."""
    import torch

    batches = epoch_batches(t, epoch)
    first = t.start_batch if epoch == t.start_epoch else 0
    dev = t.device
    sums = torch.zeros(len(SUM_KEYS), dtype=_sum_dtype(dev), device=dev)
    if first and t.partial:
        sums += torch.tensor(t.partial, dtype=sums.dtype, device=dev)
    first_bad = torch.tensor(-1, dtype=torch.int64, device=dev)
    t.optimizer.param_groups[0]["lr"] = t.cfg.lr_at(epoch)
    t.net.train()
    done = first
    with _Bar(len(batches) - first, f"epoch {epoch + 1}/{t.cfg.epochs}", progress and t.dist.main) as bar:
        for i in range(first, len(batches)):
            loss, ssim_sum, n = train_step(t, batches[i])
            finite = torch.isfinite(loss)
            first_bad = torch.where((first_bad < 0) & ~finite, epoch * len(batches) + i + 1, first_bad)
            sums[:4] += torch.stack([loss * n, ssim_sum, _count(n, dev),
                                     (~finite).to(loss.dtype)]).to(sums.dtype)
            done = i + 1
            bar.advance()
            if stop.is_set() and not t.dist.on:
                break
    return EpochSums(sums, first_bad, done, len(batches))


# --- evaluate ------------------------------------------------------------------------------

def evaluate_sets(t: Trainer, e: EpochSums, stop) -> dict:
    """Test and validation sums, reduced over processes with the epoch's sums: one host sync."""
    import torch

    from reconstruction.runtime import all_sum

    e.sums[4] = float(stop.is_set())
    test = evaluate_sums(t.model, t.cache, t.sets["test"], t.cfg, t.device, t.dist)
    val = evaluate_sums(t.model, t.cache, t.sets["validation"], t.cfg, t.device, t.dist)
    reduced = all_sum(torch.cat([e.sums, test, val]), t.dist)
    values = torch.cat([reduced, e.first_bad.to(reduced.dtype).reshape(1)]).tolist()  # the one sync
    k = len(SUM_KEYS)
    return {"sums": dict(zip(SUM_KEYS, values[:k], strict=True)), "test": values[k:k + 3],
            "validation": values[k + 3:k + 6], "first_bad": int(values[-1])}


def mean_of(loss_ssim_n) -> tuple[float, float]:
    loss, ssim, n = loss_ssim_n
    return (loss / n, ssim / n) if n else (math.nan, math.nan)


def check_finite(t: Trainer, epoch: int, ev: dict, n_batches: int) -> None:
    if ev["sums"]["nonfinite"] == 0:
        return
    step = ev["first_bad"]
    where = (f"step {step} (epoch {epoch + 1}, batch {step - epoch * n_batches} of {n_batches})"
             if step > 0 else f"epoch {epoch + 1} (on another process)")
    raise UserError(f"{t.out / 'last.pt'}: training stopped: the loss became non-finite at {where}; "
                    f"last.pt keeps epoch {epoch}; try a lower --lr or --clip-grad-norm")


def wrap_model(model, dist: Dist, device):
    """The module the steps call: logits out (for DDP), wrapped in DistributedDataParallel under torchrun."""
    net = _Logits.wrap(model)
    if dist.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


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
    """A rich progress bar of the steps (values are read once per epoch, so none show here)."""

    def __init__(self, total: int, title: str, enabled: bool):
        self.enabled = enabled
        self.total, self.title = total, title

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), transient=True)
            self.p.__enter__()
            self.task = self.p.add_task(self.title, total=self.total)
        return self

    def advance(self) -> None:
        if self.enabled:
            self.p.update(self.task, advance=1)

    def __exit__(self, *exc):
        if self.enabled:
            self.p.__exit__(*exc)
        return False

"""Training, single process or under ``torchrun`` (DDP), with exact resume, in readable steps:
:func:`restore` (options and ``last.pt``), :func:`build` (processes, device, model, data, optimiser),
``run_epoch`` and ``evaluate_sets`` (``reconstruction.epoch``), :func:`save`; :func:`train` runs them
in order.

Schedule (paper, "Data processing"; ``reconstruction.train_config``): Adam with an L2 regulariser,
learning rate 1e-4 for the first half of the epochs, 1e-5 for the next quarter and 1e-6 for the last
quarter (200 epochs = 100/50/50), batch 2, ``weight_decay = 1e-5`` (Adam's coupled L2 term). The
learning rate of an epoch is a function of (epoch, epochs) alone (``TrainConfig.lr_at``), so
``--resume --epochs N`` on a finished run extends it: each further epoch takes the rate a run of N
epochs would use. Losses: ``bce`` (cross-entropy on the logits), ``npcc`` (negative Pearson correlation
of the sigmoid output, per image) or ``bce+npcc`` (their sum).

Data (``reconstruction.data``; splits by person, never sharing one between two sets):

- **train**: the training role (training distances) on the training faces minus the test faces;
- **test** (model selection): the training distances on the test faces. ``best.pt`` is the epoch with
  the best SSIM here, so these faces are not "unseen" in any report;
- **validation**: the validation role (the unseen distance) on the *training* faces only (never the
  test faces): the paper's Table 1 set.

After each epoch the loss and SSIM of a fixed, seeded subset (``eval_max`` pairs) of the test and
validation sets are recorded in the history (``history.json`` and every checkpoint): Fig. 7.

Runtime (``reconstruction.runtime``): mixed precision on CUDA, channels_last and pinned, non-blocking
copies; loss and SSIM sums stay on the device and are read once per epoch (one host sync). Under
``torchrun`` every process trains on its shard of each epoch (``DistributedSampler``) and only rank 0
writes files and prints.

Stops and failures:

- a non-finite loss stops the run after the epoch it happened in, naming the first such step (a
  one-line UserError, exit 2); ``last.pt`` keeps the last finite epoch;
- SIGINT, SIGTERM or SIGHUP (``speckle_core.signals.GracefulStop``) finish the current step (under
  torchrun: the current epoch), save ``last.pt`` with the position inside the epoch, log, and raise
  ``KeyboardInterrupt`` / ``Terminated`` (exit 128 + signal); ``--resume`` continues at that step;
- one ``train`` per ``--out`` (``OUT.lock`` names the holder).

Files in ``out_dir``: ``last.pt`` (every epoch, atomic), ``best.pt`` (best test SSIM so far),
``history.json``. ``resume=True`` continues ``last.pt`` exactly: model, optimiser, scaler, RNG states,
epoch, step and history; the epoch order comes from (seed, epoch), so it needs no state.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reconstruction.epoch import (  # noqa: F401 - compute_loss re-exported for older callers
    SUM_KEYS,
    EpochSums,
    check_finite,
    compute_loss,
    evaluate_loss_ssim,
    evaluate_sets,
    mean_of,
    run_epoch,
    wrap_model,
)
from reconstruction.runtime import (  # noqa: F401 - re-exported for older callers
    Dist,
    amp_settings,
    autocast,
    json_safe,
    pick_device,
    to_device,
    write_json,
)
from reconstruction.train_config import LOSSES, WEIGHT_DECAY, TrainConfig, from_stored  # noqa: F401
from speckle_core.errors import UserError

# --- data selection ---------------------------------------------------------------------------

def select_sets(cache, cfg: TrainConfig) -> dict[str, np.ndarray]:
    """Positions (into the cache) of the train, test and validation sets (see the module docstring)."""
    from reconstruction.data import split_test_objects, training_faces

    idx = cache.index
    if cfg.diffusers:
        unknown = sorted(set(map(str, cfg.diffusers)) - set(idx.diffuser.tolist()))
        if unknown:
            raise UserError(f"--diffuser: {', '.join(unknown)} not in {idx.path} "
                            f"(has {', '.join(sorted(set(idx.diffuser.tolist())))})")
    if cfg.test_objects is None:
        cfg.test_objects = split_test_objects(idx, cfg.test_fraction, cfg.seed)
    seen = sorted(set(training_faces(idx).tolist()) - set(cfg.test_objects))
    sets = {
        "train": idx.select(roles=["train"], faces=["train"], diffusers=cfg.diffusers, objects=seen),
        "test": idx.select(roles=["train"], faces=["train"], diffusers=cfg.diffusers,
                           objects=cfg.test_objects),
        "validation": idx.select(roles=["validation"], faces=["train"], diffusers=cfg.diffusers,
                                 objects=seen),
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


# --- RNG state --------------------------------------------------------------------------------

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


# --- 1. restore: the options, and last.pt when resuming ----------------------------------------

def restore(cfg: TrainConfig, resume: bool, epochs: int | None = None,
            log=print) -> tuple[TrainConfig, dict | None]:
    """(the run's options, the state of ``last.pt`` or None). Resuming keeps the options the run started
    with, except ``device`` and, when given, ``epochs`` (extending a run)."""
    from reconstruction.checkpoint import load_checkpoint

    cfg.validate()
    last = Path(cfg.out_dir) / "last.pt"
    if not resume:
        if last.exists():
            raise UserError(f"{last}: already exists; use --resume to continue, or choose another --out")
        return cfg, None
    if not last.is_file():
        raise UserError(f"{last}: no checkpoint to resume (train without --resume first)")
    state = load_checkpoint(last)
    _check_same_run(state, cfg.run, last, log)
    done = int(state["epoch"])
    over = {"run": cfg.run, "out_dir": cfg.out_dir, "device": cfg.device}
    if epochs is not None:
        if epochs < done or (epochs == done and state.get("batch", 0)):
            raise UserError(f"--epochs {epochs}: {last} has already trained {done} epochs; give more "
                            "to extend it, or leave --epochs out to finish it")
        over["epochs"] = epochs
    return from_stored(state["train_config"], f"{last}: train_config", **over), state


def _check_same_run(state: dict, run: str, last: Path, log) -> None:
    from reconstruction.data import run_identity

    stored = state.get("run_identity")
    if not stored:
        log(f"warning: {last} predates run identities; cannot check that {run} is the run it trained on")
        return
    now = run_identity(run)
    if now.get("objects_sha256") != stored.get("objects_sha256"):
        raise UserError(f"{run}: not the run {last} was trained on (its objects differ: "
                        f"{stored.get('run', 'unknown file')}); resume with that file or train anew")


# --- 2. build: processes, device, model, data, optimiser ---------------------------------------

@dataclass
class Trainer:
    """Everything one training run holds between steps."""

    cfg: TrainConfig
    dist: Dist
    device: object
    model: object
    net: object
    optimizer: object
    scaler: object
    use_scaler: bool
    cache: object
    sets: dict
    identity: dict
    history: dict = field(default_factory=dict)
    start_epoch: int = 0
    start_batch: int = 0  # steps already done inside start_epoch (a stop mid-epoch)
    partial: list = field(default_factory=list)  # their sums, SUM_KEYS order
    best: float = -math.inf
    history_record: dict = field(default_factory=dict)  # the last epoch's record

    @property
    def out(self) -> Path:
        return Path(self.cfg.out_dir)


HISTORY_KEYS = ("epoch", "lr", "train_loss", "train_ssim", "test_loss", "test_ssim", "validation_loss",
                "validation_ssim", "epoch_s")


def build(cfg: TrainConfig, state: dict | None) -> Trainer:
    """Starts the processes, picks the device, builds (or restores) the model, data and optimiser."""
    import torch

    from reconstruction.data import prepare_cache, run_identity
    from reconstruction.runtime import dist_from_env, init_dist

    env = dist_from_env()
    if env.main:  # before the process group: rank 0 builds the cache, the others open it after a barrier
        cache = prepare_cache(cfg.run, cfg.image_size, fallback_dir=Path(cfg.out_dir))
    dist = init_dist(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    device = pick_device(cfg.device, dist.local_rank)
    if dist.on:
        torch.distributed.barrier()
    if not dist.main:
        cache = prepare_cache(cfg.run, cfg.image_size, fallback_dir=Path(cfg.out_dir))
    model = _build_model(cfg, device)
    sets = select_sets(cache, cfg)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay, device)
    _, use_scaler = amp_settings(device)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    t = Trainer(cfg=cfg, dist=dist, device=device, model=model, net=None, optimizer=optimizer, scaler=scaler,
                use_scaler=use_scaler, cache=cache, sets=sets, identity=run_identity(cfg.run),
                history={k: [] for k in HISTORY_KEYS})
    if state is not None:
        _load_state(t, state)
    t.net = wrap_model(model, dist, device)
    t.best = max([s for s in t.history["test_ssim"] if s == s] or [-math.inf])
    return t


def make_optimizer(params, lr: float, weight_decay: float, device):
    """Adam with the paper's coupled L2 term; torch's fused kernel on CPU and CUDA (one pass over all
    parameters instead of a loop per tensor: 63 -> 14 ms per step for SpT UNet-B on this project's CPU,
    bench/RESULTS.md; the same update to float rounding). On a GPU training in float16 the fused kernel
    also takes the gradient scaler's inf check on the device, where the per-tensor Adam makes
    ``GradScaler.step`` read it back to the host at every step. A checkpoint saved with the per-tensor
    loop resumes with it (its param_groups are restored as saved)."""
    import torch

    fused = True if device.type in ("cpu", "cuda") else None
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=fused)


def _build_model(cfg: TrainConfig, device):
    import torch

    from reconstruction.runtime import prepare_model

    option = f"--model {cfg.model}"
    check_model_fits(cfg, device, option)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    return prepare_model(build_model_or_refuse(cfg, option), device)


def check_model_fits(cfg: TrainConfig, device, option: str) -> None:
    """Refuses (one line naming ``option`` and the image size) a model whose training would not fit in
    ``device``'s memory, before anything is allocated. Also ``speckle-lab compare``'s up-front check."""
    from reconstruction.runtime import check_model_memory

    check_model_memory({**cfg.model_args, "name": cfg.model, "image_size": cfg.image_size}, cfg.batch_size,
                       device, training=True, where=f"{option} --image-size {cfg.image_size}")


def build_model_or_refuse(cfg: TrainConfig, option: str):
    """``cfg``'s model; a hyper-parameter it refuses (an image size not a multiple of 8, a switch that is
    not a boolean) is one line naming ``option``."""
    from reconstruction.models import build_model

    try:
        return build_model(cfg.model, cfg.image_size, **cfg.model_args)
    except (ValueError, TypeError) as e:
        raise UserError(f"{option}: {e}") from None


def _load_state(t: Trainer, state: dict) -> None:
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    if state.get("scaler"):
        t.scaler.load_state_dict(state["scaler"])
    t.history = {k: list(state["history"].get(k, [])) for k in HISTORY_KEYS}
    t.start_epoch = int(state["epoch"])
    t.start_batch = int(state.get("batch", 0))
    t.partial = list(state.get("partial", []))
    _set_rng_state(state["rng"], t.device)


# --- 3. save ----------------------------------------------------------------------------------

def checkpoint_state(t: Trainer, epoch_done: int, batch: int = 0, partial=None) -> dict:
    return {"model_config": dict(t.model.config), "model": t.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": {"milestones": t.cfg.milestones(), "last_epoch": epoch_done},
            "scaler": t.scaler.state_dict() if t.use_scaler else {}, "epoch": epoch_done,
            "batch": batch, "partial": list(partial or []), "history": t.history,
            "train_config": asdict(t.cfg), "rng": _rng_state(t.device), "world_size": t.dist.world,
            "run_identity": {**t.identity, "run": str(t.cfg.run)},
            "eval_sizes": {k: int(len(t.sets[k])) for k in ("train", "test", "validation")},
            "selected_on": "test", "test_faces": _test_face_names(t), "device": str(t.device),
            "frame_shape": [int(v) for v in t.cache.index.frame_shape]}


def _test_face_names(t: Trainer) -> list[str] | None:
    names = t.cache.index.object_name
    return None if names is None else [str(names[o]) for o in t.cfg.test_objects or []]


def save(t: Trainer, record: dict, log) -> None:
    """Appends the epoch's record; rank 0 writes last.pt, best.pt (if better) and history.json."""
    from reconstruction.checkpoint import save_checkpoint

    for k, v in record.items():
        t.history[k].append(v)
    if not t.dist.main:
        return
    ckpt = checkpoint_state(t, record["epoch"])
    save_checkpoint(ckpt, t.out / "last.pt")
    score = record["test_ssim"] if record["test_ssim"] == record["test_ssim"] else record["train_ssim"]
    if score > t.best:
        t.best = score
        save_checkpoint(ckpt, t.out / "best.pt")
    write_json(t.out / "history.json", t.history)
    r = record
    log(f"epoch {r['epoch']}/{t.cfg.epochs}: loss {r['train_loss']:.4f} SSIM {r['train_ssim']:.4f}"
        f" | test loss {r['test_loss']:.4f} SSIM {r['test_ssim']:.4f}"
        f" | validation SSIM {r['validation_ssim']:.4f} | lr {r['lr']:.0e} | {r['epoch_s']:.1f} s")


def save_partial(t: Trainer, epoch: int, e: EpochSums, ev: dict, log, name: str) -> None:
    """A stop inside an epoch: last.pt with the step reached, so --resume continues from it exactly."""
    from reconstruction.checkpoint import save_checkpoint

    if t.dist.main:
        partial = [ev["sums"][k] for k in SUM_KEYS[:4]] + [0.0]
        save_checkpoint(checkpoint_state(t, epoch, e.batches_done, partial), t.out / "last.pt")
        log(f"{name}: stopped in epoch {epoch + 1} after step {e.batches_done} of {e.n_batches}; saved "
            f"{t.out / 'last.pt'}; continue with: {_resume_command(t.cfg)}")


# --- the run ----------------------------------------------------------------------------------

def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, log=print, stop_when=None,
          epochs: int | None = None) -> dict:
    """Trains per ``cfg``; returns the history. Under torchrun, call it in every process.

    ``epochs`` (with ``resume``) extends or finishes a run to that many epochs. ``stop_when(record) ->
    bool`` (optional, single process) ends training after an epoch whose record satisfies it.
    """
    from speckle_core.signals import GracefulStop

    with _output(cfg, resume) as _, GracefulStop() as stop:
        cfg, state = restore(cfg, resume, epochs, log)
        t = build(cfg, state)
        _announce(t, state, log)
        for epoch in range(t.start_epoch, cfg.epochs):
            if _one_epoch(t, epoch, stop.event, progress, log, stop) or (
                    stop_when is not None and stop_when(t.history_record)):
                break
        _finish(t)
    return t.history


def _one_epoch(t: Trainer, epoch: int, event, progress: bool, log, stop) -> bool:
    """Runs, evaluates and saves one epoch; returns True when the run must end here."""
    t0 = time.perf_counter()
    e = run_epoch(t, epoch, event, progress)
    ev = evaluate_sets(t, e, event)
    check_finite(t, epoch, ev, e.n_batches)
    if e.batches_done < e.n_batches:  # stopped by a signal inside the epoch
        save_partial(t, epoch, e, ev, log, stop.name)
        _raise_stop(stop)
    s = ev["sums"]
    test_loss, test_ssim = mean_of(ev["test"])
    val_loss, val_ssim = mean_of(ev["validation"])
    t.history_record = {"epoch": epoch + 1, "lr": t.cfg.lr_at(epoch), "train_loss": s["loss"] / s["n"],
                        "train_ssim": s["ssim"] / s["n"], "test_loss": test_loss, "test_ssim": test_ssim,
                        "validation_loss": val_loss, "validation_ssim": val_ssim,
                        "epoch_s": time.perf_counter() - t0}
    save(t, t.history_record, log)
    t.start_batch = 0
    if s["stop"]:
        if t.dist.main:
            log(f"{stop.name}: stopped after epoch {epoch + 1}; continue with: {_resume_command(t.cfg)}")
        _finish(t)
        _raise_stop(stop)
    return False


def _resume_command(cfg: TrainConfig) -> str:
    import shlex

    return f"speckle-lab train {shlex.quote(str(cfg.run))} --out {shlex.quote(str(cfg.out_dir))} --resume"


def _raise_stop(stop):
    import signal

    from speckle_core.signals import Terminated

    if stop.signum in (None, signal.SIGINT):
        raise KeyboardInterrupt
    raise Terminated(stop.signum)


@contextlib.contextmanager
def _output(cfg: TrainConfig, resume: bool):
    """The output folder, checked (not a file, writable; made unless resuming) and locked by rank 0 for
    the whole run."""
    from reconstruction.runtime import dist_from_env
    from speckle_core.fileio import check_output_dir, output_lock

    if not dist_from_env().main:
        yield None
        return
    out = check_output_dir(cfg.out_dir, inputs=[cfg.run], what="training output folder", create=not resume)
    with output_lock(out, "training output folder") as lock:
        yield lock


def _announce(t: Trainer, state: dict | None, log) -> None:
    if not t.dist.main:
        return
    cfg = t.cfg
    if state is not None:
        at = f" (step {t.start_batch})" if t.start_batch else ""
        log(f"resume: {t.out / 'last.pt'} after epoch {t.start_epoch}{at} of {cfg.epochs}, with the options "
            f"the run started with (model {cfg.model}, loss {cfg.loss}, batch {cfg.batch_size}, "
            f"seed {cfg.seed})")
        if t.start_epoch >= cfg.epochs:
            log(f"resume: all {cfg.epochs} epochs are done; give --epochs N (more than {cfg.epochs}) to "
                "extend the run")
    log(f"train: {cfg.model} at {cfg.image_size}x{cfg.image_size} on {t.device} x{t.dist.world}; "
        f"{len(t.sets['train'])} train / {len(t.sets['test'])} test / {len(t.sets['validation'])} "
        f"validation pairs; cache {t.cache.folder}")


def _finish(t: Trainer) -> None:
    if t.dist.on:
        import torch

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

"""A fair comparison of reconstruction models on one run (``speckle-lab compare``; issue 18).

Every model is trained on the same pairs, with the same seeds, options and budget, by the training API
(``reconstruction.train``), then scored on the same evaluation pairs (``reconstruction.evaluate``).
The budget is either the same number of epochs (``epochs``) or the same time (``budget_minutes``, on the
wall clock or, with ``clock="cpu"``, on the process's CPU time: ``budget_clock``):
each model's epochs are planned from a short timing of its training steps on the run's own batches so
that its whole learning-rate schedule fits the minutes, and training also stops when the minutes are
spent. Wall time on a shared machine varies with the load: ``compare.json`` records each model's
planned and trained epochs and its seconds, so an unequal outcome can be seen.

Models are named as for ``train``, plus the ablation ``NAME:no-attention`` (an SpT model built with
``attention=False``: every attention output zero, the skip maps still passed on;
``reconstruction.models.attention``).

Every cell of the table (model × evaluation group × diffuser and distance, and each group overall) is
the mean of per-image metrics with its n and a bootstrap 95 % interval over faces; every pair of models
is compared cell by cell with a paired bootstrap (``reconstruction.compare_stats``). A difference is
called significant when its 95 % interval excludes 0; ``holm`` says whether it survives Holm's
correction over all the cells and metrics of that pair.

Files in ``out``: one training folder per model (``MODEL/``, or ``MODEL/seed-S/`` per seed when there are
several; ``last.pt``, ``best.pt``,
``history.json``), ``compare.json`` (every number) and ``compare.md`` (the tables). A rerun with the
same options reuses finished models and resumes stopped ones; other options are refused.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from reconstruction.train_config import CLOCKS
from speckle_core.errors import UserError

ABLATIONS = {"no-attention": {"attention": False}}
ALL_METRICS = ("pcc", "ssim", "jaccard", "psnr")  # compare.json holds all; compare.md PCC and SSIM
PROBE_STEPS = 4  # timed training steps per model when planning a time budget


def budget_clock(kind: str):
    """The clock a time budget is counted on, as a function returning seconds.

    ``"wall"``: elapsed time (``time.perf_counter``). ``"cpu"``: this process's CPU time (all its
    threads) divided by torch's thread count, i.e. the wall time the same work takes when the process
    has its cores to itself. On a machine shared with other jobs the wall clock gives a model trained
    while the load is high fewer steps than one trained while it is low; the CPU clock does not.
    """
    if kind == "wall":
        return time.perf_counter
    import torch

    threads = max(1, torch.get_num_threads())
    return lambda: time.process_time() / threads


@dataclass
class ModelSpec:
    label: str  # as given: "spt-unet-b:no-attention"
    name: str  # build_model name
    model_args: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return self.label.replace(":", "-")


@dataclass
class CompareSettings:
    image_size: int = 64
    batch_size: int = 8
    lr: float = 1e-3
    loss: str = "bce+npcc"
    seeds: tuple = (0,)
    epochs: int | None = None
    budget_minutes: float | None = None
    clock: str = "wall"  # what --budget-minutes counts: "wall" or "cpu" (see budget_clock)
    device: str = "auto"
    eval_max: int = 64
    n_boot: int = 2000


def parse_models(text: str) -> list[ModelSpec]:
    """``"spt-unet-b,unet,spt-unet-b:no-attention"`` → specs; a bad name is a one-line UserError."""
    from reconstruction.models import MODEL_NAMES

    specs = []
    for item in (s.strip() for s in str(text).split(",")):
        name, _, variant = item.partition(":")
        if name not in MODEL_NAMES:
            raise UserError(f"--models: unknown model {name!r} in {text!r} (choose from "
                            f"{', '.join(MODEL_NAMES)}, optionally NAME:{', NAME:'.join(ABLATIONS)})")
        if variant and (variant not in ABLATIONS or name == "unet"):
            raise UserError(f"--models: unknown variant {item!r} (SpT models only: "
                            f"{', '.join(f'{name}:{a}' for a in ABLATIONS)})")
        specs.append(ModelSpec(item, name, dict(ABLATIONS.get(variant, {}))))
    labels = [s.label for s in specs]
    if len(specs) < 2 or len(set(labels)) != len(labels):
        raise UserError(f"--models: give at least two different models, comma-separated (got {text!r})")
    return specs


def check_settings(s: CompareSettings) -> None:
    if (s.epochs is None) == (s.budget_minutes is None):
        raise UserError("compare: give exactly one of --epochs E and --budget-minutes M")
    if s.epochs is not None and (isinstance(s.epochs, bool) or not isinstance(s.epochs, int) or s.epochs < 1):
        raise UserError(f"--epochs: must be an integer >= 1 (got {s.epochs!r})")
    if s.budget_minutes is not None and not (isinstance(s.budget_minutes, int | float)
                                             and 0 < s.budget_minutes < math.inf):
        raise UserError(f"--budget-minutes: must be a positive number (got {s.budget_minutes!r})")
    if s.clock not in CLOCKS:
        raise UserError(f"--clock: must be one of {', '.join(CLOCKS)} (got {s.clock!r})")
    if not s.seeds or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in s.seeds):
        raise UserError(f"--seeds: must be non-negative integers (got {s.seeds!r})")
    if not isinstance(s.n_boot, int) or s.n_boot < 100:
        raise UserError(f"--bootstrap: must be an integer >= 100 (got {s.n_boot!r})")


# --- training ----------------------------------------------------------------------------------------

def _train_config(run, folder: Path, spec: ModelSpec, s: CompareSettings, seed: int, epochs: int):
    from reconstruction.train_config import TrainConfig

    cfg = TrainConfig(run=str(run), out_dir=str(folder), model=spec.name, model_args=dict(spec.model_args),
                      image_size=s.image_size, epochs=epochs, batch_size=s.batch_size, loss=s.loss, lr=s.lr,
                      seed=seed, device=s.device, eval_max=s.eval_max)
    cfg.validate()
    return cfg


def seconds_per_epoch(cfg, steps: int = PROBE_STEPS, clock=time.perf_counter) -> float:
    """Estimated seconds (on ``clock``) of one epoch of ``cfg``: ``steps`` timed training steps on the
    run's own batches (after one warm-up step), times the batches per epoch, plus the per-epoch scoring of the
    test and validation subsets (forward only, counted as a third of a step per batch)."""
    import torch

    from reconstruction.data import prepare_cache
    from reconstruction.epoch import compute_loss
    from reconstruction.models import build_model
    from reconstruction.runtime import autocast, pick_device, prepare_model, to_device
    from reconstruction.train import select_sets

    device = pick_device(cfg.device)
    cache = prepare_cache(cfg.run, cfg.image_size, fallback_dir=Path(cfg.out_dir))
    probe_cfg = _copy_cfg(cfg)
    sets = select_sets(cache, probe_cfg)
    torch.manual_seed(cfg.seed)
    model = prepare_model(build_model(cfg.model, cfg.image_size, **cfg.model_args), device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    times = []
    for i in range(steps + 1):
        x, y = cache.batch(np.sort(rng.choice(sets["train"], size=min(cfg.batch_size, len(sets["train"])),
                                              replace=False)))
        t0 = clock()
        x, y = to_device(x, device), to_device(y, device)
        with autocast(device):
            logits = model.forward_logits(x)
        loss = compute_loss(logits, y, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())  # waits for the device
        if i:
            times.append(clock() - t0)
    step_s = float(np.median(times))
    n_batches = math.ceil(len(sets["train"]) / cfg.batch_size)
    n_eval = sum(math.ceil(len(sets[k]) / max(8, cfg.batch_size)) for k in ("test", "validation"))
    return step_s * (n_batches + n_eval / 3)


def _copy_cfg(cfg):
    from dataclasses import replace

    return replace(cfg, model_args=dict(cfg.model_args), test_objects=None)


def model_folder(out: Path, spec: ModelSpec, s: CompareSettings, seed: int) -> Path:
    """``OUT/MODEL`` for one seed, ``OUT/MODEL/seed-S`` for each of several."""
    return out / spec.folder if len(s.seeds) == 1 else out / spec.folder / f"seed-{seed}"


def plan_epochs(run, out: Path, spec: ModelSpec, s: CompareSettings, seed: int, log) -> tuple[int, float]:
    """(epochs, estimated s/epoch): the fixed ``--epochs``, or as many as fit ``--budget-minutes``."""
    if s.epochs is not None:
        return s.epochs, math.nan
    cfg = _train_config(run, model_folder(out, spec, s, seed), spec, s, seed, 1)
    Path(cfg.out_dir).mkdir(parents=True, exist_ok=True)
    per_epoch = seconds_per_epoch(cfg, clock=budget_clock(s.clock))
    epochs = max(1, int(s.budget_minutes * 60 // per_epoch))
    log(f"compare: {spec.label} (seed {seed}): ~{per_epoch:.1f} s/epoch ({s.clock} clock) here, so {epochs} "
        f"epoch(s) in {s.budget_minutes:g} min")
    return epochs, per_epoch


def train_one(run, out: Path, spec: ModelSpec, s: CompareSettings, seed: int, progress: bool, log) -> dict:
    """Trains (or reuses, or resumes) one model and seed; returns what was planned and done."""
    from reconstruction.checkpoint import load_checkpoint
    from reconstruction.train import train

    folder = model_folder(out, spec, s, seed)
    last = folder / "last.pt"
    done = _stored_plan(folder)
    if done is None and last.is_file():
        raise UserError(f"{last}: was not trained by compare (no compare-plan.json beside it); delete "
                        f"{folder} or choose another --out")
    if done is None:
        epochs, est = plan_epochs(run, out, spec, s, seed, log)
        _write_plan(folder, {"label": spec.label, "epochs": epochs, "est_s_per_epoch": est, "trained_s": 0.0,
                             "settings": _settings_key(s)})
        done = _stored_plan(folder)
    elif (stored := {"clock": "wall", **done["settings"]}) != _settings_key(s):  # no clock: older, wall
        now = _settings_key(s)
        key = next(k for k in now if stored.get(k) != now[k])
        raise UserError(f"{folder}: was trained with other compare options ({key} = "
                        f"{stored.get(key)!r}, now {now[key]!r}); delete it or choose another --out")
    state = load_checkpoint(last) if last.is_file() else None
    if state is not None and (int(state["epoch"]) >= done["epochs"] or done.get("budget_spent")):
        log(f"compare: {folder} is trained ({state['epoch']} epochs): reusing it")
        return done
    cfg = _train_config(run, folder, spec, s, seed, done["epochs"])
    budget = None if s.budget_minutes is None else s.budget_minutes * 60 - done["trained_s"]
    clock = budget_clock(s.clock)
    t0 = clock()

    def over_budget(record) -> bool:
        return budget is not None and clock() - t0 > budget

    log(f"compare: training {spec.label} (seed {seed}) for {done['epochs']} epoch(s) into {folder}")
    try:
        train(cfg, resume=state is not None, progress=progress, log=lambda m: log(f"  {m}"),
              stop_when=over_budget)
    finally:
        spent = clock() - t0
        done["trained_s"] += spent
        done["budget_spent"] = bool(budget is not None and spent > budget)
        _write_plan(folder, done)
    return done


def _settings_key(s: CompareSettings) -> dict:
    d = asdict(s)
    d.pop("n_boot")
    d.pop("device")
    d["seeds"] = list(d["seeds"])
    return d


def _stored_plan(folder: Path) -> dict | None:
    path = folder / "compare-plan.json"
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text())
        if not isinstance(plan, dict) or not isinstance(plan.get("epochs"), int):
            raise ValueError("no epochs")
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: not a compare plan ({e}); delete {folder}") from None
    return plan


def _write_plan(folder: Path, plan: dict) -> None:
    from reconstruction.runtime import write_json

    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "compare-plan.json", plan)


# --- evaluation and the table ------------------------------------------------------------------------

def evaluate_model(run, out: Path, spec: ModelSpec, s: CompareSettings) -> dict:
    """Per-image metrics of every evaluation group, averaged over the seeds, for one model."""
    from reconstruction.evaluate import evaluate_checkpoint

    per_seed = [evaluate_checkpoint(model_folder(out, spec, s, seed) / "best.pt", run, s.device,
                                    fallback_dir=out, n_examples=0, per_image=True)["per_image"]
                for seed in s.seeds]
    merged = {}
    for group, first in per_seed[0].items():
        for other in per_seed[1:]:
            if group not in other or not np.array_equal(other[group]["positions"], first["positions"]):
                raise UserError(f"compare: seeds of {spec.label} were scored on different pairs of {group!r} "
                                "(the test faces differ by seed: compare one seed, or the same test faces)")
        merged[group] = {"positions": first["positions"], "object_index": first["object_index"],
                         **{m: np.mean([p[group][m] for p in per_seed], axis=0) for m in ALL_METRICS}}
    return merged


def _cells(index, group: str, pos: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(cell name, boolean mask over ``pos``): the whole group, then each (diffuser, distance)."""
    cells = [(f"{group}: all", np.ones(len(pos), dtype=bool))]
    diff, dist = index.diffuser[pos], index.distance_mm[pos]
    for d in sorted(set(diff.tolist()), key=lambda v: (len(v), v)):
        for z in sorted(set(dist[diff == d].tolist())):
            cells.append((f"{group}: {d} grit, {z:g} mm", (diff == d) & np.isclose(dist, z)))
    return cells


def _finite(metric: str, values: np.ndarray) -> np.ndarray:
    # PSNR of a perfect image is inf: cap it at 100 dB so that means and intervals stay finite
    return np.minimum(values, 100.0) if metric == "psnr" else values


def person_codes(index) -> np.ndarray:
    """An integer per object, the same for every object of one person: the bootstrap's clusters.

    A face's mirrored and shifted variants (``faces.variants``) and an LFW person's several photos are
    not independent examples, so they are resampled together (``reconstruction.data.object_persons``).
    """
    from reconstruction.data import object_persons

    return np.unique(object_persons(index), return_inverse=True)[1].reshape(-1)


def build_table(index, per_model: dict[str, dict], n_boot: int) -> dict:
    """Every cell (mean, interval, n) of every model, and every paired difference between models."""
    from itertools import combinations

    from reconstruction.compare_stats import holm, mean_ci, paired_difference

    labels = list(per_model)
    first = per_model[labels[0]]
    persons = person_codes(index)
    cells, diffs = {}, {}
    for group in first:
        pos = first[group]["positions"]
        for other in labels[1:]:
            if not np.array_equal(per_model[other][group]["positions"], pos):
                raise UserError(f"compare: {other} was scored on other pairs of {group!r} than {labels[0]}")
        faces = persons[first[group]["object_index"]]
        for cell, mask in _cells(index, group, pos):
            for m in ALL_METRICS:
                vals = {label: _finite(m, per_model[label][group][m][mask]) for label in labels}
                for label in labels:
                    ci = mean_ci(vals[label], faces[mask], n_boot)
                    cells.setdefault(label, {}).setdefault(cell, {})[m] = ci.as_dict()
                for a, b in combinations(labels, 2):
                    d = paired_difference(vals[a], vals[b], faces[mask], n_boot)
                    diffs.setdefault(f"{a} − {b}", {}).setdefault(cell, {})[m] = d.as_dict()
    for pair in diffs.values():  # Holm over every cell and metric of one pair of models
        flat = [(cell, m) for cell, ms in pair.items() for m in ms]
        for (cell, m), keep in zip(flat, holm([pair[c][m]["p"] for c, m in flat]), strict=True):
            pair[cell][m]["holm"] = keep
    return {"cells": cells, "differences": diffs}


# --- the run ----------------------------------------------------------------------------------------

def check_inputs(run, specs: list[ModelSpec], out, settings: CompareSettings) -> Path:
    """Every option, the run file, the device and the output folder, before anything is written: a
    refused option must not leave a ``compare-plan.json`` that a corrected rerun would then refuse
    ("was trained with other compare options"). Returns the output folder, created."""
    from reconstruction.runtime import pick_device
    from reconstruction.train import build_model_or_refuse, check_model_fits
    from speckle_core.fileio import check_output_dir
    from speckle_core.runfile import open_run

    check_settings(settings)
    # image size, batch size, learning rate, eval-max (TrainConfig's bounds)
    configs = {spec.label: _train_config(run, Path(out) / spec.folder, spec, settings, settings.seeds[0],
                                         settings.epochs or 1) for spec in specs}
    device = pick_device(settings.device)
    for label, cfg in configs.items():  # fits the device and builds at --image-size, as train checks
        check_model_fits(cfg, device, f"--models {label}")
        build_model_or_refuse(cfg, f"--models {label}")
    open_run(run).close()  # missing, a folder, not HDF5, truncated, not a run: named in one line
    return check_output_dir(out, inputs=[run], what="comparison output folder")


def run_compare(run, specs: list[ModelSpec], out, settings: CompareSettings, progress: bool = True,
                log=print) -> dict:
    """Trains, evaluates and tabulates; writes ``compare.json`` and ``compare.md``; returns the result."""
    from reconstruction.data import prepare_cache
    from reconstruction.runtime import json_safe, write_json

    out = check_inputs(run, specs, out, settings)
    t0 = time.perf_counter()
    training = {spec.label: [train_one(run, out, spec, settings, seed, progress, log)
                             for seed in settings.seeds] for spec in specs}
    log("compare: evaluating")
    per_model = {spec.label: evaluate_model(run, out, spec, settings) for spec in specs}
    index = prepare_cache(run, settings.image_size, fallback_dir=out).index
    table = build_table(index, per_model, settings.n_boot)
    result = {"run": str(run), "models": [asdict(s) for s in specs], "settings": _settings_key(settings),
              "n_boot": settings.n_boot, "training": training, **table,
              "seconds": time.perf_counter() - t0}
    write_json(out / "compare.json", json_safe(result))
    text = render_markdown(result)
    (out / "compare.md").write_text(text)
    result["markdown"] = text
    result["files"] = {"json": str(out / "compare.json"), "markdown": str(out / "compare.md")}
    return result


# --- the report -------------------------------------------------------------------------------------

def render_markdown(result: dict) -> str:
    """compare.md: the budget, one table per metric (cells with n and 95 % intervals) and the differences."""
    from reconstruction.compare_report import render

    return render(result)

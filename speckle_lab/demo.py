"""``speckle-lab demo``: the whole capture-then-train pipeline on the simulated rig.

Stages, each reused when its output is already complete (so a second run, or one after Ctrl-C,
picks up where the first stopped):

1. **acquire** ``protocols/quick.toml`` on the simulated rig into ``OUT/quick.h5`` (resumed when the
   file is incomplete; reused when complete; an error when it was made from another protocol or rig);
2. **compare** (``reconstruction.compare``, as ``speckle-lab compare``): train SpT UNet-B
   (``OUT/spt-unet-b/``), the CNN UNet baseline (``OUT/unet/``) and the attention ablation
   SpT UNet-B without attention (``OUT/spt-unet-b-no-attention/``) under the same budget (the same
   minutes each, or ``--epochs``) and seed, then score them with bootstrap 95 % intervals and paired
   differences: ``OUT/compare.md``, ``OUT/compare.json`` (resumed from ``last.pt`` when stopped
   early; reused when finished);
3. **evaluate** both ``best.pt`` checkpoints (best test-face SSIM) at the unseen distance (40 mm,
   the protocol's validation blocks) and on the held-out faces: ``OUT/metrics.json`` and
   ``OUT/report.html`` (``reconstruction.evaluate``), plus ``OUT/reconstructions.png``;
4. **print** the table.

Demo training settings (chosen by measurement on a 2-core CPU, see README "The demo"): the paper's
schedule shape (learning rate ×1, ×0.1, ×0.01 over 50 % / 25 % / 25 % of the epochs) at a higher
initial rate and a larger batch than the paper's 1e-4 and 2, because the demo trains for minutes,
not 200 epochs; loss BCE + NPCC. The CNN baseline is narrowed (``base_channels``) so both models
train in the same few minutes.

Only click is imported at module level (the CLI must not import torch or h5py when it loads).
"""

from __future__ import annotations

import click

# -- the demo's settings (measured; README "The demo") ----------------------------------------------
DEMO_IMAGE_SIZE = 64
# The same wall-time budget for every model (issue 18: the old fixed epochs gave SpT UNet-B half the CNN's
# epochs at ~4x the cost per epoch, so neither epochs nor minutes were equal); --epochs E gives each E epochs.
DEMO_BUDGET_MINUTES = 2.5
DEMO_BATCH_SIZE = 8
DEMO_LR = 1e-3
DEMO_LOSS = "bce+npcc"
DEMO_EVAL_MAX = 64  # validation pairs scored after each epoch for the curves (all are scored at the end)
# compare label → (build_model name, label in the report, build_model overrides); the folder is the label
# with ":" as "-". The last is the attention ablation: compared, not drawn in the report's figures.
DEMO_MODELS = {
    "spt-unet-b": ("spt-unet-b", "SpT UNet-B", {}),
    "unet": ("unet", "CNN UNet", {"base_channels": 24}),
    "spt-unet-b:no-attention": ("spt-unet-b", "SpT UNet-B, no attention", {"attention": False}),
}
REPORTED = ("spt-unet-b", "unet")
# --fast: a run of seconds for tests and a first look (the reconstructions are not faces yet)
FAST = {"image_size": 16, "epochs": 1, "batch_size": 8}
RUN_NAME = "quick.h5"
EXAMPLE_FACES = 6  # columns of reconstructions.png


@click.command()
@click.option("--out", "out_dir", default="runs/demo", show_default=True,
              help="Output folder: the dataset, both models' checkpoints, metrics.json, report.html.")
@click.option("--protocol", "protocol_path", default=None,
              help="Protocol to acquire (default: the shipped protocols/quick.toml).")
@click.option("--rig", "rig_path", default=None, help="Rig file (default: the simulated rig).")
@click.option("--image-size", type=int, default=None,
              help=f"Model input N (N x N), a multiple of 8 [default: {DEMO_IMAGE_SIZE}; --fast: "
                   f"{FAST['image_size']}].")
@click.option("--epochs", type=int, default=None,
              help=f"Train every model this many epochs [default: {DEMO_BUDGET_MINUTES:g} minutes each; "
                   f"--fast: {FAST['epochs']}].")
@click.option("--budget-minutes", type=float, default=None,
              help=f"Minutes of training per model [default: {DEMO_BUDGET_MINUTES:g}].")
@click.option("--batch-size", type=int, default=None, help=f"[default: {DEMO_BATCH_SIZE}]")
@click.option("--lr", type=float, default=DEMO_LR, show_default=True, help="Initial learning rate.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--fast", is_flag=True, help="A much shorter run (tiny input, one epoch): checks the pipeline.")
@click.option("--progress/--no-progress", default=True, help="Show progress bars.")
def demo(out_dir: str, protocol_path: str | None, rig_path: str | None, image_size: int | None,
         epochs: int | None, budget_minutes: float | None, batch_size: int | None, lr: float, device: str,
         fast: bool, progress: bool) -> int:
    """Acquire the quick protocol on the simulated rig, compare SpT UNet-B, a CNN UNet and SpT UNet-B without
    attention under the same budget, evaluate, report."""
    settings = DemoSettings.make(fast=fast, image_size=image_size, epochs=epochs, batch_size=batch_size,
                                 lr=lr, device=device, budget_minutes=budget_minutes)
    return run_demo(out_dir, settings, protocol_path=protocol_path, rig_path=rig_path, progress=progress)


class DemoSettings:
    """The training settings of one demo run (plain attributes; validated in ``make``)."""

    def __init__(self, image_size: int, epochs: dict[str, int] | None, batch_size: int, lr: float, loss: str,
                 device: str, budget_minutes: float | None = None):
        self.image_size, self.epochs, self.batch_size = image_size, epochs, batch_size
        self.lr, self.loss, self.device, self.budget_minutes = lr, loss, device, budget_minutes

    @classmethod
    def make(cls, fast: bool = False, image_size: int | None = None, epochs: int | None = None,
             batch_size: int | None = None, lr: float = DEMO_LR, device: str = "auto",
             budget_minutes: float | None = None) -> DemoSettings:
        from speckle_core.errors import UserError

        base = FAST if fast else {"image_size": DEMO_IMAGE_SIZE, "batch_size": DEMO_BATCH_SIZE}
        if epochs is not None and budget_minutes is not None:
            raise UserError("demo: give --epochs or --budget-minutes, not both")
        if epochs is not None and epochs < 1:
            raise UserError(f"--epochs: must be >= 1 (got {epochs})")
        if budget_minutes is not None and not budget_minutes > 0:
            raise UserError(f"--budget-minutes: must be > 0 (got {budget_minutes})")
        if epochs is None and fast and budget_minutes is None:
            epochs = FAST["epochs"]
        epochs_of = None if epochs is None else {m: epochs for m in DEMO_MODELS}
        minutes = None if epochs_of else (budget_minutes or DEMO_BUDGET_MINUTES)
        s = cls(image_size if image_size is not None else base["image_size"], epochs_of,
                batch_size if batch_size is not None else base["batch_size"], lr, DEMO_LOSS, device, minutes)
        if s.image_size < 16 or s.image_size % 8:
            raise UserError(f"--image-size: must be a multiple of 8, at least 16 (got {s.image_size})")
        if s.batch_size < 1:
            raise UserError(f"--batch-size: must be >= 1 (got {s.batch_size})")
        if not 0 < s.lr < 1:
            raise UserError(f"--lr: must be between 0 and 1 (got {s.lr})")
        return s

    def as_dict(self) -> dict:
        return {"image_size": self.image_size, "epochs": dict(self.epochs) if self.epochs else None,
                "budget_minutes": self.budget_minutes, "batch_size": self.batch_size, "lr": self.lr,
                "loss": self.loss, "device": self.device}


def run_demo(out_dir, settings: DemoSettings, protocol_path=None, rig_path=None, progress: bool = True,
             log=click.echo) -> int:
    """The four stages; returns the exit code (0, or the acquisition's when it stopped early)."""
    import time

    from speckle_core.fileio import check_output_dir, output_lock, write_text_atomic

    t_start = time.perf_counter()
    out = check_output_dir(out_dir, what="demo folder")
    with output_lock(out, "demo folder"):  # a second demo on the same --out is refused, naming the first
        return _run_demo(out, settings, protocol_path, rig_path, progress, log, t_start, write_text_atomic)


def _run_demo(out, settings, protocol_path, rig_path, progress, log, t_start, write_text_atomic) -> int:
    import json
    import time
    from pathlib import Path

    from protocols import shipped

    protocol = Path(protocol_path) if protocol_path else shipped("quick")
    run = out / RUN_NAME
    timings: dict[str, float] = {}

    log(f"demo 1/4: acquire {protocol} on {rig_path or 'the simulated rig'} -> {run}")
    t0 = time.perf_counter()
    code = acquire_stage(protocol, run, rig_path, progress=progress, log=log)
    timings["acquire_s"] = time.perf_counter() - t0
    if code != 0:
        log(f"demo: acquisition stopped (exit {code}); run the demo again to resume it")
        return code

    budget = (f"{settings.budget_minutes:g} min" if settings.epochs is None
              else f"{next(iter(settings.epochs.values()))} epochs")
    log(f"demo 2/4: compare {', '.join(DEMO_MODELS)} at {settings.image_size}x{settings.image_size}, "
        f"{budget} each -> {out}")
    t0 = time.perf_counter()
    checkpoints, compared = compare_stage(run, out, settings, progress=progress, log=log)
    timings["compare_s"] = time.perf_counter() - t0

    log("demo 3/4: evaluate at the unseen distance and on held-out faces")
    t0 = time.perf_counter()
    from reconstruction.evaluate import evaluate_checkpoints

    result = evaluate_checkpoints(checkpoints, run, out, device=settings.device)
    figure = write_reconstructions_figure(checkpoints, run, out / "reconstructions.png", settings.device)
    reference = mean_face_reference(run, settings.image_size, out)
    timings["evaluate_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start

    metrics_path = Path(result["files"]["metrics"])
    metrics = json.loads(metrics_path.read_text())
    metrics["demo"] = {"protocol": str(protocol), "rig": rig_path or "simulated (hardware/rigs/sim.toml)",
                       "settings": settings.as_dict(),
                       "models": {label: {"model": name, "overrides": overrides}
                                  for name, label, overrides in DEMO_MODELS.values()},
                       "compare": compared["files"],
                       "timings_s": {k: round(v, 2) for k, v in timings.items()},
                       "reference_mean_face": reference,
                       "figure": str(figure)}
    write_text_atomic(metrics_path, json.dumps(metrics, indent=1), "metrics")

    log("demo 4/4: results")
    print_table(metrics)
    log(f"equal-budget comparison ({compared['files']['markdown']}, bootstrap 95 % intervals over faces):")
    for line in compared["markdown"].split("## What the data support", 1)[-1].strip().splitlines():
        log(line)
    log(f"wrote {result['files']['report']}, {metrics_path} and {figure} "
        f"(demo took {timings['total_s']:.0f} s)")
    return 0


# -- stage 1: acquisition ---------------------------------------------------------------------------

def dataset_state(run, protocol_text: str, rig_text: str) -> str:
    """"absent", "incomplete" or "complete"; a file from another protocol or rig is a UserError."""
    import numpy as np

    from speckle_core.errors import UserError
    from speckle_core.runfile import open_run

    if not run.exists():
        return "absent"
    with open_run(run) as f:
        if f.attrs["protocol"] != protocol_text or f.attrs["rig"] != rig_text:
            raise UserError(f"{run}: was acquired with another protocol or rig file; delete it (and the "
                            "models beside it) or choose another --out")
        done = np.asarray(f["pairs/done"][()], dtype=bool)
    return "complete" if done.all() else "incomplete"


def acquire_stage(protocol, run, rig_path, progress: bool, log) -> int:
    """Acquires (or resumes, or reuses) the demo's dataset; returns the acquisition's exit code."""
    from acquisition.acquire import run_acquisition
    from hardware.rig import load_rig
    from protocols import load_protocol

    protocol_file, rig_file = load_protocol(protocol), load_rig(rig_path)  # read once, for the whole run
    state = dataset_state(run, protocol_file.text, rig_file.text)
    if state == "complete":
        log(f"  {run} is complete: reusing it")
        return 0
    if state == "incomplete":
        log(f"  {run} is incomplete: resuming it")
    outcome = run_acquisition(protocol_file, run, rig_file, resume=state == "incomplete", unattended=True,
                              progress=progress)
    log(f"  {run}: {outcome.message} (log: {outcome.log_path})")
    return outcome.exit_code


# -- stage 2: training ------------------------------------------------------------------------------

def compare_stage(run, out, settings: DemoSettings, progress: bool, log):
    """Trains and compares every DEMO_MODELS entry under one budget (``reconstruction.compare``); returns
    the reported models' best.pt paths (label → path) and the comparison's result."""
    from reconstruction.compare import CompareSettings, ModelSpec, run_compare

    specs = [ModelSpec(key, name, dict(overrides)) for key, (name, _, overrides) in DEMO_MODELS.items()]
    cs = CompareSettings(image_size=settings.image_size, batch_size=settings.batch_size, lr=settings.lr,
                         loss=settings.loss, seeds=(0,), device=settings.device, eval_max=DEMO_EVAL_MAX,
                         epochs=next(iter(settings.epochs.values())) if settings.epochs else None,
                         budget_minutes=settings.budget_minutes if not settings.epochs else None)
    result = run_compare(run, specs, out, cs, progress=progress, log=lambda msg: log(f"  {msg}"))
    checkpoints = {DEMO_MODELS[s.label][1]: out / s.folder / "best.pt" for s in specs if s.label in REPORTED}
    return checkpoints, result


# -- stage 3: the reconstructions figure -----------------------------------------------------------

def example_positions(index, n: int):
    """Up to ``n`` held-out faces at the largest (unseen) distance, alternating diffusers."""
    import numpy as np

    pos = index.select(faces=["holdout"])
    if len(pos) == 0:
        pos = index.select(roles=["validation"])
    if len(pos) == 0:
        pos = np.arange(len(index.rows))
    far = pos[np.isclose(index.distance_mm[pos], index.distance_mm[pos].max())]
    by_diffuser: dict[str, list[int]] = {}
    for p in far:
        by_diffuser.setdefault(str(index.diffuser[p]), []).append(int(p))
    picks: list[int] = []
    lists = list(by_diffuser.values())
    for k in range(max(len(v) for v in lists)):
        for v in lists:
            if k < len(v) and len(picks) < n:
                picks.append(v[k])
    return np.array(picks, dtype=np.int64)


def write_reconstructions_figure(checkpoints: dict, run, path, device: str = "auto"):
    """A PNG grid: speckle, ground truth, then each model's reconstruction, for held-out faces at the
    unseen distance (faces and distance never trained on)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint
    from reconstruction.data import prepare_cache
    from reconstruction.evaluate import predict_positions
    from reconstruction.metrics import pcc_per_image, ssim_per_image
    from reconstruction.runtime import pick_device

    dev = pick_device(device)
    rows: list[tuple[str, np.ndarray, list[str] | None]] = []
    picks = speckle = target = None
    for label, ckpt in checkpoints.items():
        state = load_checkpoint(ckpt)
        model = model_from_checkpoint(state, ckpt).to(dev)
        cache = prepare_cache(run, int(state["model_config"]["image_size"]), fallback_dir=path.parent)
        idx = cache.index
        if picks is None:
            picks = example_positions(idx, EXAMPLE_FACES)
            speckle = np.stack([cache.batch([p])[0][0, 0].numpy() for p in picks])
            target = cache.labels[idx.object_index[picks]].astype(np.float32)
            rows.append(("speckle", speckle, [f"diffuser {idx.diffuser[p]}, {idx.distance_mm[p]:g} mm"
                                              for p in picks]))
            rows.append(("ground truth", target, None))
        pred = predict_positions(model, cache, picks, dev)
        notes = [f"PCC {c:.2f} SSIM {s:.2f}" for c, s in zip(pcc_per_image(pred, target),
                                                              ssim_per_image(pred, target), strict=True)]
        rows.append((label, pred, notes))
    ncol = len(picks)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(1.6 * ncol + 0.9, 1.75 * len(rows)), squeeze=False)
    for r, (title, images, notes) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r][c]
            ax.imshow(images[c], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if notes:
                ax.set_title(notes[c], fontsize=6.5)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle("held-out faces at the unseen distance (never trained on)", fontsize=9)
    fig.tight_layout()
    from speckle_core.fileio import atomic_path

    with atomic_path(path, "reconstructions figure") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def mean_face_reference(run, image_size: int, out) -> dict:
    """Metrics of a model that ignores the speckle and always answers the mean training face.

    Faces are alike (centred, similar outlines), so this floor is far from zero; a model has learned
    from the speckle only where it beats it. Same groups and metrics as ``reconstruction.evaluate``.
    """
    import numpy as np

    from reconstruction.data import prepare_cache
    from reconstruction.metrics import all_per_image

    cache = prepare_cache(run, image_size, fallback_dir=out)
    idx = cache.index
    train_faces = np.flatnonzero(idx.object_split == "train")
    mean = cache.labels[train_faces].astype(np.float32).mean(axis=0)
    groups = {"validation": idx.select(roles=["validation"], faces=["train"]),
              "holdout": idx.select(faces=["holdout"])}
    result = {}
    for name, pos in groups.items():
        if len(pos):
            target = cache.labels[idx.object_index[pos]].astype(np.float32)
            per = all_per_image(np.broadcast_to(mean, target.shape).copy(), target)
            result[name] = {"n": int(len(pos)), **{k: float(np.mean(v)) for k, v in per.items()}}
    return result


# -- stage 4: the table -----------------------------------------------------------------------------

GROUP_TITLES = {"validation": "unseen distance", "test": "test faces", "holdout": "held-out faces"}


def print_table(metrics: dict) -> None:
    """Prints mean PCC / SSIM / Jaccard / PSNR per model and group, and the 40 mm rows per diffuser."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="speckle-lab demo: metrics per image, averaged",
                  caption="unseen distance: the validation blocks (40 mm) on the seen faces; test faces: "
                          "training distances; held-out faces: every distance; mean face: the mean "
                          "training face for every input (the floor a model must beat)")
    for col in ("model", "pairs", "n", "PCC", "SSIM", "Jaccard", "PSNR dB"):
        table.add_column(col, justify="left" if col in ("model", "pairs") else "right")
    for label, res in metrics["models"].items():
        for group, s in res["summary"].items():
            table.add_row(label, GROUP_TITLES.get(group, group), str(s["n"]), f"{s['pcc']:.3f}",
                          f"{s['ssim']:.3f}", f"{s['jaccard']:.3f}", f"{s['psnr']:.2f}")
            if group not in ("validation", "holdout"):
                continue
            rows = res["groups"].get(group, [])
            far = max((r["distance_mm"] for r in rows), default=None)
            for row in rows:  # per diffuser, at the unseen (largest) distance
                if row["distance_mm"] == far:
                    table.add_row("", f"  {row['diffuser']} grit, {row['distance_mm']:g} mm", str(row["n"]),
                                  f"{row['pcc']:.3f}", f"{row['ssim']:.3f}", f"{row['jaccard']:.3f}",
                                  f"{row['psnr']:.2f}")
    for group, s in metrics.get("demo", {}).get("reference_mean_face", {}).items():
        table.add_row("mean face", GROUP_TITLES.get(group, group), str(s["n"]),
                      f"{s['pcc']:.3f}", f"{s['ssim']:.3f}", f"{s['jaccard']:.3f}", f"{s['psnr']:.2f}")
    Console().print(table)

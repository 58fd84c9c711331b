"""``speckle-lab compare``. Imports only click at load time (never torch)."""

from __future__ import annotations

import click

from reconstruction.train_config import CLOCKS, LOSSES
from speckle_core.errors import UserError


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--seeds: expected comma-separated integers (got {text!r})") from None
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: a seed is repeated (got {text!r})")
    return seeds


@click.command()
@click.argument("run")
@click.option("--models", required=True, metavar="A,B[,...]",
              help="Models to compare, e.g. spt-unet-b,unet,spt-unet-b:no-attention (the ablation: attention "
                   "outputs zeroed, skip maps still passed on).")
@click.option("--out", "out_dir", required=True, help="Output folder: a training folder per model, "
                                                       "compare.json and compare.md.")
@click.option("--epochs", type=int, default=None, help="Train every model for this many epochs.")
@click.option("--budget-minutes", type=float, default=None,
              help="Or: give every model (and seed) this many minutes of training on this machine.")
@click.option("--clock", type=click.Choice(CLOCKS), default="wall", show_default=True,
              help="What --budget-minutes counts: elapsed time, or this process's CPU time per thread "
                   "(fair on a machine shared with other jobs).")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma-separated; every model trains "
                                                               "once per seed and metrics are averaged.")
@click.option("--image-size", default=64, show_default=True, type=int)
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--lr", default=1e-3, show_default=True, type=float)
@click.option("--loss", type=click.Choice(LOSSES), default="bce+npcc", show_default=True)
@click.option("--eval-max", default=64, show_default=True, type=int,
              help="Test/validation pairs scored after each epoch (the final evaluation scores all).")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True, type=int,
              help="Bootstrap replicates per interval.")
@click.option("--device", default="auto", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def compare(run: str, models: str, out_dir: str, epochs: int | None, budget_minutes: float | None, clock: str,
            seeds: str, image_size: int, batch_size: int, lr: float, loss: str, eval_max: int, n_boot: int,
            device: str, quiet: bool) -> None:
    """Train models on RUN.h5 under the same budget and seeds, then compare them with 95 % intervals."""
    if clock == "cpu":
        _passive_openmp()
    from reconstruction.compare import CompareSettings, parse_models, run_compare

    specs = parse_models(models)
    settings = CompareSettings(image_size=image_size, batch_size=batch_size, lr=lr, loss=loss,
                               seeds=_seeds(seeds), epochs=epochs, budget_minutes=budget_minutes,
                               clock=clock, device=device, eval_max=eval_max, n_boot=n_boot)
    result = run_compare(run, specs, out_dir, settings, progress=not quiet, log=click.echo)
    click.echo(result["markdown"].rstrip())
    click.echo(f"wrote {result['files']['markdown']} and {result['files']['json']}")


def _passive_openmp() -> None:
    """For ``--clock cpu``: OpenMP threads that sleep while they wait instead of spinning.

    A spinning thread burns CPU while its partner is descheduled by another job, so on a shared machine
    the CPU clock would run 2-3x fast (measured: 175 s against 57 s per SpT UNet-B epoch at load 10).
    The setting is read once, when torch's OpenMP runtime starts, so it only takes effect if torch is not
    imported yet; a user's own ``OMP_WAIT_POLICY`` is kept.
    """
    import os
    import sys

    if "torch" in sys.modules:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

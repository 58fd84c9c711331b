"""``speckle-lab train | evaluate | predict``. Imports only click at load time (never torch)."""

from __future__ import annotations

import click

from speckle_lab.errors import NotAvailableError


@click.command()
@click.argument("run")
@click.option("--out", "out_dir", required=True)
def train(run: str, out_dir: str) -> None:
    """Train a model on a dataset."""
    raise NotAvailableError("train: not built yet")


@click.command()
@click.argument("checkpoint")
@click.argument("run")
@click.option("--out", "out_dir", required=True)
def evaluate(checkpoint: str, run: str, out_dir: str) -> None:
    """Evaluate a checkpoint on a dataset."""
    raise NotAvailableError("evaluate: not built yet")


@click.command()
@click.argument("checkpoint")
@click.argument("inputs", nargs=-1, required=True)
def predict(checkpoint: str, inputs: tuple[str, ...]) -> None:
    """Reconstruct objects from speckle frames."""
    raise NotAvailableError("predict: not built yet")

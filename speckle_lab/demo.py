"""``speckle-lab demo``: the whole capture-then-train pipeline on the simulated rig."""

from __future__ import annotations

import click

from speckle_lab.errors import NotAvailableError


@click.command()
@click.option("--out", "out_dir", default="runs/demo", show_default=True)
def demo(out_dir: str) -> None:
    """Acquire the quick protocol on the simulated rig, train, evaluate and write a report."""
    raise NotAvailableError("demo: not built yet")

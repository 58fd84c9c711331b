"""``speckle-lab plan | acquire | inspect``. Imports only click at load time."""

from __future__ import annotations

import click

from speckle_lab.errors import NotAvailableError


@click.command()
@click.argument("protocol")
@click.option("--rig", "rig_path", default=None, help="rig TOML file (default: the simulated rig)")
def plan(protocol: str, rig_path: str | None) -> None:
    """Dry run: pairs, device moves, manual steps, duration and disk need."""
    raise NotAvailableError("plan: not built yet")


@click.command()
@click.argument("protocol")
@click.option("--out", "out_path", required=True, help="the dataset file to write (RUN.h5)")
@click.option("--rig", "rig_path", default=None, help="rig TOML file (default: the simulated rig)")
@click.option("--resume", is_flag=True, help="continue a stopped run from its file")
def acquire(protocol: str, out_path: str, rig_path: str | None, resume: bool) -> None:
    """Run PROTOCOL on the rig and write the dataset."""
    from protocols import load_protocol

    load_protocol(protocol)  # bad input exits 2 even before the engine exists
    raise NotAvailableError("acquire: the acquisition engine is not built yet")


@click.command()
@click.argument("run")
def inspect(run: str) -> None:
    """Summarise a dataset and write its contact-sheet PNG."""
    raise NotAvailableError("inspect: not built yet")

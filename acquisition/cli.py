"""``speckle-lab plan | acquire | inspect``. Imports only click at load time.

The work is in ``acquisition.plan``, ``acquisition.acquire`` (around ``acquisition.engine``) and
``acquisition.inspect``.
"""

from __future__ import annotations

import click

from speckle_core.errors import UserError

RIG_HELP = "rig TOML file (default: the simulated rig)"


@click.command()
@click.argument("protocol")
@click.option("--rig", "rig_path", default=None, help=RIG_HELP)
@click.option("--out", "out_path", default=None, help="where the dataset would go (checks its free disk)")
def plan(protocol: str, rig_path: str | None, out_path: str | None) -> int:
    """Dry run: pairs and their order, device moves, manual steps, duration and disk need."""
    from acquisition.plan import plan_command

    return plan_command(protocol, rig_path, out_path)


@click.command()
@click.argument("protocol")
@click.option("--out", "out_path", required=True, help="the dataset file to write (RUN.h5)")
@click.option("--rig", "rig_path", default=None, help=RIG_HELP)
@click.option("--resume", is_flag=True, help="continue a stopped run from its file")
@click.option("--unattended", is_flag=True, help="never prompt; refuse protocols that need a person")
@click.option("--progress/--no-progress", default=True, help="show the live progress bar")
def acquire(protocol: str, out_path: str, rig_path: str | None, resume: bool, unattended: bool,
            progress: bool) -> int:
    """Run PROTOCOL on the rig and write the dataset (the simulated rig by default)."""
    from acquisition.acquire import acquire_command

    return acquire_command(protocol, out_path, rig_path, resume=resume, unattended=unattended,
                           progress=progress)


@click.command()
@click.argument("run")
@click.option("--sheet", "sheet_path", default=None, help="contact-sheet PNG (default: RUN.contact.png)")
@click.option("--protocol", "show_protocol", is_flag=True,
              help="print only the protocol file the run was started with (> p.toml gets it back)")
@click.option("--rig", "show_rig", is_flag=True, help="print only the rig file the run was started with")
@click.option("--common-scale", is_flag=True,
              help="contact sheet: one intensity scale for every frame (default: each its own)")
def inspect(run: str, sheet_path: str | None, show_protocol: bool, show_rig: bool, common_scale: bool) -> int:
    """Summarise a dataset (counts, exposure, saturation, stability) and write its contact sheet."""
    from acquisition.inspect import inspect_command

    if show_protocol and show_rig:  # each prints one file: both would silently drop one (> p.toml)
        raise UserError("inspect: give one of --protocol and --rig, not both (each prints one file)")
    show = "protocol" if show_protocol else "rig" if show_rig else None
    return inspect_command(run, sheet_path, show, common_scale)

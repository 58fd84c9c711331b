"""``speckle-lab calibrate phase | settle | twin``. Imports only click at load time."""

from __future__ import annotations

import click

RIG_HELP = "rig TOML file (default: the simulated rig)"


@click.group()
def calibrate() -> None:
    """Measure the SLM's π level and settle time; fit the simulated rig to a captured run."""


@calibrate.command()
@click.option("--rig", "rig_path", default=None, help=RIG_HELP)
@click.option("--out", "out", required=True, help="the LUT file to write (CSV gray,phase_rad), e.g. lut.csv")
@click.option("--step", default=2, show_default=True,
              help="measure every STEP-th gray level (two frames each: 0|g|0 and ref|g|ref)")
@click.option("--wait-ms", default=500.0, show_default=True,
              help="wait after each pattern (at least the rig's settle_ms)")
@click.option("--average", default=1, show_default=True, help="frames averaged per gray level")
@click.option("--report", default=None, help="report PNG (default: OUT with .report.png)")
@click.option("--progress/--no-progress", "show_progress", default=True, help="show a progress bar")
def phase(rig_path, out, step, wait_ms, average, report, show_progress) -> int:
    """Measure the SLM's gray → phase curve through the empty slot; write a LUT and its π level."""
    from calibration.commands import phase_command

    return phase_command(rig_path, out, step, wait_ms, average, report, show_progress)


@calibrate.command()
@click.option("--rig", "rig_path", default=None, help=RIG_HELP)
@click.option("--out", "out", default="settle.toml", show_default=True,
              help="TOML snippet to write ([slm] settle_ms = ...)")
@click.option("--report", default=None, help="report PNG (default: OUT with .report.png)")
@click.option("--min-ms", default=0.5, show_default=True, help="shortest delay after the flip")
@click.option("--max-ms", default=1000.0, show_default=True, help="longest delay after the flip")
@click.option("--delays", "n_delays", default=40, show_default=True, help="delays per direction")
@click.option("--hold-ms", default=None, type=float, help="hold each pattern first (default: --max-ms)")
@click.option("--average", default=2, show_default=True, help="frames averaged per delay")
@click.option("--progress/--no-progress", "show_progress", default=True, help="show a progress bar")
def settle(rig_path, out, report, min_ms, max_ms, n_delays, hold_ms, average, show_progress) -> int:
    """Measure the liquid crystal's response after a flip; report and write the settle time."""
    from calibration.commands import settle_command

    return settle_command(rig_path, out, report, min_ms, max_ms, n_delays, hold_ms, average, show_progress)


@calibrate.command()
@click.argument("run")
@click.option("--out", "out", required=True, help="the simulated-rig TOML file to write, e.g. my-sim.toml")
@click.option("--report", default=None, help="report PNG (default: OUT with .report.png)")
@click.option("--objects", "max_objects", default=8, show_default=True, help="objects used per block")
@click.option("--iterations", default=8, show_default=True,
              help="at most this many rounds of simulate-and-update (it stops when the fit settles)")
@click.option("--progress/--no-progress", "show_progress", default=True, help="show a progress bar")
def twin(run, out, report, max_objects, iterations, show_progress) -> int:
    """Fit the simulated rig to RUN's speckle statistics; write it as a rig file; compare them."""
    from calibration.commands import twin_command

    return twin_command(run, out, report, max_objects, iterations, show_progress)

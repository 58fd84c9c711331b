"""The ``speckle-lab calibrate phase`` and ``calibrate settle`` commands: measure, fit, write, report."""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import click
import numpy as np

from calibration import common
from calibration.phase import (
    edge_ratios,
    fit_phase,
    lut_csv_text,
    row_profile,
    step_pattern,
    write_report_png,
)
from speckle_core.errors import UserError

COARSE_STEP = 8  # the first pass, which finds the quadrature reference


def sweep(bench: common.Bench, grays: list[int], wait_s: float, average: int, advance,
          quadrature_gray: int | None) -> tuple[list[np.ndarray], list[int]]:
    """The edge ratios r(g) over ``grays`` (calibration.phase, eqs. 1 and 2) and the edge columns."""
    window = bench.window
    bench.show(np.zeros(window, np.uint8), wait_s)
    tag = "coarse" if quadrature_gray is None else "fine"
    flat = row_profile(bench.capture(("calibrate-phase", tag, "flat"), average))
    profiles = []
    for g in grays:
        bench.show(step_pattern(window, g, quadrature_gray), wait_s)
        profiles.append(row_profile(bench.capture(("calibrate-phase", tag, int(g)), average)))
        advance(1)
    return edge_ratios(np.array(profiles), flat, 1 if quadrature_gray is None else 2)


def measure_phase(bench: common.Bench, step: int, wait_s: float, average: int, advance):
    """Two passes: a coarse one (0 | g) finds the gray of phase π/2; the fine one (0 | g | π/2)
    measures both edges. Returns the fit and the edge columns."""
    coarse = sorted(set(range(0, 256, COARSE_STEP)) | {255})
    (r,), _ = sweep(bench, coarse, wait_s, average, advance, None)
    first = fit_phase(np.array(coarse), r)
    g_q = int(np.clip(np.argmin(np.abs(first.phase_rad - np.pi / 2)), 8, 247))
    grays = sorted(set(range(0, 256, step)) | {255})
    (r1, r2), cols = sweep(bench, grays, wait_s, average, advance, g_q)
    return fit_phase(np.array(grays), r1, r2, g_q), cols, len(coarse) + len(grays)


def phase_command(rig_path: str | None, out: str, step: int, wait_ms: float, average: int,
                  report: str | None, show_progress: bool) -> int:
    if not 1 <= step <= 32:
        raise UserError(f"--step: must be 1..32 gray levels (got {step})")
    if not 1 <= average <= 1000:
        raise UserError(f"--average: must be 1..1000 frames (got {average})")
    if not 0 <= wait_ms <= 60_000:
        raise UserError(f"--wait-ms: must be 0..60000 (got {wait_ms:g})")
    from speckle_core.fileio import check_output_file, write_text_atomic

    inputs = [rig_path] if rig_path else []
    out_path = check_output_file(out, inputs=inputs, what="LUT file", suffixes=(".csv",))
    report_file = check_output_file(report or common.report_path(out_path, out_path), inputs=inputs,
                                    what="phase report", suffixes=(".png",))
    rig_file, rig = common.open_rig(rig_path)
    try:
        wait_s = max(wait_ms, rig_file.config.slm.settle_ms) / 1000.0
        bench = common.set_up_bench(rig, rig_path, wait_s)
        n_frames = len(set(range(0, 256, COARSE_STEP)) | {255}) + len(set(range(0, 256, step)) | {255})
        click.echo(f"calibrate phase: {common.rig_label(rig_path)}, empty slot, 0 mm, exposure "
                   f"{bench.exposure_us / 1000:g} ms, {n_frames} patterns, wait {wait_s * 1000:g} ms each",
                   err=True)
        with common.progress(show_progress, n_frames, "phase steps") as advance:
            fit, cols, _ = measure_phase(bench, step, wait_s, average, advance)
        stroke = rig.slm.stroke_mode()
    finally:
        rig.close()
    grays = fit.grays
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = [f"speckle-lab calibrate phase, {stamp}, rig {common.rig_label(rig_path)}",
              f"stroke mode {stroke}; edges at camera columns {cols}; {len(grays)} gray levels; "
              f"reference gray {fit.quadrature_gray}",
              f"pi at gray {common.fmt_pm(fit.pi_gray, fit.pi_gray_err)}"
              + ("" if fit.trusted else "; NOT TRUSTED: " + " | ".join(fit.warnings))]
    write_text_atomic(out_path, lut_csv_text(fit, header), "LUT file")
    write_report_png(fit, report_file, f"calibrate phase: {common.rig_label(rig_path)} ({stroke})")
    _print_phase(fit, out_path, report_file)
    return 0


def _print_phase(fit, out_path: Path, report_file: Path) -> None:
    click.echo(f"π gray level: {common.fmt_pm(fit.pi_gray, fit.pi_gray_err)} "
               f"(edge visibility b = {fit.b:.3f}, rms residual {fit.residual_rms:.4f})")
    click.echo("gray → phase (rad): " + ", ".join(f"{g}: {fit.phase_rad[g]:.3f}"
                                                   for g in list(range(0, 256, 32)) + [255]))
    for w in fit.warnings:
        click.echo(f"NOT TRUSTED: {w}")
    click.echo(f"wrote {out_path} (256 gray levels) and {report_file}")
    if math.isfinite(fit.pi_gray):
        click.echo(f"for the rig file, under [slm]:  lut_file = \"{out_path.name}\"  "
                   f"(relative to the rig file; π is then gray {fit.pi_level})")

"""The ``speckle-lab calibrate phase`` and ``calibrate settle`` commands: measure, fit, write, report."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from calibration import common
from calibration.phase import (
    PhaseFit,
    band_pattern,
    edge_ratios,
    fit_phase,
    lut_csv_text,
    row_profile,
    step_pattern,
    write_report_png,
)
from speckle_core.errors import UserError

if TYPE_CHECKING:
    from calibration.settle import DirectionFit
    from hardware.lut import PhaseLUT

Advance = Callable[[int], None]  # moves a progress bar on by n steps (common.progress)

COARSE_STEP = 8  # the first pass, which finds the quadrature reference


def sweep(bench: common.Bench, patterns: Iterable[tuple[int, np.ndarray]], wait_s: float, average: int,
          advance: Advance, tag: str, edges: int) -> tuple[np.ndarray, list[int]]:
    """The edge ratio r(g) over ``patterns`` ((gray, pattern) pairs; calibration.phase, eq. 1 or 2)
    and the edge columns."""
    window = bench.window
    bench.show(np.zeros(window, np.uint8), wait_s)
    flat = row_profile(bench.capture(("calibrate-phase", tag, "flat"), average))
    profiles = []
    for g, pattern in patterns:
        bench.show(pattern, wait_s)
        profiles.append(row_profile(bench.capture(("calibrate-phase", tag, int(g)), average)))
        advance(1)
    return edge_ratios(np.array(profiles), flat, edges)


def measure_phase(bench: common.Bench, step: int, wait_s: float, average: int,
                  advance: Advance) -> tuple[PhaseFit, list[int], int]:
    """A coarse pass (0 | g, halves) finds the gray of phase π/2, g_q; the fine pass measures every
    ``step``-th gray twice: 0 | g | 0 (eq. 1) and g_q | g | g_q (eq. 2). Returns the fit, the edge
    columns and the number of frames."""
    window = bench.window
    coarse = sorted(set(range(0, 256, COARSE_STEP)) | {255})
    r, _ = sweep(bench, [(g, step_pattern(window, g)) for g in coarse], wait_s, average, advance, "coarse", 1)
    first = fit_phase(np.array(coarse), r)
    g_q = int(np.clip(np.argmin(np.abs(first.phase_rad - np.pi / 2)), 8, 247))
    grays = fine_grays(step)
    r1, cols = sweep(bench, [(g, band_pattern(window, 0, g)) for g in grays], wait_s, average, advance,
                     "fine", 2)
    r2, _ = sweep(bench, [(g, band_pattern(window, g_q, g)) for g in grays], wait_s, average, advance,
                  f"fine-{g_q}", 2)
    return fit_phase(np.array(grays), r1, r2, g_q), cols, len(coarse) + 2 * len(grays)


def fine_grays(step: int) -> list[int]:
    return sorted(set(range(0, 256, step)) | {255})


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
        n_frames = len(set(range(0, 256, COARSE_STEP)) | {255}) + 2 * len(fine_grays(step))
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


def _print_phase(fit: PhaseFit, out_path: Path, report_file: Path) -> None:
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


# -- calibrate settle ---------------------------------------------------------------------------------

class _Dip:
    """The edge's dip, column by column: r(x) = a(x) − b(x)·sin²(Δφ/2) (calibration.phase, eq. 1),
    with a(x) from a flat frame and b(x) from a settled π step. sin²(Δφ/2) is the least-squares
    estimate over every column of the dip, Σ b·(a − r) / Σ b², which uses all of its pixels."""

    def __init__(self, flat: np.ndarray, q_flat: np.ndarray, q_pi: np.ndarray):
        self.flat = np.maximum(flat, 1e-9)
        depth = q_flat - q_pi
        col = int(np.argmax(depth[len(depth) // 4: 3 * len(depth) // 4])) + len(depth) // 4
        keep = depth > 0.2 * depth[col]
        lo = col
        while lo > 0 and keep[lo - 1]:
            lo -= 1
        hi = col
        while hi < len(depth) - 1 and keep[hi + 1]:
            hi += 1
        self.cols = slice(lo, hi + 1)
        self.a, self.b = q_flat[self.cols], depth[self.cols]

    def sin2(self, image: np.ndarray) -> float:
        r = (row_profile(image) / self.flat)[self.cols]
        return float(np.dot(self.b, self.a - r) / np.dot(self.b, self.b))


class _SettleRun:
    """Frames for the settle calibration on an opened bench (calibration.settle, eqs. 3 and 4)."""

    def __init__(self, bench: common.Bench, lut: PhaseLUT, hold_s: float, average: int, advance: Advance):
        self.bench, self.hold_s, self.average, self.advance = bench, hold_s, average, advance
        window = bench.window
        zeros = np.zeros(window, np.uint8)
        flat = np.maximum(row_profile(self.frame(zeros, hold_s, "flat")), 1e-9)
        q_pi = row_profile(self.frame(step_pattern(window, lut.gray_pi), hold_s, "pi")) / flat
        q_flat = row_profile(self.frame(zeros, hold_s, "flat2")) / flat
        self.dip = _Dip(flat, q_flat, q_pi)
        self.low = step_pattern(window, lut.gray_for_phase(np.pi / 4))
        self.high = step_pattern(window, lut.gray_for_phase(3 * np.pi / 4))

    def frame(self, pattern: np.ndarray, wait_s: float, *key: object) -> np.ndarray:
        self.bench.show(pattern, wait_s)
        return self.bench.capture(("calibrate-settle", *key), self.average)

    def phase_step(self, image: np.ndarray) -> float:
        return 2.0 * math.asin(math.sqrt(min(max(self.dip.sin2(image), 0.0), 1.0)))

    def direction(self, name: str, delays: np.ndarray, refine: int) -> DirectionFit:
        from calibration.settle import fit_direction

        start, end = (self.low, self.high) if name == "rise" else (self.high, self.low)
        phi_start = self.phase_step(self.frame(start, self.hold_s, name, "start"))
        phi_end = self.phase_step(self.frame(end, self.hold_s, name, "end"))
        step = phi_start - phi_end
        if abs(step) < 0.2:
            raise UserError(f"{self.bench.rig_path}: the π/4 and 3π/4 patterns differ by only "
                            f"{abs(step):.2f} rad at the edge; the rig's LUT is far off: run "
                            "`speckle-lab calibrate phase` first and set lut_file")

        def sweep(ds, tag):
            out = []
            for i, d in enumerate(ds):
                self.bench.show(start, self.hold_s)
                out.append((self.phase_step(self.frame(end, d / 1000.0, name, tag, i)) - phi_end) / step)
                self.advance(1)
            return out

        half_exposure_ms = self.bench.exposure_us / 2000.0
        t, e = list(delays), sweep(delays, "coarse")
        fit = fit_direction(name, np.array(t) + half_exposure_ms, np.array(e))
        if refine:
            t1 = fit.settle_ms if math.isfinite(fit.settle_ms) else float(delays[-1])
            more = np.linspace(0.3 * t1, min(2.5 * t1, float(delays[-1])), refine)
            t += list(more)
            e += sweep(more, "fine")
            order = np.argsort(t)
            fit = fit_direction(name, np.array(t)[order] + half_exposure_ms, np.array(e)[order])
        return fit


def measure_settle(bench: common.Bench, lut: PhaseLUT, delays: np.ndarray, hold_s: float, average: int,
                   advance: Advance, refine: int = 0) -> list[DirectionFit]:
    """The rise and fall fits. ``delays`` is the first pass; ``refine`` more delays then go where
    the first fit puts the 1 % time (0.3 to 2.5 times it), where the settle time is decided."""
    run = _SettleRun(bench, lut, hold_s, average, advance)
    return [run.direction(name, delays, refine) for name in ("rise", "fall")]


def settle_command(rig_path: str | None, out: str, report: str | None, min_ms: float, max_ms: float,
                   n_delays: int, hold_ms: float | None, average: int, show_progress: bool) -> int:
    from calibration.settle import delays_ms, write_report_png
    from speckle_core.fileio import write_text_atomic

    if not (0 < min_ms < max_ms <= 60_000):
        raise UserError(f"--min-ms/--max-ms: need 0 < min < max <= 60000 ms (got {min_ms:g}, {max_ms:g})")
    if not 8 <= n_delays <= 200:
        raise UserError(f"--delays: must be 8..200 (got {n_delays})")
    if not 1 <= average <= 1000:
        raise UserError(f"--average: must be 1..1000 frames (got {average})")
    hold_s = (max_ms if hold_ms is None else hold_ms) / 1000.0
    if not 0 <= hold_s <= 600:
        raise UserError(f"--hold-ms: must be 0..600000 (got {hold_ms:g})")
    inputs = [rig_path] if rig_path else []
    out_path = common.check_output(out, inputs, "settle snippet", (".toml",))
    report_file = common.check_output(report or common.report_path(out_path, out_path), inputs,
                                      "settle report", (".png",))
    rig_file, rig = common.open_rig(rig_path)
    delays = delays_ms(min_ms, max_ms, n_delays - n_delays // 2)
    try:
        bench = common.set_up_bench(rig, rig_path, hold_s)
        if rig_file.config.slm.lut_file is None:
            click.echo("note: the rig has no lut_file; the π/4 and 3π/4 grays come from its linear LUT "
                       "(run `speckle-lab calibrate phase` first for a measured one)", err=True)
        click.echo(f"calibrate settle: {common.rig_label(rig_path)}, empty slot, 0 mm, exposure "
                   f"{bench.exposure_us / 1000:g} ms, {n_delays} delays {min_ms:g}..{max_ms:g} ms each way, "
                   f"hold {hold_s * 1000:g} ms", err=True)
        with common.progress(show_progress, 2 * n_delays, "settle delays") as advance:
            fits = measure_settle(bench, rig.lut, delays, hold_s, average, advance, refine=n_delays // 2)
    finally:
        rig.close()
    settle = max(f.settle_ms for f in fits)
    value = math.ceil(settle * 10) / 10 if math.isfinite(settle) else float("nan")
    warnings = [w for f in fits for w in f.warnings]
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# speckle-lab calibrate settle, {stamp}, rig {common.rig_label(rig_path)}"]
    lines += [f"# {f.name}: dead time {f.dead_ms:.2f} ms, τ = {', '.join(f'{x:.2f}' for x in f.tau_ms)} ms"
              + (f" (slow share {f.slow_share:.2f})" if len(f.tau_ms) > 1 else "")
              + f", 1 % at {f.settle_ms:.1f} ms" for f in fits]
    lines += [f"# NOT TRUSTED: {w}" for w in warnings]
    lines += ["[slm]", f"settle_ms = {value:g}" if math.isfinite(value) else "# settle_ms: not found"]
    write_text_atomic(out_path, "\n".join(lines) + "\n", "settle snippet")
    write_report_png(fits, settle, report_file, f"calibrate settle: {common.rig_label(rig_path)}")
    for f in fits:
        taus = ", ".join(f"{x:.2f}" for x in f.tau_ms)
        click.echo(f"{f.name}: τ = {taus} ms, dead time {f.dead_ms:.2f} ms, "
                   f"1 % residual at {f.settle_ms:.1f} ms (rms residual {f.rms:.4f})")
    for w in warnings:
        click.echo(f"NOT TRUSTED: {w}")
    click.echo(f"wrote {out_path} and {report_file}")
    if math.isfinite(value):
        click.echo(f"for the rig file, under [slm]:  settle_ms = {value:g}")
    return 0


# -- calibrate twin -----------------------------------------------------------------------------------

def twin_command(run_path: str, out: str, report: str | None, max_objects: int, iterations: int,
                 show_progress: bool) -> int:
    from calibration import twin, twin_report
    from calibration.toml_out import toml_text
    from hardware.rig import RigConfig
    from speckle_core.config import parse_toml_model
    from speckle_core.fileio import write_text_atomic

    if not 2 <= max_objects <= 1000:
        raise UserError(f"--objects: must be 2..1000 (got {max_objects})")
    if not 1 <= iterations <= 50:
        raise UserError(f"--iterations: must be 1..50 (got {iterations})")
    out_path = common.check_output(out, [run_path], "twin rig file", (".toml",))
    report_file = common.check_output(report or common.report_path(out_path, out_path), [run_path],
                                      "twin report", (".png",))
    run = twin.load_run(run_path, max_objects)
    click.echo(f"calibrate twin: {run_path}: {len(run.blocks)} blocks "
               f"({', '.join(sorted({b.diffuser for b in run.blocks}))} at "
               f"{', '.join(f'{z:g}' for z in sorted({b.distance_mm for b in run.blocks}))} mm), "
               f"up to {max_objects} objects each; {iterations} rounds on the simulated rig", err=True)
    rounds = (iterations - 1 + twin.FINAL_SCREENS) * twin.REALISATIONS * len(run.blocks)  # at most
    with common.progress(show_progress, rounds, "simulating the twin") as advance:
        params, measured, simulated, rig_dict = twin.fit_twin(run, iterations, twin.twin_seed(run), advance)
    problems = twin_report.mismatches(measured, simulated, params.grain_ratio)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = [f"speckle-lab calibrate twin, {stamp}, from {run_path}",
              "the simulated rig whose speckle statistics match that run (docs/calibration.md)"]
    header += [f"note: {n}" for n in params.notes] + [f"NOT TRUSTED: {m}" for m in problems]
    text = toml_text(rig_dict, header)
    parse_toml_model(text, RigConfig, str(out_path))  # what is written loads as a rig
    write_text_atomic(out_path, text, "twin rig file")
    status = "fit trusted" if not problems else "FIT NOT TRUSTED: " + problems[0]
    twin_report.write_report_png(measured, simulated, report_file, f"calibrate twin: {run_path}", status)
    for line in twin_report.side_by_side(measured, simulated):
        click.echo(line)
    click.echo("fitted:")
    for line in twin_report.parameter_lines(run, params):
        click.echo(f"  {line}")
    for n in params.notes:
        click.echo(f"note: {n}")
    for m in problems:
        click.echo(f"NOT TRUSTED: {m}")
    click.echo(f"wrote {out_path} (a simulated rig: --rig {out_path.name}) and {report_file}")
    return 0

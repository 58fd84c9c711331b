"""What ``calibrate twin`` shows: measured against twin, the fitted parameters, and when not to trust them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calibration.twin import ALPHA_MIN, Params, RunData, diffuser_specs
from calibration.twin_stats import BlockStats, RunStats

# How close the twin's statistics must come to the run's for the fit to count as trusted.
GRAIN_TOL = 0.05  # relative
LEVEL_TOL = 0.05  # relative, the empty slot's level
ALPHA_TOL = 0.25  # relative, the unscattered share
CONTRAST_TOL = 0.08  # absolute
DECORRELATION_TOL = 0.12  # absolute


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else math.inf


def mismatches(measured: RunStats, twin: RunStats, grain_ratio: float = math.nan) -> list[str]:
    """Plain reasons the twin does not match the run (empty: it does). ``grain_ratio``: the twin's
    grain over the run's as the fit weighs the diffusers (calibration.twin.Params.grain_ratio); without
    it, the median grains are compared."""
    out = []
    g_m, g_t = measured.grain_px(), twin.grain_px()
    off = abs(grain_ratio - 1.0) if math.isfinite(grain_ratio) else _rel(g_t, g_m)
    if math.isfinite(off) and off > GRAIN_TOL:
        out.append(f"the twin's speckle grain differs from the run's by {off:.0%} (more than "
                   f"{GRAIN_TOL:.0%}; median over the diffusers {g_t:.2f} px against {g_m:.2f} px)")
    empty = measured.empty
    if empty is not None:
        lm = float(np.mean([s.level for (d, _), s in measured.blocks.items() if d == empty]))
        lt = float(np.mean([s.level for (d, _), s in twin.blocks.items() if d == empty]))
        if _rel(lt, lm) > LEVEL_TOL:
            out.append(f"the empty slot's level differs by {_rel(lt, lm):.0%}: check the run's exposures "
                       "and dark frames")
    for (d, z), s in sorted(measured.blocks.items()):
        out += _block_mismatches(d, z, s, twin.blocks[(d, z)], empty, min(measured.distances))
    return out


def _tol(tol: float, t: BlockStats, name: str, rel: bool = False) -> float:
    """The tolerance on a statistic: ``tol``, or 3 σ of its spread between the twin's screens where
    that is larger (the run is one screen: a difference within it is chance, not a wrong fit)."""
    sd = t.spread.get(name, math.nan) if t.spread else math.nan
    if rel and math.isfinite(sd):
        sd /= max(abs(getattr(t, name)), 1e-12)
    return max(tol, 3.0 * sd) if math.isfinite(sd) else tol


def _block_mismatches(d: str, z: float, s: BlockStats, t: BlockStats, empty: str | None,
                      z0: float) -> list[str]:
    out = []
    if (d != empty and z == z0 and s.alpha >= ALPHA_MIN
            and _rel(t.alpha, s.alpha) > _tol(ALPHA_TOL, t, "alpha", rel=True)):
        out.append(f"diffuser {d}: unscattered share {t.alpha:.3f} against the run's {s.alpha:.3f}")
    if abs(t.contrast - s.contrast) > _tol(CONTRAST_TOL, t, "contrast"):
        if d == empty:
            out.append(f"the empty slot at {z:g} mm: contrast {t.contrast:.2f} against the run's "
                       f"{s.contrast:.2f}: the twin does not reproduce the objects' own image (was the "
                       "SLM settled, slm.settle_ms? is the π level right, lut_file?)")
        else:
            out.append(f"diffuser {d} at {z:g} mm: contrast {t.contrast:.2f} against the run's "
                       f"{s.contrast:.2f}")
    if (math.isfinite(s.decorrelation)
            and abs(t.decorrelation - s.decorrelation) > _tol(DECORRELATION_TOL, t, "decorrelation")):
        out.append(f"diffuser {d} at {z:g} mm: correlation with the nearest distance "
                   f"{t.decorrelation:.2f} against the run's {s.decorrelation:.2f} (is the stage's zero_mm "
                   "right?)")
    return out


def side_by_side(measured: RunStats, twin: RunStats) -> list[str]:
    """The table the command prints: each statistic, measured and fitted."""
    rows = [("statistic", "run", "twin"),
            ("grain (HWHM, px, nearest distance)", f"{measured.grain_px():.2f}", f"{twin.grain_px():.2f}")]
    for (d, z), s in sorted(measured.blocks.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        t = twin.blocks[(d, z)]
        where = f"{d} @ {z:g} mm"
        rows.append((f"{where}: level (counts/µs)", f"{s.level:.4g}", f"{t.level:.4g}"))
        rows.append((f"{where}: contrast σ/μ", f"{s.contrast:.3f}", f"{t.contrast:.3f}"))
        if math.isfinite(s.alpha):
            rows.append((f"{where}: unscattered share α", f"{s.alpha:.3f}", f"{t.alpha:.3f}"))
            rows.append((f"{where}: corr. with the empty slot", f"{s.corr_empty:.3f}", f"{t.corr_empty:.3f}"))
        if math.isfinite(s.decorrelation) and z != min(measured.distances):
            rows.append((f"{where}: corr. with {min(measured.distances):g} mm", f"{s.decorrelation:.3f}",
                         f"{t.decorrelation:.3f}"))
    width = max(len(r[0]) for r in rows)
    return [f"{a:<{width}}  {b:>10}  {c:>10}" for a, b, c in rows]


def parameter_lines(run: RunData, p: Params) -> list[str]:
    from calibration.twin import _optics

    lam, dn = _optics(run.rig.sim)
    out = [f"imaging_na = {p.na:.5f}", f"flux_e_per_us = {p.flux:.4g}",
           f"read_noise_e = {p.read_noise_e:.3g}, black_level_adu = {p.black_level_adu}"]
    for d, spec in sorted(diffuser_specs(run, p).items()):
        u = math.exp(-p.sigma_phi[d] ** 2)  # the unscattered share, eq. (5)
        h_rel, w_rel = p.spread.get(d, (math.nan, math.nan))
        out.append(f"diffuser {d}: rms_height_um = {spec['rms_height_um']:.4f}{_pm(h_rel)}, corr_length_um = "
                   f"{spec['corr_length_um']:.3f}{_pm(w_rel)} (σφ {p.sigma_phi[d]:.2f} rad, "
                   f"θ0 {1000 * p.theta0(d, dn, lam):.1f} mrad, unscattered {u:.3f})")
    return out


def _pm(rel: float) -> str:
    return f" ± {rel:.0%}" if math.isfinite(rel) else ""


def _plot_fitted_statistics(axis, measured: RunStats, twin: RunStats) -> None:
    """Per diffuser, the two statistics that set its rms height and correlation length: the
    unscattered share α (eq. 5) and the scattered light through the iris g = T − α (eq. 7); run
    against twin, the twin's α with ± 1 σ between its screens."""
    from calibration.twin import _mean, _scattered

    names = measured.diffusers
    x = np.arange(len(names))
    z0 = min(measured.distances)
    a_run = [_mean(measured, d, "alpha") for d in names]
    a_twin = [_mean(twin, d, "alpha") for d in names]
    a_sd = [twin.blocks[(d, z0)].spread.get("alpha", math.nan) for d in names]
    axis.plot(x - 0.1, a_run, "o", color="C0", label="α, run")
    axis.errorbar(x + 0.1, a_twin, yerr=a_sd, fmt="x", color="C0", capsize=3, label="α, twin (± 1 σ)")
    axis.plot(x - 0.1, [_scattered(measured, d) for d in names], "s", color="C3", label="g = T − α, run")
    axis.plot(x + 0.1, [_scattered(twin, d) for d in names], "+", ms=9, color="C3", label="g, twin")
    axis.set_xticks(x, names)
    axis.set_xlabel("diffuser")
    axis.set_ylabel("share of the empty slot's light")
    axis.set_title("unscattered α (sets σh) and scattered through the iris g (sets w)", fontsize=9)
    axis.legend(fontsize=7)


def write_report_png(measured: RunStats, twin: RunStats, path: str | Path, title: str, status: str) -> None:
    """Decorrelation and contrast against distance, the autocovariance, the residuals, and the
    statistics that set each diffuser's parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speckle_core.fileio import atomic_path

    fig = plt.figure(figsize=(14, 7.5))
    grid = fig.add_gridspec(2, 3)
    ax = np.array([[fig.add_subplot(grid[r, c]) for c in range(2)] for r in range(2)])
    _plot_fitted_statistics(fig.add_subplot(grid[:, 2]), measured, twin)
    zs = measured.distances
    names = sorted({d for d, _ in measured.blocks})
    for i, d in enumerate(names):
        c = f"C{i}"
        m = [measured.blocks[(d, z)] for z in zs if (d, z) in measured.blocks]
        t = [twin.blocks[(d, z)] for z in zs if (d, z) in twin.blocks]
        zz = [z for z in zs if (d, z) in measured.blocks]
        ax[0, 0].plot(zz, [s.decorrelation for s in m], "o", color=c, label=f"{d}: run")
        ax[0, 0].plot(zz, [s.decorrelation for s in t], "-", color=c, label=f"{d}: twin")
        ax[0, 1].plot(zz, [s.contrast for s in m], "o", color=c)
        ax[0, 1].plot(zz, [s.contrast for s in t], "-", color=c)
        pairs = list(zip(m, t, strict=True))
        ax[1, 1].plot(zz, [b.contrast - a.contrast for a, b in pairs], "s", color=c)
        ax[1, 1].plot(zz, [b.decorrelation - a.decorrelation for a, b in pairs], "^", color=c)
    ax[0, 0].set_title("correlation with the nearest distance", fontsize=9)
    ax[0, 0].set_xlabel("camera distance (mm)")
    ax[0, 0].legend(fontsize=6, ncol=2)
    ax[0, 1].set_title("contrast σ/μ (dots: run, lines: twin)", fontsize=9)
    ax[0, 1].set_xlabel("camera distance (mm)")
    z0 = min(zs)
    for stats, style, label in ((measured, "o", "run"), (twin, "-", "twin")):
        acs = [s.autocov for (d, z), s in stats.blocks.items() if z == z0 and d != stats.empty]
        if acs:
            ac = np.mean(acs, axis=0)
            peak = (4 * ac[1] - ac[2]) / 3
            ax[1, 0].plot(np.arange(1, len(ac)), ac[1:] / peak, style, ms=3, label=label)
    ax[1, 0].axhline(0.5, color="0.6", lw=0.8)
    ax[1, 0].set_title(f"intensity autocovariance at {z0:g} mm (diffusers)", fontsize=9)
    ax[1, 0].set_xlabel("lag (pixels)")
    ax[1, 0].legend(fontsize=7)
    ax[1, 1].axhline(0.0, color="0.6", lw=0.8)
    ax[1, 1].set_title("residuals, twin − run (■ contrast, ▲ correlation)", fontsize=9)
    ax[1, 1].set_xlabel("camera distance (mm)")
    fig.suptitle(f"{title}\n{status}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, "twin report") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)

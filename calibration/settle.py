"""``speckle-lab calibrate settle``: the liquid crystal's response after a new pattern, and its settle time.

Method (docs/calibration.md, "The settle time"). Through the empty slot the window shows gray 0 on
its left half and, on its right half, a gray of phase π/4 (pattern A) or 3π/4 (pattern B), taken
from the rig's LUT (run ``calibrate phase`` first). Between π/4 and 3π/4 the edge intensity
r = a − b·sin²(Δφ/2) (calibration.phase, eq. 1) is monotone in the phase step Δφ and steep at both
ends, so each frame gives Δφ = 2·arcsin(√((a − r)/b)), with a from a flat frame and b from a settled
frame at the π level. After holding one pattern long enough to settle, the other is shown and one
frame is taken at each delay t after the flip (at mid-exposure, t = delay + exposure/2). The
residual share of the step still to go,

    e(t) = (Δφ(t) − Δφ_end) / (Δφ_start − Δφ_end),                                      (3)

is fitted with a dead time t0 and one or two exponentials,

    e(t) = 1 for t < t0;   e(t) = (1 − w)·exp(−(t − t0)/τ1) + w·exp(−(t − t0)/τ2) after,   (4)

the second exponential kept only when it lowers the residual sum of squares significantly (an F test
at p < 0.01). The measured e is fitted as c + s·e(t), so that the start and end levels come from all
frames rather than from the two single settled frames that define eq. (3). Both directions are
measured (A → B: the LC driven to a larger phase; B → A: relaxing); the settle time is the longer
of the two times at which the fitted e(t) falls to 1 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.optimize import OptimizeResult, brentq, least_squares

RESIDUAL = 0.01  # the settle criterion: 1 % of the step left


@dataclass
class DirectionFit:
    name: str  # "rise" (to the larger phase) or "fall"
    t_ms: np.ndarray  # mid-exposure times after the flip
    e: np.ndarray  # measured residual share, eq. (3)
    model: np.ndarray
    dead_ms: float
    tau_ms: tuple[float, ...]  # one or two time constants
    slow_share: float
    settle_ms: float  # e(t) = 1 %
    rms: float
    warnings: list[str] = field(default_factory=list)

    def predict(self, t_ms: np.ndarray) -> np.ndarray:
        return _shape(np.asarray(t_ms, np.float64), self.dead_ms, self.tau_ms, self.slow_share)


def _shape(t: np.ndarray, t0: float, taus: tuple[float, ...], w: float) -> np.ndarray:
    dt = np.maximum(t - t0, 0.0)
    if len(taus) == 1:
        return np.exp(-dt / taus[0])
    return (1.0 - w) * np.exp(-dt / taus[0]) + w * np.exp(-dt / taus[1])


def delays_ms(min_ms: float, max_ms: float, n: int) -> np.ndarray:
    """0, then ``n − 1`` delays spaced geometrically from ``min_ms`` to ``max_ms``."""
    return np.concatenate([[0.0], np.geomspace(min_ms, max_ms, n - 1)])


def phase_steps(r: np.ndarray, a: float, b: float) -> np.ndarray:
    """Δφ from edge ratios (eq. 1 inverted on 0..π)."""
    return 2.0 * np.arcsin(np.sqrt(np.clip((a - r) / max(b, 1e-9), 0.0, 1.0)))


# Every fit also has an offset c and a scale s, e_measured = c + s·e(t): the settled frames that
# define eq. (3) are single noisy frames, so the start and end levels are fitted to all the frames.
_SCALE_BOUNDS = ([-0.2, 0.8], [0.2, 1.2])


def _fit_one(t: np.ndarray, e: np.ndarray) -> OptimizeResult:
    """Eq. (4) with one exponential: params (c, s, t0, τ)."""
    i = int(np.argmax(e < math.exp(-1)))
    tau0 = max(float(t[i]) if i > 0 else float(t[-1]) / 5, 1e-3)
    lo, hi = _SCALE_BOUNDS
    return least_squares(lambda p: p[0] + p[1] * _shape(t, p[2], (p[3],), 0.0) - e, [0.0, 1.0, 0.0, tau0],
                         bounds=(lo + [0.0, 1e-4], hi + [t[-1], 1e6]), x_scale="jac")


def _fit_two(t: np.ndarray, e: np.ndarray, one: OptimizeResult) -> OptimizeResult:
    """Eq. (4) with two exponentials: params (c, s, t0, τ1, τ2/τ1, w)."""
    c, s, t0, tau = one.x
    lo, hi = _SCALE_BOUNDS
    best = None
    for w0, f0 in ((0.2, 4.0), (0.4, 2.5), (0.1, 8.0)):
        sol = least_squares(
            lambda p: p[0] + p[1] * _shape(t, p[2], (p[3], p[3] * p[4]), p[5]) - e,
            [c, s, t0, tau * 0.8, f0, w0],
            bounds=(lo + [0.0, 1e-4, 1.05, 0.0], hi + [t[-1], 1e6, 1e3, 0.95]), x_scale="jac")
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None  # the loop above runs three starts
    return best


def fit_direction(name: str, t_ms: np.ndarray, e: np.ndarray) -> DirectionFit:
    """Fits eq. (4) to one direction's e(t); picks one or two exponentials; finds the 1 % time."""
    t = np.asarray(t_ms, np.float64)
    e = np.asarray(e, np.float64)
    one = _fit_one(t, e)
    two = _fit_two(t, e, one)
    n = len(t)
    rss1, rss2 = 2 * one.cost, 2 * two.cost
    f_stat = ((rss1 - rss2) / 2) / max(rss2 / max(n - 6, 1), 1e-30)
    use_two = n > 8 and rss2 < rss1 and stats.f.sf(f_stat, 2, max(n - 6, 1)) < 0.01 and 0.01 < two.x[5] < 0.95
    if use_two:
        c, s, t0, tau, f, w = two.x
        taus, rss = (float(tau), float(tau * f)), rss2
    else:
        c, s, t0, tau = one.x
        taus, w, rss = (float(tau),), 0.0, rss1
    settle = _one_percent(float(t0), taus, float(w))
    e = (e - c) / s  # on the fitted start and end levels
    model = _shape(t, float(t0), taus, float(w))
    fit = DirectionFit(name, t, e, model, float(t0), taus, float(w), settle,
                       math.sqrt(rss / max(n - (6 if use_two else 4), 1)))
    fit.warnings = _judge(fit)
    return fit


def _one_percent(t0: float, taus: tuple[float, ...], w: float) -> float:
    def g(t: float) -> float:
        return float(_shape(np.array([t]), t0, taus, w)[0]) - RESIDUAL

    hi = t0 + max(taus) * 50
    if not g(t0) > 0 > g(hi):
        return float("nan")
    root = brentq(g, t0, hi)
    assert isinstance(root, float)  # without full_output, brentq returns the root alone
    return root


def _judge(fit: DirectionFit) -> list[str]:
    out = []
    t_max = float(fit.t_ms[-1])
    tail = fit.e[fit.t_ms >= 0.5 * t_max]
    if not math.isfinite(fit.settle_ms) or fit.settle_ms > t_max:
        out.append(f"{fit.name}: the liquid crystal is still moving at the longest delay ({t_max:g} ms); "
                   "measure longer delays (--max-ms)")
    elif tail.size and abs(float(np.median(tail))) > 3 * RESIDUAL:
        out.append(f"{fit.name}: the frames at the longest delays are {100 * float(np.median(tail)):.1f} % "
                   "off the settled pattern: is the beam or the LC temperature drifting?")
    if fit.rms > 0.05:
        out.append(f"{fit.name}: the response fits poorly (rms residual {fit.rms:.3f} of the step)")
    if fit.t_ms[1] > 0.5 * fit.settle_ms:
        out.append(f"{fit.name}: the shortest delays are too long to see the response start; lower --min-ms")
    return out


def write_report_png(fits: list[DirectionFit], settle_ms: float, path: str | Path, title: str) -> None:
    """e(t) for each direction, with the fit, the 1 % line and the residuals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from speckle_core.fileio import atomic_path

    fig, ax = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    for i, f in enumerate(fits):
        t = np.maximum(f.t_ms, 1e-3)
        dense = np.geomspace(max(t.min(), 1e-2), t.max(), 300)
        ax[0].plot(t, f.e, ".", color=f"C{i}", label=f"{f.name}: measured")
        taus = ", ".join(f"{x:.2f}" for x in f.tau_ms)
        ax[0].plot(dense, f.predict(dense), "-", color=f"C{i}",
                   label=f"{f.name}: fit, τ = {taus} ms, 1 % at {f.settle_ms:.1f} ms")
        ax[1].plot(t, f.e - f.model, ".", color=f"C{i}")
    ax[0].axhline(RESIDUAL, color="0.5", lw=0.8, ls="--")
    ax[0].axvline(settle_ms, color="C3", lw=0.8)
    ax[0].set_yscale("symlog", linthresh=0.01)
    ax[0].set_ylabel("share of the phase step still to go")
    ax[0].legend(fontsize=7)
    ax[1].axhline(0.0, color="0.6", lw=0.8)
    ax[1].set_ylabel("residual")
    ax[1].set_xscale("log")
    ax[1].set_xlabel("time after the flip, at mid-exposure (ms)")
    warnings = [w for f in fits for w in f.warnings]
    status = "fit trusted" if not warnings else "FIT NOT TRUSTED: " + warnings[0]
    fig.suptitle(f"{title}: settle_ms = {settle_ms:.1f}\n{status}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, "settle calibration report") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)

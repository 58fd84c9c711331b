"""``speckle-lab calibrate phase``: the SLM's gray → phase curve, measured with the rig's camera.

Method (docs/calibration.md, "The phase curve"). The window shows gray 0 with a band of gray g in
its middle third (0 | g | 0), then the reference gray g_q with the band g (g_q | g | g_q). Through
the empty slot the camera at 0 mm sees the window imaged by the L3–L4 relay, band-limited by its
iris. A straight edge's line-spread function is real and even,
so the field across the edge is E(x) = (1 − s(x)) + s(x)·e^{iφ(g)} with s the edge response
(s = ½ on the edge), and the intensity there, relative to the flat field, is

    r(g) = (1 − s)² + s² + 2s(1 − s)·cos φ(g)  =  a − b·sin²(φ(g)/2)             (1)

(a = 1 and b = 4s(1−s) = 1 on an ideal edge: r = cos²(φ/2)). A band-limited image carries a little
of every other edge to this one (the iris's ringing). With the band between two equal outer bands,
all of that has the outer band's phase, so the field at an edge is still A + c·e^{iφ} with a REAL
A (relative to the outer phase) and eq. (1) holds exactly; with three different grays (0 | g | g_q)
A would be complex and the dip's minimum would move off φ = π by arg A (measured on the simulated
rig: up to 1.4 gray levels at a 64-pixel window). a and b are fitted, so a black level,
stray light or an edge that falls between pixels change neither φ nor the π level. φ(g) is a
monotone curve through φ(0) = 0: a monotone cubic (PCHIP) through knots whose increments are
positive, fitted to r(g) by least squares. The π level is where the fitted φ crosses π; its
uncertainty comes from the fit's covariance (σ_φ at that gray, divided by the slope dφ/dg).

The monotone curve: φ(g) = Σ_k c_k·F_k(g), c_k ≥ 0, where F_k is the running integral of a hat
(a linear B-spline) centred on knot k, scaled to 1 at gray 255. φ′ = Σ c_k·B_k/∫B_k is then a
non-negative piecewise-linear function, so φ is a monotone, continuously differentiable quadratic
spline, linear in the c_k: the least-squares fit has an exact Jacobian, which makes the many
starts it needs cheap (eq. 1 is 2π-periodic, so each branch the data allow is tried).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import OptimizeResult, least_squares

KNOTS = 20  # segments of the monotone phase curve over 0..255 (20 + 1 hats). On noiseless synthetic
#            edges of the sim's curves (π at 95–235, γ 0.8–2, saturation 0–1.5) the π level is then
#            within 0.08 gray levels; 12 PCHIP segments had left up to 0.4, and 9 on a wrong branch.
EDGE_HALF_WIDTH = 1  # columns either side of the edge averaged into r(g)

# scipy leaves least_squares unannotated, so pyright takes the type of ``jac`` from its default
# ("2-point", a str); scipy's documented signature also takes the Jacobian as a callable, as here.
_least_squares: Callable[..., OptimizeResult] = least_squares


@dataclass
class PhaseFit:
    grays: np.ndarray  # measured gray levels
    ratio: np.ndarray  # r(g), measured
    model: np.ndarray  # r(g), fitted
    phase_rad: np.ndarray  # φ(g) for g = 0..255, fitted
    a: float
    b: float
    pi_gray: float  # fractional gray level of φ = π (nan when never reached)
    pi_gray_err: float
    residual_rms: float
    warnings: list[str] = field(default_factory=list)
    ratio2: np.ndarray | None = None  # r at the g | reference edge (eq. 2), measured
    model2: np.ndarray | None = None
    quadrature_gray: float | None = None

    @property
    def trusted(self) -> bool:
        return not self.warnings

    @property
    def pi_level(self) -> int:
        return int(round(self.pi_gray))


def step_pattern(window: tuple[int, int], gray: int, quadrature_gray: int | None = None) -> np.ndarray:
    """A phase-step pattern (uint8): gray 0 | ``gray`` across the window (halves), or, with a
    reference, gray 0 | ``gray`` | ``quadrature_gray`` in thirds (the settle calibration's)."""
    pat = np.zeros(window, np.uint8)
    w = window[1]
    if quadrature_gray is None:
        pat[:, w // 2:] = np.uint8(gray)
    else:
        pat[:, w // 3: 2 * w // 3] = np.uint8(gray)
        pat[:, 2 * w // 3:] = np.uint8(quadrature_gray)
    return pat


def band_pattern(window: tuple[int, int], outer: int, inner: int) -> np.ndarray:
    """outer | inner | outer in thirds (uint8). Both edges see the same two phases, and whatever the
    band-limited image carries over from the other edge (or the window's border) has the outer band's
    phase, so the intensity at an edge depends on φ(inner) − φ(outer) alone (module doc)."""
    pat = np.full(window, np.uint8(outer), np.uint8)
    w = window[1]
    pat[:, w // 3: 2 * w // 3] = np.uint8(inner)
    return pat


def row_profile(image: np.ndarray) -> np.ndarray:
    """Mean of each column over the middle 60 % of rows (away from the window's top and bottom)."""
    h = image.shape[0]
    lo, hi = int(0.2 * h), max(int(0.8 * h), int(0.2 * h) + 1)
    return image[lo:hi].astype(np.float64).mean(axis=0)


def _edge_column(q: np.ndarray, nominal: int, half: int) -> int:
    """The column of the deepest dip over all grays within ``half`` columns of ``nominal``."""
    w = q.shape[1]
    lo, hi = max(nominal - half, 1), min(nominal + half + 1, w - 1)
    deepest = int(np.argmin(q[:, lo:hi].min(axis=1)))
    return lo + int(np.argmin(q[deepest, lo:hi]))


def _at(q: np.ndarray, col: int) -> np.ndarray:
    a, b = max(col - EDGE_HALF_WIDTH, 0), min(col + EDGE_HALF_WIDTH + 1, q.shape[1])
    return q[:, a:b].mean(axis=1)


def edge_ratios(profiles: np.ndarray, flat: np.ndarray, edges: int = 1) -> tuple[np.ndarray, list[int]]:
    """r(g) and the edge columns, from the column profiles of each gray's frame over the flat field.

    One edge (halves): the deepest dip over all grays near the middle column. Two (a band in the
    middle third): the deepest dip near each third, and r is the mean of the two edges' ratios.
    Each edge's ratio is averaged over its column and ``EDGE_HALF_WIDTH`` either side.
    """
    w = flat.size
    q = profiles / np.maximum(flat, 1e-9)[None, :]
    if edges == 1:
        col = _edge_column(q, w // 2, max(w // 8, 2))
        return _at(q, col), [col]
    cols = [_edge_column(q, w // 3, max(w // 10, 2)), _edge_column(q, 2 * w // 3, max(w // 10, 2))]
    return 0.5 * (_at(q, cols[0]) + _at(q, cols[1])), cols


@functools.lru_cache(maxsize=4)
def _basis_table(knots: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, F, B) on a fine gray grid t: F[k] the normalised running integral of hat k, B[k] the hat
    divided by its integral (so φ′ = Σ c_k·B_k)."""
    t = np.linspace(0.0, 255.0, 20 * knots * 25 + 1)  # every knot (a multiple of 255/knots) on the grid
    centres = np.linspace(0.0, 255.0, knots + 1)
    width = 255.0 / knots
    hats = np.clip(1.0 - np.abs(t[None, :] - centres[:, None]) / width, 0.0, None)
    steps = 0.5 * (hats[:, 1:] + hats[:, :-1]) * np.diff(t)[None, :]  # trapezoids: exact for hats
    integral = np.concatenate([np.zeros((knots + 1, 1)), np.cumsum(steps, axis=1)], axis=1)
    total = integral[:, -1:]
    return t, integral / total, hats / total


def phase_basis(g, knots: int = KNOTS, derivative: bool = False) -> np.ndarray:
    """F_k(g) (or B_k(g) with ``derivative``), shape (len(g), knots + 1)."""
    t, big_f, big_b = _basis_table(knots)
    table = big_b if derivative else big_f
    g = np.atleast_1d(np.asarray(g, np.float64))
    return np.stack([np.interp(g, t, row) for row in table], axis=1)


def _softplus(u: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, u)


def _sigmoid(u: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * u))


class _Model:
    """Eq. (1) at the 0 | g | 0 edges, then (with a reference) eq. (2) at the g_q | g | g_q edges, and its
    Jacobian. Parameters: a, b, a′, b′, then u_k with c_k = softplus(u_k) ≥ 0."""

    def __init__(self, g: np.ndarray, g_q: float | None):
        self.g_q = g_q
        self.f = phase_basis(g)
        self.f_q = None if g_q is None else self.f - phase_basis([g_q])

    def __call__(self, p: np.ndarray) -> np.ndarray:
        c = _softplus(p[4:])
        out = p[0] - p[1] * np.sin(self.f @ c / 2.0) ** 2
        if self.f_q is None:
            return out
        return np.concatenate([out, p[2] - p[3] * np.sin(self.f_q @ c / 2.0) ** 2])

    def jac(self, p: np.ndarray) -> np.ndarray:
        c, dc = _softplus(p[4:]), _sigmoid(p[4:])
        phi = self.f @ c
        rows = [self._block(0, p[1], phi, self.f, dc, len(p))]
        if self.f_q is not None:
            rows.append(self._block(2, p[3], self.f_q @ c, self.f_q, dc, len(p)))
        return np.vstack(rows)

    @staticmethod
    def _block(i: int, b: float, phi: np.ndarray, basis: np.ndarray, dc: np.ndarray, n: int) -> np.ndarray:
        j = np.zeros((len(phi), n))
        j[:, i] = 1.0
        j[:, i + 1] = -np.sin(phi / 2.0) ** 2
        j[:, 4:] = (-0.5 * b * np.sin(phi))[:, None] * basis * dc[None, :]  # d sin²(x/2)/dx = sin(x)/2
        return j


def _initial(g: np.ndarray, r: np.ndarray, r2: np.ndarray | None, g_pi: float) -> np.ndarray:
    """Start: a = r(0), b = depth of the dip, φ linear with π at ``g_pi``."""
    a0 = float(np.median(r[g <= g.min() + 3]))
    b0 = max(a0 - float(r.min()), 0.05)
    if r2 is not None:
        a2, b2 = float(r2.max()), max(float(r2.max() - r2.min()), 0.05)
    else:
        a2, b2 = 1.0, 0.5
    c0 = math.pi / max(g_pi, 8.0) * 255.0 / (KNOTS + 1)  # φ linear: the same c_k on every hat
    u0 = math.log(math.expm1(c0)) if c0 < 30 else c0
    return np.array([a0, b0, a2, b2] + [u0] * (KNOTS + 1))


def _pi_candidates(g: np.ndarray, r: np.ndarray) -> list[float]:
    """Grays where the 0 | g edge dips (local minima of r, 3-point smoothed, at least half as deep as
    the deepest): φ is an odd multiple of π at each, so each is a start with π there or, if the
    phase passes 3π within the range, at a third of the gray (eq. 1 is 2π-periodic in φ)."""
    rs = np.convolve(np.pad(r, 1, mode="edge"), np.ones(3) / 3.0, mode="valid")
    top = float(np.median(rs[: max(len(rs) // 16, 2)]))
    depth = top - float(rs.min())
    inner = (rs[1:-1] <= rs[:-2]) & (rs[1:-1] <= rs[2:]) & (top - rs[1:-1] >= 0.5 * depth)
    minima = [float(x) for x in g[1:-1][inner]] or [float(g[int(np.argmin(rs))])]
    return sorted({round(m, 1) for m in minima} | {round(m / 3.0, 1) for m in minima})


def fit_phase(g: np.ndarray, r: np.ndarray, r2: np.ndarray | None = None,
              g_q: float | None = None) -> PhaseFit:
    """Fits eq. (1) (and eq. (2) with a quadrature reference) to the edge ratios; returns the curve,
    the π level and its uncertainty, and any warnings."""
    g = np.asarray(g, np.float64)
    data = np.asarray(r, np.float64)
    if r2 is not None:
        data = np.concatenate([data, np.asarray(r2, np.float64)])
    r1_arr, r2_arr = np.asarray(r, np.float64), None if r2 is None else np.asarray(r2, np.float64)
    lo = np.r_[-np.inf, 0.0, -np.inf, 0.0, np.full(KNOTS + 1, -20.0)]
    hi = np.r_[np.inf, 2.0, np.inf, 2.0, np.full(KNOTS + 1, 10.0)]
    model = _Model(g, g_q)

    def resid(p: np.ndarray) -> np.ndarray:
        return model(p) - data

    best: OptimizeResult | None = None
    for g_pi in _pi_candidates(g, r1_arr):  # eq. (1) is periodic: start on each branch it allows
        for shift in (0.0, -0.7, 0.5):  # other starts guard against the mirror solution 2π − φ
            start = _initial(g, r1_arr, r2_arr, g_pi)
            start[4:] += shift
            sol = _least_squares(resid, np.clip(start, lo + 1e-9, hi - 1e-9), jac=model.jac, bounds=(lo, hi),
                                 x_scale="jac")
            if best is None or sol.cost < best.cost:
                best = sol
    assert best is not None
    p = best.x
    if r2 is None:  # the reference edge's parameters are not used: keep them out of the covariance
        jac = best.jac[:, [0, 1] + list(range(4, len(p)))]
        free = np.r_[0, 1, 4:len(p)]
    else:
        jac, free = best.jac, np.arange(len(p))
    c = _softplus(p[4:])
    phase = phase_basis(np.arange(256, dtype=np.float64)) @ c
    n = len(g)
    dof = max(len(data) - len(free), 1)
    sigma2 = float(best.fun @ best.fun) / dof
    pi_gray, pi_err = _pi_level(p, free, phase, jac, sigma2)
    fit = PhaseFit(g, np.asarray(r, np.float64), data[:n] + best.fun[:n], phase, float(p[0]), float(p[1]),
                   pi_gray, pi_err, math.sqrt(sigma2))
    if r2 is not None:
        fit.ratio2, fit.model2, fit.quadrature_gray = data[n:], data[n:] + best.fun[n:], g_q
    fit.warnings = _judge(fit)
    return fit


def _pi_level(p: np.ndarray, free: np.ndarray, phase: np.ndarray, jac: np.ndarray,
              sigma2: float) -> tuple[float, float]:
    if phase[-1] < math.pi:
        return float("nan"), float("nan")
    g_pi = float(np.interp(math.pi, phase, np.arange(256.0)))
    cov = np.linalg.pinv(jac.T @ jac) * sigma2
    dc = _sigmoid(p[4:])
    grad = np.zeros(len(free))
    at_pi = phase_basis([g_pi])[0] * dc  # ∂φ(g_π)/∂u_k = F_k(g_π)·c_k′ (a, b do not enter)
    for j, i in enumerate(free):
        if i >= 4:
            grad[j] = at_pi[i - 4]
    sigma_phi = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    slope = float(phase_basis([g_pi], derivative=True)[0] @ _softplus(p[4:]))
    return g_pi, sigma_phi / slope if slope > 0 else float("inf")


def _judge(fit: PhaseFit) -> list[str]:
    """Plain reasons not to trust the fit (empty: trusted)."""
    out = []
    if not math.isfinite(fit.pi_gray):
        out.append("the phase never reaches π within gray 0..255: is the SLM in half-wave stroke mode, "
                   "or the laser's wavelength longer than the stroke is made for?")
    if fit.b < 0.3:
        out.append(f"the edge's dip is shallow (depth b = {fit.b:.2f}, ideally 1): the edge is not "
                   "resolved; is the camera at the image plane (distance 0) and the empty slot in?")
    if fit.b > 0 and fit.residual_rms > 0.05 * fit.b:
        out.append(f"the curve fits poorly (rms residual {fit.residual_rms:.3f} against a dip of "
                   f"{fit.b:.3f}): frames may be unsettled or the beam unsteady")
    if math.isfinite(fit.pi_gray) and not fit.pi_gray_err < 2.0:
        out.append(f"the π level is uncertain by ±{fit.pi_gray_err:.1f} gray levels; average more "
                   "frames (--average) or measure every gray level (--step 1)")
    if math.isfinite(fit.pi_gray) and int(fit.grays[-1]) - fit.pi_gray < 4:
        out.append("π lies at the end of the measured range: the π level cannot be bracketed")
    return out


def lut_csv_text(fit: PhaseFit, header: list[str]) -> str:
    """The LUT file the rig takes (``lut_file``): 256 rows ``gray,phase_rad`` (hardware/lut.py)."""
    lines = [f"# {h}" for h in header] + ["gray,phase_rad"]
    lines += [f"{g},{fit.phase_rad[g]:.6f}" for g in range(256)]
    return "\n".join(lines) + "\n"


def write_report_png(fit: PhaseFit, path: str | Path, title: str) -> None:
    """Data and fitted r(g), the phase curve with the π level, and the residuals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibration.common import fmt_pm
    from speckle_core.fileio import atomic_path

    fig, ax = plt.subplots(3, 1, figsize=(7, 8.5), sharex=True,
                           gridspec_kw={"height_ratios": [3, 3, 1.4]})
    ax[0].plot(fit.grays, fit.ratio, ".", ms=3, label="0 | g | 0 edges (over the flat frame)")
    ax[0].plot(fit.grays, fit.model, "-", lw=1.2, label="fit: a − b·sin²(φ/2)")
    if fit.ratio2 is not None:
        ref = fit.quadrature_gray
        ax[0].plot(fit.grays, fit.ratio2, ".", ms=3, label=f"{ref} | g | {ref} edges")
        ax[0].plot(fit.grays, fit.model2, "-", lw=1.2, label="fit: a′ − b′·sin²((φ − φ_ref)/2)")
    ax[0].set_ylabel("edge intensity r(g)")
    ax[0].legend(loc="best", fontsize=8)
    ax[1].plot(np.arange(256), fit.phase_rad / math.pi, "-", color="C2")
    ax[1].axhline(1.0, color="0.6", lw=0.8)
    if math.isfinite(fit.pi_gray):
        ax[1].axvline(fit.pi_gray, color="C3", lw=0.8)
        ax[1].set_title(f"π at gray {fmt_pm(fit.pi_gray, fit.pi_gray_err)}", fontsize=9)
    ax[1].set_ylabel("φ(g) / π")
    ax[2].plot(fit.grays, fit.ratio - fit.model, ".", ms=3, color="C0")
    if fit.ratio2 is not None:
        ax[2].plot(fit.grays, fit.ratio2 - fit.model2, ".", ms=3, color="C2")
    ax[2].axhline(0.0, color="0.6", lw=0.8)
    ax[2].set_ylabel("residual")
    ax[2].set_xlabel("gray level g (window in thirds: 0 | g | 0, and reference | g | reference)")
    status = "fit trusted" if fit.trusted else "FIT NOT TRUSTED: " + fit.warnings[0]
    fig.suptitle(f"{title}\n{status}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, "phase calibration report") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)

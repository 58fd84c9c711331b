"""``speckle-lab calibrate phase``: the SLM's gray → phase curve, measured with the rig's camera.

Method (docs/calibration.md, "The phase curve"). The window shows gray 0 on its left half and gray
g on its right half. Through the empty slot the camera at 0 mm sees the window imaged by the
L3–L4 relay, band-limited by its iris. A straight edge's line-spread function is real and even,
so the field across the edge is E(x) = (1 − s(x)) + s(x)·e^{iφ(g)} with s the edge response
(s = ½ on the edge), and the intensity there, relative to the flat field, is

    r(g) = (1 − s)² + s² + 2s(1 − s)·cos φ(g)  =  a − b·sin²(φ(g)/2)             (1)

(a = 1 and b = 4s(1−s) = 1 on an ideal edge: r = cos²(φ/2)). a and b are fitted, so a black level,
stray light or an edge that falls between pixels change neither φ nor the π level. φ(g) is a
monotone curve through φ(0) = 0: a monotone cubic (PCHIP) through knots whose increments are
positive, fitted to r(g) by least squares. The π level is where the fitted φ crosses π; its
uncertainty comes from the fit's covariance (σ_φ at that gray, divided by the slope dφ/dg).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import least_squares

KNOTS = 12  # segments of the monotone phase curve over 0..255
EDGE_HALF_WIDTH = 1  # columns either side of the edge averaged into r(g)


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
    """The calibration pattern (uint8): gray 0 | ``gray`` across the window, or, with a quadrature
    reference, gray 0 | ``gray`` | ``quadrature_gray`` in thirds."""
    pat = np.zeros(window, np.uint8)
    w = window[1]
    if quadrature_gray is None:
        pat[:, w // 2:] = np.uint8(gray)
    else:
        pat[:, w // 3: 2 * w // 3] = np.uint8(gray)
        pat[:, 2 * w // 3:] = np.uint8(quadrature_gray)
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


def edge_ratios(profiles: np.ndarray, flat: np.ndarray, edges: int = 1) -> tuple[list[np.ndarray], list[int]]:
    """r(g) at each edge and the edge columns, from the column profiles of each gray's frame.

    Each edge is the deepest dip over all grays near its nominal column (the window is imaged 1:1,
    upright or mirrored); r is the profile over the flat field, averaged over the edge column and
    ``EDGE_HALF_WIDTH`` either side. With two edges (thirds), the 0 | g edge is told from the
    g | reference edge by the first frame (g = 0): only the reference edge shows a dip there.
    """
    w = flat.size
    q = profiles / np.maximum(flat, 1e-9)[None, :]
    if edges == 1:
        col = _edge_column(q, w // 2, max(w // 8, 2))
        return [_at(q, col)], [col]
    cols = [_edge_column(q, w // 3, max(w // 10, 2)), _edge_column(q, 2 * w // 3, max(w // 10, 2))]
    r = [_at(q, c) for c in cols]
    if r[0][0] < r[1][0]:  # the first frame (g = 0) dips at the reference edge: mirrored image
        r, cols = r[::-1], cols[::-1]
    return r, cols


def _phase_curve(params: np.ndarray) -> PchipInterpolator:
    incr = np.logaddexp(0.0, params)  # softplus: positive increments keep φ monotone
    knots = np.linspace(0.0, 255.0, KNOTS + 1)
    return PchipInterpolator(knots, np.concatenate([[0.0], np.cumsum(incr)]))


def _model(p: np.ndarray, g: np.ndarray, g_q: float | None) -> np.ndarray:
    """Eq. (1) at the 0 | g edge, then (with a reference) eq. (2) at the g | g_q edge."""
    curve = _phase_curve(p[4:])
    phi = curve(g)
    out = p[0] - p[1] * np.sin(phi / 2.0) ** 2
    if g_q is None:
        return out
    return np.concatenate([out, p[2] - p[3] * np.sin((phi - curve(g_q)) / 2.0) ** 2])


def _initial(g: np.ndarray, r: np.ndarray, r2: np.ndarray | None) -> np.ndarray:
    """Start: a = r(0), b = depth of the dip, φ linear with π at the deepest point."""
    a0 = float(np.median(r[g <= g.min() + 3]))
    g_min = float(g[int(np.argmin(r))])
    b0 = max(a0 - float(r.min()), 0.05)
    if r2 is not None:
        a2, b2 = float(r2.max()), max(float(r2.max() - r2.min()), 0.05)
    else:
        a2, b2 = 1.0, 0.5
    slope = math.pi / max(g_min, 8.0)
    incr = slope * 255.0 / KNOTS
    u0 = math.log(math.expm1(incr)) if incr < 30 else incr
    return np.array([a0, b0, a2, b2] + [u0] * KNOTS)


def fit_phase(g: np.ndarray, r: np.ndarray, r2: np.ndarray | None = None,
              g_q: float | None = None) -> PhaseFit:
    """Fits eq. (1) (and eq. (2) with a quadrature reference) to the edge ratios; returns the curve,
    the π level and its uncertainty, and any warnings."""
    g = np.asarray(g, np.float64)
    data = np.asarray(r, np.float64)
    if r2 is not None:
        data = np.concatenate([data, np.asarray(r2, np.float64)])
    p0 = _initial(g, np.asarray(r, np.float64), None if r2 is None else np.asarray(r2, np.float64))
    lo = np.r_[-np.inf, 0.0, -np.inf, 0.0, np.full(KNOTS, -20.0)]
    hi = np.r_[np.inf, 2.0, np.inf, 2.0, np.full(KNOTS, 10.0)]

    def resid(p):
        return _model(p, g, g_q) - data

    best = None
    for shift in (0.0, -0.7, 0.5):  # other starts guard against the mirror solution 2π − φ
        start = p0.copy()
        start[4:] += shift
        sol = least_squares(resid, np.clip(start, lo + 1e-9, hi - 1e-9), bounds=(lo, hi), x_scale="jac")
        if best is None or sol.cost < best.cost:
            best = sol
    p = best.x
    if r2 is None:  # the reference edge's parameters are not used: keep them out of the covariance
        jac = best.jac[:, [0, 1] + list(range(4, len(p)))]
        free = np.r_[0, 1, 4:len(p)]
    else:
        jac, free = best.jac, np.arange(len(p))
    curve = _phase_curve(p[4:])
    phase = curve(np.arange(256, dtype=np.float64))
    n = len(g)
    dof = max(len(data) - len(free), 1)
    sigma2 = float(best.fun @ best.fun) / dof
    pi_gray, pi_err = _pi_level(p, free, curve, phase, jac, sigma2)
    fit = PhaseFit(g, np.asarray(r, np.float64), data[:n] + best.fun[:n], phase, float(p[0]), float(p[1]),
                   pi_gray, pi_err, math.sqrt(sigma2))
    if r2 is not None:
        fit.ratio2, fit.model2, fit.quadrature_gray = data[n:], data[n:] + best.fun[n:], g_q
    fit.warnings = _judge(fit)
    return fit


def _pi_level(p, free, curve, phase, jac, sigma2) -> tuple[float, float]:
    if phase[-1] < math.pi:
        return float("nan"), float("nan")
    g_pi = float(np.interp(math.pi, phase, np.arange(256.0)))
    cov = np.linalg.pinv(jac.T @ jac) * sigma2
    grad = np.zeros(len(free))
    for j, i in enumerate(free):  # ∂φ(g_π)/∂p_i by finite differences (a, b do not enter)
        if i < 4:
            continue
        dp = p.copy()
        dp[i] += 1e-6
        grad[j] = (float(_phase_curve(dp[4:])(g_pi)) - float(curve(g_pi))) / 1e-6
    sigma_phi = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    slope = float(curve.derivative()(g_pi))
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


def write_report_png(fit: PhaseFit, path, title: str) -> None:
    """Data and fitted r(g), the phase curve with the π level, and the residuals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from calibration.common import fmt_pm
    from speckle_core.fileio import atomic_path

    fig, ax = plt.subplots(3, 1, figsize=(7, 8.5), sharex=True,
                           gridspec_kw={"height_ratios": [3, 3, 1.4]})
    ax[0].plot(fit.grays, fit.ratio, ".", ms=3, label="measured edge / flat")
    ax[0].plot(fit.grays, fit.model, "-", lw=1.2, label="fit: a − b·sin²(φ/2)")
    if fit.ratio2 is not None:
        ax[0].plot(fit.grays, fit.ratio2, ".", ms=3, label=f"g | {fit.quadrature_gray} edge")
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
    ax[2].set_xlabel("gray level g (window: 0 | g | reference, in thirds)")
    status = "fit trusted" if fit.trusted else "FIT NOT TRUSTED: " + fit.warnings[0]
    fig.suptitle(f"{title}\n{status}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, "phase calibration report") as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)

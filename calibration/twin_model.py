"""The thin Gaussian phase screen seen through the iris: how much scattered light passes it.

A diffuser is a thin phase screen φ(x) of rms σφ whose correlation is σφ²·exp(−r²/w²)
(hardware/sim/diffuser.py). Its transmitted field has the autocorrelation

    Γ(r) = exp(−σφ²·(1 − exp(−r²/w²))) = e^{−σφ²} · Σ_{n≥0} σφ^{2n}/n! · exp(−n·r²/w²)        (6)

(Goodman, "Speckle Phenomena in Optics", §4.5; Beckmann & Spizzichino). The n = 0 term is the
unscattered share α = e^{−σφ²}; the n-th term is a Gaussian halo whose angular spectrum is
(π·w²/n)·exp(−π²·w²·ν²/n), ν the spatial frequency. An iris of cut-off ν_c = NA/λ passes the share

    S_n = 1 − exp(−π²·w²·NA²/(n·λ²))

of the n-th term, so the scattered light that reaches the camera, as a share of all the light, is

    g(σφ, w, NA) = e^{−σφ²} · Σ_{n≥1} σφ^{2n}/n! · S_n                                          (7)

For a weak diffuser (σφ ≲ 1) the n = 1 term dominates: g ≈ α·σφ²·(1 − exp(−π²w²NA²/λ²)), so the
halo is λ/(√2·π·w) wide whatever σφ, and what passes grows as w²·NA² while the halo is wider than
the iris. For a strong one (σφ ≫ 1) the terms near n = σφ² dominate and the halo's rms angle per
axis is the geometric θ0 = λσφ/(√2·π·w) = √2·(n_g − 1)·σh/w (hardware/sim/diffuser.py).

The correlation length is therefore identified by g only through the product w·NA and together
with σφ: the grain size is the NA's (λ/(2·NA)), not the diffuser's. ``calibrate twin`` measures g
as the diffuser's level over the empty slot's minus the regression's α, and inverts eq. (7) for w
(calibration/twin.py); the simulation corrects what eq. (7) leaves out (the object's own spectrum,
the iris's soft edge, the screen's sampling, the finite window).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

W_MIN_UM, W_MAX_UM = 0.2, 500.0  # the correlation lengths the inversion searches


def halo_weights(sigma_phi: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, e^{−σφ²}·σφ^{2n}/n!) for n ≥ 1, up to where the Poisson tail is below 1e-12."""
    s2 = sigma_phi * sigma_phi
    n_max = int(s2 + 12.0 * math.sqrt(s2) + 30.0)
    n = np.arange(1, n_max + 1, dtype=float)
    if s2 <= 0:
        return n, np.zeros_like(n)
    return n, np.exp(-s2 + n * math.log(s2) - gammaln(n + 1.0))


def scattered_through_iris(sigma_phi: float, w_um: float, na: float, wavelength_um: float) -> float:
    """g of eq. (7): the scattered light the iris passes, as a share of all the light."""
    n, p = halo_weights(sigma_phi)
    x = (math.pi * w_um * na / wavelength_um) ** 2
    return float(np.sum(p * -np.expm1(-x / n)))


def corr_length_for(g: float, sigma_phi: float, na: float, wavelength_um: float) -> float:
    """The w (µm) at which eq. (7) gives ``g``; nan when no w in [W_MIN_UM, W_MAX_UM] does (a g at or
    above all the scattered light, 1 − α, or at or below what the widest halo lets through)."""
    from scipy.optimize import brentq

    def f(log_w: float) -> float:
        return scattered_through_iris(sigma_phi, math.exp(log_w), na, wavelength_um) - g

    lo, hi = math.log(W_MIN_UM), math.log(W_MAX_UM)
    if not (math.isfinite(g) and f(lo) < 0 < f(hi)):
        return math.nan
    log_w = brentq(f, lo, hi, xtol=1e-6)
    assert isinstance(log_w, float)  # without full_output, brentq returns the root alone
    return math.exp(log_w)

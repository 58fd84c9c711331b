"""The simulated SLM's own response: its gray → phase curve and its liquid-crystal settling.

Both are HIDDEN parameters of the simulated rig (``[sim.slm]``): the rig's LUT (``lut_file`` or
``lut_gray_2pi``) is what the user believes, these are what the simulated glass does, and
``speckle-lab calibrate phase`` / ``calibrate settle`` measure them with the simulated camera, as
they would on a real EXULUS-HD2 (docs/calibration.md).

Gray → phase (``phase_curve = "nonlinear"``; the default ``"lut"`` keeps the rig's LUT as the truth):

    s(x)  = (1 − exp(−c·x^γ)) / (1 − exp(−c)),  x = g/255         a smooth S-shaped, monotone curve:
                                                                    γ > 1 is the threshold region,
                                                                    c > 0 the saturation of the LC
    φ(g)  = π · s(g/255) / s(g_π/255) · k(λ) · m                    g_π = ``pi_gray`` at λ0, full wave
    k(λ)  = (λ0/λ) · (1 + B/λ²) / (1 + B/λ0²)                       retardance 2πΔn(λ)d/λ with a
                                                                    Cauchy birefringence Δn ∝ 1 + B/λ²
    m     = 1 (full-wave stroke), 1/2 (half-wave)

Settling (``rise_ms``, ``fall_ms`` > 0). At a flip at time t_f each pixel starts from the phase it
has then, φ_s (so a flip before the last one settled starts from the blend), and relaxes towards
its new phase φ_n:

    φ(t) = φ_n + (φ_s − φ_n) · R(t − t_f),   R(t) = (1 − a)·exp(−t/τ) + a·exp(−t/(f·τ))

with τ = ``rise_ms`` where the phase grows (the field drives the molecules) and ``fall_ms`` where it
falls (they relax, usually slower), a = ``slow_share`` and f = ``slow_factor``: one or two time
constants, the usual description of a nematic cell's switching (e.g. Wu & Yang, "Fundamentals of
liquid crystal devices", ch. 4: the decay time ∝ γ1·d²/(K·π²)). Time is the rig's clock
(hardware/clock.py), virtual in the simulation, so a frame taken a given delay after a flip is
the same on every run. The older ``slm_response_ms`` (a linear ramp over that time) still works
when no time constant is set.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from speckle_core.config import StrictModel

SETTLED_RESIDUAL = 1e-6  # R(t) below this: the phase is within 1e-6 of the step of its target


class SlmResponseSpec(StrictModel):
    """``[sim.slm]``: what the simulated SLM's glass really does (hidden from the rig's LUT)."""

    # "lut": the rig's LUT is exact (the default: nothing to calibrate). "nonlinear": the curve below.
    phase_curve: Literal["lut", "nonlinear"] = "lut"
    # ASSUMED defaults, shaped like a measured EXULUS-HD2 full-wave curve (π a little past mid-range,
    # slow start, slight saturation); a calibration must find them, so no default is special.
    pi_gray: float = Field(
        default=138.0, gt=2, lt=253)  # gray level giving π at reference_wavelength_nm, full wave
    gamma: float = Field(default=1.3, ge=0.5, le=3.0)  # threshold curvature of s(x)
    saturation: float = Field(default=0.8, ge=0.0, le=5.0)  # c: how much the curve flattens at high gray
    reference_wavelength_nm: float = Field(default=632.8, gt=300, lt=2000)  # where pi_gray holds
    cauchy_b_um2: float = Field(default=0.03, ge=0.0, le=1.0)  # ASSUMED Cauchy B of the LC birefringence
    # Settling: time constants of the phase's approach to its new value (0 = instantaneous).
    rise_ms: float = Field(default=0.0, ge=0.0, le=5000.0)
    fall_ms: float = Field(default=0.0, ge=0.0, le=5000.0)
    slow_share: float = Field(default=0.0, ge=0.0, le=0.9)  # a: weight of the slower exponential
    slow_factor: float = Field(default=4.0, ge=1.0, le=100.0)  # f: its time constant, × rise_ms / fall_ms

    @model_validator(mode="after")
    def _check(self) -> SlmResponseSpec:
        if (self.rise_ms > 0) != (self.fall_ms > 0):
            raise ValueError("rise_ms and fall_ms must both be 0 (no settling) or both > 0")
        return self

    @property
    def settles(self) -> bool:
        return self.rise_ms > 0


def _shape(x: np.ndarray | float, gamma: float, c: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    xg = np.power(np.clip(x, 0.0, None), gamma)
    if c < 1e-9:
        return xg
    return -np.expm1(-c * xg) / -math.expm1(-c)


def wavelength_factor(spec: SlmResponseSpec, wavelength_nm: float) -> float:
    """k(λ): retardance at λ relative to the reference wavelength (Cauchy birefringence)."""
    lam, lam0 = wavelength_nm / 1000.0, spec.reference_wavelength_nm / 1000.0
    b = spec.cauchy_b_um2
    return (lam0 / lam) * (1.0 + b / lam**2) / (1.0 + b / lam0**2)


def true_phase_curve(spec: SlmResponseSpec, wavelength_nm: float, stroke_mode: str) -> np.ndarray:
    """φ(g) for g = 0..255 (radians, float64): the simulated SLM's real response."""
    g = np.arange(256, dtype=np.float64) / 255.0
    s = _shape(g, spec.gamma, spec.saturation) / float(_shape(spec.pi_gray / 255.0, spec.gamma,
                                                                spec.saturation))
    stroke = 0.5 if stroke_mode == "half-wave" else 1.0
    return np.pi * s * wavelength_factor(spec, wavelength_nm) * stroke


def true_pi_gray(spec: SlmResponseSpec, wavelength_nm: float, stroke_mode: str) -> float:
    """The (fractional) gray level where the true curve reaches π; nan when it never does."""
    phase = true_phase_curve(spec, wavelength_nm, stroke_mode)
    if phase[-1] < np.pi:
        return float("nan")
    return float(np.interp(np.pi, phase, np.arange(256.0)))


class LiquidCrystal:
    """The phase across the SLM window as a function of time since the last flips."""

    def __init__(self, curve_rad: np.ndarray, spec: SlmResponseSpec, ramp_ms: float, window: tuple[int, int]):
        self.curve = np.asarray(curve_rad, dtype=np.float32)
        self.spec = spec
        self.ramp_s = ramp_ms / 1000.0  # the older linear ramp (SimConfig.slm_response_ms)
        self.gray = np.zeros(window, np.uint8)
        self.flip_s = -math.inf
        self._start: np.ndarray | None = None  # phase at the last flip; None: settled at that flip

    @property
    def dynamic(self) -> bool:
        return self.spec.settles or self.ramp_s > 0

    def residual(self, dt_s: float, rising: bool) -> float:
        """R(dt): the share of a step still to go after ``dt_s`` seconds."""
        if dt_s < 0:
            return 1.0
        if not self.spec.settles:
            return max(0.0, 1.0 - dt_s / self.ramp_s) if self.ramp_s > 0 else 0.0
        tau = (self.spec.rise_ms if rising else self.spec.fall_ms) / 1000.0
        a, f = self.spec.slow_share, self.spec.slow_factor
        return (1.0 - a) * math.exp(-dt_s / tau) + a * math.exp(-dt_s / (f * tau))

    def settled(self, now_s: float) -> bool:
        if self._start is None or not self.dynamic:
            return True
        dt = now_s - self.flip_s
        return max(self.residual(dt, True), self.residual(dt, False)) <= SETTLED_RESIDUAL

    def phase(self, now_s: float) -> np.ndarray:
        """The phase of every window pixel at ``now_s`` (float32 radians)."""
        target = self.curve[self.gray]
        if self.settled(now_s):
            return target
        dt = now_s - self.flip_s
        start = self._start
        assert start is not None  # not settled: a flip recorded where it started from
        if not self.spec.settles:  # linear ramp, the same both ways
            return start + np.float32(1.0 - self.residual(dt, True)) * (target - start)
        r_up, r_down = np.float32(self.residual(dt, True)), np.float32(self.residual(dt, False))
        step = start - target
        return target + step * np.where(target > start, r_up, r_down)

    def flip(self, gray: np.ndarray, now_s: float) -> None:
        """A new pattern from ``now_s``: each pixel starts from the phase it has at that moment."""
        if self.dynamic:
            settled = self.settled(now_s)
            self._start = None if settled and np.array_equal(gray, self.gray) else self.phase(now_s)
        self.gray = gray
        self.flip_s = now_s

"""The SLM phase look-up table: gray level ↔ phase retardance at the working wavelength.

The same table drives the real display and the simulated SLM (docs/design.md, "The simulated rig", step 1).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError

TWO_PI = 2.0 * np.pi


@dataclass(frozen=True)
class PhaseLUT:
    """``phase_rad[g]`` is the phase (radians) the SLM imparts at gray level g (0..255)."""

    phase_rad: np.ndarray

    @classmethod
    def linear(cls, gray_2pi: float = 256.0) -> PhaseLUT:
        """A linear LUT reaching 2π at ``gray_2pi``.

        EXULUS-HD2 full-wave mode: 2π over the 256 gray levels at 633 nm (Thorlabs EXULUS
        manual), so phase = 2π·g/256. Half-wave mode gives π over 256 levels: gray_2pi = 512.
        """
        if not gray_2pi > 0:
            raise ValueError(f"gray_2pi must be > 0 (got {gray_2pi})")
        g = np.arange(256, dtype=np.float64)
        return cls(TWO_PI * g / gray_2pi)

    @classmethod
    def from_csv(cls, path: str | Path) -> PhaseLUT:
        """A measured LUT: 256 rows of ``gray,phase_rad`` (a header row is allowed)."""
        p = Path(path)
        try:
            with p.open(newline="") as f:
                rows = [r for r in csv.reader(f) if r and not r[0].strip().startswith("#")]
        except OSError as e:
            raise UserError(f"{p}: cannot read LUT file ({e.strerror or e})") from None
        if rows and not rows[0][0].strip().lstrip("-").replace(".", "", 1).isdigit():
            rows = rows[1:]
        try:
            table = {int(r[0]): float(r[1]) for r in rows}
        except (ValueError, IndexError):
            raise UserError(f"{p}: each LUT row must be 'gray,phase_rad'") from None
        if sorted(table) != list(range(256)):
            raise UserError(f"{p}: LUT must list every gray level 0..255 exactly once")
        phase = np.array([table[g] for g in range(256)])
        if not np.all(np.isfinite(phase)):
            raise UserError(f"{p}: LUT phases must be finite numbers")
        return cls(phase)

    def phase_of(self, gray: np.ndarray) -> np.ndarray:
        """Phase in radians for an array of uint8 gray levels."""
        return self.phase_rad[np.asarray(gray, dtype=np.uint8)]

    def gray_for_phase(self, phase_rad: float) -> int:
        """The gray level whose phase is nearest ``phase_rad`` (modulo 2π)."""
        d = np.angle(np.exp(1j * (self.phase_rad - phase_rad)))
        return int(np.argmin(np.abs(d)))

    @property
    def gray_pi(self) -> int:
        """The gray level giving a π phase step: the '1' of a binary object."""
        return self.gray_for_phase(np.pi)

    def binary_to_gray(self, pattern01: np.ndarray, gray_pi: int | None = None) -> np.ndarray:
        """A binary object (0/1) as SLM gray levels: 0 → gray 0, 1 → the π level."""
        level = self.gray_pi if gray_pi is None else int(gray_pi)
        return np.where(np.asarray(pattern01) > 0, np.uint8(level), np.uint8(0)).astype(np.uint8)

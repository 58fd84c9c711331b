"""Ground-glass diffusers as thin Gaussian-correlated phase screens (field chain step 3).

A screen is a sample of a stationary Gaussian random field: white noise filtered by a Gaussian
spectrum, so that the surface-height correlation is σ_h²·exp(−r²/w²). The phase it imparts is
φ = 2π(n−1)h/λ (thin-element approximation). Each screen is fixed by the rig seed and the
diffuser's name, as a physical diffuser is: generated on a fixed extent around the illuminated
window, never from a running random generator.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import scipy.fft as sfft

from hardware.sim.config import DiffuserSpec


def seed_sequence(*parts: object) -> np.random.SeedSequence:
    """A SeedSequence from a hash of ``parts`` (their repr): stable across processes and runs."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).digest()
    return np.random.SeedSequence([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)])


def phase_rms_rad(spec: DiffuserSpec, wavelength_um: float, glass_index: float) -> float:
    """σφ = 2π(n−1)σ_h/λ: the rms phase of the screen."""
    return 2.0 * math.pi * (glass_index - 1.0) * spec.rms_height_um / wavelength_um


def scatter_angle_rad(spec: DiffuserSpec, glass_index: float) -> float:
    """θ0, the rms scattering angle per axis in the strong-scattering (geometric) limit.

    The phase gradient has per-axis variance −C''(0) = 2σφ²/w² for C(r) = σφ²·exp(−r²/w²), so the
    rms deflection is θ0 = (λ/2π)·√2·σφ/w = √2·(n−1)·σ_h/w. This is the θ0 ≈ e/(√2·w) of
    docs/design.md, "The simulated rig", with e = 2(n−1)σ_h, the optical-path excursion between −1σ
    and +1σ of the surface.
    """
    return math.sqrt(2.0) * (glass_index - 1.0) * spec.rms_height_um / spec.corr_length_um


def ballistic_fraction(spec: DiffuserSpec, wavelength_um: float, glass_index: float) -> float:
    """Share of the light left unscattered, |⟨e^{iφ}⟩|² = exp(−σφ²) for a Gaussian phase."""
    return math.exp(-phase_rms_rad(spec, wavelength_um, glass_index) ** 2)


def phase_screen(shape: tuple[int, int], dx_um: float, spec: DiffuserSpec, wavelength_um: float,
                 glass_index: float, seed: int, name: str) -> np.ndarray:
    """The diffuser's phase (radians, float64) on a grid of ``shape`` samples ``dx_um`` apart.

    Generated with a margin of 3 correlation lengths, then cropped, so the screen is not periodic
    over the grid. The same (seed, name, shape, dx) always gives the same screen.
    """
    margin = int(math.ceil(3.0 * spec.corr_length_um / dx_um))
    big = (shape[0] + 2 * margin, shape[1] + 2 * margin)
    rng = np.random.Generator(np.random.PCG64(seed_sequence("diffuser-screen", seed, name, False)))
    white = rng.standard_normal(big)
    # A Gaussian filter with spectrum exp(−π²w²ν²/2) makes the correlation exp(−r²/w²).
    fy = sfft.fftfreq(big[0], d=dx_um)[:, None]
    fx = sfft.rfftfreq(big[1], d=dx_um)[None, :]
    filt = np.exp(-0.5 * (math.pi * spec.corr_length_um) ** 2 * (fy**2 + fx**2))
    field = np.asarray(sfft.irfft2(np.asarray(sfft.rfft2(white)) * filt, s=big))  # scipy.fft's stubs: tuple
    field = field[margin:margin + shape[0], margin:margin + shape[1]]
    field /= field.std()
    return field * phase_rms_rad(spec, wavelength_um, glass_index)

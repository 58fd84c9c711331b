"""Parameters of the simulated rig: the ``[sim]`` table of a rig file.

Every physical constant of the model is stated here once, with its source; docs/simulation.md
gives what each implies (speckle grain in pixels, share of light in the camera window, exposure).
Geometry that the rig file already holds elsewhere is read from there: the SLM window
(``[slm].window_px``), the LUT, the camera pixel pitch, sensor size and colour mode (``[camera]``),
the stage travel (``[stage]``) and the diffuser names (``[changer].slots``).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from hardware.sim.slm_response import SlmResponseSpec
from speckle_core.config import StrictModel

EMPTY_SLOT = "empty"  # a changer slot of this name holds no diffuser (docs/calibration.md)


class DiffuserSpec(StrictModel):
    """A ground-glass diffuser as a thin, Gaussian-correlated random phase screen.

    Surface height h(x, y): Gaussian statistics, rms ``rms_height_um`` and correlation
    ⟨h(r)h(0)⟩ = σ_h²·exp(−r²/w²) with w = ``corr_length_um``. Phase φ = 2π(n−1)h/λ. ASSUMED
    values (no grit→roughness data from Thorlabs); see docs/simulation.md, "Diffusers".
    """

    rms_height_um: float = Field(ge=0, le=20)  # 0: clear glass (the empty wheel slot)
    corr_length_um: float = Field(gt=0, le=500)


def _default_diffusers() -> dict[str, DiffuserSpec]:
    # ASSUMED (docs/simulation.md): rougher for lower grit numbers, within ground-glass ranges
    # (rms heights 0.25–1 µm, lateral scales 8–15 µm), each resolved by the 3.33 µm diffuser-plane
    # grid. rms scatter angles θ0 ≈ 49 / 42 / 32 / 23 mrad; unscattered (ballistic) share
    # exp(−σφ²) ≈ 0 / 0 / 1.5 % / 19 %.
    return {
        "120": DiffuserSpec(rms_height_um=1.0, corr_length_um=15.0),
        "220": DiffuserSpec(rms_height_um=0.7, corr_length_um=12.0),
        "600": DiffuserSpec(rms_height_um=0.4, corr_length_um=9.0),
        "1500": DiffuserSpec(rms_height_um=0.25, corr_length_um=8.0),
    }


class SensorSpec(StrictModel):
    """The DCC1645C sensor's photometry. Pitch, size and colour mode come from ``[camera]``."""

    # Photo-electrons per µs in a pixel that receives the light of one illuminated SLM pixel
    # (laser power × optics transmission × QE, folded into one number). ASSUMED: chosen so that
    # 0.2–5 ms fills the ADC, 1500 to 120 grit (docs/simulation.md, "Exposure").
    flux_e_per_us: float = Field(default=50.0, gt=0)
    full_well_e: float = Field(default=6000.0, gt=0)  # ASSUMED: typical of a 3.6 µm CMOS pixel
    read_noise_e: float = Field(default=8.0, ge=0)  # ASSUMED rms; typical uc480-class CMOS
    dark_current_e_per_s: float = Field(default=20.0, ge=0)  # ASSUMED, room temperature
    adc_bits: int = Field(default=10, ge=8, le=16)  # DCC1645C: 10-bit ADC (Thorlabs spec sheet)
    black_level_adu: int = Field(default=8, ge=0, le=255)  # offset in ADC counts (ASSUMED)
    exposure_min_us: float = Field(default=40.0, gt=0)  # ASSUMED DCC1645C range
    exposure_max_us: float = Field(default=10_000_000.0, gt=0)
    exposure_step_us: float = Field(default=1.0, gt=0)  # the applied exposure is quantised to this
    # Bayer RGGB filter transmittance at 632.8 nm relative to red. ASSUMED from typical
    # colour-CMOS dye curves: green and blue leak little at 633 nm. ``flux_e_per_us`` is a red
    # pixel's; each pixel clips at the full well on its own.
    bayer_rgb_at_633nm: tuple[float, float, float] = (1.0, 0.12, 0.04)
    # mono8: the driver demosaics (bilinear) and converts to grey, Y = wR·R + wG·G + wB·B. ASSUMED
    # ITU-R BT.601 luma weights (the uEye/uc480 grey conversion of a colour sensor; DCx manual,
    # "Color formats"). Under 633 nm light the red channel clips at Y ≈ 0.37 of full scale.
    grey_weights_rgb: tuple[float, float, float] = (0.299, 0.587, 0.114)
    # The driver's settings, as speckle-lab's uc480 driver fixes them: white balance (per-channel
    # gains) 1, 1, 1 and gamma 1 (linear). Other values model a camera left in ThorCam's state.
    white_balance_rgb: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = Field(default=1.0, gt=0.1, le=10)  # output = full scale × (Y / full scale)^(1/γ)

    @model_validator(mode="after")
    def _check(self) -> SensorSpec:
        if self.exposure_max_us <= self.exposure_min_us:
            raise ValueError("exposure_max_us must be larger than exposure_min_us")
        if any(not 0 <= c <= 1 for c in self.bayer_rgb_at_633nm):
            raise ValueError("bayer_rgb_at_633nm: each transmittance must be within 0..1")
        weights = self.grey_weights_rgb
        if any(not 0 <= c <= 1 for c in weights) or not 0.5 <= sum(weights) <= 1.5:
            raise ValueError("grey_weights_rgb: each weight within 0..1, summing to about 1")
        if any(not 0 < c <= 8 for c in self.white_balance_rgb):
            raise ValueError("white_balance_rgb: each gain must be within 0..8")
        return self


class FaultRates(StrictModel):
    """Probability per operation of an injected fault (0 = never). For the engine's tests."""

    camera_timeout: float = Field(default=0.0, ge=0, le=1)  # capture raises DeviceTimeout("camera")
    dropped_frame: float = Field(default=0.0, ge=0, le=1)  # capture raises DeviceError("camera")
    stage_error: float = Field(default=0.0, ge=0, le=1)  # move_to_mm raises DeviceError("stage")
    wheel_error: float = Field(default=0.0, ge=0, le=1)  # select raises DeviceError("wheel")
    display_error: float = Field(default=0.0, ge=0, le=1)  # show_gray raises DeviceError("slm")


class SimConfig(StrictModel):
    seed: int = Field(default=0, ge=0, description="fixes every diffuser's phase screen and all noise")
    noise: bool = True  # False: noiseless frames (the irradiance, quantised by the ADC only)
    # True: the rig's waits (settle_ms after each flip) also pass on the host, so a run lasts as long
    # as on the bench; the frames are the same either way (the virtual clock advances identically)
    real_time_waits: bool = False

    # -- optics (paper, "Optical imaging system"; docs/design.md, "The rig") ------------------------------
    wavelength_nm: float = Field(default=632.8, gt=300, lt=2000)  # HeNe (paper)
    slm_pixel_um: float = Field(default=8.0, gt=0)  # EXULUS-HD2 pitch (paper)
    relay_f1_mm: float = Field(default=300.0, gt=0)  # 4F relay L1 (paper)
    relay_f2_mm: float = Field(default=125.0, gt=0)  # 4F relay L2 (paper): SLM → diffuser ×125/300
    relay_pupil_mm: float = Field(
        default=25.4, gt=0)  # ASSUMED: Ø1" optics; the stop sits in L1's focal plane
    # The default pupil (66.9 cycles/mm at the SLM) lies beyond the SLM's Nyquist frequency
    # (62.5 cycles/mm) along both axes and clips only the corners of the sampled band, which changes
    # a frame by < 0.2 % of its peak (measured, docs/simulation.md). Those corners are clipped
    # (2 more FFTs per frame) only when this is true; a pupil cutting inside the band always is.
    relay_pupil_corners: bool = False
    # Diffuser-side numerical aperture of the iris in the Fourier plane of the L3–L4 relay that
    # images the diffuser onto L4's focal plane (z = 0). ASSUMED (the paper does not say): 0.0038
    # = an iris of Ø0.95 mm behind f3 = 125 mm. It sets the speckle grain, λ/(2·NA) = 25 camera
    # pixels, so that the demo's 64×64 network input (12.5 px per sample) samples the speckle at
    # its Nyquist rate λ/(4·NA), and the axial speckle length 2λ/NA² ≈ 100 mm, so frames at 0, 20
    # and 40 mm stay partly correlated (docs/simulation.md, "Why this iris").
    imaging_na: float = Field(default=0.0038, gt=0, le=0.5)  # refused beyond Geometry.max_imaging_na (0.0316)
    # rms width of the iris's apodised edge, as a share of its cut-off NA/λ (0 = a hard disc). A
    # MODEL choice, not a measured one: a smooth edge makes every FFT grid sample the same pupil and
    # keeps its diffraction tails out of the ROI (docs/simulation.md, "Sampling"). 0.1 moves the
    # grain size and the axial correlation by < 1 % against a hard disc.
    iris_edge: float = Field(default=0.1, ge=0, le=0.5)
    glass_index: float = Field(default=1.515, gt=1, lt=3)  # N-BK7 at 633 nm (Schott): DG10 substrates
    diffusers: dict[str, DiffuserSpec] = Field(default_factory=_default_diffusers)

    sensor: SensorSpec = SensorSpec()
    # the SLM glass: hidden gray → phase curve and liquid-crystal settling (hardware/sim/slm_response.py)
    slm: SlmResponseSpec = SlmResponseSpec()

    # -- optional effects, all off by default (docs/simulation.md, "Optional effects") -----------
    slm_response_ms: float = Field(default=0.0, ge=0, le=10_000)  # LC settling: blend old→new phase
    # Drift that moves things (docs/simulation.md, "Drift"). Bench time is the capture count ×
    # capture_period_s (ASSUMED 0.25 s a frame: flip, settle, exposure, read-out), so drift is
    # deterministic for a given capture sequence. ASSUMED rates when on: a diffuser in a filter
    # wheel creeps µm per hour; a laser's pointing drifts ~ µrad per hour.
    diffuser_drift_um_per_hour: float = Field(
        default=0.0, ge=-10_000, le=10_000)  # the diffuser slides along x
    beam_tilt_urad_per_hour: float = Field(default=0.0, ge=-100_000, le=100_000)  # the beam tilts in x–z
    capture_period_s: float = Field(default=0.25, gt=0, le=3600)
    # The SLM's own faults (docs/simulation.md, "The SLM's faults"); all off by default.
    # Unmodulated light: a share of the power leaves the SLM as a plain wave (pixel gaps, a
    # polarisation not quite along the LC axis). Field = √(1−η)·e^{iφ} + √η. LCOS SLMs: a few % up
    # to ~10 % (fill factor ~ 90 %+; Thorlabs EXULUS-HD2 spec).
    slm_unmodulated_share: float = Field(default=0.0, ge=0, lt=1)
    # Fringing: the phase of neighbouring pixels bleeds in over a boundary zone this wide (µm).
    # Each pixel's phase becomes (1 − 4ε)φ + ε·Σ(4 neighbours), ε = width/(8 × pitch): the mean of
    # a linear ramp across the zone (Persson et al., Opt. Express 20, 22334 (2012): a few µm at
    # 8 µm pitch).
    slm_fringing_um: float = Field(default=0.0, ge=0, le=8)
    # Phase flicker: the LC ripples with the drive's frame rate; the ripple grows with the phase,
    # δφ = A·(φ/π)·sin(2π·f·t), A = slm_flicker_rad at the π level, t the bench clock at mid
    # exposure. Typical LCOS: 0.01–0.1π rad (ASSUMED for the EXULUS; no published figure found).
    slm_flicker_rad: float = Field(default=0.0, ge=0, le=3.2)
    slm_flicker_hz: float = Field(default=60.0, gt=0, le=10_000)
    # A Gaussian beam instead of the flat top: 1/e² intensity radius at the SLM (mm); 0 = flat top.
    # The beam's peak gives each pixel the flat top's light; the window's edges get less.
    slm_beam_waist_mm: float = Field(default=0.0, ge=0, le=100)
    faults: FaultRates = FaultRates()

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        for name in self.diffusers:
            if not name.strip():
                raise ValueError("diffusers: a diffuser name is empty")
        if EMPTY_SLOT not in self.diffusers:  # the empty slot is clear glass unless stated otherwise
            self.diffusers[EMPTY_SLOT] = DiffuserSpec(rms_height_um=0.0, corr_length_um=10.0)
        return self

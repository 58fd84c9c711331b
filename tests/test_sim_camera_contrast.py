"""Why a mono8 frame of fully developed speckle has a contrast σ/μ under 1 (issue 16).

The irradiance's contrast is 1. The camera's grey output adds a pedestal: the black level (8 of
1023 ADC counts) and the dark current give every grey value about 2 of 255, and under 633 nm light
a well-exposed speckle frame's mean grey is only about 12 (the red channel clips at a grey of 96,
and exponential statistics put the mean ~7× below the top 0.1 %). So σ/μ ≈ (μ − 2)/μ ≈ 0.85–0.9 at
the auto exposure, and lower for a dimmer frame. The demosaic and the grey formula do not lower
it: the grain (≈ 13 px) is far wider than the 3×3 stencil. docs/simulation.md, "The colour camera".
"""

from __future__ import annotations

import numpy as np
import pytest

from acquisition.exposure import auto_expose
from hardware.sim.sensor import demosaic_grey
from tests._sim_helpers import blocks, small_rig

pytestmark = pytest.mark.timeout(120)
W = 256


def developed_speckle_rig(**sensor):
    """120 grit at the auto exposure (aimed at the red channel's clipping level), noise on."""
    slm, cam, stage, changer = small_rig(W, noise=True, sensor=sensor)
    changer.select("120")
    slm.show_gray(blocks(W, 4) * np.uint8(128))

    def probe(exposure_us, iteration):
        applied = cam.configure((W, W), exposure_us)
        return applied, [cam.capture(100, key=("exposure", iteration)).image]

    cam.configure((W, W), auto_expose(probe, 1000.0, cam.saturation_level).exposure_us)
    return cam


def contrast(a: np.ndarray) -> float:
    a = a.astype(np.float64)
    return float(a.std() / a.mean())


def expected_mono8_contrast(cam) -> float:
    """σ/μ of the grey output computed from the noiseless chain in numpy: expected electrons →
    codes (black level added, clipped at the top) → bilinear demosaic + grey formula → 8-bit
    scale; the truncation to 8 bits lowers the mean by half a step (the noise dithers it)."""
    s = cam.sensor
    irr = cam._irradiance(0.0)
    lam = s.mean_electrons(irr, cam.exposure_us, cam.roi).astype(np.float64)
    codes = np.minimum(lam / s.gain_e_per_adu + s.spec.black_level_adu, s.adc_max)
    grey = demosaic_grey(codes.astype(np.float32), s.red_at(cam.roi), s.spec.grey_weights_rgb)
    grey = grey.astype(np.float64) * (255.999 / s.adc_max)
    return float(grey.std() / (grey.mean() - 0.5))


def test_the_mono8_contrast_of_developed_speckle_is_what_the_black_level_pedestal_predicts():
    cam = developed_speckle_rig()
    irr_contrast = contrast(cam._irradiance(0.0))
    frame = cam.capture(100, key=("pair", 1)).image
    assert irr_contrast == pytest.approx(1.0, abs=0.1)  # the light is fully developed speckle
    assert contrast(frame) == pytest.approx(expected_mono8_contrast(cam), abs=0.02)
    assert contrast(frame) < 0.93 * irr_contrast  # the pedestal shows ...
    dark = cam.capture(100, key=("dark", 1)).image.astype(np.float64)
    assert 1.0 < dark.mean() < 2.5  # ... it is the dark frame's level: ≈ 2 of 255
    dark_subtracted = frame.std() / (frame.mean() - dark.mean())
    assert dark_subtracted == pytest.approx(irr_contrast, abs=0.05)  # ... and subtracting it restores σ/μ


def test_without_black_level_and_dark_current_the_mono8_contrast_is_the_irradiance_contrast():
    cam = developed_speckle_rig(black_level_adu=0, dark_current_e_per_s=0.0)
    frame = cam.capture(100, key=("pair", 1)).image
    assert contrast(frame) == pytest.approx(contrast(cam._irradiance(0.0)), abs=0.06)


def test_a_dimmer_frame_of_the_same_speckle_has_a_lower_contrast_as_the_pedestal_predicts():
    cam = developed_speckle_rig()
    cam.configure((W, W), cam.exposure_us / 3)
    frame = cam.capture(100, key=("pair", 2)).image
    assert contrast(frame) < 0.8
    assert contrast(frame) == pytest.approx(expected_mono8_contrast(cam), abs=0.02)

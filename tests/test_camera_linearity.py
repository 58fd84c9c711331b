"""The DCC1645C as a colour camera (issue 16): Bayer pipeline, red-channel clipping, linearity.

The same linearity check runs on the simulated camera and, with ``-m hardware`` and
SPECKLE_LAB_RIG=path/to/rig.toml, on the real one (light on the sensor, nothing moving).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from acquisition.exposure import auto_expose
from tests._sim_helpers import blocks, small_rig

pytestmark = pytest.mark.timeout(120)


def level(cam) -> int:
    return int(getattr(cam, "saturation_level", cam.max_value))


def longest_unclipped_exposure_us(cam, roi: tuple[int, int], timeout_ms: float,
                                  start_us: float = 100.0) -> float:
    """Doubles then halves the exposure until the 99.9th percentile sits in 45–90 % of the level."""
    exposure = start_us
    for _ in range(30):
        applied = cam.configure(roi, exposure)
        p = float(np.percentile(cam.capture(timeout_ms).image, 99.9))
        if 0.45 * level(cam) <= p <= 0.9 * level(cam):
            return applied
        exposure = applied * (0.6 if p > 0.9 * level(cam) else 1.8)
    raise AssertionError("no exposure puts the frame between 45 and 90 % of the clipping level")


def linearity_error(cam, roi: tuple[int, int], timeout_ms: float, average: int = 4) -> float:
    """Largest relative departure of the mean from a straight line through four exposures.

    The line mean = offset + slope × exposure is fitted by least squares (the offset absorbs the
    black level); the error is |mean − line| / (line − offset), largest over the exposures.
    """
    top = longest_unclipped_exposure_us(cam, roi, timeout_ms)
    exposures, means = [], []
    for share in (0.25, 0.5, 0.75, 1.0):
        exposures.append(cam.configure(roi, top * share))
        means.append(float(cam.capture(timeout_ms, average=average).image.mean()))
    slope, offset = np.polyfit(exposures, means, 1)
    signal = slope * np.asarray(exposures)
    return float(np.max(np.abs(np.asarray(means) - offset - signal) / signal))


def test_the_simulated_camera_is_linear_within_2_percent():
    slm, cam, stage, changer = small_rig(window=128, noise=True)
    slm.show_gray(blocks(128, 1) * np.uint8(128))
    assert linearity_error(cam, (128, 128), 100.0) <= 0.02


def test_a_gamma_other_than_1_is_caught_by_the_linearity_check():
    slm, cam, stage, changer = small_rig(window=128, noise=True, sensor={"gamma": 1.6})
    slm.show_gray(blocks(128, 1) * np.uint8(128))
    assert linearity_error(cam, (128, 128), 100.0) > 0.02


def test_the_red_channel_clips_long_before_the_grey_value_does():
    slm, cam, stage, changer = small_rig(window=128)
    assert cam.saturation_level < 0.45 * cam.max_value  # 0.299 + 0.587·0.12 + 0.114·0.04 ≈ 0.37
    slm.show_gray(blocks(128, 1) * np.uint8(128))
    cam.configure((128, 128), 30_000)
    frame = cam.capture(100)
    assert frame.saturated_fraction > 0.05  # many red pixels clipped ...
    assert frame.image.max() < cam.max_value  # ... while no grey value reaches 255


def test_auto_exposure_on_the_clipping_level_keeps_red_clipping_under_0_1_percent():
    slm, cam, stage, changer = small_rig(window=128, noise=True)
    changer.select("1500")
    pattern = blocks(128, 4) * np.uint8(128)
    slm.show_gray(pattern)

    def probe(exposure_us, iteration):
        applied = cam.configure((128, 128), exposure_us)
        return applied, [cam.capture(100, key=("exposure", iteration)).image]

    result = auto_expose(probe, 1000.0, cam.saturation_level)
    cam.configure((128, 128), result.exposure_us)
    frames = [cam.capture(100, key=("pair", i)) for i in range(4)]
    assert max(f.saturated_fraction for f in frames) <= 0.001
    assert np.percentile(frames[0].image, 99) > 0.5 * cam.saturation_level  # and the range is used


def test_the_driver_settings_travel_with_each_frame():
    slm, cam, stage, changer = small_rig(window=64)
    meta = cam.capture(100).meta["settings"]
    assert meta["gamma"] == 1.0 and meta["auto_gain"] is False
    assert meta["white_balance_rgb"] == [1.0, 1.0, 1.0] and meta["saturation_level"] == cam.saturation_level


@pytest.mark.hardware
def test_the_real_camera_is_linear_within_2_percent():
    path = os.environ.get("SPECKLE_LAB_RIG")
    if not path:
        pytest.skip("set SPECKLE_LAB_RIG=path/to/rig.toml to run the hardware tests")
    from hardware.rig import load_rig

    cfg = load_rig(path).config.camera
    if cfg.kind != "uc480":
        pytest.skip(f"camera kind {cfg.kind!r}")
    from hardware.drivers.uc480_camera import UC480CameraDriver

    cam = UC480CameraDriver.from_config(cfg)
    try:
        settings = cam.settings
        assert settings["gamma"] == 1.0 and settings["auto_gain"] is False
        assert linearity_error(cam, (800, 800), cfg.timeout_ms) <= 0.02
    finally:
        cam.close()


def test_the_uc480_driver_makes_the_output_linear_and_records_it():
    from hardware.drivers.uc480_camera import UC480CameraDriver
    from tests.vendor_fakes_uc480 import FakeUC480Camera, fake_vendor

    fake = FakeUC480Camera()  # starts as ThorCam may leave it: gamma 1.6, auto gain and WB on
    drv = UC480CameraDriver(fake, "mono8", vendor=fake_vendor())
    assert fake.lib.lib.gamma == 100 and fake.lib.hw_gamma == 0
    assert not any(fake.lib.lib.auto.values()) and fake.gains == (1.0, 1.0, 1.0, 1.0)
    s = drv.settings
    assert (s["gamma"], s["auto_gain"], s["auto_white_balance"], s["white_balance_rgb"]) == \
        (1.0, False, False, [1.0, 1.0, 1.0])
    assert s["saturation_level"] == 95 < drv.max_value  # red clips at grey ≈ 0.37 × 255


def test_the_uc480_driver_refuses_a_camera_that_keeps_its_gamma():
    from hardware.drivers.uc480_camera import UC480CameraDriver
    from hardware.errors import DeviceError
    from tests.vendor_fakes_uc480 import FakeUC480Camera, fake_vendor

    fake = FakeUC480Camera()
    fake.lib.lib.is_Gamma = lambda hcam, cmd, param, size: setattr(param._obj, "value", 160) or 0
    with pytest.raises(DeviceError, match="gamma 1.6"):
        UC480CameraDriver(fake, "mono8", vendor=fake_vendor())

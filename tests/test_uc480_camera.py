"""DCC1645C driver at the vendor boundary: a fake UC480Camera with pylablib's methods and errors."""

import inspect
import sys

import numpy as np
import pytest
from pylablib.devices.uc480 import UC480Camera, uc480Error

from hardware.drivers.uc480_camera import UC480CameraDriver, load_vendor
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from hardware.rig import CameraConfig
from speckle_core.errors import UserError
from tests.vendor_fakes_uc480 import FakeUC480Camera, fake_vendor


def driver(cam=None, mode="mono8"):
    cam = cam or FakeUC480Camera()
    return UC480CameraDriver(cam, mode, vendor=fake_vendor()), cam


def test_fake_has_the_signatures_of_pylablibs_uc480camera():
    for name, member in inspect.getmembers(FakeUC480Camera, inspect.isfunction):
        if not name.startswith("_") or name == "__init__":
            assert inspect.signature(member) == inspect.signature(getattr(UC480Camera, name)), name


def test_opening_sets_explicit_mono_mode_unity_gain_and_no_boost():
    _, cam = driver()
    assert cam.color_mode == "mono8"
    assert cam.gains[0] == 1.0 and cam.gain_boost is False and cam.trigger == "int"


def test_raw_bayer_mode_is_accepted():
    _, cam = driver(mode="raw8")
    assert cam.color_mode == "raw8"


def test_a_mode_the_camera_lacks_is_refused_naming_it():
    cam = FakeUC480Camera()
    cam.modes = ["rgb8p", "raw8"]
    with pytest.raises(DeviceError, match=r"'mono8' is not offered .*\['raw8'\]"):
        UC480CameraDriver(cam, "mono8", vendor=fake_vendor())
    assert cam.closed


def test_multichannel_mode_is_refused():
    with pytest.raises(ValueError, match="rgb8p"):
        driver(mode="rgb8p")


def test_configure_centres_the_roi_on_the_sensor():
    drv, cam = driver()
    drv.configure((800, 800), 1000.0)
    assert cam.roi[:4] == (240, 1040, 112, 912)
    assert drv.roi == (112, 240, 800, 800)


def test_exposure_is_microseconds_outside_seconds_inside():
    drv, cam = driver()
    applied = drv.configure((800, 800), 5000.0)
    assert cam.exposure_s == pytest.approx(5e-3)
    assert applied == pytest.approx(5000.0)


def test_long_exposure_lengthens_the_frame_period_first():
    drv, cam = driver()
    assert drv.configure((800, 800), 200_000.0) == pytest.approx(200_000.0)
    assert cam.frame_period_s == pytest.approx(0.2)


def test_roi_larger_than_sensor_is_a_user_error_naming_it():
    drv, _ = driver()
    with pytest.raises(UserError, match=r"2000x800 does not fit the 1024x1280"):
        drv.configure((2000, 800), 100.0)


def test_roi_off_the_size_step_is_refused():
    drv, _ = driver()
    with pytest.raises(UserError, match="multiples of 4"):
        drv.configure((801, 800), 100.0)


def test_nonpositive_exposure_is_refused():
    drv, _ = driver()
    with pytest.raises(ValueError, match="exposure_us"):  # a bad argument, not a bad file
        drv.configure((800, 800), 0)


def test_capture_keeps_frame_index_device_timestamp_and_shape():
    drv, _ = driver()
    drv.configure((64, 96), 100.0)
    frame = drv.capture(500, key=("pair", 3))
    assert frame.image.shape == (64, 96) and frame.image.dtype == np.uint8
    assert frame.frame_index == 1001
    assert frame.device_timestamp_s == pytest.approx(1001 * 200_000 * 1e-7)
    assert frame.meta["key"] == ("pair", 3)


def test_each_capture_is_a_fresh_acquisition():
    drv, cam = driver()
    drv.configure((64, 64), 100.0)
    drv.capture(500)
    drv.capture(500)
    assert cam.calls.count("start_acquisition") == 2 and not cam.acquiring
    assert cam.calls.count("setup_acquisition") == 1  # buffers are set up once per ROI


def test_averaging_returns_the_rounded_mean_in_the_camera_dtype():
    drv, cam = driver()
    cam.frame_fn = lambda n, shape: np.full(shape, 10 if n % 2 else 13, np.uint8)
    drv.configure((32, 32), 100.0)
    frame = drv.capture(500, average=2)
    assert frame.image.dtype == np.uint8 and np.all(frame.image == 12)  # rint(11.5) = 12
    assert frame.meta["frame_indices"] == [1001, 1002]


def test_saturated_fraction_counts_pixels_clipped_in_any_frame():
    drv, cam = driver()

    def frames(n, shape):
        img = np.zeros(shape, np.uint8)
        img[0, : 8 if n % 2 else 16] = 255
        return img

    cam.frame_fn = frames
    drv.configure((32, 32), 100.0)
    assert drv.capture(500, average=2).saturated_fraction == pytest.approx(16 / (32 * 32))


def test_timeout_becomes_device_timeout_and_acquisition_stops():
    drv, cam = driver()
    drv.configure((32, 32), 100.0)
    cam.produce = False
    with pytest.raises(DeviceTimeout, match="no frame within 250 ms"):
        drv.capture(250)
    assert not cam.acquiring


def test_other_vendor_errors_become_device_errors():
    drv, cam = driver()
    drv.configure((32, 32), 100.0)
    cam.fail["start_acquisition"] = uc480Error("function 'is_CaptureVideo' raised error 1")
    with pytest.raises(DeviceError, match="capturing failed: .*is_CaptureVideo"):
        drv.capture(250)


def test_capture_before_configure_is_refused():
    drv, _ = driver()
    with pytest.raises(DeviceError, match="configure"):
        drv.capture(100)


def test_bad_average_is_refused():
    drv, _ = driver()
    drv.configure((32, 32), 100.0)
    with pytest.raises(ValueError, match="average"):
        drv.capture(100, average=0)


def test_from_config_opens_by_serial_through_the_device_id():
    vendor = fake_vendor(cameras=(("111", 1), ("4102712345", 2)))
    cfg = CameraConfig(kind="uc480", serial="4102712345")
    UC480CameraDriver.from_config(cfg, vendor=vendor)
    assert vendor.opened[0].dev_id == 12 and vendor.opened[0].backend == "uc480"


def test_from_config_opens_by_id():
    vendor = fake_vendor(cameras=(("111", 1), ("222", 2)))
    UC480CameraDriver.from_config(CameraConfig(kind="uc480", id=2), vendor=vendor)
    assert vendor.opened[0].cam_id == 2


def test_unknown_serial_is_device_not_found_listing_cameras():
    vendor = fake_vendor(cameras=(("111", 1),))
    with pytest.raises(DeviceNotFound, match=r"serial '999' .*serial 111"):
        UC480CameraDriver.from_config(CameraConfig(kind="uc480", serial="999"), vendor=vendor)


def test_no_camera_attached_is_device_not_found():
    with pytest.raises(DeviceNotFound, match="cameras found: none"):
        UC480CameraDriver.from_config(CameraConfig(kind="uc480"), vendor=fake_vendor(cameras=()))


def test_camera_that_fails_to_open_is_a_device_error():
    def busy(*a, **k):
        raise uc480Error("function 'is_InitCamera' raised error 3(IS_CANT_OPEN_DEVICE)")

    vendor = fake_vendor(camera_factory=busy)
    with pytest.raises(DeviceError, match="IS_CANT_OPEN_DEVICE.*ThorCam"):
        UC480CameraDriver.from_config(CameraConfig(kind="uc480"), vendor=vendor)


@pytest.mark.skipif(sys.platform == "win32", reason="ThorCam's DLL may be installed on Windows")
def test_missing_dll_through_real_pylablib_names_the_dll_and_thorcam(tmp_path):
    # The real pylablib module, pointed at an empty folder: loading uc480_64.dll fails with OSError.
    cfg = CameraConfig(kind="uc480", dll_path=str(tmp_path))
    with pytest.raises(DriverMissing, match=r"uc480_64\.dll .*ThorCam"):
        UC480CameraDriver.from_config(cfg)


def test_missing_ueye_dll_names_ids():
    vendor = fake_vendor(list_error=OSError("can't import library ueye_api_64.dll"))
    with pytest.raises(DriverMissing, match=r"ueye_api_64\.dll .*IDS"):
        UC480CameraDriver.from_config(CameraConfig(kind="uc480", backend="ueye"), vendor=vendor)


def test_load_vendor_allows_dlls_off_windows():
    import pylablib

    load_vendor()
    assert pylablib.par["devices/only_windows_dlls"] is False


def test_numpy_scalars_are_accepted_as_exposure():
    drv, cam = driver()
    assert drv.configure((32, 32), np.float32(250.0)) == pytest.approx(250.0)

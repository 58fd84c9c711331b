"""TSI camera backend: pylablib ThorlabsTLCamera or Thorlabs' SDK, both optional and lazy."""

import inspect
import sys

import numpy as np
import pytest
from pylablib.devices.Thorlabs import ThorlabsTLCamera

from hardware.drivers import tsi_camera
from hardware.drivers.tsi_camera import TSICameraDriver, TSISDKCameraDriver
from hardware.errors import DeviceNotFound, DeviceTimeout, DriverMissing
from hardware.rig import CameraConfig
from tests.vendor_fakes_tsi import FakeTLCamera, fake_pylablib, fake_sdk

CFG = CameraConfig(kind="tsi", serial="12345")


def test_fake_has_the_signatures_of_pylablibs_tlcamera():
    for name, member in inspect.getmembers(FakeTLCamera, inspect.isfunction):
        if not name.startswith("_") or name == "__init__":
            assert inspect.signature(member) == inspect.signature(getattr(ThorlabsTLCamera, name)), name


@pytest.mark.skipif(sys.platform == "win32", reason="ThorCam's DLL may be installed on Windows")
def test_without_sdk_or_dll_the_error_names_both(monkeypatch):
    monkeypatch.setattr(tsi_camera, "import_sdk", lambda: None)
    with pytest.raises(DriverMissing,
                       match=r"thorlabs_tsi_sdk is not installed.*thorlabs_tsi_camera_sdk\.dll"):
        TSICameraDriver.from_config(CFG)


def test_pylablib_backend_captures_raw_frames_at_sensor_depth(monkeypatch):
    monkeypatch.setattr(tsi_camera, "import_sdk", lambda: None)
    drv = TSICameraDriver.from_config(CFG, vendor=fake_pylablib())
    assert drv._cam.color_format == "raw" and drv._cam.trigger == "int" and drv.max_value == 4095
    drv.configure((40, 80), 500.0)
    frame = drv.capture(200)
    assert frame.image.shape == (40, 80) and frame.saturated_fraction == 1.0
    assert frame.device_timestamp_s == pytest.approx(5000 / 1e6)


def test_pylablib_backend_timeout():
    drv = TSICameraDriver(FakeTLCamera(), vendor=fake_pylablib())
    drv.configure((40, 80), 500.0)
    drv._cam.produce = False
    with pytest.raises(DeviceTimeout, match="no frame within 200 ms"):
        drv.capture(200)


def test_unknown_serial_is_not_found(monkeypatch):
    monkeypatch.setattr(tsi_camera, "import_sdk", lambda: None)
    with pytest.raises(DeviceNotFound, match=r"serial '999' \(found: 12345\)"):
        TSICameraDriver.from_config(CameraConfig(kind="tsi", serial="999"), vendor=fake_pylablib())


def test_sdk_backend_is_preferred_when_installed():
    sdk = fake_sdk()
    drv = TSICameraDriver.from_config(CameraConfig(kind="tsi"), sdk=sdk)
    assert isinstance(drv, TSISDKCameraDriver) and drv.max_value == 1023
    assert drv.configure((100, 200), 1234.0) == pytest.approx(1234.0)
    assert sdk.state.camera.roi == (620, 490, 819, 589)
    frame = drv.capture(100, average=2)
    assert frame.image.shape == (100, 200) and np.all(frame.image == 7)
    assert frame.frame_index == 1 and not sdk.state.camera.armed


def test_sdk_backend_timeout_disarms():
    sdk = fake_sdk()
    drv = TSICameraDriver.from_config(CameraConfig(kind="tsi"), sdk=sdk)
    drv.configure((100, 200), 1000.0)
    sdk.state.camera.produce = False
    with pytest.raises(DeviceTimeout):
        drv.capture(100)
    assert not sdk.state.camera.armed


def test_sdk_backend_with_no_camera_releases_the_sdk():
    sdk = fake_sdk(serials=())
    with pytest.raises(DeviceNotFound, match="found: none"):
        TSICameraDriver.from_config(CameraConfig(kind="tsi"), sdk=sdk)
    assert sdk.state.sdk_disposed


def test_close_disposes_camera_and_sdk():
    sdk = fake_sdk()
    drv = TSICameraDriver.from_config(CameraConfig(kind="tsi"), sdk=sdk)
    drv.close()
    assert sdk.state.camera.disposed and sdk.state.sdk_disposed

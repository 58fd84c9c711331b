"""Thorlabs TSI scientific cameras (Kiralux, Zelux, Quantalux): an optional camera backend.

Not the DCC1645C (that is ``uc480_camera.py``). Two vendor paths, both imported only when a rig
file asks for ``camera.kind = "tsi"``:

1. ``thorlabs_tsi_sdk``: Thorlabs' own Python SDK, shipped with ThorCam (not on the package index);
2. pylablib's ``ThorlabsTLCamera``, which needs ThorCam's ``thorlabs_tsi_camera_sdk.dll``.

The SDK is used when it imports, else pylablib. Frames are delivered raw (no debayering), at the
sensor's bit depth in 16-bit words.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import numpy as np

from hardware.drivers.camera_base import CameraDriverBase, Grabbed, PylablibCameraDriver
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing

SDK_MODULE = "thorlabs_tsi_sdk"
DLL = "thorlabs_tsi_camera_sdk.dll"
WHERE = (f"both come with ThorCam (thorlabs.com → ThorCam): {SDK_MODULE} is the Python toolkit zip under "
         r"'Scientific Camera Interfaces\SDK\Python Toolkit' (pip install that zip), and the DLLs are in "
         r"'Scientific Camera Interfaces\SDK\Native Toolkit\dlls'; add that folder to PATH")


def import_sdk():
    """Thorlabs' ``thorlabs_tsi_sdk.tl_camera`` module, or None when it is not installed."""
    try:
        from thorlabs_tsi_sdk import tl_camera  # pyright: ignore[reportMissingImports] - optional SDK
    except ImportError:
        return None
    return tl_camera


def load_pylablib():
    """pylablib's TLCamera module (no DLL is loaded yet), allowing DLLs off Windows."""
    import pylablib

    if sys.platform != "win32":
        pylablib.par["devices/only_windows_dlls"] = False
    from pylablib.devices.Thorlabs import TLCamera

    return TLCamera


def _not_found(serial: str | None, serials: list[str]) -> DeviceNotFound:
    which = "" if serial is None else f" with serial {serial!r}"
    return DeviceNotFound("camera", f"no TSI camera{which} (found: {', '.join(serials) or 'none'})")


class TSICameraDriver(PylablibCameraDriver):
    """A TSI camera through pylablib's ``ThorlabsTLCamera``."""

    def __init__(self, cam, vendor=None):
        vendor = vendor or load_pylablib()
        self._error, self._timeout_error = vendor.ThorlabsTLCameraError, vendor.ThorlabsTLCameraTimeoutError
        try:
            with self._translate_errors("setting up"):
                cam.set_color_format("raw")  # a Bayer camera would otherwise give RGB
                cam.set_trigger_mode("int")  # free-running, software-started acquisition
                bit_depth = int(cam.get_sensor_info().bit_depth)
                self._clock_hz = cam.get_timestamp_clock_frequency()
        except BaseException:
            with contextlib.suppress(Exception):
                cam.close()
            raise
        super().__init__(cam, bit_depth)

    @classmethod
    def from_config(cls, camera_cfg, sdk=None, vendor=None):
        """Opens the TSI camera by serial (or the first one): Thorlabs' SDK if installed, else pylablib."""
        sdk = sdk if sdk is not None else import_sdk()
        if sdk is not None:
            return TSISDKCameraDriver.open(sdk, camera_cfg.serial)
        vendor = vendor or load_pylablib()
        try:
            serials = list(vendor.list_cameras())
        except OSError as e:
            raise DriverMissing("camera", f"no TSI camera library: the Python package {SDK_MODULE} is not "
                                          f"installed, and pylablib could not load {DLL} "
                                          f"({str(e).splitlines()[0]}); {WHERE}") from None
        serial = camera_cfg.serial
        if not serials or (serial is not None and str(serial) not in serials):
            raise _not_found(serial, serials)
        try:
            cam = vendor.ThorlabsTLCamera(serial=serial)
        except vendor.ThorlabsTLCameraError as e:
            raise DeviceError("camera", f"could not open the TSI camera: {e}") from None
        return cls(cam, vendor=vendor)

    def _frame_info(self, info) -> tuple[int | None, float | None]:
        if info is None:
            return None, None
        clock = None if info.pixelclock is None or not self._clock_hz else info.pixelclock / self._clock_hz
        return (None if info.framestamp is None else int(info.framestamp)), clock

    @contextlib.contextmanager
    def _translate_errors(self, what: str, timeout_ms: float | None = None) -> Iterator[None]:
        try:
            yield
        except self._timeout_error:
            raise DeviceTimeout("camera", f"no frame within {timeout_ms:g} ms while {what}") from None
        except self._error as e:
            raise DeviceError("camera", f"{what} failed: {e}") from None


class TSISDKCameraDriver(CameraDriverBase):
    """A TSI camera through Thorlabs' ``thorlabs_tsi_sdk`` (software-triggered frames)."""

    def __init__(self, sdk_module, sdk, camera):
        self._mod, self._sdk, self._camera = sdk_module, sdk, camera
        super().__init__(int(camera.bit_depth))

    @classmethod
    def open(cls, sdk_module, serial: str | None) -> TSISDKCameraDriver:
        error = sdk_module.TLCameraError
        try:
            sdk = sdk_module.TLCameraSDK()
        except (OSError, error) as e:
            raise DriverMissing("camera", f"{SDK_MODULE} is installed but its DLLs did not load ({e}); "
                                          f"{WHERE}") from None
        try:
            serials = [str(s) for s in sdk.discover_available_cameras()]
            if not serials or (serial is not None and str(serial) not in serials):
                raise _not_found(serial, serials)
            camera = sdk.open_camera(str(serial) if serial is not None else serials[0])
        except error as e:
            sdk.dispose()
            raise DeviceError("camera", f"could not open the TSI camera: {e}") from None
        except BaseException:
            sdk.dispose()
            raise
        return cls(sdk_module, sdk, camera)

    def _sensor_px_hw(self) -> tuple[int, int]:
        return int(self._camera.sensor_height_pixels), int(self._camera.sensor_width_pixels)

    def _roi_steps_hw(self) -> tuple[int, int]:
        return 1, 1  # the camera adjusts what it cannot do; the read-back below catches that

    def _set_roi_hw(self, row0: int, col0: int, rows: int, cols: int) -> tuple[int, int, int, int]:
        # SDK ROI corners are inclusive: (upper_left_x, upper_left_y, lower_right_x, lower_right_y).
        self._camera.roi = (col0, row0, col0 + cols - 1, row0 + rows - 1)
        x0, y0, x1, y1 = self._camera.roi
        return int(y0), int(x0), int(y1 - y0 + 1), int(x1 - x0 + 1)

    def _set_exposure_hw(self, exposure_s: float) -> float:
        self._camera.exposure_time_us = max(1, round(exposure_s * 1e6))
        return self._camera.exposure_time_us * 1e-6

    def _grab_hw(self, n_frames: int, timeout_s: float) -> list[Grabbed]:
        cam = self._camera
        cam.frames_per_trigger_zero_for_unlimited = n_frames
        cam.image_poll_timeout_ms = max(1, round(timeout_s * 1000))
        cam.arm(2)
        grabbed: list[Grabbed] = []
        try:
            cam.issue_software_trigger()
            for _ in range(n_frames):
                frame = cam.get_pending_frame_or_null()
                if frame is None:
                    raise DeviceTimeout("camera", f"no frame within {timeout_s * 1000:g} ms")
                stamp_ns = getattr(frame, "time_stamp_relative_ns_or_null", None)
                grabbed.append((np.copy(frame.image_buffer), int(frame.frame_count),
                                None if stamp_ns is None else stamp_ns * 1e-9))
        finally:
            cam.disarm()
        return grabbed

    def _close_hw(self) -> None:
        try:
            self._camera.dispose()
        finally:
            self._sdk.dispose()

    @contextlib.contextmanager
    def _translate_errors(self, what: str, timeout_ms: float | None = None) -> Iterator[None]:
        try:
            yield
        except self._mod.TLCameraError as e:
            raise DeviceError("camera", f"{what} failed: {e}") from None

"""Fakes for the TSI camera backends: a pylablib ``ThorlabsTLCamera`` and Thorlabs' ``thorlabs_tsi_sdk``."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from pylablib.devices.interface.camera import TAxisROILimit
from pylablib.devices.Thorlabs.TLCamera import (
    TFrameInfo,
    ThorlabsTLCameraError,
    ThorlabsTLCameraTimeoutError,
    TSensorInfo,
)


class FakeTLCamera:
    """pylablib ThorlabsTLCamera's methods the driver uses (a 1440×1080 12-bit Kiralux)."""

    def __init__(self, serial=None):
        self.serial = serial
        self.roi = (0, 1440, 0, 1080, 1, 1)
        self.color_format = "rgb"
        self.exposure_s = 0.01
        self.produce = True
        self.acquiring = False
        self._pending: list = []
        self.counter = 0
        self.closed = False

    def set_color_format(self, color_output="auto", color_space="linear"):
        self.color_format = color_output

    def set_trigger_mode(self, mode):
        self.trigger = mode
        return mode

    def get_sensor_info(self):
        return TSensorInfo("bayer", 12)

    def get_timestamp_clock_frequency(self):
        return 1e6

    def get_detector_size(self):
        return 1440, 1080

    def get_roi_limits(self, hbin=1, vbin=1):
        return TAxisROILimit(80, 1440, 4, 4, 1), TAxisROILimit(4, 1080, 4, 4, 1)

    def set_roi(self, hstart=0, hend=None, vstart=0, vend=None, hbin=1, vbin=1):
        self.roi = (hstart, hend, vstart, vend, hbin, vbin)
        return self.roi

    def set_exposure(self, exposure):
        self.exposure_s = exposure
        return exposure

    def setup_acquisition(self, nframes=100):
        pass

    def start_acquisition(self, frames_per_trigger="default", auto_start=True, nframes=None):
        self.acquiring, self._pending = True, []

    def stop_acquisition(self):
        self.acquiring = False

    def wait_for_frame(self, since="lastread", nframes=1, timeout=20.0, error_on_stopped=False):
        if not self.produce:
            raise ThorlabsTLCameraTimeoutError()
        shape = (self.roi[3] - self.roi[2], self.roi[1] - self.roi[0])
        for _ in range(nframes):
            self.counter += 1
            self._pending.append((np.full(shape, 4095, np.uint16),
                                  TFrameInfo(0, self.counter, self.counter * 5000, 0, 0)))
        return True

    def read_multiple_images(self, rng=None, peek=False, missing_frame="skip", return_info=False,
                             return_rng=False):
        frames, infos = [p[0] for p in self._pending], [p[1] for p in self._pending]
        self._pending = []
        return (frames, infos) if return_info else frames

    def close(self):
        self.closed = True


def fake_pylablib(serials=("12345",)):
    return SimpleNamespace(list_cameras=lambda: list(serials), ThorlabsTLCamera=FakeTLCamera,
                           ThorlabsTLCameraError=ThorlabsTLCameraError,
                           ThorlabsTLCameraTimeoutError=ThorlabsTLCameraTimeoutError)


class TLCameraError(Exception):
    pass


class FakeSDKCamera:
    """thorlabs_tsi_sdk.tl_camera.TLCamera's properties and methods the driver uses."""

    sensor_width_pixels, sensor_height_pixels, bit_depth = 1440, 1080, 10

    def __init__(self):
        self._roi = (0, 0, 1439, 1079)
        self.exposure_time_us = 1000
        self.frames_per_trigger_zero_for_unlimited = 0
        self.image_poll_timeout_ms = 0
        self.armed = False
        self.produce = True
        self.count = 0
        self.disposed = False

    @property
    def roi(self):
        return self._roi

    @roi.setter
    def roi(self, value):
        self._roi = tuple(value)

    def arm(self, frames_to_buffer):
        self.armed = True

    def disarm(self):
        self.armed = False

    def issue_software_trigger(self):
        if not self.armed:
            raise TLCameraError("not armed")

    def get_pending_frame_or_null(self):
        if not self.produce:
            return None
        self.count += 1
        x0, y0, x1, y1 = self._roi
        return SimpleNamespace(image_buffer=np.full((y1 - y0 + 1, x1 - x0 + 1), 7, np.uint16),
                               frame_count=self.count, time_stamp_relative_ns_or_null=self.count * 1000)

    def dispose(self):
        self.disposed = True


def fake_sdk(serials=("08123",)):
    camera = FakeSDKCamera()
    state = SimpleNamespace(camera=camera, sdk_disposed=False)

    class TLCameraSDK:
        def discover_available_cameras(self):
            return list(serials)

        def open_camera(self, serial):
            return camera

        def dispose(self):
            state.sdk_disposed = True

    return SimpleNamespace(TLCameraSDK=TLCameraSDK, TLCameraError=TLCameraError, state=state)

"""A fake pylablib ``UC480Camera`` (same method signatures, real pylablib exceptions and tuples).

It models what the driver relies on: the colour modes on offer, the ROI limits of a 1280×1024
sensor (DCC1645C), exposure clamped by the frame period, and a live acquisition whose frames
are produced by a function of the frame number. ``fail`` injects vendor errors.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from pylablib.devices.interface.camera import TAxisROILimit
from pylablib.devices.uc480 import uc480Error, uc480TimeoutError
from pylablib.devices.uc480.uc480 import TCameraInfo, TFrameInfo, TTimestamp

DCC1645C_MODES = ["mono8", "mono16", "raw8", "raw16", "rgb8p", "bgr8p", "rgba8p"]


class FakeUC480Dll:
    """The uEye DLL calls the driver makes directly: is_Gamma and is_SetAutoParameter (by reference)."""

    def __init__(self):
        self.gamma = 160  # ThorCam may leave a gamma of 1.6
        self.auto = {0x8800: 1.0, 0x8804: 1.0, 0x8808: 0.0}  # auto gain and white balance on

    def is_Gamma(self, hcam, command, param, size):
        if command == 0x0001:
            self.gamma = param._obj.value
        elif command == 0x0003:
            param._obj.value = self.gamma
        return 0

    def is_SetAutoParameter(self, hcam, command, val1, val2):
        if command in self.auto:
            self.auto[command] = val1._obj.value
        elif command - 1 in self.auto:
            val1._obj.value = self.auto[command - 1]
        return 0


class FakeUC480Lib:
    """pylablib's uc480 library wrapper: the wrapped is_SetHardwareGamma, and the raw DLL."""

    def __init__(self):
        self.hw_gamma = 1
        self.lib = FakeUC480Dll()

    def is_SetHardwareGamma(self, hcam, mode, check=False):
        if mode == 0x8000:
            return self.hw_gamma
        self.hw_gamma = mode
        return 0


class FakeUC480Camera:
    def __init__(self, cam_id=0, roi_binning_mode="auto", dev_id=None, backend="uc480"):
        self.cam_id, self.dev_id, self.backend = cam_id, dev_id, backend
        self.width, self.height = 1280, 1024
        self.color_mode = "rgb8p"  # a colour sensor does not start in a mono mode
        self.modes = list(DCC1645C_MODES)
        self.roi = (0, 1280, 0, 1024, 1, 1)
        self.exposure_s = 0.01
        self.frame_period_s = 0.02
        self.gains = (2.0, 1.0, 1.0, 1.0)
        self.gain_boost = True
        self.trigger = "ext"
        self.frame_fn = lambda n, shape: np.full(shape, n % 256, np.uint8)
        self.produce = True  # False: frames never come (timeout)
        self.acquiring = False
        self.buffer_frames = 0
        self.frame_counter = 1000  # the camera's own frame number keeps running between acquisitions
        self._pending: list = []
        self.closed = False
        self.calls: list[str] = []
        self.fail: dict[str, Exception] = {}
        self.hcam = 1
        self.lib = FakeUC480Lib()  # pylablib's library wrapper; .lib is the loaded DLL

    def _call(self, name):
        self.calls.append(name)
        if name in self.fail:
            raise self.fail[name]

    def get_all_color_modes(self):
        self._call("get_all_color_modes")
        return list(self.modes)

    def set_color_mode(self, mode):
        self._call("set_color_mode")
        if mode not in self.modes:
            raise uc480Error(f"invalid colour mode {mode}")
        self.color_mode = mode
        return self.color_mode

    def get_color_mode(self):
        return self.color_mode

    def set_trigger_mode(self, mode):
        self._call("set_trigger_mode")
        self.trigger = mode
        return mode

    def set_gains(self, master=None, red=None, green=None, blue=None):
        self._call("set_gains")
        new = [master, red, green, blue]
        self.gains = tuple(old if v is None else v for old, v in zip(self.gains, new, strict=True))
        return self.gains

    def get_gains(self):
        return self.gains

    def set_gain_boost(self, enabled):
        self._call("set_gain_boost")
        self.gain_boost = bool(enabled)
        return self.gain_boost

    def get_detector_size(self):
        return self.width, self.height

    def get_roi_limits(self, hbin=1, vbin=1):
        # DCC1645C-like AOI: minimum 32 px, position step 4, size step 4 (uc480 reports its own).
        return (TAxisROILimit(32, self.width, 4, 4, 1), TAxisROILimit(32, self.height, 4, 4, 1))

    def set_roi(self, hstart=0, hend=None, vstart=0, vend=None, hbin=1, vbin=1):
        self._call("set_roi")
        hend = self.width if hend is None else hend
        vend = self.height if vend is None else vend
        self.roi = (hstart // 4 * 4, hend // 4 * 4, vstart // 4 * 4, vend // 4 * 4, 1, 1)
        return self.roi

    def get_roi(self):
        return self.roi

    def set_exposure(self, exposure):
        self._call("set_exposure")
        self.exposure_s = min(max(exposure, 1e-5), self.frame_period_s)
        return self.exposure_s

    def set_frame_period(self, frame_time):
        self._call("set_frame_period")
        self.frame_period_s = min(max(frame_time, 1 / 25), 10.0)
        return self.frame_period_s

    def setup_acquisition(self, nframes=100):
        self._call("setup_acquisition")
        self.buffer_frames = nframes

    def start_acquisition(self, *args, **kwargs):
        self._call("start_acquisition")
        self.acquiring = True
        self._pending = []

    def stop_acquisition(self):
        self.calls.append("stop_acquisition")
        self.acquiring = False

    def wait_for_frame(self, since="lastread", nframes=1, timeout=20.0, error_on_stopped=False):
        self._call("wait_for_frame")
        if not self.produce:
            raise uc480TimeoutError()
        shape = ((self.roi[3] - self.roi[2]), (self.roi[1] - self.roi[0]))
        for _ in range(nframes):
            self.frame_counter += 1
            n = self.frame_counter
            info = TFrameInfo(len(self._pending), n, TTimestamp(2026, 1, 1, 0, 0, 0, 0), n * 200_000,
                              None, 0, 0)
            self._pending.append((self.frame_fn(n, shape), info))
        return True

    def read_multiple_images(self, rng=None, peek=False, missing_frame="skip", return_info=False,
                             return_rng=False):
        self._call("read_multiple_images")
        if not self.acquiring:
            return None
        frames = [p[0] for p in self._pending]
        infos = [p[1] for p in self._pending]
        self._pending = []
        return (frames, infos) if return_info else frames

    def close(self):
        self.calls.append("close")
        self.closed = True


def fake_vendor(cameras=(("4102712345", 1),), camera_factory=FakeUC480Camera, list_error=None):
    """A stand-in for the ``pylablib.devices.uc480`` module: list_cameras, UC480Camera, errors."""
    opened: list[FakeUC480Camera] = []

    def list_cameras(backend="uc480"):
        if list_error is not None:
            raise list_error
        return [TCameraInfo(cam_id, cam_id + 10, 0, "DCC1645C", serial, False, 0)
                for serial, cam_id in cameras]

    def open_camera(*args, **kwargs):
        cam = camera_factory(*args, **kwargs)
        opened.append(cam)
        return cam

    return SimpleNamespace(list_cameras=list_cameras, UC480Camera=open_camera, uc480Error=uc480Error,
                           uc480TimeoutError=uc480TimeoutError, opened=opened)

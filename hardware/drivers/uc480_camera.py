"""Thorlabs DCC1645C (a uc480/DCx CMOS camera) through pylablib's ``UC480Camera``.

docs/design.md, "Device facts": ``pylablib.devices.uc480.UC480Camera(cam_id, backend)``; the ThorCam
uc480 DLL (``backend="uc480"``) or IDS's uEye driver (``backend="ueye"``) must be installed. The
DCC1645C is a COLOUR (Bayer) sensor and does not start in a mono mode, so the driver always sets
an explicit single-channel mode (``mono8`` default, or a ``raw`` Bayer mode). Internal trigger.
Exposure is in µs here, in seconds in pylablib.

The colour pipeline is fixed so that ``mono8`` is linear in the light: master and RGB gains 1
(a fixed white balance), gain boost off, hardware and software gamma off (1.0), auto gain, auto
sensor gain and auto white balance off. Each is read back, checked and kept in ``settings``.
pylablib 1.4.5 wraps the gains and ``is_SetHardwareGamma``; ``is_Gamma`` and
``is_SetAutoParameter`` (uEye API) are called on its loaded DLL (``cam.lib.lib``) directly.
Under 633 nm light the red pixels clip long before the grey value does (grey ≈ 0.37 of full
scale for BT.601 weights): ``saturation_level`` is that grey value, an estimate from the assumed
filter leak (``RED_LIGHT_RGB``); check it on the rig with a raw8 frame.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from hardware.drivers.camera_base import PylablibCameraDriver
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing

# Single-channel output modes and their bit depth. uc480 10/12-bit modes arrive in 16-bit words;
# mono16/raw16 are taken as full-scale 16-bit (check max_value against a saturated frame on the rig).
COLOR_MODE_BITS = {"mono8": 8, "raw8": 8, "mono10": 10, "raw10": 10, "mono12": 12, "raw12": 12,
                   "mono16": 16, "raw16": 16}

# uEye API constants (ueye.h; the same values as pylablib's uc480_defs HWGAMMA, GAMMA, AUTOCONTROL).
HW_GAMMA_OFF, HW_GAMMA_GET = 0x0000, 0x8000
GAMMA_CMD_SET, GAMMA_CMD_GET, GAMMA_UNITY = 0x0001, 0x0003, 100  # is_Gamma: gamma × 100
AUTO_OFF = {"auto_gain": (0x8800, 0x8801), "auto_white_balance": (0x8804, 0x8805),
            "auto_sensor_gain": (0x8808, 0x8809)}  # is_SetAutoParameter (set, get)
# mono8 grey conversion and the filters' response at 633 nm relative to red: ASSUMED (BT.601 luma;
# typical colour-CMOS dyes), as in the simulated sensor (hardware/sim/config.py SensorSpec).
GREY_WEIGHTS_RGB = (0.299, 0.587, 0.114)
RED_LIGHT_RGB = (1.0, 0.12, 0.04)

# The DLL pylablib loads per backend (64-bit Python), and where it comes from.
DLL_SOURCES = {
    "uc480": ("uc480_64.dll", "Thorlabs ThorCam (thorlabs.com → ThorCam; installs it under "
                              r"C:\Program Files\Thorlabs\Scientific Imaging\ThorCam)"),
    "ueye": ("ueye_api_64.dll", "the IDS uEye driver / IDS Software Suite (ids-imaging.com; on Linux "
                                "it provides libueye_api.so)"),
}


def dll_missing_message(backend: str, err: BaseException | None = None) -> str:
    dll, source = DLL_SOURCES[backend]
    why = f" ({str(err).splitlines()[0]})" if err else ""
    return (f"the {backend} camera library {dll} is not installed or not found{why}; it comes with "
            f"{source}; if it is elsewhere, set camera.dll_path in the rig file to its folder")


def load_vendor(backend: str = "uc480", dll_path: str | None = None):
    """Imports ``pylablib.devices.uc480`` (no DLL is loaded yet), allowing DLLs off Windows."""
    import pylablib

    if sys.platform != "win32":
        pylablib.par["devices/only_windows_dlls"] = False  # pylablib refuses DLLs off Windows by default
    if dll_path:
        pylablib.par[f"devices/dlls/{backend}"] = dll_path
    from pylablib.devices import uc480

    return uc480


class UC480CameraDriver(PylablibCameraDriver):
    """A DCC1645C (or any uc480/uEye camera) behind the Camera interface."""

    def __init__(self, cam, color_mode: str = "mono8", vendor=None):
        vendor = vendor or load_vendor()
        self._timeout_error = vendor.uc480TimeoutError
        self._error = vendor.uc480Error
        if color_mode not in COLOR_MODE_BITS:
            raise ValueError(f"camera.color_mode must be one of {sorted(COLOR_MODE_BITS)} "
                             f"(single-channel modes; got {color_mode!r})")
        super().__init__(cam, COLOR_MODE_BITS[color_mode])
        self.color_mode = color_mode
        try:
            with self._translate_errors("setting up"):
                self._setup_hw(color_mode)
        except BaseException:
            with contextlib.suppress(Exception):
                cam.close()
            raise

    @classmethod
    def from_config(cls, camera_cfg, vendor=None) -> UC480CameraDriver:
        """Opens the camera named in the rig file's ``[camera]`` section (by serial, else by id)."""
        backend = camera_cfg.backend
        vendor = vendor or load_vendor(backend, camera_cfg.dll_path)
        try:
            cameras = list(vendor.list_cameras(backend=backend))
        except OSError as e:
            raise DriverMissing("camera", dll_missing_message(backend, e)) from None
        except vendor.uc480Error as e:
            raise DeviceError("camera", f"listing {backend} cameras failed: {e}") from None
        found = ", ".join(f"id {c.cam_id} {c.model} serial {c.serial_number}" for c in cameras) or "none"
        if camera_cfg.serial is not None:
            match = [c for c in cameras if str(c.serial_number) == str(camera_cfg.serial)]
            if not match:
                raise DeviceNotFound("camera", f"no {backend} camera with serial {camera_cfg.serial!r} "
                                               f"(cameras found: {found}); is it plugged in?")
            kwargs: dict[str, Any] = {"dev_id": match[0].dev_id}
            where = f"serial {camera_cfg.serial}"
        else:
            cam_id = camera_cfg.id or 0  # 0 = the first free camera
            if not cameras or (cam_id != 0 and cam_id not in [c.cam_id for c in cameras]):
                raise DeviceNotFound("camera", f"no {backend} camera with id {cam_id} (cameras found: "
                                               f"{found}); is it plugged in?")
            kwargs = {"cam_id": cam_id}
            where = f"id {cam_id}"
        try:
            cam = vendor.UC480Camera(backend=backend, **kwargs)
        except OSError as e:
            raise DriverMissing("camera", dll_missing_message(backend, e)) from None
        except vendor.uc480Error as e:
            raise DeviceError("camera", f"could not open the {backend} camera ({where}): {e}; "
                                        "is it open in ThorCam or another program?") from None
        return cls(cam, camera_cfg.color_mode, vendor=vendor)

    # -- hooks ----------------------------------------------------------------------------------
    def _setup_hw(self, color_mode: str) -> None:
        cam = self._cam
        modes = list(cam.get_all_color_modes())
        if color_mode not in modes:
            offered = sorted(m for m in modes if m in COLOR_MODE_BITS)
            raise DeviceError(self.device, f"colour mode {color_mode!r} is not offered by this camera "
                                           f"(single-channel modes it has: {offered})")
        applied = cam.set_color_mode(color_mode)
        if applied != color_mode:
            raise DeviceError(self.device, f"asked for colour mode {color_mode!r}, camera reports "
                                           f"{applied!r}")
        cam.set_trigger_mode("int")
        self._settings = {"color_mode": applied, **self._fix_colour_pipeline_hw()}

    def _fix_colour_pipeline_hw(self) -> dict:
        """Unity gains (fixed white balance), no gain boost, gamma 1, every auto function off;
        each read back and checked. Returns what was read back."""
        import ctypes

        cam = self._cam
        gains = cam.set_gains(master=1.0, red=1.0, green=1.0, blue=1.0)  # pylablib: 1.0 = unity
        boost = cam.set_gain_boost(False)
        if any(abs(g - 1.0) > 0.01 for g in gains) or boost:
            raise DeviceError(self.device, f"asked for unity gains without boost, camera reports gains "
                                           f"{gains} (master, R, G, B), boost {boost}")
        cam.lib.is_SetHardwareGamma(cam.hcam, HW_GAMMA_OFF)
        hw_gamma = int(cam.lib.is_SetHardwareGamma(cam.hcam, HW_GAMMA_GET))
        dll = cam.lib.lib
        value = ctypes.c_uint(GAMMA_UNITY)
        dll.is_Gamma(cam.hcam, GAMMA_CMD_SET, ctypes.byref(value), ctypes.sizeof(value))
        value = ctypes.c_uint(0)
        dll.is_Gamma(cam.hcam, GAMMA_CMD_GET, ctypes.byref(value), ctypes.sizeof(value))
        gamma = value.value / 100.0
        auto = {}
        for name, (set_cmd, get_cmd) in AUTO_OFF.items():
            off, unused = ctypes.c_double(0.0), ctypes.c_double(0.0)
            dll.is_SetAutoParameter(cam.hcam, set_cmd, ctypes.byref(off), ctypes.byref(unused))
            now = ctypes.c_double(-1.0)
            dll.is_SetAutoParameter(cam.hcam, get_cmd, ctypes.byref(now), ctypes.byref(unused))
            auto[name] = now.value != 0.0
        if hw_gamma != HW_GAMMA_OFF or gamma != 1.0 or any(auto.values()):
            raise DeviceError(self.device, f"could not make the output linear: hardware gamma {hw_gamma}, "
                                           f"gamma {gamma:g}, auto functions {auto}")
        return {"gamma": gamma, "hardware_gamma": False, "master_gain": float(gains[0]),
                "white_balance_rgb": [float(g) for g in gains[1:]], "gain_boost": False, **auto}

    @property
    def settings(self) -> dict:
        """The camera's output settings as read back at opening (for the run file)."""
        return {**self._settings, "saturation_level": self.saturation_level}

    @property
    def saturation_level(self) -> int:
        """The output value at which the red pixels clip under 633 nm light (see the module doc)."""
        if not self.color_mode.startswith("mono"):
            return self.max_value
        grey = sum(w * t for w, t in zip(GREY_WEIGHTS_RGB, RED_LIGHT_RGB, strict=True))
        return int(grey * self.max_value)

    def _set_exposure_hw(self, exposure_s: float) -> float:
        # uc480 caps the exposure at the frame period: lengthen the period first (it is clamped
        # to the camera's range), then set the exposure and return what was applied.
        self._cam.set_frame_period(exposure_s)
        return float(self._cam.set_exposure(exposure_s))

    def _frame_info(self, info) -> tuple[int | None, float | None]:
        if info is None:
            return None, None
        # TFrameInfo.framestamp: the camera's own frame number; timestamp_dev: 0.1 µs ticks since
        # the camera started (pylablib UC480Camera.read_multiple_images docstring).
        return int(info.framestamp), float(info.timestamp_dev) * 1e-7

    @contextlib.contextmanager
    def _translate_errors(self, what: str, timeout_ms: float | None = None) -> Iterator[None]:
        try:
            yield
        except self._timeout_error:
            exposure = f", exposure {self._exposure_us:g} us" if self._exposure_us else ""
            raise DeviceTimeout(self.device, f"no frame within {timeout_ms:g} ms while {what}{exposure}; "
                                             "check the USB cable and trigger mode") from None
        except self._error as e:
            raise DeviceError(self.device, f"{what} failed: {e}") from None
        except OSError as e:  # the DLL went away under us, or a USB transfer failed
            raise DeviceError(self.device, f"{what} failed: {e}") from None

"""A scaffold for a new camera driver: copy this file into your lab's package and fill in the TODOs.

The public side of a camera (``configure``, ``capture``, ``close``, ``max_value``: the
:class:`hardware.interfaces.Camera` Protocol) is written once, in
:class:`hardware.drivers.camera_base.CameraDriverBase`: it validates the ROI and exposure, centres
the ROI on the sensor, converts µs to seconds, averages frames and counts saturated pixels. A new
camera implements only the private ``_..._hw`` hooks below, each a thin call into its vendor's
SDK, and translates the SDK's exceptions into :mod:`hardware.errors` ones in
``_translate_errors`` (the engine retries a ``DeviceError`` and stops on ``DriverMissing`` /
``DeviceNotFound``). ``hardware/drivers/uc480_camera.py`` is a complete example.

To let rig files use it without editing speckle-lab, register it as a device plugin in your
package's ``pyproject.toml`` (docs/design.md, "Devices"; :mod:`hardware.plugins`)::

    [project.entry-points."speckle_lab.devices"]
    template = "mylab.template_camera:PLUGIN"

and a rig file takes it as ``[camera] kind = "template"`` with the keys of ``TemplateCameraConfig``.
Everything here raises ``NotImplementedError`` until it is filled in; nothing in speckle-lab imports
this module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from hardware.drivers.camera_base import CameraDriverBase, Grabbed
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from hardware.plugins import DevicePlugin
from hardware.rig import CameraConfig


class TemplateCameraConfig(CameraConfig):
    """The rig file's ``[camera]`` table for this camera: the common keys (``sensor_px``,
    ``pixel_um``, ``timeout_ms``, ``serial``, ...) plus the device's own. Units in the names."""

    kind: Literal["template"] = "template"  # type: ignore[assignment]  # TODO: your kind's name
    # TODO: the device's own keys, each with a default or required, e.g.
    # address: str = "192.168.0.10"      # the camera's IP address
    # gain_db: float = Field(default=0.0, ge=0, le=24)


def load_vendor():
    """The vendor's SDK module, imported only when a camera is opened (``speckle-lab --help`` and the
    simulated rig never import it). A missing SDK is ``DriverMissing``: one line saying what to
    install, and the engine does not retry it."""
    try:
        import vendor_sdk  # type: ignore[import-not-found]  # TODO: the SDK's module
    except ImportError:
        raise DriverMissing("camera", "vendor_sdk is not installed; TODO: where to get it") from None
    return vendor_sdk


class TemplateCamera(CameraDriverBase):
    """TODO: one line naming the camera (model, interface), e.g. "An Acme AC-1300 over USB3"."""

    def __init__(self, cam, bit_depth: int):
        super().__init__(bit_depth)  # bit depth of the OUTPUT mode: max_value = 2**bit_depth - 1
        self._cam = cam  # the SDK's handle of one opened camera

    @classmethod
    def from_config(cls, config: TemplateCameraConfig, operator=None) -> TemplateCamera:
        """Opens the camera the rig file names (``open`` of the plugin: (table, operator) -> device).

        A camera that is not there is ``DeviceNotFound`` naming what was looked for and what was
        found; the SDK's own errors go through ``_translate_errors``."""
        sdk = load_vendor()
        raise NotImplementedError("TODO: open the camera")
        found = sdk.list_cameras()  # TODO  # noqa: F841 - the scaffold's shape, after the raise
        if config.serial is not None and config.serial not in found:
            raise DeviceNotFound("camera", f"no camera with serial {config.serial!r} (found: {found})")
        cam = sdk.open(config.serial)  # TODO
        cam.set_pixel_format("Mono8")  # TODO: set an explicit mono/raw output mode, never the default
        return cls(cam, bit_depth=8)

    # -- hooks: one SDK call each ----------------------------------------------------------------
    def _sensor_px_hw(self) -> tuple[int, int]:
        """(rows, cols) of the whole sensor."""
        raise NotImplementedError("TODO: e.g. return self._cam.height_max, self._cam.width_max")

    def _roi_steps_hw(self) -> tuple[int, int]:
        """(position step, size step) in pixels the sensor's ROI accepts (1, 1 if any)."""
        raise NotImplementedError("TODO: e.g. return self._cam.offset_increment, self._cam.width_increment")

    def _set_roi_hw(self, row0: int, col0: int, rows: int, cols: int) -> tuple[int, int, int, int]:
        """Sets the ROI; returns the ROI the camera applied, READ BACK, as (row0, col0, rows, cols).
        The base class refuses a run whose read-back differs from what it asked for."""
        raise NotImplementedError("TODO: set offset and size, then read them back")

    def _set_exposure_hw(self, exposure_s: float) -> float:
        """Sets the exposure in SECONDS; returns the exposure applied (cameras round it), read back."""
        raise NotImplementedError("TODO: e.g. self._cam.exposure_us = exposure_s * 1e6; return it / 1e6")

    def _grab_hw(self, n_frames: int, timeout_s: float) -> list[Grabbed]:
        """``n_frames`` NEW frames (taken after this call starts), each within ``timeout_s``, as
        (image (rows, cols) uint8/uint16, the camera's frame counter or None, its clock in s or None).
        A frame that does not come in time raises the SDK's timeout (see ``_translate_errors``)."""
        raise NotImplementedError("TODO: start acquisition, wait for n frames, read them, stop")

    def _close_hw(self) -> None:
        """Releases the camera (called once; the base class makes ``close`` idempotent)."""
        raise NotImplementedError("TODO: e.g. self._cam.close()")

    @contextlib.contextmanager
    def _translate_errors(self, what: str, timeout_ms: float | None = None) -> Iterator[None]:
        """The SDK's exceptions as :mod:`hardware.errors` ones, naming the device and the step."""
        try:
            yield
        except TimeoutError as e:  # TODO: the SDK's timeout exception
            raise DeviceTimeout("camera", f"{what}: no frame within {timeout_ms} ms ({e})") from None
        except OSError as e:  # TODO: the SDK's own error class
            raise DeviceError("camera", f"{what} failed: {e}") from None


# What the lab package's entry point names (see the module docstring).
PLUGIN = DevicePlugin(role="camera", kind="template", open=TemplateCamera.from_config,
                      config_model=TemplateCameraConfig)

"""A rig for interactive work from Python: ``rig.slm.show(pattern)``, ``rig.camera.capture()``.

The handles wrap the device Protocols of :mod:`hardware.interfaces` with what a person at a
notebook wants: a binary object is shown at the rig's π level (docs/design.md, "Device
interfaces"), the SLM waits the rig's ``settle_ms`` before returning, and the camera returns a
:class:`hardware.interfaces.Frame` whose ``image`` is a numpy array. Units are in the names.
Everything closes on leaving the ``with`` block, even when a device fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hardware.clock import REAL_CLOCK, Clock
from hardware.interfaces import SLM, Camera, DiffuserChanger, DistanceStage, Frame
from hardware.rig import Rig


@dataclass
class SlmHandle:
    """The SLM of an open rig. ``show`` takes a 0/1 object or uint8 gray levels."""

    device: SLM
    gray_pi: int  # the rig LUT's π level: the '1' of a binary object
    settle_ms: float  # waited after each flip, as the acquisition engine does
    clock: Clock = REAL_CLOCK  # the rig's clock (the simulated rig's is virtual)

    @property
    def window_shape(self) -> tuple[int, int]:
        """(rows, cols) of the pattern window."""
        return tuple(self.device.window_shape)

    def show(self, pattern: np.ndarray, *, binary: bool | None = None, wait: bool = True) -> None:
        """Shows ``pattern`` in the SLM window and waits for the liquid crystal to settle.

        A bool array, or one holding only 0 and 1, is a binary object: 0 → gray 0, 1 → the π
        level. Anything else is taken as uint8 gray levels. ``binary`` forces either reading.
        A pattern smaller than the window is centred in it (gray 0 around it), as faces are.

        >>> rig.slm.show(np.eye(800, dtype=bool))  # doctest: +SKIP
        """
        a = np.asarray(pattern)
        if a.ndim != 2:
            raise ValueError(f"pattern: expected a 2-D array (got shape {a.shape})")
        if binary is None:
            binary = a.dtype == bool or bool(np.isin(a, (0, 1)).all())
        if binary:
            gray = np.where(a > 0, np.uint8(self.gray_pi), np.uint8(0)).astype(np.uint8)
        else:
            if a.dtype.kind not in "ui" or a.min() < 0 or a.max() > 255:
                raise ValueError("pattern: gray levels must be integers 0..255")
            gray = a.astype(np.uint8)
        flip_s = self.device.show_gray(_centred(gray, self.window_shape))
        if wait and self.settle_ms > 0:
            self.clock.sleep(flip_s + self.settle_ms / 1000 - self.clock.monotonic())

    def blank(self) -> None:
        """Shows gray 0 over the whole window."""
        self.show(np.zeros(self.window_shape, dtype=np.uint8), binary=False)

    def read_back(self) -> np.ndarray:
        """The gray levels displayed now (window_shape, uint8)."""
        return np.asarray(self.device.read_back())


def _centred(gray: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    if gray.shape == tuple(window):
        return gray
    if gray.shape[0] > window[0] or gray.shape[1] > window[1]:
        raise ValueError(f"pattern: shape {gray.shape} is larger than the SLM window {tuple(window)}")
    out = np.zeros(window, dtype=np.uint8)
    r0, c0 = (window[0] - gray.shape[0]) // 2, (window[1] - gray.shape[1]) // 2
    out[r0:r0 + gray.shape[0], c0:c0 + gray.shape[1]] = gray
    return out


@dataclass
class CameraHandle:
    """The camera of an open rig: set the exposure and ROI once, then capture."""

    device: Camera
    roi_px: tuple[int, int]
    exposure_us: float
    timeout_ms: float
    _configured: bool = field(default=False, repr=False)

    @property
    def max_value(self) -> int:
        return int(self.device.max_value)

    def configure(self, *, exposure_us: float | None = None, roi_px: tuple[int, int] | None = None) -> float:
        """Sets the exposure (µs) and the centred ROI (rows, cols); returns the exposure applied."""
        if exposure_us is not None:
            if not np.isfinite(exposure_us) or exposure_us <= 0:
                raise ValueError(f"exposure_us: must be a positive number (got {exposure_us})")
            self.exposure_us = float(exposure_us)
        if roi_px is not None:
            if len(roi_px) != 2 or min(roi_px) <= 0:
                raise ValueError(f"roi_px: expected (rows, cols) > 0 (got {roi_px})")
            self.roi_px = (int(roi_px[0]), int(roi_px[1]))
        self.exposure_us = float(self.device.configure(self.roi_px, self.exposure_us))
        self._configured = True
        return self.exposure_us

    def capture(self, *, average: int = 1, exposure_us: float | None = None) -> Frame:
        """One frame (or the mean of ``average``); ``frame.image`` is the numpy array.

        >>> frame = rig.camera.capture(exposure_us=2000)  # doctest: +SKIP
        >>> frame.image.shape, frame.saturated_fraction  # doctest: +SKIP
        """
        if average < 1:
            raise ValueError(f"average: must be ≥ 1 (got {average})")
        if exposure_us is not None or not self._configured:
            self.configure(exposure_us=exposure_us)
        return self.device.capture(self.timeout_ms, average=average)


@dataclass
class LabRig:
    """An open rig for interactive use; a context manager that closes every device."""

    rig: Rig
    slm: SlmHandle
    camera: CameraHandle
    stage: DistanceStage
    changer: DiffuserChanger

    @property
    def config(self):
        """The validated rig file (:class:`hardware.rig.RigConfig`)."""
        return self.rig.config

    @property
    def simulated(self) -> bool:
        return bool(self.rig.config.simulated)

    def close(self) -> None:
        self.rig.close()

    def __enter__(self) -> LabRig:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def lab_rig(rig: Rig, *, roi_px: tuple[int, int] = (800, 800), exposure_us: float = 1000.0) -> LabRig:
    """Wraps an open :class:`hardware.rig.Rig` in interactive handles."""
    cfg = rig.config
    slm = SlmHandle(rig.slm, int(rig.lut.gray_pi), float(cfg.slm.settle_ms), rig.clock)
    camera = CameraHandle(rig.camera, roi_px, exposure_us, float(cfg.camera.timeout_ms))
    return LabRig(rig, slm, camera, rig.stage, rig.changer)

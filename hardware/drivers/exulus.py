"""The EXULUS-HD2 SLM: the display window (HDMI) plus, optionally, its USB control port.

The pattern goes through :class:`hardware.drivers.exulus_display.ExulusDisplay`. The control port
(phase-stroke mode, flips, test pattern) goes through Thorlabs' EXULUS command library, wrapped
by :mod:`hardware.drivers.exulus_control`, when the rig file asks for it (``slm.control =
"exulus-dll"``). Without it the stroke mode is the rig file's declaration, which nothing verifies.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import numpy as np

from hardware.drivers.exulus_display import EXULUS_PANEL_PX, ExulusDisplay, check_gray, window_origin_px
from hardware.errors import DeviceError, DriverMissing
from hardware.lut import PhaseLUT
from speckle_core.errors import UserError

if TYPE_CHECKING:
    from hardware.drivers.exulus_control import ExulusControl

log = logging.getLogger(__name__)

STROKE_MODES = ("full-wave", "half-wave")
CONTROL_TIMEOUT_S = 3.0  # EXULUSOpen's timeout; the USB link answers in milliseconds


class ExulusSLM:
    """Implements the :class:`hardware.interfaces.SLM` protocol for a Thorlabs EXULUS-HD2."""

    def __init__(self, display: ExulusDisplay, control: ExulusControl | None = None,
                 declared_stroke_mode: str = "full-wave", lut: PhaseLUT | None = None):
        if declared_stroke_mode not in STROKE_MODES:
            raise ValueError(f"stroke mode must be one of {STROKE_MODES} (got {declared_stroke_mode!r})")
        self._display = display
        self._control = control
        self._declared_stroke_mode = declared_stroke_mode
        self._warned_unverified = False
        self.lut = lut if lut is not None else PhaseLUT.linear()
        self._closed = False

    @classmethod
    def from_config(cls, slm_cfg, lut: PhaseLUT) -> ExulusSLM:
        """Opens the SLM a rig file's ``[slm]`` section describes (a ``hardware.rig.SlmConfig``)."""
        if slm_cfg.kind != "exulus":
            raise UserError(f"slm.kind: ExulusSLM drives kind 'exulus' (got {slm_cfg.kind!r})")
        try:
            window_origin_px(EXULUS_PANEL_PX, tuple(slm_cfg.window_px), tuple(slm_cfg.window_offset_px))
        except ValueError as e:
            raise UserError(f"slm.window_offset_px: {e} (got {list(slm_cfg.window_offset_px)})") from None
        control: ExulusControl | None = None
        if slm_cfg.control == "exulus-dll":
            control = _open_control(slm_cfg)
        try:
            display = ExulusDisplay(slm_cfg.monitor, window_px=tuple(slm_cfg.window_px),
                                    window_offset_px=tuple(slm_cfg.window_offset_px),
                                    allow_primary=slm_cfg.allow_primary)
        except BaseException:
            if control is not None:
                with contextlib.suppress(Exception):  # already failing: keep the first error
                    control.close()
            raise
        slm = cls(display, control, slm_cfg.stroke_mode, lut)
        if control is not None:
            device_mode = slm.stroke_mode()
            if device_mode != slm_cfg.stroke_mode:
                log.warning("slm: the device is in %s mode but the rig file declares slm.stroke_mode = %r; "
                            "the phase LUT may be wrong", device_mode, slm_cfg.stroke_mode)
        return slm

    @property
    def window_shape(self) -> tuple[int, int]:
        return self._display.window_px

    def show_gray(self, gray: np.ndarray) -> float:
        """Shows ``gray`` (window_shape, uint8) after a vsync'd flip; returns the flip's monotonic time."""
        return self._display.show_gray(check_gray(gray, self.window_shape))

    def read_back(self) -> np.ndarray:
        return self._display.read_back()

    def stroke_mode(self) -> str:
        """The device's phase-stroke mode, read back over USB; without control, the rig file's."""
        if self._control is not None:
            mode = self._control.stroke_mode()
            if mode not in STROKE_MODES:
                raise DeviceError("slm", f"the EXULUS reported an unknown stroke mode {mode!r}")
            return mode
        if not self._warned_unverified:
            log.warning("slm: stroke mode %r is the rig file's declaration, not read from the device "
                        "(set slm.control = \"exulus-dll\" to verify it)", self._declared_stroke_mode)
            self._warned_unverified = True
        return self._declared_stroke_mode

    @property
    def control(self) -> object | None:
        """The USB control (``ExulusControl``) or None: flips and test pattern are set through it."""
        return self._control

    def close(self) -> None:
        """Closes the control port and the window, both even if one fails. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        errors = []
        for part in (self._control, self._display):
            if part is None:
                continue
            try:
                part.close()
            except Exception as e:  # noqa: BLE001 - close both, report the first
                errors.append(e)
        if errors:
            raise errors[0]

    def __enter__(self) -> ExulusSLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_control(slm_cfg) -> ExulusControl:
    if not slm_cfg.control_port:
        raise UserError("slm.control_port: required when slm.control = \"exulus-dll\" "
                        "(the EXULUS serial number or COM port, e.g. \"COM5\")")
    try:
        from hardware.drivers.exulus_control import ExulusControl
    except ImportError as e:
        raise DriverMissing("slm", f"the EXULUS control module cannot be imported ({e})") from None
    return ExulusControl.open(slm_cfg.control_port, slm_cfg.control_library, CONTROL_TIMEOUT_S)

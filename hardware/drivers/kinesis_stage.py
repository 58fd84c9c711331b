"""Camera distance stage: Thorlabs KDC101 K-Cube + MTS50-Z8 through pylablib's ``KinesisMotor``.

docs/design.md, "Device facts": ``KinesisMotor(conn, scale="MTS50-Z8")`` works in METRES; this driver
speaks millimetres of camera distance from the focal plane of L2. The rig file's ``zero_mm`` is
the stage reading (mm) at which the camera sits at distance 0. ``direction`` says which way the
stage is mounted: "away" (increasing travel moves the camera away from L2, stage_mm = zero_mm +
distance_mm) or "toward" (stage_mm = zero_mm - distance_mm).
Every move waits (with a timeout), reads the position back and checks it against the target.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator

from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from speckle_core.errors import UserError
from speckle_core.text import first_line

FTDI_MISSING = (
    "the FTDI D2XX driver that pylablib needs to open a Kinesis device by serial number is missing "
    "(pyft232 cannot load it: 'import ft232' fails); install Thorlabs Kinesis (thorlabs.com → "
    "Kinesis software, it ships ftd2xx.dll) or FTDI's D2XX driver (ftdichip.com), or on Linux set "
    "stage.serial to the K-Cube's serial port (e.g. '/dev/ttyUSB0', kernel ftdi_sio driver)"
)


# stage travel per mm of camera distance from L2's focal plane, by mounting
DIRECTION_SIGN = {"away": 1.0, "toward": -1.0}


def load_vendor():
    from pylablib.devices import Thorlabs

    return Thorlabs


class KinesisStage:
    """A KDC101-driven linear stage behind the DistanceStage interface."""

    device = "stage"
    manual = False

    def __init__(self, motor, zero_mm: float = 0.0, travel_mm: tuple[float, float] = (0.0, 50.0),
                 tolerance_um: float = 5.0, move_timeout_s: float = 60.0, direction: str = "away",
                 vendor=None):
        vendor = vendor or load_vendor()
        self._error, self._timeout_error = vendor.ThorlabsError, vendor.ThorlabsTimeoutError
        lo, hi = (float(v) for v in travel_mm)
        if not lo < hi:
            raise UserError(f"stage.travel_mm must be (low, high) with low < high (got {travel_mm!r})")
        if not lo <= zero_mm <= hi:
            raise UserError(f"stage.zero_mm {zero_mm:g} is outside stage.travel_mm {lo:g}..{hi:g}")
        if direction not in DIRECTION_SIGN:
            raise UserError(f"stage.direction must be 'away' or 'toward' (got {direction!r})")
        self._motor = motor
        self.zero_mm = float(zero_mm)
        self.direction = direction
        self.travel_mm = (lo, hi)
        self.tolerance_um = float(tolerance_um)
        self.move_timeout_s = float(move_timeout_s)
        self._closed = False

    @classmethod
    def from_config(cls, stage_cfg, vendor=None) -> KinesisStage:
        """Opens the K-Cube named by ``stage.serial`` (serial number, or a serial port path)."""
        vendor = vendor or load_vendor()
        if not stage_cfg.serial:
            raise UserError("stage.serial: the KDC101's serial number (e.g. '27000001') is needed for "
                            "kind = 'kinesis'")
        conn = str(stage_cfg.serial)
        try:
            motor = vendor.KinesisMotor(conn, scale=stage_cfg.scale)
        except ValueError as e:
            if "ft232" in str(e):
                raise DriverMissing("stage", FTDI_MISSING) from None
            raise DeviceError("stage", f"opening KDC101 {conn} failed: {e}") from None
        except vendor.ThorlabsError as e:
            raise DeviceNotFound("stage", f"no KDC101 at {conn!r} ({first_line(e)}); Kinesis devices "
                                          f"found: {_list_devices(vendor)}; is it powered and plugged "
                                          "in, and closed in Kinesis?") from None
        stage = cls(motor, stage_cfg.zero_mm, stage_cfg.travel_mm, stage_cfg.tolerance_um,
                    stage_cfg.move_timeout_s, stage_cfg.direction, vendor=vendor)
        try:
            units = motor.get_scale_units()
            if units != "m":
                raise DeviceError("stage", f"scale {stage_cfg.scale!r} gives positions in {units!r}, not "
                                           "metres; set stage.scale to the stage model, e.g. 'MTS50-Z8'")
            if stage_cfg.home_on_start:
                stage.home()
        except BaseException:
            with contextlib.suppress(Exception):
                stage.close()
            raise
        return stage

    # -- the interface --------------------------------------------------------------------------
    def move_to_mm(self, distance_mm: float) -> float:
        """Moves the camera to ``distance_mm``, waits, reads back; returns the distance reached."""
        if not (isinstance(distance_mm, numbers.Real) and math.isfinite(distance_mm)):
            raise ValueError(f"stage: distance must be a number of mm (got {distance_mm!r})")
        target_mm = self._stage_mm(float(distance_mm))
        lo, hi = self.travel_mm
        if not lo <= target_mm <= hi:
            raise UserError(f"stage: distance {distance_mm:g} mm needs stage position {target_mm:g} mm, "
                            f"outside the travel {lo:g}..{hi:g} mm (stage.zero_mm = {self.zero_mm:g}, "
                            f"stage.direction = {self.direction!r})")
        with self._translate_errors(f"moving to {distance_mm:g} mm"):
            if not self._is_homed_hw():
                raise DeviceError(self.device, "not homed, so positions mean nothing; set "
                                               "stage.home_on_start = true or home it in Kinesis")
            reached_mm = self._move_hw(target_mm * 1e-3, self.move_timeout_s) * 1e3
        if abs(reached_mm - target_mm) * 1e3 > self.tolerance_um:
            raise DeviceError(self.device, f"asked for {target_mm:.4f} mm, read back {reached_mm:.4f} mm "
                                           f"(off by more than {self.tolerance_um:g} um)")
        return self._distance_mm(reached_mm)

    def distance_mm(self) -> float | None:
        """The present distance from the read-back position; None before the stage is homed."""
        with self._translate_errors("reading the position"):
            if not self._is_homed_hw():
                return None
            return self._distance_mm(self._position_m_hw() * 1e3)

    def home(self) -> None:
        """Homes the stage (the MTS50-Z8's reverse limit switch), waiting up to move_timeout_s."""
        with self._translate_errors("homing"):
            self._home_hw(self.move_timeout_s)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._translate_errors("closing"):
            self._motor.close()

    def _stage_mm(self, distance_mm: float) -> float:
        return self.zero_mm + DIRECTION_SIGN[self.direction] * distance_mm

    def _distance_mm(self, stage_mm: float) -> float:
        return (stage_mm - self.zero_mm) * DIRECTION_SIGN[self.direction]

    # -- hooks ----------------------------------------------------------------------------------
    def _is_homed_hw(self) -> bool:
        return bool(self._motor.is_homed())

    def _position_m_hw(self) -> float:
        return float(self._motor.get_position())

    def _move_hw(self, target_m: float, timeout_s: float) -> float:
        self._motor.move_to(target_m)
        try:
            self._motor.wait_move(timeout=timeout_s)
        except self._timeout_error:
            with contextlib.suppress(Exception):
                self._motor.stop(immediate=True, sync=False)  # do not leave it running
            raise
        return self._position_m_hw()

    def _home_hw(self, timeout_s: float) -> None:
        self._motor.home(sync=True, force=True, timeout=timeout_s)

    @contextlib.contextmanager
    def _translate_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._timeout_error:
            raise DeviceTimeout(self.device, f"{what}: not done within {self.move_timeout_s:g} s "
                                             "(stage.move_timeout_s); motion stopped") from None
        except self._error as e:
            raise DeviceError(self.device, f"{what} failed: {first_line(e)}") from None


def _list_devices(vendor) -> str:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = vendor.list_kinesis_devices()
    except Exception as e:  # noqa: BLE001 - only for the message
        return f"(listing failed: {first_line(e)})"
    return ", ".join(str(d[0] if isinstance(d, tuple) else d) for d in found) or "none"

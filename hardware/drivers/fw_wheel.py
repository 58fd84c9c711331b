"""Diffuser changer: a Thorlabs FW102C six-slot filter wheel through pylablib's ``FW`` (pyserial).

The wheel speaks an ASCII protocol over a USB virtual serial port (115200 baud, commands end in
CR; the wheel echoes each command, answers queries, then prints a "> " prompt). The rig file maps
wheel slots (1..6) to diffusers (grit names). Every selection reads the position back.

pylablib's ``FW`` runs in a "fail-safe" mode that retries a silent wheel five times with pauses
(half a minute in all) and hard-codes a 5 s timeout. Here one attempt with the rig file's
``changer.timeout_s`` is made instead: a silent wheel becomes one ``DeviceTimeout`` that the
acquisition engine may retry on its own terms.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator

from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout
from speckle_core.errors import UserError
from speckle_core.text import one_line


def load_vendor():
    from pylablib.devices import Thorlabs

    return Thorlabs


def _wheel_class(vendor):
    """pylablib's FW with one attempt per operation, timing out after ``timeout_s``."""
    from pylablib.core.devio import SCPI

    class _OwnTimeout(SCPI.SCPIDevice):
        _own_timeout_s: float  # set by FW102C before the connection is made
        # Sits between pylablib's ThorlabsSerialInterface and SCPIDevice in the MRO, replacing
        # the hard-coded 5 s with this wheel's timeout before the connection is made.
        def __init__(self, conn, *args, timeout=None, **kwargs):
            super().__init__(conn, *args, timeout=self._own_timeout_s, **kwargs)

    class FW102C(vendor.FW, _OwnTimeout):
        _default_failsafe = False  # one attempt per operation; see the module docstring

        def __init__(self, conn, timeout_s: float):
            self._own_timeout_s = float(timeout_s)
            super().__init__(conn, respect_bound=True)

    return FW102C


def list_serial_ports() -> list[str]:
    from serial.tools import list_ports

    return sorted(p.device for p in list_ports.comports())


class FilterWheelChanger:
    """An FW102C holding the rig's diffusers behind the DiffuserChanger interface."""

    device = "changer"
    manual = False

    def __init__(self, wheel, slots: dict[int, str], timeout_s: float = 20.0):
        from pylablib.core.devio.base import DeviceError as VendorError

        self._vendor_error = VendorError
        self._wheel = wheel
        self._slots = {int(k): str(v) for k, v in slots.items()}
        self._slot_of = {v: k for k, v in self._slots.items()}
        self.timeout_s = float(timeout_s)
        self._closed = False
        with self._translate_errors("reading the number of slots"):
            pcount = int(self._wheel.get_pcount())
        beyond = [s for s in self._slots if not 1 <= s <= pcount]
        if beyond:
            self.close()
            raise UserError(f"changer.slots: slot {beyond[0]} does not exist on this {pcount}-slot wheel")

    @classmethod
    def from_config(cls, changer_cfg, vendor=None) -> FilterWheelChanger:
        """Opens the wheel on ``changer.port`` (e.g. "COM4" or "/dev/ttyUSB0")."""
        if not changer_cfg.port:
            raise UserError("changer.port: the FW102C's serial port (e.g. 'COM4' or '/dev/ttyUSB0') is "
                            "needed for kind = 'fw102c'")
        wheel = open_wheel(changer_cfg.port, changer_cfg.timeout_s, vendor)
        slots = {int(k): v for k, v in changer_cfg.slots.items()}
        return cls(wheel, slots, changer_cfg.timeout_s)

    # -- the interface --------------------------------------------------------------------------
    @property
    def diffusers(self) -> tuple[str, ...]:
        return tuple(self._slots[s] for s in sorted(self._slots))

    def select(self, diffuser: str) -> None:
        """Turns the wheel to ``diffuser``'s slot and checks, by reading back, that it is there."""
        if diffuser not in self._slot_of:
            held = ", ".join(f"{s}={n}" for s, n in sorted(self._slots.items()))
            raise UserError(f"changer: diffuser {diffuser!r} is not in the wheel (changer.slots: {held})")
        slot = self._slot_of[diffuser]
        with self._translate_errors(f"selecting diffuser {diffuser} (slot {slot})"):
            reached = self._set_slot_hw(slot)
        if reached != slot:
            raise DeviceError(self.device, f"asked for slot {slot} (diffuser {diffuser}) but the wheel "
                                           f"reports slot {reached}; is it blocked?")

    def move_to_slot(self, slot: int) -> None:
        """Turns the wheel to ``slot`` whatever it holds (the blank slot for dark frames), read back."""
        with self._translate_errors("reading the number of slots"):
            pcount = int(self._wheel.get_pcount())
        if not 1 <= int(slot) <= pcount:
            raise UserError(f"changer.dark_slot: slot {slot} does not exist on this {pcount}-slot wheel")
        with self._translate_errors(f"turning to slot {slot}"):
            reached = self._set_slot_hw(int(slot))
        if reached != int(slot):
            raise DeviceError(self.device, f"asked for slot {slot} but the wheel reports slot {reached}; "
                                           "is it blocked?")

    def current(self) -> str | None:
        """The diffuser in the beam (read from the wheel), None for a slot with no diffuser."""
        with self._translate_errors("reading the position"):
            return self._slots.get(self._slot_hw())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._translate_errors("closing"):
            self._wheel.close()

    # -- hooks ----------------------------------------------------------------------------------
    def _slot_hw(self) -> int:
        return int(self._wheel.get_position())

    def _set_slot_hw(self, slot: int) -> int:
        return int(self._wheel.set_position(slot))

    @contextlib.contextmanager
    def _translate_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._vendor_error as e:
            raise _translate(e, what, self.timeout_s) from None


def _translate(e: BaseException, what: str, timeout_s: float) -> DeviceError:
    text = one_line(e)
    # pylablib's serial backend reports a silent device as a backend error "timeout during read".
    if "timeout" in text.lower():
        return DeviceTimeout("changer", f"{what}: the wheel did not answer within {timeout_s:g} s "
                                        "(changer.timeout_s); is it powered?")
    return DeviceError("changer", f"{what} failed: {text}")


def open_wheel(port: str, timeout_s: float, vendor=None):
    """pylablib's FW on ``port`` with one attempt per operation and ``timeout_s`` each."""
    if not (isinstance(timeout_s, numbers.Real) and math.isfinite(timeout_s) and timeout_s > 0):
        raise UserError(f"changer.timeout_s must be > 0 (got {timeout_s!r})")
    import serial
    from pylablib.core.devio.base import DeviceError as VendorError

    vendor = vendor or load_vendor()
    try:
        return _wheel_class(vendor)(port, timeout_s)
    except VendorError as e:
        if isinstance(e.__cause__, serial.SerialException):  # the port could not be opened
            ports = ", ".join(list_serial_ports()) or "none"
            raise DeviceNotFound("changer", f"cannot open the FW102C's port {port!r} "
                                            f"({' '.join(str(e.__cause__).split())}); serial ports "
                                            f"here: {ports}; if the wheel's port is not among them, "
                                            "check its USB cable and power, and install its USB serial "
                                            "driver (it comes with Thorlabs' FW102C software)") from None
        raise _translate(e, f"opening the wheel on {port}", timeout_s) from None

"""Dark sources: what blocks the laser for dark frames, so that darks need nobody at the rig.

Every dark source has ``block()`` (the laser no longer reaches the camera, checked where the device
can tell), ``unblock()`` (the beam is back, as it was), ``close()``, ``manual`` (a person does it)
and ``label`` (what the plan and the log call it):

- ``FlipMountShutter``: a Thorlabs MFF101/MFF102 motorised flip mount holding a beam block, through
  pylablib's ``Thorlabs.MFF`` (``move_to_state(0|1)``; ``get_state()`` is 0 or 1 at a limit switch,
  None while moving). ``shutter.blocked_state`` is the position that puts the block in the beam.
  Each move is waited for (polling ``get_state``) up to ``shutter.timeout_s``; the MFF's transit
  takes 0.3–2.8 s (its ``transit_time``).
- ``SolenoidShutter``: a Thorlabs SH05 beam shutter on a KSC101 K-Cube solenoid controller, through
  pylablib's generic ``Thorlabs.BasicKinesisDevice`` (pylablib has no KSC101 class) and the APT
  protocol's solenoid messages (Thorlabs "APT Communications Protocol", issue 38):
  ``MGMSG_MOT_SET_SOL_OPERATINGMODE`` 0x04C0 (param2 1 = manual), ``MGMSG_MOT_SET_SOL_STATE``
  0x04CB (param2 1 = ON: solenoid energised, an SH05 open; 2 = OFF: closed) and
  ``MGMSG_MOT_REQ_SOL_STATE`` 0x04CC, answered by ``GET`` 0x04CD with the state in param2. The SH05
  is normally closed: unpowered, it blocks the beam. At open the controller is put in manual mode
  and the shutter opened, so captures see the laser.
- ``WheelDarkSlot``: a blank (opaque) slot of the FW102C that holds the diffusers
  (``changer.dark_slot``): ``block()`` turns the wheel to it, ``unblock()`` back to the diffuser that
  was in the beam.
- ``OperatorDark``: a person, asked at the console (such a run cannot be ``--unattended``).
- ``NoDarkSource``: the simulated rig, whose camera renders dark frames itself.

Vendor exceptions become ``hardware.errors`` (``DeviceTimeout`` is retried by the engine).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from speckle_core.errors import UserError
from speckle_core.text import first_line

# APT solenoid messages (Thorlabs APT Communications Protocol)
SOL_SET_OPERATINGMODE = 0x04C0
SOL_SET_STATE = 0x04CB
SOL_REQ_STATE = 0x04CC  # answered by 0x04CD (GET_SOL_STATE)
SOL_MODE_MANUAL = 0x01
SOL_ON, SOL_OFF = 0x01, 0x02  # SH05: ON = open (beam passes), OFF = closed (beam blocked)
POLL_S = 0.02


def load_vendor():
    from pylablib.devices import Thorlabs

    return Thorlabs


class _VendorErrors:
    """Translates pylablib's Thorlabs errors into hardware.errors, naming the device."""

    device = "shutter"
    timeout_s = 5.0

    def _init_errors(self, vendor) -> None:
        self._error, self._timeout_error = vendor.ThorlabsError, vendor.ThorlabsTimeoutError

    @contextlib.contextmanager
    def _translate_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._timeout_error:
            raise DeviceTimeout(self.device, f"{what}: no answer within {self.timeout_s:g} s "
                                             "(shutter.timeout_s); is it powered?") from None
        except self._error as e:
            raise DeviceError(self.device, f"{what} failed: {first_line(e)}") from None


def _open_kinesis(vendor, opener: Callable[[str], Any], serial: str | None, model: str) -> Any:
    """Opens a Kinesis device by serial number (or serial port), with one-line errors."""
    from hardware.drivers.kinesis_stage import FTDI_MISSING

    if not serial:
        raise UserError(f"shutter.serial: the {model}'s serial number (e.g. '37000001') is needed")
    try:
        return opener(str(serial))
    except ValueError as e:
        if "ft232" in str(e):
            raise DriverMissing("shutter", FTDI_MISSING.replace("stage.serial", "shutter.serial")) from None
        raise DeviceError("shutter", f"opening {model} {serial} failed: {e}") from None
    except vendor.ThorlabsError as e:
        raise DeviceNotFound("shutter", f"no {model} at {serial!r} ({first_line(e)}); is it powered, "
                                        "plugged in, and closed in Kinesis?") from None


class FlipMountShutter(_VendorErrors):
    """An MFF101 flip mount carrying a beam block, behind the DarkSource interface."""

    manual = False

    def __init__(self, mff, blocked_state: int = 1, timeout_s: float = 5.0, settle_ms: float = 0.0,
                 vendor=None, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic, serial: str = ""):
        if blocked_state not in (0, 1):
            raise UserError(f"shutter.blocked_state must be 0 or 1 (got {blocked_state!r})")
        self._init_errors(vendor or load_vendor())
        self._mff = mff
        self.blocked_state = int(blocked_state)
        self.timeout_s, self.settle_ms = float(timeout_s), float(settle_ms)
        self._sleep, self._monotonic = sleep, monotonic
        self.label = f"MFF101 flip mount {serial}".strip() + f" (position {self.blocked_state} blocks)"
        self._closed = False

    @classmethod
    def from_config(cls, cfg, vendor=None) -> FlipMountShutter:
        vendor = vendor or load_vendor()
        mff = _open_kinesis(vendor, vendor.MFF, cfg.serial, "MFF101")
        return cls(mff, cfg.blocked_state, cfg.timeout_s, cfg.settle_ms, vendor=vendor,
                   serial=str(cfg.serial))

    def block(self) -> None:
        self._go(self.blocked_state, "blocking the beam")

    def unblock(self) -> None:
        self._go(1 - self.blocked_state, "unblocking the beam")

    def blocked(self) -> bool | None:
        """True/False at a limit, None while moving."""
        with self._translate_errors("reading the flip mount position"):
            state = self._state_hw()
        return None if state is None else state == self.blocked_state

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._translate_errors("closing"):
                self._mff.close()

    def _go(self, state: int, what: str) -> None:
        with self._translate_errors(what):
            if self._state_hw() == state:
                return
            self._move_hw(state)
            deadline = self._monotonic() + self.timeout_s
            while (now := self._state_hw()) != state:
                if self._monotonic() > deadline:
                    where = "still moving" if now is None else f"at position {now}"
                    raise DeviceTimeout(self.device, f"{what}: the flip mount is {where} after "
                                                     f"{self.timeout_s:g} s (shutter.timeout_s); is it "
                                                     "obstructed?")
                self._sleep(POLL_S)
        if self.settle_ms > 0:
            self._sleep(self.settle_ms / 1000.0)

    # -- hooks ----------------------------------------------------------------------------------
    def _state_hw(self) -> int | None:
        return self._mff.get_state()

    def _move_hw(self, state: int) -> None:
        self._mff.move_to_state(state)


class SolenoidShutter(_VendorErrors):
    """An SH05 shutter on a KSC101 solenoid controller, behind the DarkSource interface."""

    manual = False

    def __init__(self, dev, channel: int = 1, timeout_s: float = 5.0, settle_ms: float = 0.0, vendor=None,
                 sleep: Callable[[float], None] = time.sleep, serial: str = ""):
        self._init_errors(vendor or load_vendor())
        self._dev = dev
        self.channel = int(channel)
        self.timeout_s, self.settle_ms = float(timeout_s), float(settle_ms)
        self._sleep = sleep
        self.label = f"SH05 shutter on KSC101 {serial}".strip()
        self._closed = False
        with self._translate_errors("setting the KSC101 to manual mode"):
            self._dev.send_comm(SOL_SET_OPERATINGMODE, self.channel, SOL_MODE_MANUAL)
        self.unblock()  # captures need the laser: the shutter starts open

    @classmethod
    def from_config(cls, cfg, vendor=None) -> SolenoidShutter:
        vendor = vendor or load_vendor()
        dev = _open_kinesis(vendor, lambda conn: vendor.BasicKinesisDevice(conn, timeout=cfg.timeout_s),
                            cfg.serial, "KSC101")
        try:
            return cls(dev, cfg.channel, cfg.timeout_s, cfg.settle_ms, vendor=vendor, serial=str(cfg.serial))
        except BaseException:
            with contextlib.suppress(Exception):
                dev.close()
            raise

    def block(self) -> None:
        self._set(SOL_OFF, "closing the shutter")

    def unblock(self) -> None:
        self._set(SOL_ON, "opening the shutter")

    def blocked(self) -> bool:
        with self._translate_errors("reading the shutter state"):
            return self._state_hw() == SOL_OFF

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with self._translate_errors("closing"):
                self._dev.close()

    def _set(self, state: int, what: str) -> None:
        with self._translate_errors(what):
            self._dev.send_comm(SOL_SET_STATE, self.channel, state)
            got = self._state_hw()
        if got != state:
            raise DeviceError(self.device, f"{what}: the KSC101 reports state {got} (1 open, 2 closed); "
                                           "is its interlock connected and the controller in manual mode?")
        if self.settle_ms > 0:
            self._sleep(self.settle_ms / 1000.0)

    def _state_hw(self) -> int:
        return int(self._dev.query(SOL_REQ_STATE, self.channel).param2)


class WheelDarkSlot:
    """The FW102C's blank slot: the diffuser wheel itself blocks the beam."""

    device = "changer"
    manual = False

    def __init__(self, changer, slot: int):
        self._changer = changer
        self.slot = int(slot)
        self.label = f"the filter wheel's blank slot {self.slot}"
        self._back_to: str | None = None

    def block(self) -> None:
        self._back_to = self._changer.current()
        self._changer.move_to_slot(self.slot)

    def unblock(self) -> None:
        if self._back_to is not None:
            self._changer.select(self._back_to)

    def close(self) -> None:
        pass  # the wheel is closed as the changer


class OperatorDark:
    """A person blocks and unblocks the laser when asked."""

    device = "operator"
    manual = True
    label = "a person (asked at the console)"

    def __init__(self, operator):
        self.operator = operator

    def block(self) -> None:
        self.operator.request("Block the laser for dark frames, then press Enter")

    def unblock(self) -> None:
        self.operator.request("Unblock the laser, then press Enter")

    def close(self) -> None:
        pass


class NoDarkSource:
    """The simulated rig: its camera renders a dark frame for a ("dark", ...) capture key."""

    device = "shutter"
    manual = False
    label = "the simulated camera (renders dark frames)"

    def block(self) -> None:
        pass

    def unblock(self) -> None:
        pass

    def close(self) -> None:
        pass

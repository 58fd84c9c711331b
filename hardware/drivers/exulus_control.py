"""EXULUS-HD2 control port through Thorlabs' ``EXULUS_COMMAND_LIB`` (phase stroke, flips, test pattern).

The SLM shows its image over HDMI (``hardware/drivers/exulus_display.py``); its USB virtual COM
port takes settings. Thorlabs ships ``EXULUS_COMMAND_LIB.py`` with its EXULUS software: a ctypes
wrapper of ``exulus_command_library.dll`` (Windows) that it loads from its own folder when
imported. The raw byte protocol is not published, so this is the only path (docs/design.md, "Device facts").

The library's conventions (from ``EXULUS_COMMAND_LIB.py``): ``EXULUSOpen(serial, 38400,
timeout_s)`` returns a handle >= 0 or a negative number; getters fill ``value[0]`` of a list;
every call returns 0 on success, a negative number on failure, 0xEB on time-out and 0xED for an
invalid string buffer. ``EXULUSCheckCommunication`` reports ACK 0x06, NAK 0x09 or SPI busy 0xBB.
Phase stroke: 0 = full wave (2π at 633 nm), 1 = half wave. Flips and test pattern: 0 off, 1 on.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from speckle_core.text import one_line

MODULE = "EXULUS_COMMAND_LIB"
DLL = "exulus_command_library.dll"
BAUD = 38400  # EXULUS USB virtual COM port (Thorlabs EXULUS manual / SDK sample)
RET_TIMEOUT, RET_BAD_BUFFER = 0xEB, 0xED
ACK, NAK, SPI_BUSY = 0x06, 0x09, 0xBB
STROKE_CODES = {"full-wave": 0, "half-wave": 1}
FUNCTIONS = ("EXULUSListDevices", "EXULUSOpen", "EXULUSClose", "EXULUSCheckCommunication",
             "EXULUSGetPhaseStrokeMode", "EXULUSSetPhaseStrokeMode", "EXULUSGetScreenHorizontalFlip",
             "EXULUSSetScreenHorizontalFlip", "EXULUSGetScreenVerticalFlip", "EXULUSSetScreenVerticalFlip",
             "EXULUSGetTestPatternStatus", "EXULUSSetTestPatternStatus")

INSTALL = (f"install Thorlabs' EXULUS software (thorlabs.com, EXULUS-HD2 → Software); its Python SDK "
           f"folder holds {MODULE}.py and {DLL} (64-bit Windows only); set slm.control_library in the rig "
           "file to that folder, or set slm.control = 'none' and set the stroke mode on the device")


def load_library(library_dir: str | None = None):
    """Imports Thorlabs' EXULUS_COMMAND_LIB (from ``library_dir`` if given); DriverMissing if absent."""
    try:
        if library_dir is not None:
            path = Path(library_dir) / f"{MODULE}.py"
            if not path.is_file():
                raise DriverMissing("slm", f"{MODULE}.py is not in {library_dir} (slm.control_library); "
                                           f"{INSTALL}")
            spec = importlib.util.spec_from_file_location(MODULE, path)
            if spec is None or spec.loader is None:
                raise DriverMissing("slm", f"{path} cannot be loaded as a Python module; {INSTALL}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(MODULE)
    except ModuleNotFoundError as e:
        if e.name != MODULE:
            raise
        raise DriverMissing("slm", f"Thorlabs' EXULUS command library ({MODULE}.py) is not installed; "
                                   f"{INSTALL}") from None
    except OSError as e:  # the module loads its DLL at import
        where = "" if sys.platform == "win32" else " (it is a Windows DLL; this is not Windows)"
        raise DriverMissing("slm", f"{MODULE}.py could not load {DLL}{where}: {one_line(e)}; "
                                   f"{INSTALL}") from None
    missing = [f for f in FUNCTIONS if not hasattr(module, f)]
    if missing:
        raise DriverMissing("slm", f"{MODULE}.py lacks {', '.join(missing)} (too old?); {INSTALL}")
    return module


class ExulusControl:
    """An open EXULUS control port."""

    device = "slm"

    def __init__(self, lib, handle: int, port: str, timeout_s: float = 3.0):
        self._lib = lib
        self._hdl = handle
        self.port = port
        self.timeout_s = float(timeout_s)

    @classmethod
    def open(cls, port: str, library_dir: str | None = None, timeout_s: float = 3.0,
             *, library=None) -> ExulusControl:
        """Opens the EXULUS at ``port`` (its serial number or COM port, as EXULUSListDevices names it).

        ``library`` is an already-imported EXULUS_COMMAND_LIB (tests pass a fake); by default it is
        imported from ``library_dir`` or the Python path.
        """
        if not port:
            raise DeviceNotFound("slm", "no EXULUS control port given (slm.control_port)")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0 (got {timeout_s!r})")
        lib = library if library is not None else load_library(library_dir)
        handle = lib.EXULUSOpen(port, BAUD, max(1, round(timeout_s)))  # the library takes whole seconds
        if handle < 0:
            try:
                found = ", ".join(f"{d[0]} ({d[1]})" for d in lib.EXULUSListDevices()) or "none"
            except Exception as e:  # noqa: BLE001 - only for the message
                found = f"(listing failed: {e})"
            raise DeviceNotFound("slm", f"cannot open the EXULUS control port {port!r} (code {handle}); "
                                        f"EXULUS devices found: {found}; is its USB cable in and the "
                                        "Thorlabs EXULUS GUI closed?")
        control = cls(lib, handle, port, timeout_s)
        try:
            control.check_communication()
        except BaseException:
            control.close()
            raise
        return control

    # -- the control API ------------------------------------------------------------------------
    def check_communication(self) -> None:
        """Raises unless the device acknowledges (ACK 0x06)."""
        code = self._get("EXULUSCheckCommunication", "checking communication")
        if code == NAK:
            raise DeviceError(self.device, f"EXULUS on {self.port} answered NAK (0x09) to the "
                                           "communication check")
        if code == SPI_BUSY:
            raise DeviceError(self.device, f"EXULUS on {self.port} is busy (SPI busy 0xBB)")
        if code != ACK:
            raise DeviceError(self.device, f"EXULUS on {self.port} gave no acknowledge (code 0x{code:02X})")

    def stroke_mode(self) -> str:
        code = self._get("EXULUSGetPhaseStrokeMode", "reading the phase-stroke mode")
        for name, value in STROKE_CODES.items():
            if value == code:
                return name
        raise DeviceError(self.device, f"unknown phase-stroke mode code {code}")

    def set_stroke_mode(self, mode: str) -> None:
        if mode not in STROKE_CODES:
            raise ValueError(f"stroke mode must be one of {sorted(STROKE_CODES)} (got {mode!r})")
        self._set("EXULUSSetPhaseStrokeMode", STROKE_CODES[mode], f"setting the phase stroke to {mode}")
        if self.stroke_mode() != mode:
            raise DeviceError(self.device, f"set the phase stroke to {mode} but it reads "
                                           f"{self.stroke_mode()}")

    def flips(self) -> tuple[bool, bool]:
        """(horizontal, vertical) screen flips."""
        return (bool(self._get("EXULUSGetScreenHorizontalFlip", "reading the horizontal flip")),
                bool(self._get("EXULUSGetScreenVerticalFlip", "reading the vertical flip")))

    def set_flips(self, horizontal: bool, vertical: bool) -> None:
        self._set("EXULUSSetScreenHorizontalFlip", int(bool(horizontal)), "setting the horizontal flip")
        self._set("EXULUSSetScreenVerticalFlip", int(bool(vertical)), "setting the vertical flip")
        if self.flips() != (bool(horizontal), bool(vertical)):
            raise DeviceError(self.device, f"set flips to {(bool(horizontal), bool(vertical))} but they read "
                                           f"{self.flips()}")

    def test_pattern(self) -> bool:
        return bool(self._get("EXULUSGetTestPatternStatus", "reading the test pattern status"))

    def set_test_pattern(self, on: bool) -> None:
        self._set("EXULUSSetTestPatternStatus", int(bool(on)), "switching the test pattern")
        if self.test_pattern() != bool(on):
            state = "on" if on else "off"
            raise DeviceError(self.device, f"switched the test pattern {state} but it did not")

    def close(self) -> None:
        if self._hdl is None:
            return
        hdl, self._hdl = self._hdl, None
        ret = self._lib.EXULUSClose(hdl)
        if ret < 0:
            raise DeviceError(self.device, f"closing the EXULUS control port {self.port} failed (code {ret})")

    # -- hooks ----------------------------------------------------------------------------------
    def _get(self, function: str, what: str) -> int:
        value = [0]
        self._check(getattr(self._lib, function)(self._handle(), value), what)
        return int(value[0])

    def _set(self, function: str, value: int, what: str) -> None:
        self._check(getattr(self._lib, function)(self._handle(), value), what)

    def _handle(self) -> int:
        if self._hdl is None:
            raise DeviceError(self.device, "the EXULUS control port is closed")
        return self._hdl

    def _check(self, ret: int, what: str) -> None:
        if ret == 0:
            return
        if ret == RET_TIMEOUT:
            raise DeviceTimeout(self.device, f"{what}: no answer from the EXULUS on {self.port} within "
                                             f"{self.timeout_s:g} s")
        if ret == RET_BAD_BUFFER:
            raise DeviceError(self.device, f"{what}: the library reported an invalid string buffer (0xED)")
        raise DeviceError(self.device, f"{what} failed (code {ret})")

"""``speckle-lab devices``: what each backend finds, and which vendor pieces are missing.

Each probe is isolated: whatever one raises is reported on its line and the others still run,
so the listing works on a machine with none of the hardware or vendor software.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from hardware.errors import DriverMissing
from speckle_core.text import one_line


@dataclass
class ProbeResult:
    backend: str  # e.g. "uc480 cameras"
    purpose: str  # what on the rig it is for
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what is not installed, and where to get it
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # the probe itself failed
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"backend": self.backend, "purpose": self.purpose, "found": self.found,
                "missing": self.missing, "notes": self.notes, "error": self.error,
                "seconds": round(self.seconds, 3)}


def _one_line(e: BaseException) -> str:
    return one_line(e, with_type=not isinstance(e, DriverMissing))


# -- probes ---------------------------------------------------------------------------------------
def probe_monitors(r: ProbeResult) -> None:
    reachable = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not reachable:
        r.notes.append("no display reachable (DISPLAY is not set): the EXULUS-HD2 is driven as a monitor")
        return
    list_monitors = None
    for name in ("hardware.drivers.exulus_display", "hardware.drivers.monitors"):
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            list_monitors = getattr(module, "list_monitors", None)
            if list_monitors is not None:
                break
    if list_monitors is None:
        r.notes.append("the display driver is not installed in this copy of speckle-lab")
        return
    try:
        monitors = list_monitors()
    except DriverMissing as e:
        r.missing.append(str(e))
        return
    if not monitors:
        r.notes.append("no monitor reported (is the X server / desktop running?)")
    for m in monitors:
        size = (m["width"], m["height"])
        tags = [" primary" if m.get("primary") else ""]
        if size == (1920, 1200):
            but = ", but the primary screen" if m.get("primary") else ""
            tags.append(f"  <- EXULUS-HD2 size (1920x1200){but}")
        name = f" {m['name']}" if m.get("name") else ""
        r.found.append(f"{m['index']}:{name} {m['width']}x{m['height']}+{m['x']}+{m['y']}{''.join(tags)}")


def probe_uc480(r: ProbeResult) -> None:
    from hardware.drivers.uc480_camera import dll_missing_message, load_vendor

    for backend in ("uc480", "ueye"):
        vendor = load_vendor(backend)
        try:
            cameras = vendor.list_cameras(backend=backend)
        except OSError as e:
            r.missing.append(dll_missing_message(backend, e))
            continue
        for c in cameras:
            state = " (in use)" if c.in_use else ""
            r.found.append(f"{backend}: id {c.cam_id} {c.model} serial {c.serial_number}{state}")
        if not cameras:
            r.notes.append(f"{backend} library loaded; no camera attached")


def probe_tsi(r: ProbeResult) -> None:
    from hardware.drivers.tsi_camera import DLL, SDK_MODULE, WHERE, import_sdk, load_pylablib

    sdk_module = import_sdk()
    if sdk_module is None:
        r.missing.append(f"Python package {SDK_MODULE} (Thorlabs' TSI camera SDK; optional)")
    else:
        sdk = sdk_module.TLCameraSDK()
        try:
            r.found += [f"{SDK_MODULE}: serial {s}" for s in sdk.discover_available_cameras()]
        finally:
            sdk.dispose()
    try:
        serials = load_pylablib().list_cameras()
    except OSError:
        r.missing.append(f"{DLL} for pylablib's ThorlabsTLCamera (optional)")
        r.notes.append(f"where to get them: {WHERE}")
    else:
        r.found += [f"pylablib: serial {s}" for s in serials]


def probe_kinesis(r: ProbeResult) -> None:
    from pylablib.core.devio import comm_backend

    from hardware.drivers.kinesis_stage import FTDI_MISSING

    try:
        devices = comm_backend.list_backend_resources("ft232", desc=True)
    except (ValueError, OSError, ImportError):
        r.missing.append(FTDI_MISSING)
        r.notes.append("a K-Cube on a serial port shows up under 'serial ports' below")
        return
    for dev in devices or []:
        serial_no, desc = (dev[0], dev[1]) if isinstance(dev, tuple) else (dev, "")
        if serial_no and str(serial_no).isdigit() and len(str(serial_no)) >= 8:
            r.found.append(f"serial {serial_no} {desc}".strip())
    if not r.found:
        r.notes.append("FTDI driver loaded; no Kinesis device attached")


def probe_serial_ports(r: ProbeResult) -> None:
    from serial.tools import list_ports

    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        text = " ".join(str(v) for v in (p.description, p.manufacturer) if v and v != "n/a")
        usb = f" [{p.vid:04X}:{p.pid:04X} serial {p.serial_number}]" if p.vid is not None else ""
        hint = ""
        blob = f"{text} {p.product or ''}".lower()
        if "fw102" in blob or "fw212" in blob or "filter wheel" in blob:
            hint = "  <- FW102C filter wheel?"
        elif "thorlabs" in blob or "apt" in blob or "kinesis" in blob or "k-cube" in blob:
            hint = "  <- a Thorlabs device"
        r.found.append(f"{p.device} {text}{usb}{hint}".rstrip())


def probe_exulus_library(r: ProbeResult) -> None:
    from hardware.drivers.exulus_control import load_library

    try:
        lib = load_library(None)
    except DriverMissing as e:
        r.missing.append(str(e).removeprefix("slm: "))
        return
    r.found += [f"EXULUS {d[0]} ({d[1]})" for d in lib.EXULUSListDevices()]
    if not r.found:
        r.notes.append("library loaded; no EXULUS on USB")


PROBES: list[tuple[str, str, Callable[[ProbeResult], None]]] = [
    ("monitors", "SLM display (EXULUS-HD2 over HDMI)", probe_monitors),
    ("uc480 cameras", "DCC1645C camera", probe_uc480),
    ("TSI cameras", "optional TSI scientific cameras", probe_tsi),
    ("Kinesis devices", "KDC101 + MTS50-Z8 camera stage", probe_kinesis),
    ("serial ports", "FW102C filter wheel (and K-Cubes on Linux)", probe_serial_ports),
    ("EXULUS library", "EXULUS-HD2 control port (stroke mode, flips)", probe_exulus_library),
]


def run_probes(probes=None) -> list[ProbeResult]:
    """Runs every probe, each isolated: an exception is recorded, never raised."""
    results = []
    for backend, purpose, probe in probes or PROBES:
        r = ProbeResult(backend, purpose)
        t0 = time.perf_counter()
        try:
            # Vendor libraries print and warn on their own; keep the listing clean.
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                probe(r)
        except Exception as e:  # noqa: BLE001 - one failing probe must not stop the listing
            r.error = _one_line(e)
        r.seconds = time.perf_counter() - t0
        results.append(r)
    return results


def format_results(results: list[ProbeResult]) -> str:
    lines = []
    for r in results:
        head = f"{r.backend}, for the {r.purpose}: "
        head += f"{len(r.found)} found" if r.found else "none found"
        lines.append(head)
        lines += [f"  - {item}" for item in r.found]
        lines += [f"  missing: {item}" for item in r.missing]
        lines += [f"  note: {item}" for item in r.notes]
        if r.error:
            lines.append(f"  probe failed: {r.error}")
    missing = sum(len(r.missing) for r in results)
    if missing:
        lines.append(f"{missing} vendor piece(s) missing; a simulated rig needs none of them.")
    return "\n".join(lines)

"""What the calibrations share: the rig through its empty slot, the exposure checks, progress.

The empty slot is a changer slot named ``"empty"`` (hardware.sim.config.EMPTY_SLOT; on a real rig,
a wheel position left without a diffuser). With the camera at distance 0 it images the SLM window
through the L3–L4 relay and its iris: a phase step across the window shows as a dark line whose
depth measures the step (docs/calibration.md).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from speckle_core.errors import UserError

EMPTY_SLOT = "empty"
SATURATED_LIMIT = 0.001  # share of pixels at the camera maximum that counts as saturated
WEAK_FRACTION = 0.2  # the flat frame's 99th percentile must reach this share of the maximum
MAX_EXPOSURE_US = 1_000_000.0  # longest exposure a calibration will use (1 s)


if TYPE_CHECKING:
    from hardware.interfaces import Camera
    from hardware.rig import Rig, RigFile


@dataclass
class Bench:
    """An opened rig, set up for a calibration: empty slot in, camera at 0 mm, exposure chosen."""

    rig: Rig
    rig_path: str
    roi_px: tuple[int, int]
    exposure_us: float
    level: float  # the flat frame's 99th percentile at that exposure (counts)

    @property
    def window(self) -> tuple[int, int]:
        rows, cols = self.rig.slm.window_shape
        return int(rows), int(cols)

    def show(self, gray: np.ndarray, wait_s: float) -> float:
        """Shows ``gray``, waits ``wait_s`` after the flip on the rig's clock; returns the flip time."""
        clock = self.rig.clock
        flip = self.rig.slm.show_gray(gray)
        remaining = flip + wait_s - clock.monotonic()
        if remaining > 0:
            clock.sleep(remaining)
        return flip

    def capture(self, key: tuple, average: int = 1) -> np.ndarray:
        cfg = self.rig.config.camera
        return self.rig.camera.capture(cfg.timeout_ms, average, key=key).image


def rig_label(rig_path: str | None) -> str:
    return rig_path or "the default simulated rig"


def require_empty_slot(rig_file: RigFile, rig_path: str | None) -> None:
    """Refuses (one line, exit 2) a rig without an empty slot, before any device opens."""
    slots = rig_file.config.changer.slots
    if EMPTY_SLOT not in slots.values():
        raise UserError(f"{rig_label(rig_path)}: changer.slots: no empty slot configured; the calibration "
                        f"images the SLM through a slot without a diffuser: leave one wheel slot empty "
                        f"and name it, e.g. slots = {{ ..., 5 = \"{EMPTY_SLOT}\" }}")


def open_rig(rig_path: str | None) -> tuple[RigFile, Rig]:
    """(rig file, opened rig); a manual changer asks at the console (no terminal: refused)."""
    import sys

    from hardware.drivers.manual import ConsoleOperator, UnattendedOperator
    from hardware.rig import build_rig, load_rig

    rig_file = load_rig(rig_path)
    require_empty_slot(rig_file, rig_path)
    operator = ConsoleOperator() if sys.stdin.isatty() else UnattendedOperator()
    return rig_file, build_rig(rig_file, operator)


def calibration_roi(rig: Rig) -> tuple[int, int]:
    """The camera ROI: the SLM window's size, within the sensor (the relays image it 1:1)."""
    (wr, wc), (sr, sc) = rig.slm.window_shape, rig.config.camera.sensor_px
    return int(min(wr, sr)), int(min(wc, sc))


def camera_top(camera: Camera) -> float:
    """The output value where the camera stops being linear: its ``saturation_level`` where it has
    one (a colour sensor's red channel clips below the 8-bit maximum), else ``max_value``."""
    return float(getattr(camera, "saturation_level", None) or camera.max_value)


def _flat_stat(rig: Rig, roi: tuple[int, int], exposure_us: float, key: tuple) -> tuple[float, float, float]:
    """(exposure applied, the frame's 99th percentile, the share of saturated pixels)."""
    applied = float(rig.camera.configure(roi, exposure_us))
    frame = rig.camera.capture(rig.config.camera.timeout_ms, 1, key=key)
    img = frame.image
    sat = max(float(frame.saturated_fraction),
              float(np.count_nonzero(img >= rig.camera.max_value)) / img.size)
    return applied, float(np.percentile(img, 99.0)), sat


def set_up_bench(rig: Rig, rig_path: str | None, wait_s: float, target_fraction: float = 0.5) -> Bench:
    """Empty slot in, camera at 0 mm, a flat pattern; checks the light and picks the exposure.

    Refuses (UserError, exit 2) when the camera saturates at its shortest exposure, or when the light
    is too weak: the flat frame's 99th percentile stays below ``WEAK_FRACTION`` of the maximum at
    ``MAX_EXPOSURE_US``. Otherwise scales the exposure (the camera is linear) so the flat frame's
    99th percentile sits at ``target_fraction`` of the maximum.
    """
    label = rig_label(rig_path)
    rig.changer.select(EMPTY_SLOT)
    rig.stage.move_to_mm(0.0)
    roi = calibration_roi(rig)
    bench = Bench(rig, label, roi, 0.0, 0.0)
    bench.show(np.zeros(rig.slm.window_shape, np.uint8), wait_s)
    top = camera_top(rig.camera)
    shortest, level, sat = _flat_stat(rig, roi, 1e-6, ("calibrate", "shortest"))
    if sat > SATURATED_LIMIT:
        raise UserError(f"{label}: the camera saturates at its shortest exposure ({shortest:g} µs: "
                        f"{100 * sat:.1f} % of pixels at {int(top)}) through the empty slot; attenuate "
                        "the beam (an ND filter before the SLM) and run again")
    exposure = shortest
    for _ in range(12):
        want = exposure * min(target_fraction * top / max(level, 0.5), 30.0)
        want = min(want, MAX_EXPOSURE_US)
        exposure, level, sat = _flat_stat(rig, roi, want, ("calibrate", "expose", round(want, 3)))
        if sat <= SATURATED_LIMIT and abs(level - target_fraction * top) <= 0.1 * target_fraction * top:
            break
        if want >= MAX_EXPOSURE_US:
            break
    if level < WEAK_FRACTION * top:
        raise UserError(f"{label}: the light is too weak: through the empty slot the brightest pixels reach "
                        f"{level:.0f} of {int(top)} counts at {exposure / 1000:g} ms (at least "
                        f"{WEAK_FRACTION * top:.0f} needed); check the laser, the beam path and the camera")
    bench.exposure_us, bench.level = exposure, level
    return bench


@contextlib.contextmanager
def progress(enabled: bool, total: int, what: str) -> Iterator[Callable[[int], None]]:
    """Yields ``advance(n)`` driving a rich bar on stderr (or a no-op)."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"[bold]{what}"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n=1: bar.update(task, advance=n)


def report_path(out: Path | None, default_stem: Path, suffix: str = ".report.png") -> Path:
    base = out if out is not None else default_stem
    return base.with_name(base.stem + suffix)


def fmt_pm(value: float, err: float, digits: int = 1) -> str:
    """``value ± err``, with enough decimals that the uncertainty shows (at least ``digits``)."""
    if not math.isfinite(err):
        return f"{value:.{digits}f} (uncertainty unknown)"
    if 0 < err < 10 ** -digits:
        digits = min(int(math.ceil(-math.log10(err))), 4)
    return f"{value:.{digits}f} ± {err:.{digits}f}"


OWN_MARKER = "# speckle-lab calibrate"  # the first line of every TOML file a calibration writes


def check_output(path: str | Path, inputs: list, what: str, suffixes: tuple[str, ...]) -> Path:
    """speckle_core.fileio's output guard, except that a calibration's own earlier output (a TOML
    file whose first line is ``OWN_MARKER``) may be replaced: a calibration is meant to be rerun."""
    from speckle_core.fileio import check_not_input, check_output_file

    p = Path(path)
    if p.suffix.lower() in suffixes and p.is_file() and not p.is_symlink():
        try:
            with p.open("rb") as fh:
                own = fh.read(len(OWN_MARKER)).decode("utf-8", "replace") == OWN_MARKER
        except OSError:
            own = False
        if own:
            check_not_input(p, inputs, what)
            return p
    return check_output_file(p, inputs=inputs, what=what, suffixes=suffixes)

"""Small simulated rigs with hidden SLM and diffuser parameters, for the calibration tests."""

from __future__ import annotations

from pathlib import Path

RIG = """name = "calibration test rig"
[slm]
kind = "sim"
window_px = [{window}, {window}]
stroke_mode = "{stroke}"
[camera]
kind = "sim"
[stage]
kind = "sim"
[changer]
kind = "sim"
slots = {slots}
[sim]
seed = {seed}
imaging_na = {na}
[sim.sensor]
flux_e_per_us = {flux}
[sim.slm]
{slm}
"""

WITH_EMPTY = '{ 1 = "600", 2 = "empty" }'
WITHOUT_EMPTY = '{ 1 = "600", 2 = "1500" }'


def write_rig(folder: Path, *, window: int = 64, na: float = 0.012, flux: float = 50.0, seed: int = 0,
              slots: str = WITH_EMPTY, stroke: str = "full-wave", extra: str = "", **slm) -> Path:
    """A simulated rig file; ``slm`` are keys of its hidden [sim.slm] table, ``extra`` more TOML."""
    lines = "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in slm.items())
    lines = lines.replace("'", '"')
    path = folder / "rig.toml"
    path.write_text(RIG.format(window=window, na=na, flux=flux, seed=seed, slots=slots, stroke=stroke,
                               slm=lines) + extra)
    return path


TWIN_PROTOCOL = """name = "twin fit, small"
[faces]
source = "embedded"
count = {count}
holdout = 1
target_px = [{window}, {window}]
[camera]
roi_px = [{window}, {window}]
exposure_us = "auto"
[[blocks]]
diffuser = "empty"
distances_mm = {distances}
[[blocks]]
diffuser = "A"
distances_mm = {distances}
[[blocks]]
diffuser = "B"
distances_mm = {distances}
[dark]
frames = 2
[stability]
reference_every = 50
threshold = 0.5
"""


def write_twin_case(folder: Path, *, na: float, a: tuple[float, float], b: tuple[float, float], seed: int = 0,
                    window: int = 96, count: int = 6, distances: str = "[0, 20, 40]") -> tuple[Path, Path]:
    """(protocol, rig) for a run through the empty slot and two diffusers A and B, whose hidden
    (rms height µm, correlation length µm) are ``a`` and ``b``."""
    rig = folder / "hidden-rig.toml"
    base = RIG.format(window=window, na=na, flux=50.0, seed=seed, slots='{ 1 = "A", 2 = "B", 3 = "empty" }',
                      stroke="full-wave", slm="")
    rig.write_text(base + f"""[sim.diffusers.A]
rms_height_um = {a[0]}
corr_length_um = {a[1]}
[sim.diffusers.B]
rms_height_um = {b[0]}
corr_length_um = {b[1]}
""")
    protocol = folder / "twin-small.toml"
    protocol.write_text(TWIN_PROTOCOL.format(count=count, window=window, distances=distances))
    return protocol, rig

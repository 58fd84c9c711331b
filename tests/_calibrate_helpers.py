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
{blocks}
[dark]
frames = 2
[stability]
reference_every = 50
threshold = 0.5
"""


def write_twin_case(folder: Path, *, na: float, diffusers: dict[str, tuple[float, float]], seed: int = 0,
                    window: int = 128, count: int = 3, distances: str = "[0, 20]",
                    travel_mm: tuple[float, float] = (0.0, 25.0)) -> tuple[Path, Path]:
    """(protocol, rig) for a run through the empty slot and the ``diffusers``, each given as its hidden
    (rms height µm, correlation length µm). The stage's travel sets the simulated rig's FFT grid (the
    light's spread at the farthest reach), so a short travel keeps the test fast."""
    names = list(diffusers)
    slots = "{ " + ", ".join(f'{i} = "{n}"' for i, n in enumerate([*names, "empty"], start=1)) + " }"
    rig = folder / "hidden-rig.toml"
    base = RIG.format(window=window, na=na, flux=50.0, seed=seed, slots=slots, stroke="full-wave", slm="")
    stage = '[stage]\nkind = "sim"\n'
    base = base.replace(stage, f"{stage}travel_mm = {list(travel_mm)}\n")
    tables = "".join(f"[sim.diffusers.{n}]\nrms_height_um = {h}\ncorr_length_um = {w}\n"
                     for n, (h, w) in diffusers.items())
    rig.write_text(base + tables)
    blocks = "".join(f'[[blocks]]\ndiffuser = "{n}"\ndistances_mm = {distances}\n' for n in ["empty", *names])
    protocol = folder / "twin-small.toml"
    protocol.write_text(TWIN_PROTOCOL.format(count=count, window=window, blocks=blocks))
    return protocol, rig

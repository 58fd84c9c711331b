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

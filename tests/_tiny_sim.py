"""A tiny protocol and simulated rig (64×64 SLM window, 48×48 frames, 4 faces) for end-to-end tests."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TINY_PROTOCOL = """name = "tiny"
[faces]
source = "embedded"
count = {count}
holdout = 1
target_px = [64, 64]
[camera]
roi_px = [48, 48]
exposure_us = "auto"
[[blocks]]
diffuser = "120"
distances_mm = [0, 20]
[[blocks]]
diffuser = "1500"
distances_mm = [40]
role = "validation"
[dark]
frames = 2
[stability]
reference_every = 3
threshold = 0.9
[retry]
backoff_s = 0.0
"""


def tiny_files(folder: Path, count: int = 4, faults: dict[str, float] | None = None) -> tuple[Path, Path]:
    """(protocol, rig) files in ``folder``; ``faults`` sets rates of the rig's [sim.faults] table."""
    rig_text = (ROOT / "hardware" / "rigs" / "sim.toml").read_text().replace(
        "window_px = [800, 800]", "window_px = [64, 64]")
    assert "window_px = [64, 64]" in rig_text
    for name, rate in (faults or {}).items():
        assert f"\n{name} = 0.0" in rig_text, name
        rig_text = rig_text.replace(f"\n{name} = 0.0", f"\n{name} = {rate}")
    protocol, rig = folder / "tiny.toml", folder / "tiny-rig.toml"
    protocol.write_text(TINY_PROTOCOL.format(count=count))
    rig.write_text(rig_text)
    return protocol, rig

"""The run's contact sheet: each frame captioned with its block, exposure and role, held-out objects
marked, and one common intensity scale on request."""

from __future__ import annotations

import h5py
import numpy as np

from acquisition.run_sheet import TILE_PX, render, sheet_rows
from speckle_core.runfile import RunWriter, create_run
from speckle_lab.cli import run
from tests._run_factory import tiny_layout

EXPOSURE = {0: 100.0, 1: 200.0, 2: 300.0, 3: 400.0}  # per block


def written_run(path, brightness=lambda block: 50):
    """A tiny run (3 objects, the last held out; 2 diffusers × 2 distances), every pair done; frames of
    a block are uniform noise around ``brightness(block)``."""
    layout = tiny_layout(n_objects=3)
    create_run(path, layout)
    w = RunWriter(path, sync_interval_s=0.0)
    rng = np.random.default_rng(0)
    for row, b in enumerate(layout.pair_block):
        level = brightness(int(b))
        frame = np.clip(rng.normal(level, 0.2 * level, (16, 16)), 0, 255).astype(np.uint8)
        w.write_pair(row, frame, EXPOSURE[int(b)], 1.0)
    for b in range(len(layout.blocks)):
        w.write_block_exposure(b, EXPOSURE[b], 0.0)
    w.close()
    return path


def test_each_frame_is_captioned_with_its_block_exposure_and_role(tmp_path):
    with h5py.File(written_run(tmp_path / "r.h5")) as f:
        rows = sheet_rows(f)
    first = rows[0]
    assert first.diffuser == "120"
    assert first.cells[0.0].caption == "block 1, 100 us, train"
    assert first.cells[20.0].caption == "block 2, 200 us, train"
    assert rows[-1].cells[20.0].caption == "block 4, 400 us, train"


def test_held_out_objects_are_marked(tmp_path):
    with h5py.File(written_run(tmp_path / "r.h5")) as f:
        rows = sheet_rows(f)
        sheet, _ = render(f)
    held = [r for r in rows if r.held_out]
    assert held and all(r.name == "face_2" for r in held)
    assert not any(r.held_out for r in rows if r.name != "face_2")
    a = np.asarray(sheet)
    i = rows.index(held[0])
    y = 38 + i * (TILE_PX + 14 + 4)
    assert (a[y + 1, 150:150 + TILE_PX] == 0).all()  # the black frame around the held-out object


def _tile_mean(sheet, row: int, col: int) -> float:
    a = np.asarray(sheet, dtype=float)
    y, x = 38 + row * (TILE_PX + 14 + 4), 150 + (TILE_PX + 4) * (col + 1)
    return float(a[y + 10:y + TILE_PX - 10, x + 10:x + TILE_PX - 10].mean())


def test_a_common_scale_shows_a_dim_block_dim(tmp_path):
    path = written_run(tmp_path / "r.h5", brightness=lambda b: 20 if b == 0 else 100)
    with h5py.File(path) as f:
        own, _ = render(f)
        common, _ = render(f, common_scale=True)
    # diffuser 120: block 1 (0 mm, dim) and block 2 (20 mm, bright)
    assert abs(_tile_mean(own, 0, 0) - _tile_mean(own, 0, 1)) < 30  # each stretched: alike
    assert _tile_mean(common, 0, 0) < 0.3 * _tile_mean(common, 0, 1)  # one scale: the dim one is dim


def test_inspect_common_scale_option_writes_the_sheet(tmp_path, capsys):
    path = written_run(tmp_path / "r.h5")
    assert run(["inspect", str(path), "--common-scale", "--sheet", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0

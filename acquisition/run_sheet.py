"""A run's contact sheet (``speckle-lab inspect``): per diffuser, a few objects and their speckle at
each distance, with what a person checking the run needs beside each frame.

- Each row: the diffuser, the object's name, and ``HELD OUT`` (with a black frame around the object)
  for an object of the split "holdout" (never trained on).
- Each speckle cell: its block as ``plan`` numbers it, the block's exposure and its role (train /
  validation), under the frame.
- Intensity: each frame stretched to its own 99.5th percentile (the default: every frame's grain is
  visible), or with ``common_scale`` one level for every frame shown, the 99.5th percentile of them
  all, so frames compare by brightness (a dim block, a frame near saturation, a drifting laser).
  The scale used is written at the top of the sheet.

Only done rows are shown: a run still being written shows what it has so far.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from acquisition.sheets import tile
from speckle_core.h5safety import read_checked
from speckle_core.runfile import read_strings

TILE_PX = 160
GAP_PX = 4  # white space between tiles
CAPTION_PX = 14  # a line of text under each speckle tile
FACES_PER_DIFFUSER = 3
PERCENTILE = 99.5


@dataclass
class Cell:
    row: int  # pair row in the file
    caption: str  # "block 2, 812 us, train" (ASCII: PIL's built-in font)


@dataclass
class SheetRow:
    diffuser: str
    object_index: int
    name: str
    held_out: bool
    cells: dict[float, Cell] = field(default_factory=dict)  # distance → the frame shown


def _blocks(f, diff: np.ndarray, dist: np.ndarray, expo: np.ndarray, done: np.ndarray, roles: list[str]):
    """(diffuser, distance) → (block number from 1, exposure µs, role), from /blocks when present."""
    out: dict[tuple[str, float], tuple[int, float, str]] = {}
    if "blocks/diffuser" in f and "blocks/exposure_us" in f:
        bd, bz = read_strings(f["blocks/diffuser"]), f["blocks/distance_mm"][...]
        be = f["blocks/exposure_us"][...]
        br = read_strings(f["blocks/role"]) if "blocks/role" in f else ["?"] * len(bd)
        for i, (d, z) in enumerate(zip(bd, bz, strict=True)):
            out[(d, float(z))] = (i + 1, float(be[i]), br[i])
        return out
    for i, key in enumerate(dict.fromkeys(zip(diff, dist.astype(float), strict=True))):
        sel = (diff == key[0]) & (dist == key[1])
        exp = float(np.nanmedian(expo[sel & done])) if (sel & done).any() else float("nan")
        out[key] = (i + 1, exp, roles[int(np.argmax(sel))])
    return out


def sheet_rows(f) -> list[SheetRow]:
    """The rows the sheet shows: per diffuser the objects captured at the most distances so far."""
    diff = np.array(read_strings(f["pairs/diffuser"]), dtype=object)
    dist = f["pairs/distance_mm"][...].astype(float)
    obj = f["pairs/object_index"][...]
    done = f["pairs/done"][...].astype(bool)
    expo = f["pairs/exposure_us"][...]
    roles = read_strings(f["pairs/role"]) if "pairs/role" in f else ["?"] * len(done)
    names = read_strings(f["objects/name"])
    splits = read_strings(f["objects/split"])
    blocks = _blocks(f, diff, dist, expo, done, roles)
    rows = []
    for d in dict.fromkeys(diff):
        sel = np.flatnonzero((diff == d) & done)
        objs = list(dict.fromkeys(int(o) for o in obj[sel]))
        objs.sort(key=lambda o: -len({dist[r] for r in sel if obj[r] == o}))  # most distances first
        for o in objs[:FACES_PER_DIFFUSER]:
            row = SheetRow(str(d), o, names[o], splits[o] == "holdout")
            for r in sel:
                z = float(dist[r])
                if obj[r] == o and z not in row.cells:
                    number, exposure, role = blocks[(str(d), z)]
                    shown = "-" if not np.isfinite(exposure) else f"{exposure:.0f}"
                    row.cells[z] = Cell(int(r), f"block {number}, {shown} us, {role}")
            rows.append(row)
    return rows


def render(f, common_scale: bool = False):
    """The sheet as a PIL image, and its number of rows (object × diffuser)."""
    from PIL import Image, ImageDraw

    rows = sheet_rows(f)
    dist = f["pairs/distance_mm"][...].astype(float)
    distances = sorted(set(dist.tolist()))
    frames = {c.row: read_checked(f["pairs/speckle"], f.filename, c.row)
              for r in rows for c in r.cells.values()}
    level = None
    if common_scale and frames:
        level = float(np.percentile(np.stack(list(frames.values())), PERCENTILE)) or 1.0
    label_w, head_h = 150, 38
    step_x, step_y = TILE_PX + GAP_PX, TILE_PX + CAPTION_PX + GAP_PX
    size = (label_w + step_x * (1 + len(distances)), head_h + step_y * max(len(rows), 1))
    sheet = Image.new("L", size, 255)
    draw = ImageDraw.Draw(sheet)
    scale_text = (f"one intensity scale: {PERCENTILE:g}th percentile of all frames shown, {level:.0f} counts"
                  if level is not None else f"intensity: each frame to its own {PERCENTILE:g}th percentile")
    draw.text((6, 4), scale_text, fill=0)
    draw.text((label_w + 4, 22), "object", fill=0)
    for j, z in enumerate(distances):
        draw.text((label_w + step_x * (j + 1) + 4, 22), f"{z:g} mm", fill=0)
    if not rows:
        draw.text((8, head_h + 8), "no finished pairs yet", fill=0)
    for i, row in enumerate(rows):
        y = head_h + i * step_y
        draw.text((6, y + 6), f"diffuser {row.diffuser}", fill=0)
        draw.text((6, y + 22), row.name[:22], fill=0)
        pattern = read_checked(f["objects/pattern"], f.filename, row.object_index)
        sheet.paste(tile(pattern, TILE_PX, scale="max", resample="nearest"), (label_w, y))
        if row.held_out:
            draw.text((6, y + 38), "HELD OUT", fill=0)
            draw.rectangle((label_w, y, label_w + TILE_PX - 1, y + TILE_PX - 1), outline=0, width=4)
        for j, z in enumerate(distances):
            cell = row.cells.get(z)
            x = label_w + step_x * (j + 1)
            img = None if cell is None else frames[cell.row]
            if img is not None and level is not None:
                speckle = tile(np.clip(img / level, 0.0, 1.0), TILE_PX, scale="unit", resample="box")
            else:
                speckle = tile(img, TILE_PX, scale="percentile", resample="box")  # speckle: average down
            sheet.paste(speckle, (x, y))
            if cell is not None:
                draw.text((x + 2, y + TILE_PX + 1), cell.caption, fill=0)
    return sheet, len(rows)

"""``speckle-lab inspect RUN.h5``: what a run holds, and a contact sheet of faces and their speckle.

The summary lists, per block (diffuser and distance): pairs done and missing, the exposure, the
saturated share of pixels, and the stability monitor's reference correlations; then skipped faces.
Only the run-file contract (docs/design.md, "The run file") is required; the writer's extras
(``/blocks``, ``/stability``, ``/pairs/saturated_fraction``) are used when present. The contact
sheet shows, per diffuser, a handful of faces: the binary object, then its speckle at each distance
(each frame stretched to its own 99.5th percentile for display).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.sheets import save_png, tile
from speckle_core.errors import UserError
from speckle_core.fileio import check_output_file
from speckle_core.h5safety import read_checked
from speckle_core.runfile import open_run, read_strings
from speckle_core.text import one_line

TILE_PX = 160
GAP_PX = 4  # white space between tiles
FACES_PER_DIFFUSER = 3


@dataclass
class BlockSummary:
    diffuser: str
    distance_mm: float
    role: str
    total: int
    done: int
    exposure_us: float
    saturated_mean: float
    saturated_max: float
    references: int
    min_correlation: float


def summarise(f) -> list[BlockSummary]:
    diff = np.array(read_strings(f["pairs/diffuser"]), dtype=object)
    dist = f["pairs/distance_mm"][...]
    done = f["pairs/done"][...].astype(bool)
    expo = f["pairs/exposure_us"][...]
    roles = read_strings(f["pairs/role"]) if "pairs/role" in f else ["?"] * len(done)
    sat = (f["pairs/saturated_fraction"][...] if "pairs/saturated_fraction" in f
           else np.full(len(done), np.nan))
    ref_corr, ref_key = np.zeros(0), []
    if "stability/done" in f and "blocks/diffuser" in f:
        rdone = f["stability/done"][...].astype(bool)
        ref_corr = f["stability/correlation"][...][rdone]
        bd, bz = read_strings(f["blocks/diffuser"]), f["blocks/distance_mm"][...]
        ref_key = [(bd[b], float(bz[b])) for b in f["stability/block"][...][rdone]]
    keys = list(dict.fromkeys(zip(diff, dist.astype(float), strict=True)))
    out = []
    for d, z in keys:
        sel = (diff == d) & (dist == z)
        sd = sel & done
        corr = [c for c, k in zip(ref_corr, ref_key, strict=True) if k == (d, z)]
        out.append(BlockSummary(
            d, z, roles[int(np.argmax(sel))], int(sel.sum()), int(sd.sum()),
            float(np.nanmedian(expo[sd])) if sd.any() else float("nan"),
            float(np.nanmean(sat[sd])) if sd.any() and np.isfinite(sat[sd]).any() else float("nan"),
            float(np.nanmax(sat[sd])) if sd.any() and np.isfinite(sat[sd]).any() else float("nan"),
            len(corr), float(min(corr)) if corr else float("nan")))
    return out


def _fmt(x: float, spec: str) -> str:
    return "-" if not np.isfinite(x) else format(x, spec)


def print_summary(f, path: Path, blocks: list[BlockSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)
    n_obj = f["objects/pattern"].shape[0]
    splits = read_strings(f["objects/split"])
    m = f["pairs/speckle"].shape
    total = sum(b.total for b in blocks)
    done = sum(b.done for b in blocks)
    console.print(f"[bold]{path}[/bold]  created {f.attrs.get('created', '?')}  format {f.attrs['format']}")
    if "rig_kind" in f.attrs:
        console.print(f"rig: {rig_description(f)}", markup=False)
    console.print(f"objects: {n_obj} ({splits.count('holdout')} holdout)  frames: {m[1]}x{m[2]} "
                  f"{f['pairs/speckle'].dtype}  pairs: {done}/{total} done, {total - done} missing")
    t = Table(title="blocks")
    for col in ("diffuser", "z mm", "role", "done", "missing", "exposure µs", "sat. mean", "sat. max",
                "refs", "min corr"):
        t.add_column(col, justify="right")
    for b in blocks:
        t.add_row(b.diffuser, f"{b.distance_mm:g}", b.role, str(b.done), str(b.total - b.done),
                  _fmt(b.exposure_us, ".1f"), _fmt(100 * b.saturated_mean, ".3f") + ("%" if np.isfinite(
                      b.saturated_mean) else ""), _fmt(100 * b.saturated_max, ".3f") + (
                      "%" if np.isfinite(b.saturated_max) else ""),
                  str(b.references), _fmt(b.min_correlation, ".4f"))
    console.print(t)
    skipped = read_strings(f["objects/skipped"]) if "objects/skipped" in f else []
    n_skipped = int(f.attrs.get("skipped_faces", len(skipped)))
    shown = "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
    console.print(f"skipped faces: {n_skipped}" + (f" ({shown})" if skipped else ""))


def contact_sheet(f, sheet_path: Path) -> int:
    """Writes the sheet (atomically); returns the number of rows (face × diffuser)."""
    sheet, n = render_contact_sheet(f)
    save_png(sheet, sheet_path, "contact sheet")
    return n


def render_contact_sheet(f):
    """The sheet as a PIL image, and its number of rows (face × diffuser)."""
    from PIL import Image, ImageDraw

    diff = np.array(read_strings(f["pairs/diffuser"]), dtype=object)
    dist = f["pairs/distance_mm"][...].astype(float)
    obj = f["pairs/object_index"][...]
    done = f["pairs/done"][...].astype(bool)
    names = read_strings(f["objects/name"])
    distances = sorted(set(dist.tolist()))
    rows = []  # (diffuser, object, {distance: row})
    for d in dict.fromkeys(diff):
        sel = np.flatnonzero((diff == d) & done)
        objs = list(dict.fromkeys(int(o) for o in obj[sel]))
        # prefer the faces captured at the most distances
        objs.sort(key=lambda o: -len({dist[r] for r in sel if obj[r] == o}))
        for o in objs[:FACES_PER_DIFFUSER]:
            at = {}
            for r in sel:
                if obj[r] == o and dist[r] not in at:
                    at[dist[r]] = int(r)
            rows.append((d, o, at))
    label_w, head_h = 150, 24
    step = TILE_PX + GAP_PX
    size = (label_w + step * (1 + len(distances)), head_h + step * max(len(rows), 1))
    sheet = Image.new("L", size, 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w + 4, 6), "object", fill=0)
    for j, z in enumerate(distances):
        draw.text((label_w + step * (j + 1) + 4, 6), f"{z:g} mm", fill=0)
    if not rows:
        draw.text((8, head_h + 8), "no finished pairs yet", fill=0)
    for i, (d, o, at) in enumerate(rows):
        y = head_h + i * step
        draw.text((6, y + 6), f"diffuser {d}", fill=0)
        draw.text((6, y + 22), names[o][:22], fill=0)
        pattern = read_checked(f["objects/pattern"], f.filename, o)
        sheet.paste(tile(pattern, TILE_PX, scale="max", resample="nearest"), (label_w, y))
        for j, z in enumerate(distances):
            img = read_checked(f["pairs/speckle"], f.filename, at[z]) if z in at else None
            speckle = tile(img, TILE_PX, scale="percentile", resample="box")  # speckle: average down
            sheet.paste(speckle, (label_w + step * (j + 1), y))
    return sheet, len(rows)


def rig_description(f) -> str:
    """``mixed: stage, changer simulated`` from the root attributes ``rig_kind`` and
    ``simulated_devices`` (runs written before them: the rig file says)."""
    import json

    kind = str(f.attrs.get("rig_kind", "?"))
    try:
        sim = [str(d) for d in json.loads(str(f.attrs.get("simulated_devices", "[]")))]
    except ValueError:
        sim = []
    if kind == "mixed":
        return f"MIXED: {', '.join(sim)} simulated (SLM and camera real)"
    return {"simulated": "simulated", "real": "every device real"}.get(kind, kind)


def print_stored(run_path: str, which: str) -> int:
    """``inspect RUN.h5 --protocol`` / ``--rig``: the protocol or rig file the run was started with,
    byte for byte as it was read (the root attribute), on stdout: ``> p.toml`` gets the file back."""
    path = Path(run_path)
    f = open_run(path)
    try:
        text = f.attrs[which]
        if isinstance(text, bytes):
            text = text.decode("utf-8")
    finally:
        f.close()
    sys.stdout.write(str(text))
    sys.stdout.flush()
    return 0


def inspect_command(run_path: str, sheet_path: str | None, show: str | None = None) -> int:
    """Summary and contact sheet; or, with ``show`` = "protocol" / "rig", only that stored file."""
    if show is not None:
        return print_stored(run_path, show)
    path = Path(run_path)
    sheet = Path(sheet_path) if sheet_path else path.with_name(path.stem + ".contact.png")
    # The sheet is checked before anything is opened: a .png, never the run file itself nor any
    # other run file, checkpoint or protocol (docs/design.md, "Files").
    check_output_file(sheet, inputs=[path], what="contact sheet", suffixes=(".png",))
    f = open_run(path)
    try:
        try:
            blocks = summarise(f)
            print_summary(f, path, blocks)
            image, n = render_contact_sheet(f)
        except (OSError, KeyError, ValueError, IndexError, TypeError) as e:
            detail = one_line(e, 160)
            raise UserError(f"{path}: damaged or truncated run file ({detail})") from None
    finally:
        f.close()
    save_png(image, sheet, "contact sheet")
    print(f"contact sheet: {sheet} ({n} faces)")
    return 0

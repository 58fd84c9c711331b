"""``speckle-lab inspect RUN.h5``: what a run holds, and a contact sheet of faces and their speckle.

The summary lists, per block (diffuser and distance): pairs done and missing, the exposure, the
saturated share of pixels, and the stability monitor's reference correlations; then skipped faces.
Only the run-file contract (docs/design.md, "The run file") is required; the writer's extras
(``/blocks``, ``/stability``, ``/pairs/saturated_fraction``) are used when present. The contact
sheet (``acquisition.run_sheet``) shows, per diffuser, a handful of faces: the binary object (held-out
ones marked), then its speckle at each distance with the block's number, exposure and role; each
frame stretched to its own 99.5th percentile, or all to one level (``--common-scale``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acquisition.sheets import save_png
from speckle_core.errors import UserError
from speckle_core.fileio import check_output_file
from speckle_core.runfile import open_run, read_strings
from speckle_core.text import one_line


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
    t = Table(title="blocks (numbered as plan lists them)")
    for col in ("block", "diffuser", "z mm", "role", "done", "missing", "exposure µs", "sat. mean",
                "sat. max", "refs", "min corr"):
        t.add_column(col, justify="right")
    for number, b in enumerate(blocks, start=1):  # blocks are contiguous runs of pairs, in plan order
        t.add_row(str(number), b.diffuser, f"{b.distance_mm:g}", b.role, str(b.done), str(b.total - b.done),
                  _fmt(b.exposure_us, ".1f"), _fmt(100 * b.saturated_mean, ".3f") + ("%" if np.isfinite(
                      b.saturated_mean) else ""), _fmt(100 * b.saturated_max, ".3f") + (
                      "%" if np.isfinite(b.saturated_max) else ""),
                  str(b.references), _fmt(b.min_correlation, ".4f"))
    console.print(t)
    skipped = read_strings(f["objects/skipped"]) if "objects/skipped" in f else []
    n_skipped = int(f.attrs.get("skipped_faces", len(skipped)))
    shown = "; ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")
    console.print(f"skipped faces: {n_skipped}" + (f" ({shown})" if skipped else ""))


def contact_sheet(f, sheet_path: Path, common_scale: bool = False) -> int:
    """Writes the sheet (atomically); returns the number of rows (face × diffuser)."""
    sheet, n = render_contact_sheet(f, common_scale)
    save_png(sheet, sheet_path, "contact sheet")
    return n


def render_contact_sheet(f, common_scale: bool = False):
    """The sheet as a PIL image, and its number of rows (face × diffuser): ``acquisition.run_sheet``."""
    from acquisition.run_sheet import render

    return render(f, common_scale)


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


def inspect_command(run_path: str, sheet_path: str | None, show: str | None = None,
                    common_scale: bool = False) -> int:
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
            image, n = render_contact_sheet(f, common_scale)
        except (OSError, KeyError, ValueError, IndexError, TypeError) as e:
            detail = one_line(e, 160)
            raise UserError(f"{path}: damaged or truncated run file ({detail})") from None
    finally:
        f.close()
    save_png(image, sheet, "contact sheet")
    print(f"contact sheet: {sheet} ({n} faces)")
    return 0

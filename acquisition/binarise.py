"""Face → binary object: crop, resize to the SLM window, threshold. And a contact sheet of both.

The steps, for each gray face in [0, 1] (``acquisition.faces``):

1. **crop** ``faces.crop_px`` = [top, left, height, width] in source pixels (none: whole image);
2. **resize** the *gray* image to ``faces.target_px`` (800×800), bilinear by default (PIL, float
   mode, pixel-centre aligned; when enlarging it equals ``skimage.transform.resize(order=1,
   mode="edge")`` to float32 rounding, checked in tests/test_binarise.py). Resizing before
   thresholding gives smooth contours finer than a source pixel; thresholding first and then
   resizing by nearest neighbour would turn every source pixel into a 32×32 block (25 px → 800 px
   for the embedded faces): a staircase object whose sharp corners the optics cannot carry and the
   model would have to learn. ``interpolation = "nearest"`` is kept for comparison;
3. **threshold**: Otsu's threshold (``skimage.filters.threshold_otsu``, 256-bin histogram) of the
   resized face, computed per face so that lighting differences between photos do not matter;
   or a fixed gray level. Pixels *above* the threshold are 1 (scikit-image's convention), unless
   ``invert``. The result is uint8 0/1: the engine shows 1 at the π gray level, 0 at gray 0.

A face with no contrast (one gray level after cropping) has no threshold and is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from acquisition.sheets import save_png, tile


def crop(gray: np.ndarray, crop_px: tuple[int, int, int, int] | None) -> np.ndarray:
    """The [top, left, height, width] window; ValueError when it does not fit the image."""
    if crop_px is None:
        return gray
    top, left, h, w = crop_px
    if top + h > gray.shape[0] or left + w > gray.shape[1]:
        rows, cols = gray.shape
        raise ValueError(f"faces.crop_px {list(crop_px)} does not fit a {rows}x{cols} image")
    return gray[top:top + h, left:left + w]


def resize_gray(gray: np.ndarray, target_px: tuple[int, int], interpolation: str = "bilinear") -> np.ndarray:
    """Resizes a float image to (rows, cols) with PIL in float mode ("F"): fast and exact enough."""
    from PIL import Image

    rows, cols = target_px
    if gray.shape == (rows, cols):
        return gray.astype(np.float32, copy=False)
    resample = Image.Resampling.BILINEAR if interpolation == "bilinear" else Image.Resampling.NEAREST
    im = Image.fromarray(np.ascontiguousarray(gray, dtype=np.float32), mode="F")
    return np.asarray(im.resize((cols, rows), resample=resample), dtype=np.float32)


def threshold(gray: np.ndarray, method: str = "otsu", level: float = 0.5, invert: bool = False) -> np.ndarray:
    """uint8 0/1: 1 where gray > threshold (Otsu's, or ``level``); ValueError for a uniform image."""
    if method == "otsu":
        lo, hi = float(gray.min()), float(gray.max())
        if hi - lo < 1e-6:
            raise ValueError("uniform image: no contrast to threshold")
        from skimage.filters import threshold_otsu

        t = float(threshold_otsu(gray))
    else:
        t = float(level)
    out = gray > t
    if invert:
        out = ~out
    return out.astype(np.uint8)


def binarise(gray: np.ndarray, faces_cfg) -> np.ndarray:
    """One face (gray, [0, 1]) → a (target rows, cols) uint8 0/1 object, per ``[faces]`` of a protocol."""
    g = crop(gray, faces_cfg.crop_px)
    g = resize_gray(g, tuple(faces_cfg.target_px), faces_cfg.interpolation)
    b = faces_cfg.binarise
    return threshold(g, b.method, b.threshold, b.invert)


def contact_sheet(grays: Sequence[np.ndarray | None] | None, objects: Sequence[np.ndarray],
                  names: Sequence[str], path: str | Path, tile_px: int = 128, columns: int = 4,
                  title: str | None = None) -> Path:
    """A PNG of face → binarised object pairs, ``columns`` pairs per row, each labelled with its name.

    ``grays`` may be None (or hold None entries) where only the objects are known, e.g. from a run
    file's ``/objects/pattern``: then only the object is drawn in that cell."""
    from PIL import Image, ImageDraw

    n = len(objects)
    cells: list[np.ndarray | None] = [None] * n if grays is None else list(grays)
    if n == 0 or len(cells) != n or len(names) != n:
        raise ValueError("contact_sheet needs as many faces, objects and names (at least one)")
    pad, label_h = 6, 14
    top = label_h + pad if title else 0
    cols = min(columns, n)
    rows = -(-n // cols)
    cell_w, cell_h = 2 * tile_px + 3 * pad, tile_px + label_h + 2 * pad
    sheet = Image.new("L", (cols * cell_w, top + rows * cell_h), 255)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, 2), title, fill=0)
    for i in range(n):
        x = (i % cols) * cell_w + pad
        y = top + (i // cols) * cell_h + pad
        if cells[i] is not None:
            sheet.paste(tile(cells[i], tile_px), (x, y))
        sheet.paste(tile(objects[i], tile_px), (x + tile_px + pad, y))
        draw.text((x, y + tile_px + 1), names[i][: 2 * tile_px // 6], fill=0)
    from speckle_core.fileio import check_output_file

    out = check_output_file(path, what="faces contact sheet", suffixes=(".png",))
    save_png(sheet, out, "faces contact sheet")
    return out

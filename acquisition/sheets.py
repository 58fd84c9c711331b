"""Contact sheets' shared parts: a thumbnail of an image, and saving a sheet as a PNG atomically.

Two sheets use them: the faces → objects sheet (``acquisition.binarise.contact_sheet``, from
``speckle-lab plan`` and the live console) and a run's speckle sheet (``acquisition.inspect``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

Scale = Literal["unit", "max", "percentile"]
BLANK_GRAY = 40  # a cell with no image: dark gray, so it reads as "nothing here", not as a black frame


def to_gray8(img: np.ndarray, scale: Scale) -> np.ndarray:
    """An image as uint8 gray for display.

    - ``"unit"``: values in [0, 1] (a gray face, a 0/1 object) are scaled by 255; larger values are
      taken as 8-bit already;
    - ``"max"``: scaled so the image's maximum is 255 (at least 1: an all-zero image stays black);
    - ``"percentile"``: the 99.5th percentile is 255, brighter pixels clip (speckle's few hot grains
      would otherwise leave the rest black).
    """
    a = np.asarray(img, dtype=np.float32)
    if scale == "unit":
        if a.size and a.max() <= 1.0:
            a = a * 255.0
    elif scale == "max":
        a = a * 255 / max(float(a.max()) if a.size else 0.0, 1.0)
    else:
        hi = float(np.percentile(a, 99.5)) or 1.0
        a = np.clip(a / hi, 0, 1) * 255
    return np.clip(a, 0, 255).astype(np.uint8)


def tile(img: np.ndarray | None, size: int, scale: Scale = "unit",
         resample: Literal["box", "nearest", "smooth"] = "smooth"):
    """A ``size``×``size`` PIL thumbnail of ``img`` (a blank cell for None).

    ``resample``: ``"box"`` averages (speckle: an average keeps its statistics), ``"nearest"`` keeps a
    binary object's edges sharp, ``"smooth"`` averages when shrinking and interpolates when enlarging.
    """
    from PIL import Image

    if img is None:
        return Image.new("L", (size, size), BLANK_GRAY)
    im = Image.fromarray(to_gray8(img, scale), mode="L")
    if resample == "smooth":
        method = Image.Resampling.BOX if im.width > size else Image.Resampling.BILINEAR
    else:
        method = Image.Resampling.BOX if resample == "box" else Image.Resampling.NEAREST
    return im.resize((size, size), method)


def save_png(image, path: str | Path, what: str) -> None:
    """Saves a PIL image as ``path``: a temporary file beside it, fsync'ed, renamed into place."""
    from speckle_core.fileio import atomic_path

    with atomic_path(Path(path), what) as tmp:  # never a half-written sheet
        image.save(tmp, format="PNG")

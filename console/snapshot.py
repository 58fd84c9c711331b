"""Snapshots from the console: the frame as PNG (8 or 16 bit) and ``.npy`` (exactly as captured),
and the settings it was taken with as JSON, side by side. Never overwrites: each file is created
exclusively, and a name already taken gets a ``-2``, ``-3``, ... suffix."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
from pathlib import Path

import numpy as np

from console.source import FrameItem
from speckle_core.errors import UserError

SUFFIXES = (".png", ".npy", ".json")


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if image.dtype == np.uint8:
        Image.fromarray(image).save(buf, format="PNG")
    else:
        Image.fromarray(image.astype(np.uint16)).save(buf, format="PNG")  # 16-bit gray PNG
    return buf.getvalue()


def _npy_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, image, allow_pickle=False)
    return buf.getvalue()


def _claim(folder: Path, stem: str) -> tuple[Path, ...]:
    """Creates the three files empty and exclusively under the first free stem; returns them."""
    for n in range(1, 10_000):
        name = stem if n == 1 else f"{stem}-{n}"
        paths = tuple(folder / f"{name}{s}" for s in SUFFIXES)
        made: list[Path] = []
        try:
            for p in paths:
                with open(p, "xb"):
                    made.append(p)
            return paths
        except FileExistsError:
            for p in made:
                p.unlink()
    raise UserError(f"{folder}: no free snapshot name for {stem}")


def save_snapshot(folder: Path, item: FrameItem, settings: dict) -> tuple[Path, Path, Path]:
    """Writes STEM.png, STEM.npy and STEM.json in ``folder`` (made if missing); returns their paths."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{folder}: cannot make the snapshot folder ({e.strerror})") from None
    when = dt.datetime.fromtimestamp(item.time_s)
    stem = f"snapshot-{when:%Y%m%d-%H%M%S}"
    meta = {**settings, "exposure_us": item.exposure_us, "captured": when.isoformat(timespec="milliseconds"),
            "shape": list(item.image.shape), "dtype": str(item.image.dtype), "max_value": item.max_value,
            "black_level": item.black_level, **{f"frame_{k}": v for k, v in item.info.items()}}
    data = (_png_bytes(item.image), _npy_bytes(item.image),
            (json.dumps(meta, indent=2, default=str) + "\n").encode())
    paths = _claim(folder, stem)
    try:
        for p, b in zip(paths, data, strict=True):
            p.write_bytes(b)  # our own, freshly claimed files
    except OSError as e:
        for p in paths:
            with contextlib.suppress(OSError):
                p.unlink()
        raise UserError(f"{paths[0]}: cannot write the snapshot ({e.strerror})") from None
    return paths

"""``speckle-lab predict``: reconstructions of speckle frames as PNG files.

Inputs are image files (PNG, TIFF: 8- or 16-bit gray; colour is converted to luminance) or ``.npy``
arrays (2-D), or dataset rows ``RUN.h5:ROWS`` with ROWS like ``7``, ``0-9`` or ``0-3,8``. Each frame
goes through the same preprocessing as training (``reconstruction.data.preprocess_frames``); the
output is the sigmoid map as an 8-bit gray PNG, ``<name>.png`` or ``<run>_row<R>.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
H5_SUFFIXES = (".h5", ".hdf5")
MIN_SIDE_PX = 16


def parse_rows(spec: str, n_rows: int, where: str) -> list[int]:
    """``"0-3,8"`` → [0, 1, 2, 3, 8]; every row must lie in 0..n_rows-1."""
    rows: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise UserError(f"{where}: bad row spec {spec!r} (use e.g. 7, 0-9 or 0-3,8)")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise UserError(f"{where}: bad row range {part.strip()!r} (end before start)")
        if b >= n_rows:
            raise UserError(f"{where}: row {b} out of range (the file has rows 0..{n_rows - 1})")
        rows.extend(range(a, b + 1))
    return rows


def _check_frame(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise UserError(f"{where}: expected a 2-D gray frame (got shape {a.shape})")
    if min(a.shape) < MIN_SIDE_PX:
        raise UserError(f"{where}: frame {a.shape[1]}x{a.shape[0]} is smaller than "
                        f"{MIN_SIDE_PX}x{MIN_SIDE_PX}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise UserError(f"{where}: unsupported pixel type {a.dtype}")
    if not np.isfinite(a).all():
        raise UserError(f"{where}: frame holds NaN or infinite values")
    return a


def read_frame(path: Path) -> np.ndarray:
    """One 2-D frame from a PNG, TIFF or .npy file."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise UserError(f"{path}: not a readable .npy array ({' '.join(str(e).split())[:120]})") from None
        return _check_frame(np.asarray(a), str(path))
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError
        from PIL.Image import DecompressionBombError

        try:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA"):
                    im = im.convert("L")
                a = np.array(im)
        except DecompressionBombError:
            raise UserError(f"{path}: image too large to be a camera frame (decompression bomb?)") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            raise UserError(f"{path}: not a readable image ({' '.join(str(e).split())[:120]})") from None
        return _check_frame(a, str(path))
    raise UserError(f"{path}: unsupported input type {suffix or '(none)'} (PNG, TIFF, .npy or RUN.h5:ROWS)")


def _split_h5(item: str) -> tuple[Path, str] | None:
    head, sep, rows = item.rpartition(":")
    if sep and Path(head).suffix.lower() in H5_SUFFIXES:
        return Path(head), rows
    if Path(item).suffix.lower() in H5_SUFFIXES:
        raise UserError(f"{item}: name the rows to reconstruct, e.g. {item}:0-9")
    return None


def read_rows(path: Path, spec: str) -> list[tuple[str, np.ndarray]]:
    from speckle_core.runfile import open_run

    with open_run(path) as f:
        speckle = f["pairs/speckle"]
        rows = parse_rows(spec, speckle.shape[0], f"{path}:{spec}")
        done = f["pairs/done"][()]
        out = []
        for r in rows:
            if not done[r]:
                raise UserError(f"{path}: row {r} has no frame (/pairs/done is False)")
            out.append((f"{path.stem}_row{r}", np.asarray(speckle[r])))
    return out


def collect_inputs(items: list[str]) -> list[tuple[str, np.ndarray]]:
    """(output name, raw frame) for every input; any bad input is a one-line UserError."""
    frames: list[tuple[str, np.ndarray]] = []
    for item in items:
        h5 = _split_h5(item)
        if h5 is not None:
            frames.extend(read_rows(*h5))
        else:
            p = Path(item)
            frames.append((p.stem, read_frame(p)))
    return frames


def predict_inputs(checkpoint: str | Path, items: list[str], out_dir: str | Path, device="auto",
                   batch_size: int = 8) -> list[Path]:
    """Reconstructs every input and writes one PNG each; returns the paths written."""
    import torch
    from PIL import Image

    from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint
    from reconstruction.data import preprocess_frames
    from reconstruction.runtime import autocast, pick_device

    frames = collect_inputs(items)  # check every input before loading the model
    state = load_checkpoint(checkpoint)
    dev = pick_device(device)
    model = model_from_checkpoint(state, checkpoint).to(dev)
    size = int(state["model_config"]["image_size"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, used = [], set()
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            chunk = frames[i:i + batch_size]
            x = torch.stack([preprocess_frames(a, size)[0] for _, a in chunk])[:, None].to(dev)
            with autocast(dev):
                y = model.forward_logits(x).float().sigmoid()[:, 0].cpu().numpy()
            for (name, _), img in zip(chunk, y, strict=True):
                stem, k = name, 1
                while stem in used:  # two inputs with the same name: keep both
                    k += 1
                    stem = f"{name}_{k}"
                used.add(stem)
                path = out / f"{stem}.png"
                Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(path)
                written.append(path)
    return written

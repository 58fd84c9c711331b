"""``speckle-lab predict``: reconstructions of speckle frames as PNG files.

Inputs are image files (PNG, TIFF: 8- or 16-bit gray; colour is converted to luminance) or ``.npy``
arrays (2-D), or dataset rows ``RUN.h5:ROWS`` with ROWS like ``7``, ``0-9`` or ``0-3,8``. Each frame
goes through the same preprocessing as training (``reconstruction.data.preprocess_frames``); the
outputs are the sigmoid map as an 8-bit gray PNG, ``<name>.png`` or ``<run>_row<R>.png``, the object
thresholded at 0.5 beside it (``<name>_object.png``) and, with ``--side-by-side``, one PNG of input,
sigmoid and object (``<name>_side.png``). A frame whose size differs from the ROI of the training data
(stored in the checkpoint) gets a warning. An output that is one of the inputs is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
H5_SUFFIXES = (".h5", ".hdf5")
MIN_SIDE_PX = 16
THRESHOLD = 0.5  # the object: the sigmoid map thresholded as in the paper's binary labels


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
    largest = float(np.abs(a).max()) if np.issubdtype(a.dtype, np.floating) else 0.0
    if largest > float(np.finfo(np.float32).max):  # would be inf in the model's float32 input: a NaN map
        raise UserError(f"{where}: frame holds values too large for float32 (largest {largest:.3g})")
    return a


def read_frame(path: Path) -> np.ndarray:
    """One 2-D frame from a PNG, TIFF or .npy file (``speckle_core.frames.read_frame_file``: regular files
    only, bounded by the header before loading)."""
    from speckle_core.fileio import check_regular_file
    from speckle_core.frames import read_frame_file

    check_regular_file(path, "frame file")  # missing, a folder, a FIFO or device: each named as such
    if path.suffix.lower() not in (".npy", *IMAGE_SUFFIXES):
        raise UserError(f"{path}: unsupported input type {path.suffix or '(none)'} "
                        "(PNG, TIFF, .npy or RUN.h5:ROWS)")
    return _check_frame(np.asarray(read_frame_file(path)), str(path))


def _split_h5(item: str) -> tuple[Path, str] | None:
    head, sep, rows = item.rpartition(":")
    if sep and Path(head).suffix.lower() in H5_SUFFIXES:
        return Path(head), rows
    if Path(item).suffix.lower() in H5_SUFFIXES:
        raise UserError(f"{item}: name the rows to reconstruct, e.g. {item}:0-9")
    return None


def read_rows(path: Path, spec: str) -> list[tuple[str, np.ndarray]]:
    from speckle_core.h5safety import read_checked
    from speckle_core.runfile import open_run

    with open_run(path) as f:
        speckle = f["pairs/speckle"]
        rows = parse_rows(spec, speckle.shape[0], f"{path}:{spec}")
        done = f["pairs/done"][()]
        out = []
        for r in rows:
            if not done[r]:
                raise UserError(f"{path}: row {r} has no frame (/pairs/done is False)")
            out.append((f"{path.stem}_row{r}", np.asarray(read_checked(speckle, path, r))))
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


def training_geometry(state: dict) -> tuple[int, int] | None:
    """(H, W) of the frames the checkpoint was trained on (its run file's ROI), when known."""
    shape = state.get("frame_shape")
    if isinstance(shape, list | tuple) and len(shape) == 2 and all(isinstance(v, int) for v in shape):
        return int(shape[0]), int(shape[1])
    return None


def geometry_warnings(frames: list[tuple[str, np.ndarray]], trained: tuple[int, int] | None) -> list[str]:
    """One warning per frame whose size differs from the training data's ROI (it is still centre-cropped
    and resized like the training frames, but the speckle grain then differs from what the model saw)."""
    if trained is None:
        return []
    return [f"warning: {name}: frame {a.shape[1]}x{a.shape[0]} differs from the training data's ROI "
            f"{trained[1]}x{trained[0]}; it is centre-cropped and resized, so results may not hold"
            for name, a in frames if tuple(a.shape) != trained]


def _out_paths(out: Path, name: str, used: set, items: list[str], side_by_side: bool) -> dict[str, Path]:
    stem, k = name, 1
    while stem in used:  # two inputs with the same name: keep both
        k += 1
        stem = f"{name}_{k}"
    used.add(stem)
    from speckle_core.fileio import check_output_file

    paths = {"sigmoid": out / f"{stem}.png", "object": out / f"{stem}_object.png"}
    if side_by_side:
        paths["side"] = out / f"{stem}_side.png"
    for p in paths.values():
        check_output_file(p, inputs=[i.rpartition(":")[0] if _split_h5_quiet(i) else i for i in items],
                          what="reconstruction", suffixes=(".png",))
    return paths


def _split_h5_quiet(item: str) -> bool:
    head, sep, _ = item.rpartition(":")
    return bool(sep) and Path(head).suffix.lower() in H5_SUFFIXES


def _save_png(path: Path, gray01: np.ndarray) -> None:
    import io

    from PIL import Image

    from reconstruction.runtime import atomic_write

    buf = io.BytesIO()
    Image.fromarray((np.clip(gray01, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), what="reconstruction")


def _write_outputs(paths: dict[str, Path], frame_in: np.ndarray, img: np.ndarray) -> Path:
    _save_png(paths["sigmoid"], img)
    obj = (img >= THRESHOLD).astype(np.float32)
    _save_png(paths["object"], obj)
    if "side" in paths:
        _save_png(paths["side"], np.concatenate([frame_in, np.ones((img.shape[0], 2)), img,
                                                 np.ones((img.shape[0], 2)), obj], axis=1))
    return paths["sigmoid"]


def predict_inputs(checkpoint: str | Path, items: list[str], out_dir: str | Path, device="auto",
                   batch_size: int = 8, side_by_side: bool = False, log=None) -> list[Path]:
    """Reconstructs every input; writes ``NAME.png`` (sigmoid), ``NAME_object.png`` (thresholded at 0.5)
    and, with ``side_by_side``, ``NAME_side.png`` (input, sigmoid, object); returns the sigmoid PNGs, one
    per input (the others lie beside them).

    No output may be one of the inputs (nor a run file, checkpoint or protocol): refused before any
    file is written."""
    import torch

    from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint
    from reconstruction.data import preprocess_frames
    from reconstruction.runtime import autocast, pick_device, to_device
    from speckle_core.fileio import check_output_dir

    frames = collect_inputs(items)  # check every input before loading the model
    out = check_output_dir(out_dir, inputs=[checkpoint], what="prediction folder")
    used: set = set()
    plans = [_out_paths(out, name, used, [*items, str(checkpoint)], side_by_side) for name, _ in frames]
    state = load_checkpoint(checkpoint)
    dev = pick_device(device)
    model = model_from_checkpoint(state, checkpoint, device=dev, batch=batch_size).to(dev)
    size = int(state["model_config"]["image_size"])
    for line in geometry_warnings(frames, training_geometry(state)):
        (log or print)(line)
    written = []
    with torch.no_grad():
        for i in range(0, len(frames), batch_size):
            chunk = frames[i:i + batch_size]
            x = torch.stack([preprocess_frames(a, size)[0] for _, a in chunk])[:, None]
            with autocast(dev):
                y = model.forward_logits(to_device(x, dev)).float().sigmoid()[:, 0].cpu().numpy()
            for j, img in enumerate(y):
                written.append(_write_outputs(plans[i + j], x[j, 0].numpy(), img))
    return written

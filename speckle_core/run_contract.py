"""The run file's contract as checks: every dataset's rank, type and storage, before any is read or
written (issue #12, "Crafted files"; the format itself is ``speckle_core.runfile.format``).

- :func:`check_run_contract` (every reader: ``inspect``, ``train``, ``evaluate``, ``predict``,
  ``acquire --resume``): the file keeps all its data inside itself
  (``speckle_core.h5safety.check_contained``), the root attributes are single UTF-8 strings, each
  dataset of the contract (and each extra the writer adds, when present) has the rank and type of
  the format, frames are stored raw (no filters) and of a bounded size, string datasets decode as
  UTF-8, and the per-row tables fit in memory;
- :func:`check_writable_contract` (``acquire --resume``, before :class:`RunWriter` writes a byte):
  the exact dtypes and shapes the writer writes into, and storage that is allocated already, so a
  write never changes HDF5 metadata (the crash-safety rule in ``speckle_core.runfile.format``);
- :func:`check_pattern_readable`: ``/objects/pattern`` read whole (gzip-compressed: bit rot is
  found here), one line naming the dataset when a chunk is damaged.

Each failure is one :class:`UserError` naming the file and the dataset or attribute.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from speckle_core.errors import UserError
from speckle_core.fileio import check_memory
from speckle_core.frames import MAX_FRAME_PIXELS
from speckle_core.h5safety import attr_text, check_contained, check_dataset, read_checked
from speckle_core.text import one_line

ROOT_TEXT_ATTRS = ("format", "protocol", "rig", "created", "software")
# name: (numpy kinds, rank) — "T" a string dataset, "?" bool; required ones first
REQUIRED = {
    "objects/pattern": ("biu?", 3), "objects/name": ("T", 1), "objects/split": ("T", 1),
    "pairs/speckle": ("u", 3), "pairs/object_index": ("iu", 1), "pairs/diffuser": ("T", 1),
    "pairs/distance_mm": ("f", 1), "pairs/exposure_us": ("f", 1), "pairs/timestamp": ("f", 1),
    "pairs/done": ("?iu", 1),
}
EXTRAS = {
    "objects/skipped": ("T", 1), "pairs/role": ("T", 1), "pairs/repeat": ("iu", 1), "pairs/block": ("iu", 1),
    "pairs/saturated_fraction": ("f", 1), "capture/frame_index": ("iu", 1),
    "capture/device_timestamp": ("f", 1), "blocks/diffuser": ("T", 1), "blocks/distance_mm": ("f", 1),
    "blocks/role": ("T", 1), "blocks/first_row": ("iu", 1), "blocks/n_rows": ("iu", 1),
    "blocks/exposure_us": ("f", 1), "blocks/saturated_fraction": ("f", 1), "blocks/done": ("?iu", 1),
    "dark/frame": ("f", 3), "dark/done": ("?iu", 1), "stability/pattern": ("biu?", 2),
    "stability/frame": ("u", 3), "stability/block": ("iu", 1), "stability/before_row": ("iu", 1),
    "stability/correlation": ("f", 1), "stability/timestamp": ("f", 1), "stability/done": ("?iu", 1),
}
FRAME_DTYPES = (np.uint8, np.uint16)
STRING_DATASETS = [n for n, (k, _) in {**REQUIRED, **EXTRAS}.items() if k == "T"]
# what RunWriter writes into, exactly as create_run lays it out
WRITTEN = {
    "pairs/exposure_us": np.float32, "pairs/timestamp": np.float64, "pairs/done": np.bool_,
    "pairs/saturated_fraction": np.float32, "capture/frame_index": np.int64,
    "capture/device_timestamp": np.float64, "blocks/exposure_us": np.float32,
    "blocks/saturated_fraction": np.float32, "blocks/done": np.bool_, "dark/frame": np.float32,
    "dark/done": np.bool_, "stability/correlation": np.float32, "stability/timestamp": np.float64,
    "stability/done": np.bool_,
}
ROW_BYTES = 256  # what the readers hold per pair row in memory (tables, masks, strings)


def check_run_contract(f: h5py.File, p: str | Path) -> None:
    """The reader's contract; see the module docstring."""
    check_contained(f, p)
    for name in ROOT_TEXT_ATTRS:
        attr_text(f, name, p)
    for name, (kinds, ndim) in REQUIRED.items():
        check_dataset(f, p, name, kinds=kinds, ndim=ndim)
    for name, (kinds, ndim) in EXTRAS.items():
        if name in f:
            check_dataset(f, p, name, kinds=kinds, ndim=ndim)
    _check_frames(f, p)
    _check_sizes(f, p)
    _check_int_attr(f, p, "skipped_faces", f.attrs)
    if isinstance(f.get("dark"), h5py.Group) and "n_frames" in f["dark"].attrs:
        _check_int_attr(f, p, "/dark n_frames", f["dark"].attrs, "n_frames")
    for name in STRING_DATASETS:
        if name in f:
            _check_utf8(f[name], p)


def _check_frames(f: h5py.File, p) -> None:
    for name in ("pairs/speckle", "stability/frame"):
        if name not in f:
            continue
        ds = check_dataset(f, p, name, kinds="u", ndim=3, dtypes=FRAME_DTYPES, no_filters=True)
        h, w = ds.shape[1:]
        if h * w > MAX_FRAME_PIXELS or min(h, w) < 1:
            raise UserError(f"{p}: /{name} frames of {h}x{w} px are outside what a camera delivers")
    if "dark/frame" in f:
        check_dataset(f, p, "dark/frame", kinds="f", ndim=3, no_filters=True)
    pattern = f["objects/pattern"]
    if pattern.shape[1] * pattern.shape[2] > MAX_FRAME_PIXELS:
        raise UserError(f"{p}: /objects/pattern of {pattern.shape[1]}x{pattern.shape[2]} px is larger "
                        "than any SLM window")


def _check_sizes(f: h5py.File, p) -> None:
    """The per-row tables and the objects (held as bits by the engine) must fit in memory."""
    n, h, w = f["objects/pattern"].shape
    m = f["pairs/speckle"].shape[0]
    check_memory(m * ROW_BYTES + n * (h * w // 8 + 64), "reading the run's tables", p)


def _check_int_attr(f, p, label: str, attrs, key: str | None = None) -> None:
    key = key or label
    if key not in attrs:
        return
    v = attrs[key]
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    if not isinstance(v, int | np.integer) or isinstance(v, bool | np.bool_) or int(v) < 0:
        raise UserError(f"{p}: attribute {label!r} must be a whole number >= 0 (got {str(v)[:40]!r})")


def _check_utf8(ds: h5py.Dataset, p) -> None:
    if h5py.check_string_dtype(ds.dtype) is None:
        return
    try:
        ds.asstr()[...]
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: {ds.name} holds text that is not UTF-8 (byte {e.start})") from None
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"{p}: {ds.name} is damaged and cannot be read ({one_line(e, 120)})") \
            from None


def check_writable_contract(f: h5py.File, p: str | Path) -> None:
    """What ``acquire --resume`` writes into: exact dtypes and shapes, storage already allocated."""
    speckle = f["pairs/speckle"]
    m, fh, fw = speckle.shape
    nb = f["blocks/done"].shape[0]
    r = f["stability/done"].shape[0]
    for name, dtype in WRITTEN.items():
        check_dataset(f, p, name, kinds="", ndim=f[name].ndim, dtypes=(dtype,))
    expect = {"pairs": (m,), "capture": (m,), "blocks": (nb,), "stability": (r,)}
    for name in WRITTEN:
        group = name.split("/")[0]
        if group in expect and f[name].shape != expect[group]:
            raise UserError(f"{p}: /{name} has shape {f[name].shape}, expected {expect[group]}")
    if f["stability/frame"].shape != (r, fh, fw) or f["stability/frame"].dtype != speckle.dtype:
        raise UserError(f"{p}: /stability/frame must be ({r}, {fh}, {fw}) {speckle.dtype}, "
                        f"got {f['stability/frame'].shape} {f['stability/frame'].dtype}")
    nd = f["dark/done"].shape[0]
    if f["dark/frame"].shape != (nd, fh, fw) or nd not in (0, nb):
        raise UserError(f"{p}: /dark/frame has shape {f['dark/frame'].shape}, "
                        f"expected (0 or {nb}, {fh}, {fw})")
    for name in ("pairs/speckle", "stability/frame", "dark/frame", *WRITTEN):
        _check_allocated(f[name], p)


def _check_allocated(ds: h5py.Dataset, p) -> None:
    """A write must only change raw bytes: the dataset's whole storage exists already."""
    need = int(np.prod(ds.shape, dtype=np.int64)) * ds.dtype.itemsize
    if need and ds.id.get_storage_size() < need:
        raise UserError(f"{p}: {ds.name} is not preallocated ({ds.id.get_storage_size()} of {need} bytes): "
                        "not laid out by `speckle-lab acquire`, so it cannot be resumed")


def check_pattern_readable(f: h5py.File, p: str | Path, batch: int = 64) -> None:
    """Reads ``/objects/pattern`` whole, in batches: a damaged compressed chunk is one line."""
    ds = f["objects/pattern"]
    for a in range(0, ds.shape[0], batch):
        read_checked(ds, p, np.s_[a:a + batch])

"""The run dataset: one HDF5 file per run (DESIGN.md, "Dataset"), its writer and its reader.

Contract (plain h5py reads it; string datasets are variable-length UTF-8, read with ``.asstr()``):

- root attributes ``format="speckle-lab/1"``, ``protocol`` (TOML text), ``rig`` (TOML text),
  ``created`` (ISO 8601 UTC), ``software`` (JSON of package versions);
- ``/objects/pattern`` (N, h, w) uint8 0/1, ``/objects/name`` (N,) str, ``/objects/split`` (N,) str;
- ``/pairs/speckle`` (M, H, W) uint8|uint16, ``object_index`` (M,) int32, ``diffuser`` (M,) str,
  ``distance_mm`` (M,) float32, ``exposure_us`` (M,) float32, ``timestamp`` (M,) float64,
  ``done`` (M,) bool — one row per planned capture, in plan order.

Extras (allowed by the contract; documented here):

- ``/objects/skipped`` (K,) str: faces the source could not read ("name: reason"); the root
  attribute ``skipped_faces`` holds K.
- ``/pairs/role`` (M,) str ("train" | "validation"), ``/pairs/repeat`` (M,) int32,
  ``/pairs/block`` (M,) int32 (row in ``/blocks``), ``/pairs/saturated_fraction`` (M,) float32.
  Everything in ``/pairs`` but ``timestamp`` is the same bytes in a resumed run as in one that never
  stopped; what legitimately differs between processes is kept apart, in ``/capture``:
  ``/capture/frame_index`` (M,) int64 (the camera's counter, -1 unknown) and
  ``/capture/device_timestamp`` (M,) float64 (the camera's clock, NaN unknown).
- ``/blocks/{diffuser, distance_mm, role, first_row, n_rows}``: the runs of pairs sharing one
  diffuser and distance; ``/blocks/exposure_us`` (B,) float32 — the exposure decided for the block
  (auto exposure runs once per block and is stored, so a resumed run reuses it);
  ``/blocks/saturated_fraction`` (B,) at that exposure; ``/blocks/done`` (B,) bool.
- ``/dark/frame`` (B, H, W) float32: the mean dark frame of each block at its exposure
  (``/dark/n_frames`` attribute: frames averaged; 0 = darks off), ``/dark/done`` (B,) bool.
- ``/stability/pattern`` (h, w) uint8: the reference pattern; ``/stability/frame`` (R, H, W);
  ``/stability/block`` (R,) int32; ``/stability/before_row`` (R,) int32 (captured just before that
  pair row); ``/stability/correlation`` (R,) float32 (Pearson correlation with the block's first
  reference capture; 1 for the first); ``/stability/timestamp`` (R,) float64; ``/stability/done`` (R,).

Crash safety (a SIGKILL or a power cut at any moment leaves a file plain h5py opens):

- The file is built under ``NAME.creating`` and renamed (no-clobber ``link``) only once its whole
  layout is written, flushed and fsync'ed. A kill during creation leaves only the temporary file.
- Superblock version 0 (libver low bound "earliest"): HDF5 sets its status-flags word (byte 20)
  while a writer has the file open but enforces it only for superblock v3 ("latest"), so a file
  whose writer died opens for reading and for resuming (tests/test_runfile.py kills writers).
- Every dataset is fully allocated at creation (``H5D_ALLOC_TIME_EARLY``; ``fill_time=never`` so a
  big run's frames become a sparse file instantly), strings are written once at creation, the
  chunk cache is off and ``track_times`` is off: after creation the writer changes only raw data
  bytes, never HDF5 metadata, so no write can be torn across a B-tree or an object header.
  For this reason speckle frames are NOT compressed (compressed chunks cannot be preallocated:
  each write would grow the file and rewrite the chunk index). ``bench/bench_compression.py``
  measures what that costs: on simulated 800×800 speckle gzip saves 25–35 % of the disk but takes
  15–45 ms of CPU per frame (lzf: ~15 % for ~8–17 ms), more than the whole per-pair budget at 30
  pairs/s on 2 cores; an uncompressed frame write takes < 1 ms. ``/objects/pattern`` IS
  gzip-compressed (0/1 faces shrink ~70×): it is written once, before the rename.
- Each pair's frame goes to the OS at once (no chunk cache); its metadata (exposure, timestamp,
  ...) is written in a batch at the next sync, then ``fsync``, then its ``done`` flag — every
  ``sync_interval_s`` (default 1 s; 0 = after every pair). So ``done`` on disk always implies the
  frame on disk, even after a power cut (fsync policy), at the cost of re-capturing at most the
  last second of pairs on resume after a kill.
  Block exposures, darks and references are fsync'ed before their ``done`` flags.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5p

from speckle_core.errors import UserError

FORMAT = "speckle-lab/1"
CREATING_SUFFIX = ".creating"
PAIR_FIELDS = ("speckle", "object_index", "diffuser", "distance_mm", "exposure_us", "timestamp", "done")
ROOT_ATTRS = ("format", "protocol", "rig", "created", "software")
DEFAULT_SYNC_INTERVAL_S = 1.0


@dataclass(frozen=True)
class BlockSpec:
    """A run of consecutive pairs sharing a diffuser and a camera distance."""

    diffuser: str
    distance_mm: float
    role: str  # "train" | "validation"


@dataclass
class RunLayout:
    """Everything the file holds before the first frame: the whole plan, laid out."""

    protocol_text: str
    rig_text: str
    patterns: np.ndarray  # (N, h, w) uint8 0/1
    names: Sequence[str]
    splits: Sequence[str]  # "train" | "holdout"
    blocks: Sequence[BlockSpec]
    pair_block: np.ndarray  # (M,) row in blocks, plan order
    pair_object: np.ndarray  # (M,) row in patterns
    pair_repeat: np.ndarray  # (M,)
    frame_shape: tuple[int, int]  # camera ROI (H, W)
    frame_dtype: np.dtype  # uint8 or uint16
    skipped: Sequence[str] = ()
    dark_frames: int = 0  # frames averaged into each block's dark frame (0: no darks)
    reference_pattern: np.ndarray | None = None  # (h, w) uint8 0/1; None: no stability monitor
    reference_before_row: Sequence[int] = ()  # captured before these pair rows (M = after the last)
    reference_block: Sequence[int] = ()
    software: dict = field(default_factory=dict)

    def validate(self) -> None:
        n = len(self.patterns)
        if self.patterns.ndim != 3 or self.patterns.dtype != np.uint8:
            raise ValueError(f"patterns must be (N, h, w) uint8, got {self.patterns.shape} "
                             f"{self.patterns.dtype}")
        if len(self.names) != n or len(self.splits) != n:
            raise ValueError("names and splits must have one entry per pattern")
        m = len(self.pair_block)
        if len(self.pair_object) != m or len(self.pair_repeat) != m:
            raise ValueError("pair_block, pair_object and pair_repeat must have the same length")
        if m and (np.min(self.pair_object) < 0 or np.max(self.pair_object) >= n):
            raise ValueError("pair_object out of range")
        if m and (np.min(self.pair_block) < 0 or np.max(self.pair_block) >= len(self.blocks)):
            raise ValueError("pair_block out of range")
        if np.dtype(self.frame_dtype) not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ValueError(f"frame dtype must be uint8 or uint16, got {self.frame_dtype}")
        if len(self.reference_before_row) != len(self.reference_block):
            raise ValueError("reference_before_row and reference_block must have the same length")
        if len(self.reference_block) and self.reference_pattern is None:
            raise ValueError("references are scheduled but there is no reference pattern")


def software_versions() -> dict:
    """The package versions that made a file, for its ``software`` attribute."""
    from importlib import metadata

    out = {"python": platform.python_version(), "hdf5": h5py.version.hdf5_version}
    for pkg in ("speckle-lab", "numpy", "h5py", "scipy", "pylablib"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _early_dcpl() -> h5p.PropDCID:
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5d.ALLOC_TIME_EARLY)
    return dcpl


def _alloc(group: h5py.Group, name: str, shape: tuple, dtype, fill=None, chunks=None) -> h5py.Dataset:
    """A fully allocated dataset; ``fill`` is written now (small datasets), else left unwritten."""
    ds = group.create_dataset(name, shape=shape, dtype=dtype, chunks=chunks, dcpl=_early_dcpl(),
                              fill_time="never", track_times=False)
    if fill is not None and int(np.prod(shape)):
        ds[...] = fill
    return ds


def _strings(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, data=np.array([str(v) for v in values], dtype=object),
                         dtype=h5py.string_dtype(), track_times=False)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsync'ed
        _fsync_path(path)


def create_run(path: str | Path, layout: RunLayout) -> None:
    """Writes the whole layout to ``path``, atomically: ``path`` appears complete or not at all.

    Raises :class:`UserError` when ``path`` already exists (captured data is never overwritten).
    A stale ``path.creating`` from a run killed during creation is replaced.
    """
    path = Path(path)
    layout.validate()
    if path.exists():
        raise UserError(f"{path}: already exists; use --resume to continue it, or choose another --out")
    tmp = path.with_name(path.name + CREATING_SUFFIX)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    m, (fh, fw) = len(layout.pair_block), layout.frame_shape
    blocks = list(layout.blocks)
    with h5py.File(tmp, "w", libver=("earliest", "v200")) as f:
        f.attrs["format"] = FORMAT
        f.attrs["protocol"] = layout.protocol_text
        f.attrs["rig"] = layout.rig_text
        f.attrs["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        f.attrs["software"] = json.dumps(layout.software or software_versions(), sort_keys=True)
        f.attrs["skipped_faces"] = len(layout.skipped)

        g = f.create_group("objects", track_order=False)
        n, ph, pw = layout.patterns.shape
        g.create_dataset("pattern", data=layout.patterns, chunks=(1, ph, pw) if n else None,
                         compression="gzip" if n else None, compression_opts=4 if n else None,
                         shuffle=False, track_times=False)
        _strings(g, "name", layout.names)
        _strings(g, "split", layout.splits)
        _strings(g, "skipped", layout.skipped)

        pb = np.asarray(layout.pair_block, dtype=np.int64)
        p = f.create_group("pairs")
        _alloc(p, "speckle", (m, fh, fw), np.dtype(layout.frame_dtype),
               chunks=(1, fh, fw) if m else None)
        _alloc(p, "object_index", (m,), np.int32, fill=np.asarray(layout.pair_object, dtype=np.int32))
        _strings(p, "diffuser", [blocks[b].diffuser for b in pb])
        _alloc(p, "distance_mm", (m,), np.float32,
               fill=np.array([blocks[b].distance_mm for b in pb], dtype=np.float32))
        _alloc(p, "exposure_us", (m,), np.float32, fill=np.nan)
        _alloc(p, "timestamp", (m,), np.float64, fill=np.nan)
        _alloc(p, "done", (m,), bool, fill=False)
        _strings(p, "role", [blocks[b].role for b in pb])
        _alloc(p, "repeat", (m,), np.int32, fill=np.asarray(layout.pair_repeat, dtype=np.int32))
        _alloc(p, "block", (m,), np.int32, fill=pb.astype(np.int32))
        _alloc(p, "saturated_fraction", (m,), np.float32, fill=np.nan)
        c = f.create_group("capture")
        _alloc(c, "frame_index", (m,), np.int64, fill=-1)
        _alloc(c, "device_timestamp", (m,), np.float64, fill=np.nan)

        nb = len(blocks)
        first = np.full(nb, -1, dtype=np.int64)
        counts = np.bincount(pb, minlength=nb) if m else np.zeros(nb, dtype=np.int64)
        for row in range(m - 1, -1, -1):
            first[pb[row]] = row
        b = f.create_group("blocks")
        _strings(b, "diffuser", [s.diffuser for s in blocks])
        _alloc(b, "distance_mm", (nb,), np.float32,
               fill=np.array([s.distance_mm for s in blocks], np.float32))
        _strings(b, "role", [s.role for s in blocks])
        _alloc(b, "first_row", (nb,), np.int32, fill=first.astype(np.int32))
        _alloc(b, "n_rows", (nb,), np.int32, fill=counts.astype(np.int32))
        _alloc(b, "exposure_us", (nb,), np.float32, fill=np.nan)
        _alloc(b, "saturated_fraction", (nb,), np.float32, fill=np.nan)
        _alloc(b, "done", (nb,), bool, fill=False)

        d = f.create_group("dark")
        d.attrs["n_frames"] = int(layout.dark_frames)
        ndark = nb if layout.dark_frames > 0 else 0
        _alloc(d, "frame", (ndark, fh, fw), np.float32, chunks=(1, fh, fw) if ndark else None)
        _alloc(d, "done", (ndark,), bool, fill=False)

        s = f.create_group("stability")
        r = len(layout.reference_block)
        ref = layout.reference_pattern
        s.create_dataset("pattern", data=np.zeros((0, 0), np.uint8) if ref is None else ref.astype(np.uint8),
                         track_times=False)
        _alloc(s, "frame", (r, fh, fw), np.dtype(layout.frame_dtype), chunks=(1, fh, fw) if r else None)
        _alloc(s, "block", (r,), np.int32, fill=np.asarray(layout.reference_block, dtype=np.int32))
        _alloc(s, "before_row", (r,), np.int32, fill=np.asarray(layout.reference_before_row, dtype=np.int32))
        _alloc(s, "correlation", (r,), np.float32, fill=np.nan)
        _alloc(s, "timestamp", (r,), np.float64, fill=np.nan)
        _alloc(s, "done", (r,), bool, fill=False)
    _fsync_path(tmp)
    try:
        os.link(tmp, path)  # no-clobber: fails if another run created `path` meanwhile
    except FileExistsError:
        tmp.unlink()
        raise UserError(f"{path}: already exists; use --resume to continue it, "
                        "or choose another --out") from None
    except OSError:
        if path.exists():
            raise
        os.replace(tmp, path)  # filesystems without hard links
    else:
        tmp.unlink()
    _fsync_dir(path.parent if str(path.parent) else Path("."))


class RunWriter:
    """Writes frames into a laid-out run file, touching only preallocated raw data.

    Not thread-safe: the engine's writer thread owns it.
    """

    def __init__(self, path: str | Path, sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S):
        self.path = Path(path)
        # rdcc_nbytes=0: no chunk cache, each frame goes straight to the OS on write
        self._f = h5py.File(self.path, "r+", rdcc_nbytes=0)
        self._fd = self._f.id.get_vfd_handle()
        self._sync_interval_s = float(sync_interval_s)
        self._pending: list[int] = []
        self._last_sync = time.monotonic()
        f = self._f
        self._speckle = f["pairs/speckle"]
        self.n_pairs = self._speckle.shape[0]
        self.done_count = int(np.count_nonzero(f["pairs/done"][...]))  # pairs marked done on disk

    # -- state -----------------------------------------------------------
    @property
    def file(self) -> h5py.File:
        return self._f

    def done_rows(self) -> np.ndarray:
        return self._f["pairs/done"][...]

    # -- pairs -----------------------------------------------------------
    def write_pair(self, row: int, image: np.ndarray, exposure_us: float, timestamp_s: float,
                   saturated_fraction: float = float("nan"), frame_index: int | None = None,
                   device_timestamp_s: float | None = None) -> None:
        """Writes one pair's frame now (straight to the OS: no chunk cache); its metadata and
        ``done`` flag follow at the next sync, metadata before the fsync, ``done`` after it."""
        if not 0 <= row < self.n_pairs:
            raise IndexError(f"pair row {row} outside 0..{self.n_pairs - 1}")
        if image.shape != self._speckle.shape[1:]:
            raise ValueError(f"frame shape {image.shape} != dataset frame shape {self._speckle.shape[1:]}")
        self._speckle[row] = image.astype(self._speckle.dtype, copy=False)
        self._pending.append((row, exposure_us, timestamp_s, saturated_fraction,
                              -1 if frame_index is None else int(frame_index),
                              np.nan if device_timestamp_s is None else device_timestamp_s))
        if time.monotonic() - self._last_sync >= self._sync_interval_s:
            self.sync()

    def sync(self) -> None:
        """Writes pending pairs' metadata, fsyncs (frames + metadata), then marks them done."""
        pending = sorted(self._pending)
        f = self._f
        for a, b in _runs([p[0] for p in pending]):
            chunk = [p for p in pending if a <= p[0] < b]
            for k, name in enumerate(_PAIR_META, start=1):
                f[name][a:b] = [p[k] for p in chunk]
        f.flush()
        os.fsync(self._fd)
        self._last_sync = time.monotonic()
        if pending:
            done = f["pairs/done"]
            was = done[...]
            for a, b in _runs([p[0] for p in pending]):
                done[a:b] = True
            self.done_count += len({p[0] for p in pending if not was[p[0]]})
            self._pending.clear()
            f.flush()

    # -- per block and stability records (rare: each made durable before its flag) --
    def _durable_flag(self, ds: str, index: int) -> None:
        self._f.flush()
        os.fsync(self._fd)
        self._f[ds][index] = True
        self._f.flush()
        os.fsync(self._fd)

    def write_block_exposure(self, block: int, exposure_us: float, saturated_fraction: float) -> None:
        self._f["blocks/exposure_us"][block] = exposure_us
        self._f["blocks/saturated_fraction"][block] = saturated_fraction
        self._durable_flag("blocks/done", block)

    def write_dark(self, block: int, dark: np.ndarray) -> None:
        self._f["dark/frame"][block] = dark.astype(np.float32, copy=False)
        self._durable_flag("dark/done", block)

    def write_reference(self, index: int, image: np.ndarray, correlation: float, timestamp_s: float) -> None:
        self._f["stability/frame"][index] = image
        self._f["stability/correlation"][index] = correlation
        self._f["stability/timestamp"][index] = timestamp_s
        self._durable_flag("stability/done", index)

    def abandon(self) -> None:
        """Closes after a write failure: marks what reached the disk, never raises."""
        if self._f.id.valid:
            with contextlib.suppress(Exception):
                self.sync()
            with contextlib.suppress(Exception):
                self._f.close()

    def close(self) -> None:
        if self._f.id.valid:
            try:
                self.sync()
            finally:
                self._f.close()


_PAIR_META = ("pairs/exposure_us", "pairs/timestamp", "pairs/saturated_fraction", "capture/frame_index",
              "capture/device_timestamp")


def _runs(rows: list[int]):
    """Consecutive runs [a, b) of sorted rows."""
    if not rows:
        return
    start = prev = rows[0]
    for r in rows[1:]:
        if r != prev + 1:
            yield start, prev + 1
            start = r
        prev = r
    yield start, prev + 1


# -- reading -------------------------------------------------------------------------------------

def open_run(path: str | Path, mode: str = "r") -> h5py.File:
    """Opens a speckle-lab run file, or raises a one-line :class:`UserError` naming it."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such run file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a run file (.h5)")
    try:
        f = h5py.File(p, mode)
    except OSError as e:
        raise UserError(f"{p}: not a readable HDF5 file ({_short(e)})") from None
    try:
        check_run(f, p)
    except BaseException:
        f.close()
        raise
    return f


def check_run(f: h5py.File, p: Path) -> None:
    """Checks the DESIGN.md contract's names, shapes and lengths; one-line UserError if broken."""
    try:
        fmt = f.attrs.get("format")
        if isinstance(fmt, bytes):
            fmt = fmt.decode("utf-8", "replace")
        if fmt != FORMAT:
            raise UserError(f"{p}: not a speckle-lab dataset (format attribute {fmt!r}, expected {FORMAT!r})")
        for a in ROOT_ATTRS:
            if a not in f.attrs:
                raise UserError(f"{p}: root attribute {a!r} is missing")
        for name in ("pattern", "name", "split"):
            if not isinstance(f.get(f"objects/{name}"), h5py.Dataset):
                raise UserError(f"{p}: /objects/{name} is missing")
        for name in PAIR_FIELDS:
            if not isinstance(f.get(f"pairs/{name}"), h5py.Dataset):
                raise UserError(f"{p}: /pairs/{name} is missing")
        n = f["objects/pattern"].shape[0]
        m = f["pairs/speckle"].shape[0]
        for name in ("name", "split"):
            if f[f"objects/{name}"].shape != (n,):
                shape = f[f"objects/{name}"].shape
                raise UserError(f"{p}: /objects/{name} has shape {shape}, expected ({n},)")
        for name in PAIR_FIELDS[1:]:
            if f[f"pairs/{name}"].shape != (m,):
                raise UserError(f"{p}: /pairs/{name} has shape {f[f'pairs/{name}'].shape}, expected ({m},)")
        if f["pairs/speckle"].ndim != 3:
            raise UserError(f"{p}: /pairs/speckle must be (M, H, W), got {f['pairs/speckle'].shape}")
        obj = f["pairs/object_index"][...]
        if m and (obj.min() < 0 or obj.max() >= n):
            raise UserError(f"{p}: /pairs/object_index points outside /objects (0..{n - 1})")
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"{p}: damaged or truncated run file ({_short(e)})") from None


RESUME_NEEDS = ("pairs/block", "pairs/repeat", "pairs/role", "pairs/saturated_fraction", "blocks/diffuser",
                "blocks/distance_mm", "blocks/exposure_us", "blocks/done", "dark/frame", "dark/done",
                "stability/pattern", "stability/frame", "stability/block", "stability/before_row",
                "stability/done", "capture/frame_index", "capture/device_timestamp")


def check_resumable(f: h5py.File, p: Path) -> None:
    """The writer's extras a resume needs; one-line UserError if a dataset is missing or mis-sized."""
    m = f["pairs/speckle"].shape[0]
    for name in RESUME_NEEDS:
        if not isinstance(f.get(name), h5py.Dataset):
            raise UserError(f"{p}: /{name} is missing: not a run written by `speckle-lab acquire`, "
                            "so it cannot be resumed")
    for name in ("pairs/block", "pairs/repeat", "capture/frame_index"):
        if f[name].shape != (m,):
            raise UserError(f"{p}: /{name} has shape {f[name].shape}, expected ({m},)")
    nb = f["blocks/done"].shape[0]
    blocks = f["pairs/block"][...]
    if m and (blocks.min() < 0 or blocks.max() >= nb):
        raise UserError(f"{p}: /pairs/block points outside /blocks (0..{nb - 1})")
    refs = f["stability/block"][...]
    if len(refs) and (refs.min() < 0 or refs.max() >= nb):
        raise UserError(f"{p}: /stability/block points outside /blocks (0..{nb - 1})")
    if len(refs) and f["stability/pattern"].shape != f["objects/pattern"].shape[1:]:
        raise UserError(f"{p}: /stability/pattern is not the size of the objects")


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]


def read_strings(ds: h5py.Dataset) -> list[str]:
    """A string dataset as a list of str (variable- or fixed-length)."""
    if ds.shape == (0,):
        return []
    if h5py.check_string_dtype(ds.dtype) is not None:
        return list(ds.asstr()[...])
    return [str(x) for x in ds[...]]

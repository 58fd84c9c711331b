"""The run file's writer: atomic creation of the whole layout, then frames into preallocated space.

Why it is built this way (the crash-safety rules) is in :mod:`speckle_core.runfile.format`'s docstring.

Reading a run while it is written (``inspect``, the contact sheet, plain ``h5py.File(p, "r")``):

- HDF5's single-writer/multiple-reader mode is not used: it needs the latest file format
  (superblock v3), whose "file open for writing" flag HDF5 enforces, so the file of a writer that
  was killed would refuse to open until ``h5clear`` — the crash-safety rule 2 of ``format`` forbids
  that. SWMR exists to let readers follow a writer that appends (new chunks, a growing B-tree,
  changing object headers); this writer changes no metadata at all after creation: every dataset
  is allocated at creation, strings and attributes are written once before the rename, there is
  no chunk cache and no time tracking. So the equivalent is simpler:
- the writer opens the file as HDF5 does by default, which takes an exclusive flock on it, then
  converts that lock to a shared one (``_let_readers_in``): readers, which ask for a shared lock,
  open the file (plain ``h5py.File(p, "r")`` included, in this process or another); a second
  writer, which asks for an exclusive lock, is still refused. Speckle-lab writers also take
  ``RUN.h5.lock`` first (``speckle_core.fileio.OutputLock``: flock, released by the kernel when the
  writer dies), which names the running writer and holds even where HDF5's locking is off
  (``HDF5_USE_FILE_LOCKING=FALSE``, common on NFS).
- What a reader sees is consistent: the metadata it caches never changes; raw data are read from the
  page cache, which every process on the machine shares, so a reader sees each ``write()`` once it
  returned. The writer writes a pair's frame and metadata, fsyncs, and only then its ``done`` flag
  (and likewise block exposures, darks and references before their flags), so a row a reader finds
  ``done`` has its frame and metadata complete. A row not yet done may hold a frame half written:
  readers use done rows only (``inspect`` and the contact sheet do). Over NFS, which gives only
  close-to-open consistency, a reader may see a done flag before the frame: read a copy there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5p

from speckle_core.errors import UserError
from speckle_core.fileio import fsync_dir, fsync_file
from speckle_core.runfile.format import (
    CREATING_SUFFIX,
    DEFAULT_SYNC_INTERVAL_S,
    FORMAT,
    PAIR_META,
    RunLayout,
)
from speckle_core.runfile.nexus import write_nexus
from speckle_core.runfile.reader import check_resumable, check_run, open_h5


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


def _write_strings(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    group.create_dataset(name, data=np.array([str(v) for v in values], dtype=object),
                         dtype=h5py.string_dtype(), track_times=False)


# -- the layout, one group at a time ------------------------------------------------------------------

def _write_root(f: h5py.File, layout: RunLayout) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["protocol"] = layout.protocol_text
    f.attrs["rig"] = layout.rig_text
    f.attrs["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    f.attrs["software"] = json.dumps(layout.software or software_versions(), sort_keys=True)
    f.attrs["skipped_faces"] = len(layout.skipped)
    if layout.camera_settings:  # gamma, gains, white balance... as the driver set and read them back
        f.attrs["camera_settings"] = json.dumps(layout.camera_settings, sort_keys=True, default=str)
    if layout.rig_kind:  # a dataset from a mixed rig says so (real camera, simulated stage/changer)
        f.attrs["rig_kind"] = layout.rig_kind
        f.attrs["simulated_devices"] = json.dumps(list(layout.simulated_devices))


def _write_objects(f: h5py.File, layout: RunLayout) -> None:
    g = f.create_group("objects", track_order=False)
    n, ph, pw = layout.patterns.shape
    g.create_dataset("pattern", data=layout.patterns, chunks=(1, ph, pw) if n else None,
                     compression="gzip" if n else None, compression_opts=4 if n else None,
                     shuffle=False, track_times=False)
    _write_strings(g, "name", layout.names)
    _write_strings(g, "split", layout.splits)
    _write_strings(g, "skipped", layout.skipped)


def _write_pairs(f: h5py.File, layout: RunLayout) -> None:
    m, (fh, fw) = len(layout.pair_block), layout.frame_shape
    blocks = list(layout.blocks)
    pb = np.asarray(layout.pair_block, dtype=np.int64)
    p = f.create_group("pairs")
    _alloc(p, "speckle", (m, fh, fw), np.dtype(layout.frame_dtype), chunks=(1, fh, fw) if m else None)
    _alloc(p, "object_index", (m,), np.int32, fill=np.asarray(layout.pair_object, dtype=np.int32))
    _write_strings(p, "diffuser", [blocks[b].diffuser for b in pb])
    _alloc(p, "distance_mm", (m,), np.float32,
           fill=np.array([blocks[b].distance_mm for b in pb], dtype=np.float32))
    _alloc(p, "exposure_us", (m,), np.float32, fill=np.nan)
    _alloc(p, "timestamp", (m,), np.float64, fill=np.nan)
    _alloc(p, "done", (m,), bool, fill=False)
    _write_strings(p, "role", [blocks[b].role for b in pb])
    _alloc(p, "repeat", (m,), np.int32, fill=np.asarray(layout.pair_repeat, dtype=np.int32))
    _alloc(p, "block", (m,), np.int32, fill=pb.astype(np.int32))
    _alloc(p, "saturated_fraction", (m,), np.float32, fill=np.nan)
    c = f.create_group("capture")
    _alloc(c, "frame_index", (m,), np.int64, fill=-1)
    _alloc(c, "device_timestamp", (m,), np.float64, fill=np.nan)


def _write_blocks(f: h5py.File, layout: RunLayout) -> None:
    blocks = list(layout.blocks)
    pb = np.asarray(layout.pair_block, dtype=np.int64)
    m, nb = len(pb), len(blocks)
    first = np.full(nb, -1, dtype=np.int64)
    counts = np.bincount(pb, minlength=nb) if m else np.zeros(nb, dtype=np.int64)
    for row in range(m - 1, -1, -1):
        first[pb[row]] = row
    b = f.create_group("blocks")
    _write_strings(b, "diffuser", [s.diffuser for s in blocks])
    _alloc(b, "distance_mm", (nb,), np.float32, fill=np.array([s.distance_mm for s in blocks], np.float32))
    _write_strings(b, "role", [s.role for s in blocks])
    _alloc(b, "first_row", (nb,), np.int32, fill=first.astype(np.int32))
    _alloc(b, "n_rows", (nb,), np.int32, fill=counts.astype(np.int32))
    _alloc(b, "exposure_us", (nb,), np.float32, fill=np.nan)
    _alloc(b, "saturated_fraction", (nb,), np.float32, fill=np.nan)
    _alloc(b, "done", (nb,), bool, fill=False)


def _write_dark(f: h5py.File, layout: RunLayout) -> None:
    fh, fw = layout.frame_shape
    d = f.create_group("dark")
    d.attrs["n_frames"] = int(layout.dark_frames)
    ndark = len(layout.blocks) if layout.dark_frames > 0 else 0
    _alloc(d, "frame", (ndark, fh, fw), np.float32, chunks=(1, fh, fw) if ndark else None)
    _alloc(d, "done", (ndark,), bool, fill=False)


def _write_stability(f: h5py.File, layout: RunLayout) -> None:
    fh, fw = layout.frame_shape
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


# the groups of a new file, in writing order; each writes its datasets in full (add one here to extend)
LAYOUT_WRITERS = (_write_root, _write_objects, _write_pairs, _write_blocks, _write_dark, _write_stability,
                  write_nexus)


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
    with h5py.File(tmp, "w", libver=("earliest", "v200")) as f:
        for write in LAYOUT_WRITERS:
            write(f, layout)
    fsync_file(tmp)
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
    fsync_dir(path.parent if str(path.parent) else Path("."))


def _let_readers_in(f: h5py.File) -> None:
    """Turns HDF5's exclusive lock on the open file into a shared one: readers get in (they take a
    shared lock), another writer still does not (it asks for an exclusive one). HDF5 takes its lock
    with flock() on open and only releases it on close; an flock of the same descriptor converts it."""
    import fcntl

    with contextlib.suppress(OSError, ValueError):  # HDF5_USE_FILE_LOCKING=FALSE: no lock to convert
        fcntl.flock(f.id.get_vfd_handle(), fcntl.LOCK_SH | fcntl.LOCK_NB)


class RunWriter:
    """Writes frames into a laid-out run file, touching only preallocated raw data.

    Not thread-safe: the engine's writer thread owns it.
    """

    def __init__(self, path: str | Path, sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S):
        from speckle_core.fileio import output_lock

        self.path = Path(path)
        # One writer at a time: RUN.h5.lock (flock), which names the writer; HDF5's own lock is made
        # shared once open, so readers get in ("Reading a run while it is written" above).
        self._lock = output_lock(self.path, "run file").acquire()
        try:
            # rdcc_nbytes=0: no chunk cache, each frame goes straight to the OS on write
            self._f = open_h5(self.path, "r+", rdcc_nbytes=0)
            _let_readers_in(self._f)
        except BaseException:
            self._lock.release()
            raise
        try:
            # before a byte is written: the data stays inside this file (no external storage, no
            # virtual datasets, no external links), every dataset written into has the writer's
            # dtype and shape, and its storage is allocated (issue #12, "Crafted files")
            check_run(self._f, self.path)
            check_resumable(self._f, self.path)
        except BaseException:
            self._f.close()
            self._lock.release()
            raise
        self._fd = self._f.id.get_vfd_handle()
        self._sync_interval_s = float(sync_interval_s)
        self._pending: list[tuple] = []
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
            for k, name in enumerate(PAIR_META, start=1):
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
        self._lock.release()

    def close(self) -> None:
        try:
            if self._f.id.valid:
                try:
                    self.sync()
                finally:
                    self._f.close()
        finally:
            self._lock.release()


def _runs(rows: list[int]) -> Iterator[tuple[int, int]]:
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

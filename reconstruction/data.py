"""Data loading: selects pairs from a run file (docs/design.md, "The run file") and prepares model tensors.

Decisions (the paper, "Data processing", says only "normalised between 0 and 1", "binary labels" and
"downsampled from 800x800 to 200x200 using bilinear interpolation"):

- **Input**: the frame is centre-cropped to a square (the smaller of H, W), downsampled bilinearly to
  N x N with antialiasing (``F.interpolate(mode="bilinear", antialias=True)``: plain bilinear at 4x
  would alias the speckle grain), then normalised per frame to [0, 1] by its own min and max, so the
  model does not depend on the exposure chosen for each block.
- **Label**: ``/objects/pattern`` (0/1) area-averaged to N x N (``mode="area"``), then thresholded at
  0.5, so labels stay binary as in the paper.
- **Selection**: only ``done`` rows. The role comes from ``/pairs/role`` when present, otherwise the
  largest distance of the run is "validation" and the others "train" (the paper: 0/20 mm train,
  40 mm validation). Held-out faces (``/objects/split == "holdout"``) never enter training.
- **Train/test split** of the training role: by face. A seeded ``test_fraction`` (default 10%) of the
  training faces is kept out as the test set, with all its pairs at the training distances. The
  validation set is the validation role on the seen (training-split) faces, as in the paper.
- **Cache**: the downsampled inputs (float16) and labels (uint8) of every done row are written once to
  ``.speckle-cache/`` beside the dataset (or under the output folder when that is read-only), keyed on
  the file's path, size, mtime and N; training reads them memory-mapped (``bench/bench_train.py``
  measures it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError
from speckle_core.fileio import check_free_space, describe_os_error, is_disk_full
from speckle_core.h5safety import read_checked
from speckle_core.runfile import open_run, read_roles, read_string_array
from speckle_core.runfile.selection import PairColumns, pair_mask

CACHE_VERSION = 1
CHUNK_ROWS = 16
CACHE_MARGIN_BYTES = 64 * 2**20  # left free beside the cache for checkpoints and logs


@dataclass
class PairIndex:
    """The done rows of a run: one entry per pair row that holds a frame."""

    path: Path
    rows: np.ndarray  # (K,) row in /pairs
    object_index: np.ndarray  # (K,)
    diffuser: np.ndarray  # (K,) str
    distance_mm: np.ndarray  # (K,) float
    role: np.ndarray  # (K,) "train" | "validation"
    face_split: np.ndarray  # (K,) "train" | "holdout" (of the pair's object)
    n_objects: int
    object_split: np.ndarray  # (N,) str
    frame_shape: tuple[int, int]
    object_name: np.ndarray | None = None  # (N,) str, from /objects/name when the file has it

    def select(self, roles=None, diffusers=None, distances_mm=None, faces=None, objects=None) -> np.ndarray:
        """Positions (into this index) of the rows matching every given filter (None: any; one value
        or several), by the run file's one rule, ``speckle_core.runfile.selection.pair_mask``."""
        columns = PairColumns(role=self.role, diffuser=self.diffuser, distance_mm=self.distance_mm,
                              split=self.face_split, object_index=self.object_index)
        return np.flatnonzero(pair_mask(columns, role=roles, diffuser=diffusers, distance_mm=distances_mm,
                                        split=faces, object_index=objects))


def read_index(path: str | Path) -> PairIndex:
    """Reads the pair table of a run (no frames); the file is checked by the run-file reader."""
    path = Path(path)
    with open_run(path) as f:
        p = f["pairs"]
        done = np.asarray(p["done"][()], dtype=bool)
        rows = np.flatnonzero(done)
        obj = np.asarray(p["object_index"][()], dtype=np.int64)
        diffuser = read_string_array(p["diffuser"])
        distance = np.asarray(p["distance_mm"][()], dtype=np.float64)
        role = read_roles(p)
        split = read_string_array(f["objects/split"])
        names = read_string_array(f["objects/name"]) if "objects/name" in f else None
        shape = tuple(p["speckle"].shape[1:3])
    return PairIndex(path=path, rows=rows, object_index=obj[rows], diffuser=diffuser[rows],
                     distance_mm=distance[rows], role=np.asarray(role)[rows].astype(str),
                     face_split=split[obj[rows]] if len(rows) else np.array([], dtype=str),
                     n_objects=len(split), object_split=split, frame_shape=shape,
                     object_name=names if names is not None and len(names) == len(split) else None)


def object_persons(index: PairIndex) -> np.ndarray:
    """The person key of every object (``speckle_core.person.person_of`` of its name; its index when
    the file has no names)."""
    from speckle_core.person import person_of

    if index.object_name is None:
        return np.array([f"#{i}" for i in range(index.n_objects)], dtype=object).astype(str)
    return np.array([person_of(n) for n in index.object_name], dtype=object).astype(str)


def training_faces(index: PairIndex) -> np.ndarray:
    """Objects of the training split whose person is not among the held-out faces (a run split by image
    could give one person to both sides: those faces are left out of training and the test set)."""
    persons = object_persons(index)
    held = set(persons[index.object_split == "holdout"].tolist())
    objs = np.unique(index.object_index[index.select(roles=["train"], faces=["train"])])
    return np.array([o for o in objs if persons[o] not in held], dtype=np.int64)


def split_test_objects(index: PairIndex, test_fraction: float, seed: int) -> list[int]:
    """The training faces kept out as the test (model-selection) set: whole persons, seeded.

    Persons are shuffled with ``default_rng(seed)`` and taken until ``test_fraction`` of the training
    faces is reached (at least one person when there are two or more; never every person), so no
    person has faces on both sides.
    """
    train_objs = training_faces(index)
    persons = object_persons(index)
    people = sorted(set(persons[train_objs].tolist()))
    if len(people) < 2 or test_fraction <= 0:
        return []
    target = max(1, round(test_fraction * len(train_objs)))
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for k in rng.permutation(len(people))[:len(people) - 1]:
        if len(chosen) >= target:
            break
        chosen.extend(int(o) for o in train_objs if persons[o] == people[k])
    return sorted(chosen)


def run_identity(path: str | Path) -> dict:
    """What a run's checkpoints were trained on: SHA-256 of the objects (patterns, names, splits) and of
    the protocol text. Two files with the same identity hold the same objects in the same order."""
    import h5py

    h_obj = hashlib.sha256()
    with h5py.File(path, "r") as f:
        pattern = f["objects/pattern"]
        h_obj.update(repr((pattern.shape, str(pattern.dtype))).encode())
        for i in range(0, pattern.shape[0], CHUNK_ROWS):
            h_obj.update(np.ascontiguousarray(read_checked(pattern, path, np.s_[i:i + CHUNK_ROWS])).tobytes())
        for key in ("objects/name", "objects/split"):
            if key in f:
                h_obj.update("\0".join(read_string_array(f[key]).tolist()).encode())
        protocol = f.attrs.get("protocol", "")
    if isinstance(protocol, bytes):
        protocol = protocol.decode("utf-8", "replace")
    return {"objects_sha256": h_obj.hexdigest(),
            "protocol_sha256": hashlib.sha256(str(protocol).encode()).hexdigest()}


# --- preprocessing ----------------------------------------------------------------------------

def preprocess_frames(frames: np.ndarray, image_size: int):
    """Raw frames (B, H, W) of any integer or float type → float32 tensor (B, N, N) in [0, 1]."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    if x.ndim == 2:
        x = x[None]
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[:, top:top + s, left:left + s]
    x = F.interpolate(x[:, None], size=(image_size, image_size), mode="bilinear", antialias=True,
                      align_corners=False)[:, 0]
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    return ((x - lo) / torch.clamp(hi - lo, min=1e-12)).clamp_(0, 1)


def preprocess_labels(patterns: np.ndarray, image_size: int) -> np.ndarray:
    """Binary objects (B, h, w) → uint8 (B, N, N) 0/1: area average, then threshold at 0.5."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(patterns, dtype=np.float32))[:, None]
    t = F.interpolate(t, size=(image_size, image_size), mode="area")[:, 0]
    return (t >= 0.5).numpy().astype(np.uint8)


# --- the cache --------------------------------------------------------------------------------

@dataclass
class Cache:
    """Prepared tensors of every done row (row order of ``index.rows``) and of every object."""

    index: PairIndex
    image_size: int
    inputs: np.ndarray  # (K, N, N) float16, memory-mapped
    labels: np.ndarray  # (N_obj, N, N) uint8
    folder: Path

    def batch(self, positions):
        """(x, y) float32 tensors (B, 1, N, N) for positions into ``index``."""
        import torch

        pos = np.asarray(positions, dtype=np.int64)
        order = np.argsort(pos, kind="stable")  # memory-mapped reads go faster in file order
        x = np.empty((len(pos), self.image_size, self.image_size), dtype=np.float16)
        x[order] = self.inputs[pos[order]]
        y = self.labels[self.index.object_index[pos]]
        # convert in numpy: torch's threaded cast costs more than it saves on batches this small
        return (torch.from_numpy(x.astype(np.float32))[:, None],
                torch.from_numpy(y.astype(np.float32))[:, None])


def _cache_key(path: Path, image_size: int) -> str:
    st = path.stat()
    ident = json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns, image_size, CACHE_VERSION])
    return hashlib.sha1(ident.encode()).hexdigest()[:12]


def _cache_folder(path: Path, image_size: int, fallback: Path | None) -> Path:
    name = f"{path.stem}-N{image_size}-{_cache_key(path, image_size)}"
    beside = path.resolve().parent / ".speckle-cache"
    if os.access(path.resolve().parent, os.W_OK) or fallback is None:
        return beside / name
    return Path(fallback) / ".speckle-cache" / name


def cache_bytes(index: PairIndex, image_size: int) -> int:
    """Bytes the cache of ``index`` at N = ``image_size`` takes on disk."""
    n2 = image_size * image_size
    return len(index.rows) * n2 * 2 + index.n_objects * n2 + len(index.rows) * 8 + 4096


def _allocate(path: Path, shape: tuple, dtype) -> np.ndarray:
    """An .npy file of ``shape`` with its blocks allocated for real (not sparse), memory-mapped: a full
    disk then fails here with ENOSPC, never later as SIGBUS through the mapping."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    arr.flush()
    del arr
    size = path.stat().st_size
    data = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, size)
        except (AttributeError, OSError) as e:  # no fallocate here (macOS, some file systems): write zeros
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise
            fh.seek(size - data)
            chunk = bytes(2**20)
            for start in range(0, data, len(chunk)):
                fh.write(chunk[:min(len(chunk), data - start)])
    return np.load(path, mmap_mode="r+")


def _check_finite(frames: np.ndarray, index: PairIndex, rows: np.ndarray) -> None:
    if np.issubdtype(frames.dtype, np.floating):
        bad = ~np.isfinite(frames.reshape(len(frames), -1)).all(axis=1)
        if bad.any():
            raise UserError(f"{index.path}: /pairs/speckle row {int(rows[np.argmax(bad)])}: frame holds NaN "
                            "or infinite values")


def _fill_inputs(index: PairIndex, image_size: int, inputs: np.ndarray, f, progress) -> None:
    speckle = f["pairs/speckle"]
    k = len(index.rows)
    pos = 0
    while pos < k:  # read contiguous slices of /pairs, keep their done rows
        first = index.rows[pos]
        stop = min(first + CHUNK_ROWS * 4, speckle.shape[0])
        take = index.rows[pos:][index.rows[pos:] < stop][:CHUNK_ROWS]
        frames = read_checked(speckle, index.path, np.s_[first:take[-1] + 1])[take - first]
        _check_finite(frames, index, take)
        inputs[pos:pos + len(take)] = preprocess_frames(frames, image_size).numpy().astype(np.float16)
        pos += len(take)
        if progress:
            progress(pos, k)


def _build_cache(index: PairIndex, image_size: int, folder: Path, progress=None) -> None:
    import h5py

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        check_free_space(tmp, cache_bytes(index, image_size), "training cache", CACHE_MARGIN_BYTES)
        inputs = _allocate(tmp / "inputs.npy", (len(index.rows), image_size, image_size), np.float16)
        with h5py.File(index.path, "r") as f:
            _fill_inputs(index, image_size, inputs, f, progress)
            labels = np.zeros((index.n_objects, image_size, image_size), dtype=np.uint8)
            pat = f["objects/pattern"]
            for i in range(0, index.n_objects, CHUNK_ROWS):
                block = read_checked(pat, index.path, np.s_[i:i + CHUNK_ROWS])
                labels[i:i + CHUNK_ROWS] = preprocess_labels(block, image_size)
        inputs.flush()
        del inputs
        np.save(tmp / "labels.npy", labels)
        np.save(tmp / "rows.npy", index.rows)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave half a cache behind
        if is_disk_full(e):
            raise UserError(f"{folder}: disk full while writing the training cache ({describe_os_error(e)}); "
                            "free some space or use a smaller --image-size") from None
        raise
    try:
        tmp.rename(folder)  # atomic: a cache folder is complete or absent
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)


def prepare_cache(path: str | Path, image_size: int, fallback_dir: Path | None = None,
                  build: bool = True, progress=None) -> Cache:
    """The prepared cache of a run at N = ``image_size``, built on first use."""
    from reconstruction.train_config import MAX_IMAGE_SIZE

    if not 16 <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(f"--image-size: must be 16..{MAX_IMAGE_SIZE} (got {image_size})")
    index = read_index(path)
    if len(index.rows) == 0:
        raise UserError(f"{index.path}: no finished pairs (every /pairs/done is False)")
    folder = _cache_folder(index.path, image_size, fallback_dir)
    if not (folder / "rows.npy").is_file():
        if not build:
            raise RuntimeError(f"cache {folder} is not built")
        folder.parent.mkdir(parents=True, exist_ok=True)
        _build_cache(index, image_size, folder, progress)
    rows = np.load(folder / "rows.npy")
    if not np.array_equal(rows, index.rows):  # the file changed under the same mtime: rebuild
        shutil.rmtree(folder, ignore_errors=True)
        return prepare_cache(path, image_size, fallback_dir, build, progress)
    inputs = np.load(folder / "inputs.npy", mmap_mode="r")
    labels = np.load(folder / "labels.npy")
    return Cache(index=index, image_size=image_size, inputs=inputs, labels=labels, folder=folder)


"""The run file's format: one HDF5 file per run (docs/design.md, "The run file"), its names and layout.

This module is the one place the format is written down; :mod:`.writer` builds files that follow it and
:mod:`.reader` refuses files that do not.

Contract (plain h5py reads it; string datasets are variable-length UTF-8, read with ``.asstr()``):

- root attributes ``format`` (:data:`FORMAT`, below), ``protocol`` (TOML text), ``rig`` (TOML text),
  ``created`` (ISO 8601 UTC), ``software`` (JSON of package versions);
- ``/objects/pattern`` (N, h, w) uint8 0/1, ``/objects/name`` (N,) str, ``/objects/split`` (N,) str;
- ``/pairs/speckle`` (M, H, W) uint8|uint16, ``object_index`` (M,) int32, ``diffuser`` (M,) str,
  ``distance_mm`` (M,) float32, ``exposure_us`` (M,) float32, ``timestamp`` (M,) float64,
  ``done`` (M,) bool — one row per planned capture, in plan order.

Extras (allowed by the contract; documented here):

- ``/objects/skipped`` (K,) str: faces the source could not read ("name: reason"); the root
  attribute ``skipped_faces`` holds K.
- root attribute ``camera_settings`` (JSON): the camera's output settings as its driver set and read
  them back when the run was laid out (colour mode, gamma, gains, white balance, the level where the
  red channel clips); absent in files written before it, or from a camera that reports none.
- root attributes ``rig_kind`` ("simulated", "real", or "mixed": a real SLM and camera with a
  simulated stage or changer) and ``simulated_devices`` (a JSON list, e.g. ``["stage", "changer"]``).
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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

FORMAT = "speckle-lab/1"  # the root attribute ``format``; the only place the string is written
CREATING_SUFFIX = ".creating"
ROOT_ATTRS = ("format", "protocol", "rig", "created", "software")
OBJECT_FIELDS = ("pattern", "name", "split")
PAIR_FIELDS = ("speckle", "object_index", "diffuser", "distance_mm", "exposure_us", "timestamp", "done")
# the writer's extras that `acquire --resume` needs (a file made by another tool has only the contract)
RESUME_NEEDS = ("pairs/block", "pairs/repeat", "pairs/role", "pairs/saturated_fraction", "blocks/diffuser",
                "blocks/distance_mm", "blocks/exposure_us", "blocks/done", "dark/frame", "dark/done",
                "stability/pattern", "stability/frame", "stability/block", "stability/before_row",
                "stability/done", "capture/frame_index", "capture/device_timestamp")
PAIR_META = ("pairs/exposure_us", "pairs/timestamp", "pairs/saturated_fraction", "capture/frame_index",
             "capture/device_timestamp")  # written per pair at each sync, before its ``done`` flag
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
    rig_kind: str = ""  # "simulated" | "real" | "mixed" (root attribute rig_kind; "" = not written)
    simulated_devices: Sequence[str] = ()  # which devices were simulated (root attribute, JSON list)
    camera_settings: dict = field(default_factory=dict)  # as read back from the camera (root attribute, JSON)

    def validate(self) -> None:
        """Raises ValueError when the layout is inconsistent (a programming error, not the user's)."""
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

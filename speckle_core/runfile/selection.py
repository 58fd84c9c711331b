"""Reading a run from Python: select pairs by role, diffuser and distance, get numpy arrays.

The reader of the run file for people (notebooks, scripts); commands read it through the same
:func:`~speckle_core.runfile.reader.open_run`, so a broken file is refused with the same one-line
:class:`~speckle_core.errors.UserError`.

>>> with RunData.open("run.h5") as run:                                  # doctest: +SKIP
...     sel = run.select(role="validation", diffuser="600", distance_mm=40)
...     frames, objects = sel.frames(), sel.objects()                    # (K, H, W), (K, h, w)

The filtering itself, :func:`pair_mask` over :class:`PairColumns`, is the one rule for picking pairs:
``RunData.select`` here and training's ``reconstruction.data.PairIndex.select`` both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from speckle_core.fileio import check_memory
from speckle_core.runfile.reader import open_run, read_roles, read_string_array

DISTANCE_MATCH_MM = 1e-3  # a wanted distance matches a row's within 1 µm (well below any stage step)


def _as_list(value) -> list | None:
    """None (no filter), a single value, or any iterable of values, as a list."""
    if value is None:
        return None
    if isinstance(value, str | int | float | np.number):
        return [value]
    return list(value)


@dataclass(frozen=True)
class PairColumns:
    """Per-row columns of some ``/pairs`` rows (equal lengths), as :func:`pair_mask` filters them."""

    role: np.ndarray  # str: "train" | "validation"
    diffuser: np.ndarray  # str: the diffuser's name
    distance_mm: np.ndarray  # float
    split: np.ndarray  # str: the split ("train" | "holdout") of the pair's object
    object_index: np.ndarray  # int: row in /objects


def pair_mask(columns: PairColumns, *, role=None, diffuser=None, distance_mm=None, split=None,
              object_index=None) -> np.ndarray:
    """Boolean mask of the rows matching every filter given; each filter is None (any), one value
    or an iterable of values. Names compare as strings (diffuser 600 matches "600"); distances
    match to :data:`DISTANCE_MATCH_MM`."""
    keep = np.ones(len(columns.role), dtype=bool)
    for column, wanted in ((columns.role, role), (columns.diffuser, diffuser), (columns.split, split)):
        if (values := _as_list(wanted)) is not None:
            keep &= np.isin(column, [str(v) for v in values])
    if (zs := _as_list(distance_mm)) is not None:
        z = np.asarray(zs, dtype=np.float64)
        keep &= (np.abs(columns.distance_mm[:, None] - z[None]) < DISTANCE_MATCH_MM).any(axis=1)
    if (objects := _as_list(object_index)) is not None:
        keep &= np.isin(columns.object_index, np.asarray(objects, dtype=np.int64))
    return keep


@dataclass
class Selection:
    """Some rows of ``/pairs``, in file order. Frames are read only when asked for."""

    run: RunData
    rows: np.ndarray  # (K,) rows of /pairs, increasing
    object_index: np.ndarray  # (K,)
    diffuser: np.ndarray  # (K,) str
    distance_mm: np.ndarray  # (K,) float
    role: np.ndarray  # (K,) str

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def object_names(self) -> np.ndarray:
        return self.run.object_names[self.object_index]

    def frames(self, limit: int | None = None) -> np.ndarray:
        """The speckle frames (K, H, W), as stored (uint8 or uint16); refuses what memory cannot hold."""
        rows = self.rows if limit is None else self.rows[: max(0, int(limit))]
        ds = self.run.file["pairs/speckle"]
        check_memory(len(rows) * int(np.prod(ds.shape[1:])) * ds.dtype.itemsize, "these frames",
                     self.run.path)
        out = np.empty((len(rows), *ds.shape[1:]), dtype=ds.dtype)
        for i, row in enumerate(rows):  # one row at a time: h5py's fancy indexing is slow and strict
            ds.read_direct(out, np.s_[int(row)], np.s_[i])
        return out

    def objects(self) -> np.ndarray:
        """The binary object (0/1 uint8) shown for each selected pair, (K, h, w)."""
        return self.run.patterns[self.object_index]


class RunData:
    """An open run file (read-only). Use as a context manager, or call :meth:`close`."""

    def __init__(self, file: h5py.File, path: Path):
        self.file, self.path = file, path
        p = file["pairs"]
        self.done = np.asarray(p["done"][()], dtype=bool)
        self.object_index_all = np.asarray(p["object_index"][()], dtype=np.int64)
        self.diffuser_all = read_string_array(p["diffuser"])
        self.distance_mm_all = np.asarray(p["distance_mm"][()], dtype=np.float64)
        self.role_all = read_roles(p)
        self.object_names = read_string_array(file["objects/name"])
        self.object_split = read_string_array(file["objects/split"])
        self._patterns: np.ndarray | None = None

    @classmethod
    def open(cls, path: str | Path) -> RunData:
        """Opens and checks a run file; a one-line UserError naming the file if it is not one."""
        p = Path(path)
        return cls(open_run(p), p)

    # -- what the run holds ----------------------------------------------------------------------
    @property
    def protocol_text(self) -> str:
        return str(self.file.attrs["protocol"])

    @property
    def rig_text(self) -> str:
        return str(self.file.attrs["rig"])

    @property
    def patterns(self) -> np.ndarray:
        """Every object (N, h, w) uint8 0/1, read once."""
        if self._patterns is None:
            self._patterns = np.asarray(self.file["objects/pattern"][()], dtype=np.uint8)
        return self._patterns

    @property
    def diffusers(self) -> list[str]:
        return sorted(set(self.diffuser_all.tolist()))

    @property
    def distances_mm(self) -> list[float]:
        return sorted(set(float(d) for d in self.distance_mm_all))

    @property
    def pairs_done(self) -> int:
        return int(self.done.sum())

    def select(self, *, role: str | Iterable[str] | None = None, diffuser: str | Iterable[str] | None = None,
               distance_mm: float | Iterable[float] | None = None, split: str | Iterable[str] | None = None,
               done_only: bool = True) -> Selection:
        """The rows matching every filter given (None: any). ``split`` is the object's split
        ("train" or "holdout"); ``distance_mm`` matches to 1 µm. Only captured rows by default."""
        objects = self.object_index_all
        columns = PairColumns(role=self.role_all, diffuser=self.diffuser_all,
                              distance_mm=self.distance_mm_all, split=self.object_split[objects],
                              object_index=objects)
        keep = pair_mask(columns, role=role, diffuser=diffuser, distance_mm=distance_mm, split=split)
        if done_only:
            keep &= self.done
        rows = np.flatnonzero(keep)
        return Selection(self, rows, self.object_index_all[rows], self.diffuser_all[rows],
                         self.distance_mm_all[rows], self.role_all[rows])

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> RunData:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

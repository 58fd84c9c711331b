"""The run file's reader: open a file and check it against the format, or refuse it in one line.

Every command that reads a run (``inspect``, ``train``, ``evaluate``, ``predict RUN.h5:ROWS``,
``acquire --resume``, the demo) opens it with :func:`open_run`, so a broken file is refused with
the same one-line :class:`~speckle_core.errors.UserError` by all of them.

To add a check, write ``def _check_x(f, p) -> None`` raising ``UserError(f"{p}: ...")`` and add it
to :data:`RUN_CHECKS` (run in order; a later check may rely on the earlier ones having passed).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from speckle_core.errors import UserError
from speckle_core.h5safety import attr_text
from speckle_core.run_contract import check_run_contract, check_writable_contract
from speckle_core.runfile.format import FORMAT, OBJECT_FIELDS, PAIR_FIELDS, RESUME_NEEDS, ROOT_ATTRS
from speckle_core.text import one_line


def open_run(path: str | Path, mode: str = "r") -> h5py.File:
    """Opens a speckle-lab run file and checks it (:func:`check_run`); a one-line UserError if not."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such run file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a run file (.h5)")
    if not p.is_file():
        raise UserError(f"{p}: not a regular file (a FIFO, device or socket), expected a run file")
    # A run being written can be read: its writer holds only a shared lock ("Reading a run while it
    # is written" in speckle_core/runfile/writer.py).
    f = open_h5(p, mode)
    try:
        check_run(f, p)
    except BaseException:
        f.close()
        raise
    return f


def open_h5(p: Path, mode: str = "r", **kwargs) -> h5py.File:
    """``h5py.File``, with a file held by another program (HDF5's lock: a notebook, a viewer, a
    second writer) or an unreadable one as a one-line UserError naming it."""
    try:
        return h5py.File(p, mode, **kwargs)
    except OSError as e:
        text = str(e).lower()
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock" in text or "lock file" in text:
            raise UserError(f"{p}: open in another program (HDF5 file lock: a notebook, a viewer or "
                            "another speckle-lab run); close it there and try again") from None
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise UserError(f"{p}: cannot open the run file {'for writing ' if mode != 'r' else ''}"
                            f"({os.strerror(e.errno)})") from None
        raise UserError(f"{p}: not a readable HDF5 file ({one_line(e, 160)})") from None


# -- the checks, in order ----------------------------------------------------------------------------

def _check_format(f: h5py.File, p: Path) -> None:
    if "format" not in f.attrs:
        raise UserError(f"{p}: not a speckle-lab dataset (no format attribute, expected {FORMAT!r})")
    fmt = attr_text(f, "format", p)  # one UTF-8 string: an array or bad bytes are refused here
    if fmt != FORMAT:
        raise UserError(f"{p}: not a speckle-lab dataset (format attribute {fmt!r}, expected {FORMAT!r})")
    for a in ROOT_ATTRS:
        if a not in f.attrs:
            raise UserError(f"{p}: root attribute {a!r} is missing")


def _check_names(f: h5py.File, p: Path) -> None:
    for group, names in (("objects", OBJECT_FIELDS), ("pairs", PAIR_FIELDS)):
        for name in names:
            if not isinstance(f.get(f"{group}/{name}"), h5py.Dataset):
                raise UserError(f"{p}: /{group}/{name} is missing")


def _check_shapes(f: h5py.File, p: Path) -> None:
    if f["objects/pattern"].ndim != 3:
        raise UserError(f"{p}: /objects/pattern must be (N, h, w), got {f['objects/pattern'].shape}")
    if f["pairs/speckle"].ndim != 3:
        raise UserError(f"{p}: /pairs/speckle must be (M, H, W), got {f['pairs/speckle'].shape}")
    n, m = f["objects/pattern"].shape[0], f["pairs/speckle"].shape[0]
    for name in OBJECT_FIELDS[1:]:
        if f[f"objects/{name}"].shape != (n,):
            raise UserError(f"{p}: /objects/{name} has shape {f[f'objects/{name}'].shape}, expected ({n},)")
    for name in PAIR_FIELDS[1:]:
        if f[f"pairs/{name}"].shape != (m,):
            raise UserError(f"{p}: /pairs/{name} has shape {f[f'pairs/{name}'].shape}, expected ({m},)")


def _check_references(f: h5py.File, p: Path) -> None:
    n, m = f["objects/pattern"].shape[0], f["pairs/speckle"].shape[0]
    obj = f["pairs/object_index"][...]
    if m and (obj.min() < 0 or obj.max() >= n):
        raise UserError(f"{p}: /pairs/object_index points outside /objects (0..{n - 1})")


RunCheck = Callable[[h5py.File, Path], None]
# check_run_contract (speckle_core.run_contract) comes before any data is read: the file must keep
# its data inside itself (no external links or storage, no virtual datasets), and every dataset
# must have the format's rank, type and storage.
RUN_CHECKS: list[RunCheck] = [_check_format, check_run_contract, _check_names, _check_shapes,
                              _check_references]


def check_run(f: h5py.File, p: Path) -> None:
    """Checks the format's names, shapes and lengths (docs/design.md, "The run file").

    Raises a one-line UserError naming ``p`` and what is wrong; a file too damaged to read is
    "damaged or truncated run file".
    """
    _run_checks(f, p, RUN_CHECKS)


def check_resumable(f: h5py.File, p: Path) -> None:
    """The writer's extras a resume needs; one-line UserError if a dataset is missing or mis-sized,
    of another type than the writer writes, or not preallocated."""
    _run_checks(f, p, [_check_resumable])


def _run_checks(f: h5py.File, p: Path, checks: list[RunCheck]) -> None:
    """Runs ``checks`` in order; a file too damaged to read is one line, not a traceback."""
    try:
        for check in checks:
            check(f, p)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"{p}: damaged or truncated run file ({one_line(e, 160)})") from None


def _check_resumable(f: h5py.File, p: Path) -> None:
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
    check_writable_contract(f, p)


# -- reading values ----------------------------------------------------------------------------------

def dataset(f: h5py.File | h5py.Group, name: str) -> h5py.Dataset:
    """``f[name]``, which must be a dataset (a KeyError when it is missing, a TypeError when it is a
    group); typed, so callers index it without a cast."""
    ds = f[name]
    if not isinstance(ds, h5py.Dataset):
        raise TypeError(f"/{name.lstrip('/')} is a {type(ds).__name__}, not a dataset")
    return ds


def read_array(f: h5py.File | h5py.Group, name: str) -> np.ndarray:
    """The whole dataset ``name`` as a numpy array."""
    return np.asarray(dataset(f, name)[()])


def read_strings(ds: h5py.Dataset) -> list[str]:
    """A string dataset as a list of str (variable- or fixed-length)."""
    if ds.shape == (0,):
        return []
    if h5py.check_string_dtype(ds.dtype) is not None:
        return list(ds.asstr()[...])
    return [str(x) for x in ds[...]]


def read_string_array(ds: h5py.Dataset) -> np.ndarray:
    """A string dataset as a numpy array of str (for masks and ``np.isin``)."""
    return np.asarray(read_strings(ds), dtype=str)


def read_roles(pairs: h5py.Group) -> np.ndarray:
    """Each row's role: ``/pairs/role`` when the file has it; otherwise (a file from another tool)
    the largest distance of the run is "validation" and the others "train" (the paper: 0/20 mm
    train, 40 mm validation)."""
    if "role" in pairs:
        return read_string_array(pairs["role"])
    distance = np.asarray(pairs["distance_mm"][()], dtype=np.float64)
    uniq = np.unique(distance)
    if len(uniq) < 2:
        return np.full(len(distance), "train")
    return np.where(np.isclose(distance, uniq.max()), "validation", "train")

"""What an HDF5 file may hold before speckle-lab reads or writes it (issue #12, "Crafted files").

HDF5 lets a dataset keep its bytes in *other* files: external storage (``H5Pset_external``: raw
data in any file the user can write, so ``acquire --resume`` would write frames there), virtual
datasets (data mapped from other files) and external links (a name resolved in another file). A
run file made by speckle-lab has none of these, so a file that has any is refused before any data
is read or written, with one line naming the file and the object:

- :func:`check_contained`: walks every link (bounded: :data:`MAX_LINKS`); refuses external links,
  soft links that do not resolve inside the file, virtual datasets, external storage, layouts other
  than compact/contiguous/chunked, and filters other than deflate, shuffle, fletcher32 and lzf (an
  unknown filter ID would make HDF5 load a plugin named by the environment);
- :func:`attr_text`, :func:`check_dataset` and :func:`read_checked` help the run-file contract:
  a scalar UTF-8 string attribute, a dataset's dtype kind / rank / filters, and a read whose
  failure (bit rot in a compressed chunk) is one line naming the dataset.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5z

from speckle_core.errors import UserError
from speckle_core.fileio import descriptors_on
from speckle_core.text import one_line

MAX_LINKS = 10_000  # a run file has ~50 links; a crafted one with millions is refused, not walked
LZF_FILTER = 32000  # h5py's own compression filter, registered by h5py itself
ALLOWED_FILTERS = {h5z.FILTER_DEFLATE, h5z.FILTER_SHUFFLE, h5z.FILTER_FLETCHER32, LZF_FILTER}
ALLOWED_LAYOUTS = {h5d.COMPACT, h5d.CONTIGUOUS, h5d.CHUNKED}


def dataset_storage_problem(ds: h5py.Dataset) -> str | None:
    """Why a dataset's storage is not self-contained (or is unusual enough to refuse), or None."""
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        return "is a virtual dataset (its data comes from other files)"
    if layout not in ALLOWED_LAYOUTS:
        return f"has an unknown storage layout ({layout})"
    if dcpl.get_external_count() > 0:
        name = dcpl.get_external(0)[0]
        name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        return f"keeps its data in another file ({name!r}: HDF5 external storage)"
    for i in range(dcpl.get_nfilters()):
        code = dcpl.get_filter(i)[0]
        if code not in ALLOWED_FILTERS:
            return f"uses an unsupported HDF5 filter (id {code})"
    return None


def check_contained(f: h5py.File, p: str | Path) -> None:
    """Refuses a file that reaches outside itself (external links, soft links that leave the file or
    dangle, virtual datasets, external storage) or holds an unsupported filter or layout."""
    links: list[str] = []

    def visit(name: str):
        links.append(name)
        return True if len(links) > MAX_LINKS else None  # a non-None value stops the walk

    try:
        f.visit_links(visit)
        if len(links) > MAX_LINKS:
            raise UserError(f"{p}: holds more than {MAX_LINKS} HDF5 objects: not a speckle-lab run file")
        for name in links:
            _check_link(f, p, name)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"{p}: damaged or truncated run file ({one_line(e, 160)})") from None


def _check_link(f: h5py.File, p, name: str) -> None:
    link = f.get(name, getlink=True)
    if isinstance(link, h5py.ExternalLink):
        raise UserError(f"{p}: /{name} is an external link to {link.filename}:{link.path}; "
                        "a run file must not reach into other files")
    if isinstance(link, h5py.SoftLink):
        # external links are refused everywhere, so a soft link can only leave the file by dangling
        if f.get(link.path) is None:
            raise UserError(f"{p}: /{name} is a soft link to {link.path}, which is not in the file")
        return
    obj = f.get(name)
    if isinstance(obj, h5py.Dataset):
        problem = dataset_storage_problem(obj)
        if problem:
            raise UserError(f"{p}: /{name} {problem}; refused")


def attr_text(f: h5py.File | h5py.Group, name: str, p: str | Path) -> str:
    """A root (or group) attribute that must be one UTF-8 string; one-line UserError otherwise."""
    try:
        v = f.attrs[name]
    except KeyError:
        raise UserError(f"{p}: root attribute {name!r} is missing") from None
    except (OSError, ValueError, TypeError, RuntimeError) as e:
        raise UserError(f"{p}: root attribute {name!r} is unreadable ({one_line(e, 160)})") from None
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "SUO":
        v = v[()]
    if isinstance(v, bytes):
        try:
            v = v.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{p}: root attribute {name!r} is not UTF-8 text") from None
    if not isinstance(v, str):
        what = f"an array {getattr(v, 'shape', '')}" if isinstance(v, np.ndarray) else type(v).__name__
        raise UserError(f"{p}: root attribute {name!r} must be one string, not {what}")
    try:
        v.encode("utf-8")  # h5py decodes bad bytes to lone surrogates: refuse them here
    except UnicodeEncodeError:
        raise UserError(f"{p}: root attribute {name!r} is not UTF-8 text") from None
    return v


def _kind_ok(ds: h5py.Dataset, kinds: str) -> bool:
    if "T" in kinds and h5py.check_string_dtype(ds.dtype) is not None:
        return True
    if "?" in kinds and ds.dtype == np.bool_:
        return True
    return ds.dtype.kind in kinds.replace("T", "").replace("?", "")


def check_dataset(f: h5py.File, p, name: str, *, kinds: str, ndim: int,
                  dtypes: tuple | None = None, no_filters: bool = False) -> h5py.Dataset:
    """The dataset ``name``: present, of rank ``ndim``, of a dtype kind in ``kinds`` (numpy kinds;
    ``T`` a string dataset, ``?`` bool) or exactly one of ``dtypes``; ``no_filters``: stored raw."""
    ds = f.get(name)
    if not isinstance(ds, h5py.Dataset):
        raise UserError(f"{p}: /{name} is missing")
    if ds.ndim != ndim:
        raise UserError(f"{p}: /{name} has shape {ds.shape}, expected {ndim} dimension(s)")
    if dtypes is not None:
        if ds.dtype not in [np.dtype(d) for d in dtypes]:
            want = " or ".join(str(np.dtype(d)) for d in dtypes)
            raise UserError(f"{p}: /{name} has type {ds.dtype}, expected {want}")
    elif not _kind_ok(ds, kinds):
        raise UserError(f"{p}: /{name} has type {ds.dtype}, which does not fit this dataset")
    if no_filters and ds.id.get_create_plist().get_nfilters() > 0:
        raise UserError(f"{p}: /{name} is compressed or filtered; speckle-lab writes it raw")
    return ds


def read_checked(ds: h5py.Dataset, p, sel: Any = Ellipsis) -> np.ndarray:
    """``ds[sel]``, with a failure to read (bit rot in a compressed chunk, a truncated file) as one
    line naming the file and the dataset."""
    try:
        return ds[sel]
    except (OSError, ValueError, RuntimeError, TypeError) as e:
        raise UserError(f"{p}: {ds.name} is damaged and cannot be read ({one_line(e, 160)})") from None


# -- HDF5 meeting a full disk -------------------------------------------------------------------------

def mentions_enospc(e: BaseException | str) -> bool:
    """HDF5 errors carry errno 28 in their text (h5py raises RuntimeError at close, not OSError)."""
    text = str(e)
    return "errno = 28" in text or "No space left on device" in text


def _fds_open_on(path: Path) -> list[int]:
    """This process's descriptors open on ``path`` (Linux /proc; elsewhere none are found)."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    return descriptors_on(target)


def _neutralise(path: Path) -> None:
    """Points every descriptor HDF5 still holds on ``path`` at /dev/null, so that when h5py frees
    its ids (now, or at exit) HDF5's last flush succeeds instead of failing on a full disk again —
    which is where it crashed with SIGSEGV or SIGBUS after a failed layout."""
    fds = _fds_open_on(path)
    if not fds:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


_hdf5_unusable = False


def hdf5_unusable() -> bool:
    """True once HDF5 failed to close a file on a full disk: its library state cannot be cleaned up
    any more (closing the ids left open, or HDF5's own exit handler, crashes with SIGSEGV), so the
    process must end without running them (``speckle_lab.cli.main`` then leaves with ``os._exit``)."""
    return _hdf5_unusable


@contextlib.contextmanager
def contain_hdf5_write_failure(path: str | Path):
    """Around writing a new HDF5 file at ``path`` (a temporary one): if it fails (a full disk), the
    half-written file is removed, HDF5 is kept from crashing later, and h5py's own tracebacks (its
    id deallocators print them) are kept off stderr; the exception propagates. Output that has
    nothing to do with a full disk still reaches stderr."""
    p = Path(path)
    old_hook, said = sys.unraisablehook, io.StringIO()

    def hook(unraisable) -> None:
        if not mentions_enospc(unraisable.exc_value):
            old_hook(unraisable)

    sys.unraisablehook = hook
    try:
        with contextlib.redirect_stderr(said):
            try:
                yield
            except BaseException as e:
                global _hdf5_unusable
                _neutralise(p)
                gc.collect()  # h5py frees the failed file's ids now, while stderr is still captured
                with contextlib.suppress(OSError):
                    p.unlink()
                if mentions_enospc(e) or getattr(e, "errno", None) == 28:
                    _hdf5_unusable = bool(h5py.h5f.get_obj_ids(h5py.h5f.OBJ_ALL))
                raise
    finally:
        sys.unraisablehook = old_hook
        text = said.getvalue()
        if text and not mentions_enospc(text):
            sys.stderr.write(text)

"""Crafted run files (issue #12): each case starts from a good run file and changes one thing a
hostile or broken file could hold — storage outside the file, links leaving it, the wrong rank or
type, bit rot, non-UTF-8 text, array-valued attributes. Shared by tests/test_safety_runfiles.py and
scripts/reliability_report.py.

``CASES`` maps a case name to ``(craft(path, victim), commands)``: ``craft`` changes the run file at
``path`` in place (``victim`` is a file outside the run that must never be read or written);
``commands`` says where the case must be refused: "read" (every reader: inspect, train,
evaluate, predict rows), "resume" (acquire --resume: the writer's stricter contract), or both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from speckle_core.runfile import FORMAT

BOTH = ("read", "resume")
RESUME = ("resume",)


def _recreate(f: h5py.File, name: str, **kwargs) -> None:
    """Replaces dataset ``name`` by one made with ``kwargs`` (h5py.Group.create_dataset)."""
    old = f[name]
    shape, dtype = old.shape, old.dtype
    del f[name]
    kwargs.setdefault("shape", shape)
    kwargs.setdefault("dtype", dtype)
    f.create_dataset(name, **kwargs)


def external_speckle(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        m, h, w = f["pairs/speckle"].shape
        _recreate(f, "pairs/speckle", external=[(str(victim), 0, m * h * w)])


def external_pattern(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        n, h, w = f["objects/pattern"].shape
        _recreate(f, "objects/pattern", external=[(str(victim), 0, n * h * w)])


def virtual_speckle(path: Path, victim: Path) -> None:
    other = victim.with_suffix(".source.h5")
    with h5py.File(path, "r") as f:
        shape, dtype = f["pairs/speckle"].shape, f["pairs/speckle"].dtype
    with h5py.File(other, "w") as g:
        g.create_dataset("frames", shape=shape, dtype=dtype)
    with h5py.File(path, "r+") as f:
        layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
        layout[...] = h5py.VirtualSource(str(other), "frames", shape=shape)
        del f["pairs/speckle"]
        f.create_virtual_dataset("pairs/speckle", layout)


def external_link_done(path: Path, victim: Path) -> None:
    other = victim.with_suffix(".link.h5")
    with h5py.File(path, "r") as f:
        done = f["pairs/done"][...]
    with h5py.File(other, "w") as g:
        g["done"] = done
    with h5py.File(path, "r+") as f:
        del f["pairs/done"]
        f["pairs/done"] = h5py.ExternalLink(str(other), "/done")


def external_link_extra(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["notes"] = h5py.ExternalLink(str(victim), "/anything")


def dangling_soft_link(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["pairs/extra"] = h5py.SoftLink("/nowhere/at/all")


def compressed_speckle(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        data = f["pairs/speckle"][...]
        del f["pairs/speckle"]
        f.create_dataset("pairs/speckle", data=data, chunks=(1, *data.shape[1:]), compression="gzip")


def float_speckle(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        _recreate(f, "pairs/speckle", dtype=np.float32)


def flat_speckle(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        m = f["pairs/speckle"].shape[0]
        _recreate(f, "pairs/speckle", shape=(m, 7), dtype=np.uint8)


def string_done(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        m = f["pairs/done"].shape[0]
        del f["pairs/done"]
        f.create_dataset("pairs/done", data=np.array(["yes"] * m, dtype=object), dtype=h5py.string_dtype())


def float_object_index(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        data = f["pairs/object_index"][...].astype(np.float64) + 0.5
        del f["pairs/object_index"]
        f["pairs/object_index"] = data


def _bad_utf8(path: Path, name: str) -> None:
    with h5py.File(path, "r+") as f:
        n = f[name].shape[0]
        del f[name]
        f.create_dataset(name, data=np.array([b"\xff\xfe\xfd"] * n, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))


def non_utf8_diffuser(path: Path, victim: Path) -> None:
    _bad_utf8(path, "pairs/diffuser")


def non_utf8_names(path: Path, victim: Path) -> None:
    _bad_utf8(path, "objects/name")


def non_utf8_block_diffuser(path: Path, victim: Path) -> None:
    _bad_utf8(path, "blocks/diffuser")


def array_format(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["format"] = np.array([FORMAT, FORMAT], dtype=h5py.string_dtype())


def non_utf8_format(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs.create("format", data=b"speckle-lab/\xff", dtype=h5py.string_dtype("utf-8"))


def non_utf8_protocol(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs.create("protocol", data=b"name = '\xff'", dtype=h5py.string_dtype("utf-8"))


def numeric_rig(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["rig"] = np.arange(3)


def array_dark_frames(path: Path, victim: Path) -> None:
    with h5py.File(path, "r+") as f:
        f["dark"].attrs["n_frames"] = np.array([2, 2])


def bit_rot_pattern(path: Path, victim: Path) -> None:
    """Flips bytes inside the first compressed chunk of /objects/pattern (as a bad disk would)."""
    with h5py.File(path, "r") as f:
        info = f["objects/pattern"].id.get_chunk_info(0)
        offset, size = info.byte_offset, info.size
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 3)
        fh.write(bytes(b ^ 0x5A for b in range(max(4, size // 3))))


def huge_claimed_rows(path: Path, victim: Path) -> None:
    """Every per-pair table claims a billion rows (late allocation: the file stays tiny)."""
    m = 10**9
    with h5py.File(path, "r+") as f:
        h, w = f["pairs/speckle"].shape[1:]
        for name in list(f["pairs"]):
            ds = f[f"pairs/{name}"]
            shape = (m, h, w) if name == "speckle" else (m,)
            chunks = (1, h, w) if name == "speckle" else (4096,)
            dtype = h5py.string_dtype() if h5py.check_string_dtype(ds.dtype) else ds.dtype
            del f[f"pairs/{name}"]
            f.create_dataset(f"pairs/{name}", shape=shape, dtype=dtype, chunks=chunks)


def float64_exposure(path: Path, victim: Path) -> None:
    """Readable (any float), but not what the writer writes into (float32)."""
    with h5py.File(path, "r+") as f:
        _recreate(f, "pairs/exposure_us", dtype=np.float64)


def late_allocated_speckle(path: Path, victim: Path) -> None:
    """Frames not preallocated: each write would grow the file and change HDF5 metadata."""
    with h5py.File(path, "r+") as f:
        _, h, w = f["pairs/speckle"].shape
        _recreate(f, "pairs/speckle", chunks=(1, h, w))


CASES: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...]]] = {
    "external-storage-speckle": (external_speckle, BOTH),
    "external-storage-pattern": (external_pattern, BOTH),
    "virtual-dataset-speckle": (virtual_speckle, BOTH),
    "external-link-done": (external_link_done, BOTH),
    "external-link-extra": (external_link_extra, BOTH),
    "dangling-soft-link": (dangling_soft_link, BOTH),
    "compressed-speckle": (compressed_speckle, BOTH),
    "float-speckle": (float_speckle, BOTH),
    "2d-speckle": (flat_speckle, BOTH),
    "string-done": (string_done, BOTH),
    "float-object-index": (float_object_index, BOTH),
    "non-utf8-diffuser": (non_utf8_diffuser, BOTH),
    "non-utf8-names": (non_utf8_names, BOTH),
    "non-utf8-block-diffuser": (non_utf8_block_diffuser, BOTH),
    "array-format": (array_format, BOTH),
    "non-utf8-format": (non_utf8_format, BOTH),
    "non-utf8-protocol": (non_utf8_protocol, BOTH),
    "numeric-rig": (numeric_rig, BOTH),
    "array-dark-n-frames": (array_dark_frames, BOTH),
    "huge-claimed-rows": (huge_claimed_rows, BOTH),
    "bit-rot-pattern": (bit_rot_pattern, BOTH),
    "float64-exposure": (float64_exposure, RESUME),
    "late-allocated-speckle": (late_allocated_speckle, RESUME),
}
VICTIM_BYTES = b"the user's own file, which no run file may read or write\n" * 64


def make_victim(folder: Path) -> Path:
    victim = folder / "victim.bin"
    victim.write_bytes(VICTIM_BYTES)
    return victim

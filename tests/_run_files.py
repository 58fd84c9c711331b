"""Run files shared by the acquisition reliability tests (kill/resume, device faults, full disk):
a tiny simulated rig, TOML writing, the ``acquire`` command line, an uninterrupted reference run,
and byte-for-byte comparison of run files."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import tomli_w

from speckle_lab.cli import run

# The camera's clock and frame counter restart with each process: they say when, not what.
WHEN_NOT_WHAT = {"pairs/timestamp", "pairs/device_timestamp", "pairs/frame_index"}
ALSO_COMPARED = ("blocks/exposure_us", "blocks/done", "dark/frame", "dark/done", "stability/frame",
                 "stability/correlation", "stability/done")


TINY_SIM_RIG = {"name": "tiny simulated rig", "slm": {"kind": "sim", "window_px": [32, 32]},
                "camera": {"kind": "sim"}, "stage": {"kind": "sim"}, "changer": {"kind": "sim"},
                "sim": {"seed": 0, "real_time_waits": True}}  # settle_ms paces a run in real time


def write_toml(path: Path, doc: dict) -> Path:
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def acquire_argv(protocol: Path, rig: Path, out: Path, resume: bool = False) -> list[str]:
    return ["acquire", str(protocol), "--rig", str(rig), "--out", str(out), "--unattended", "--no-progress",
            *(["--resume"] if resume else [])]


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a run file, read whole with plain h5py (fails if any byte is unreadable)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     else None)
        for key in f.attrs:
            out[f"@{key}"] = f.attrs[key]
    return out


def compared_names(data: dict) -> list[str]:
    return sorted(n for n in data if (n.startswith(("objects/", "pairs/")) or n in ALSO_COMPARED)
                  and n not in WHEN_NOT_WHAT)


def assert_same_run(expected: Path, got: Path) -> None:
    """Byte for byte in /objects and /pairs (and exposures, darks, references), timestamps aside."""
    a, b = read_all(expected), read_all(got)
    names = compared_names(a)
    assert names == compared_names(b)
    assert "pairs/speckle" in names and "objects/pattern" in names
    for name in names:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype == object:
            assert x.tolist() == y.tolist(), name
        else:
            assert x.tobytes() == y.tobytes(), f"{name} differs"


def assert_done_rows_hold_the_reference_frames(reference: Path, path: Path) -> int:
    """An intermediate file: opens with plain h5py, and every done row holds the right frame."""
    data = read_all(path)
    ref = read_all(reference)
    done = data["pairs/done"].astype(bool)
    assert np.array_equal(data["pairs/speckle"][done], ref["pairs/speckle"][done])
    assert np.array_equal(data["pairs/exposure_us"][done], ref["pairs/exposure_us"][done])
    for name in ("blocks", "dark", "stability"):
        flags = data[f"{name}/done"].astype(bool)
        field = {"blocks": "exposure_us", "dark": "frame", "stability": "frame"}[name]
        assert np.array_equal(data[f"{name}/{field}"][flags], ref[f"{name}/{field}"][flags]), name
    return int(done.sum())


def uninterrupted_run(folder: Path, name: str, protocol: dict, rig: dict = TINY_SIM_RIG,
                      run=run) -> tuple[Path, Path, Path]:
    """Writes ``name``.toml and rig.toml in ``folder`` and acquires them in one go: the reference
    (protocol, rig, run file) that interrupted runs are compared with. ``run(argv) -> exit code`` is
    the CLI entry point (the reliability report passes one that silences the output)."""
    protocol_path = write_toml(folder / f"{name}.toml", protocol)
    rig_path = write_toml(folder / "rig.toml", rig)
    whole = folder / "whole.h5"
    assert run(acquire_argv(protocol_path, rig_path, whole)) == 0
    return protocol_path, rig_path, whole

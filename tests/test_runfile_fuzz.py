"""Property-based fuzz of a run file's metadata (issue #12): every command that reads a run file
ends with exit 0, or exit 2 and one line naming the file — never exit 1, a traceback or a crash log.

One mutation per example, drawn by hypothesis, on a copy of a small good run file: a root
attribute replaced (random bytes, invalid UTF-8, numbers, arrays, empty), a string dataset's
contents replaced (random bytes), or a dataset of the contract replaced by one of another dtype or
shape. Each mutated file goes through the command line, in-process (``speckle_lab.cli.run``):
``inspect``, ``train`` (a 16×16 CNN, one epoch) and ``acquire --resume`` (through the resume
writer's checks: ``acquire`` itself needs a matching protocol, so ``RunWriter`` stands for it).
Kept fast: derandomised, a few dozen examples, tiny files.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from speckle_core.errors import UserError
from speckle_core.runfile import RunWriter, create_run
from speckle_lab.cli import run
from tests._run_factory import frame_for, tiny_layout

SETTINGS = dict(deadline=timedelta(seconds=20), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                phases=[Phase.explicit, Phase.generate])

ROOT_ATTRS = ["format", "protocol", "rig", "created", "software", "skipped_faces"]
STRING_DATASETS = ["objects/name", "objects/split", "pairs/diffuser", "pairs/role", "blocks/diffuser",
                   "blocks/role", "objects/skipped"]
DATASETS = ["objects/pattern", "objects/name", "objects/split", "pairs/speckle", "pairs/object_index",
            "pairs/diffuser", "pairs/distance_mm", "pairs/exposure_us", "pairs/timestamp", "pairs/done",
            "pairs/role", "pairs/block", "blocks/done", "blocks/exposure_us", "dark/frame",
            "stability/frame", "stability/block", "capture/frame_index"]
DTYPES = ["u1", "u2", "i4", "i8", "f2", "f4", "f8", "?", "c8", "str", "S4", "compound"]

# HDF5 variable-length strings cannot hold NUL: the generators leave it out
raw = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"\1"))
text = st.text(st.characters(blacklist_characters="\0"), max_size=40)
attr_values = st.one_of(
    raw,  # stored as a UTF-8 string attribute whatever the bytes
    text,
    st.integers(-2**40, 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(-5, 5), min_size=0, max_size=4),
    st.lists(st.text(st.characters(blacklist_characters="\0"), max_size=5), min_size=1, max_size=3),
)


def _store_attr(f: h5py.File, name: str, value) -> None:
    if isinstance(value, bytes):
        f.attrs.create(name, data=value, dtype=h5py.string_dtype("utf-8"))
    elif isinstance(value, list) and value and isinstance(value[0], str):
        f.attrs[name] = np.array(value, dtype=h5py.string_dtype())
    elif isinstance(value, list):
        f.attrs[name] = np.array(value, dtype=np.int64)
    else:
        f.attrs[name] = value


def _dataset_like(dtype: str, shape: tuple[int, ...]) -> dict:
    if dtype == "str":
        return {"data": np.full(shape, "x", dtype=object), "dtype": h5py.string_dtype()}
    if dtype == "compound":
        return {"shape": shape, "dtype": np.dtype([("a", "i4"), ("b", "f4")])}
    return {"shape": shape, "dtype": np.dtype(dtype)}


@st.composite
def mutations(draw):
    kind = draw(st.sampled_from(["attr", "strings", "dataset"]))
    if kind == "attr":
        return ("attr", draw(st.sampled_from(ROOT_ATTRS)), draw(attr_values))
    if kind == "strings":
        return ("strings", draw(st.sampled_from(STRING_DATASETS)), draw(raw))
    name = draw(st.sampled_from(DATASETS))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 13), min_size=ndim, max_size=ndim)))
    return ("dataset", name, (draw(st.sampled_from(DTYPES)), shape))


def apply(path: Path, mutation) -> None:
    kind, name, value = mutation
    with h5py.File(path, "r+") as f:
        if kind == "attr":
            _store_attr(f, name, value)
        elif kind == "strings":
            n = f[name].shape[0] if f[name].ndim else 1
            del f[name]
            f.create_dataset(name, data=np.array([value] * n, dtype=object), dtype=h5py.string_dtype("utf-8"))
        else:
            dtype, shape = value
            del f[name]
            f.create_dataset(name, **_dataset_like(dtype, shape))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A laid-out run (resumable) with 8 of its 12 pairs done."""
    path = tmp_path_factory.mktemp("fuzz") / "base.h5"
    create_run(path, tiny_layout())
    w = RunWriter(path, sync_interval_s=0.0)
    for row in range(8):
        w.write_pair(row, frame_for(row), 100.0, 1.0)
    w.close()
    return path


def assert_clean(code: int, err: str, path: Path, crash_log: Path, mutation) -> None:
    lines = err.strip().splitlines()
    assert code in (0, 2), (mutation, err)
    assert not crash_log.exists(), (mutation, err)
    if code == 2:
        assert len(lines) == 1 and str(path) in lines[0], (mutation, err)


def _mutated(base: Path, folder: Path, mutation) -> Path:
    path = folder / "run.h5"
    shutil.copy(base, path)
    apply(path, mutation)
    return path


@settings(max_examples=40, **SETTINGS)
@given(mutation=mutations())
def test_inspect_on_fuzzed_metadata_exits_0_or_2_with_one_line(base, capsys, monkeypatch, mutation):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        crash = folder / "crash.log"
        monkeypatch.setenv("SPECKLE_LAB_CRASH_LOG", str(crash))
        path = _mutated(base, folder, mutation)
        capsys.readouterr()
        code = run(["inspect", str(path), "--sheet", str(folder / "sheet.png")])
        assert_clean(code, capsys.readouterr().err, path, crash, mutation)


@settings(max_examples=40, **SETTINGS)
@given(mutation=mutations())
def test_the_resume_writer_on_fuzzed_metadata_refuses_in_one_line_or_opens(base, mutation):
    with tempfile.TemporaryDirectory() as d:
        path = _mutated(base, Path(d), mutation)
        try:
            RunWriter(path).close()
        except UserError as e:
            assert str(path) in str(e) and "\n" not in str(e), (mutation, str(e))


@settings(max_examples=12, **SETTINGS)
@given(mutation=mutations())
def test_train_on_fuzzed_metadata_exits_0_or_2_with_one_line(base, capsys, monkeypatch, mutation):
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        crash = folder / "crash.log"
        monkeypatch.setenv("SPECKLE_LAB_CRASH_LOG", str(crash))
        path = _mutated(base, folder, mutation)
        capsys.readouterr()
        code = run(["train", str(path), "--out", str(folder / "model"), "--model", "unet",
                    "--model-arg", "base_channels=4", "--image-size", "16", "--epochs", "1",
                    "--batch-size", "4", "--device", "cpu", "--quiet"])
        assert_clean(code, capsys.readouterr().err, path, crash, mutation)

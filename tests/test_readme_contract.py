"""The README's dataset contract ("## The dataset") matches a file the writer lays out: every table
row (name, rank, type) and every extra it names exists, with that type."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from speckle_core.runfile import create_run
from tests._run_factory import tiny_layout

README = Path(__file__).resolve().parents[1] / "README.md"
TYPES = {"uint8": {np.uint8}, "uint16": {np.uint16}, "int32": {np.int32}, "float32": {np.float32},
         "float64": {np.float64}, "bool": {np.bool_}}


def dataset_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## The dataset")
    end = text.index("\n## ", start + 5)
    return text[start:end]


def contract_rows() -> list[tuple[str, str]]:
    """(path, "shape and type" cell) for each row of the /objects and /pairs tables, and
    (attribute, "") for the root attribute table."""
    rows, group = [], None
    for line in dataset_section().splitlines():
        if line.startswith("Root attributes"):
            group = ""
        m = re.match(r"^`(/\w+)`, one row per", line)
        if m:
            group = m.group(1)
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if group is None or len(cells) < 2 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        rows.append((f"{group}/{name}", cells[1]) if group else (name, ""))
    return rows


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "run.h5"
    create_run(path, tiny_layout())
    with h5py.File(path, "r") as f:
        yield f


def test_the_readme_has_the_three_contract_tables():
    names = [name for name, _ in contract_rows()]
    assert {"format", "protocol", "rig", "created", "software"} <= set(names)
    assert "/objects/pattern" in names and "/pairs/speckle" in names and "/pairs/done" in names


@pytest.mark.parametrize("path, cell", [r for r in contract_rows() if r[0].startswith("/")])
def test_each_contract_dataset_exists_with_its_rank_and_type(written, path, cell):
    assert path.lstrip("/") in written, f"README lists {path}, the file has no such dataset"
    ds = written[path.lstrip("/")]
    shape_text, type_text = cell.split(")", 1)
    rank = shape_text.count(",") + 1 - shape_text.rstrip().endswith(",")
    assert ds.ndim == rank, f"{path}: README says {shape_text}), file has shape {ds.shape}"
    words = type_text.split()
    if "str" in words:
        assert h5py.check_string_dtype(ds.dtype) is not None, f"{path}: README says str"
    else:
        allowed = set().union(*(TYPES[w] for w in words if w in TYPES))
        assert ds.dtype.type in allowed, f"{path}: README says {type_text.strip()}, file has {ds.dtype}"


@pytest.mark.parametrize("name", [n for n, _ in contract_rows() if not n.startswith("/")])
def test_each_contract_root_attribute_exists(written, name):
    assert name in written.attrs


def test_every_extra_the_readme_names_exists_in_the_file(written):
    named = set(re.findall(r"`(/[a-z_]+/[a-z_*]+)`", dataset_section()))
    assert "/capture/frame_index" in named and "/capture/device_timestamp" in named
    for path in sorted(named):
        if path.endswith("/*"):
            assert path[1:-2] in written, f"README names {path}; the file has no group {path[:-2]}"
        else:
            assert path.lstrip("/") in written, f"README names {path}; the file has no such dataset"
    assert "skipped_faces" in written.attrs

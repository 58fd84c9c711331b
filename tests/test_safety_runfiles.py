"""Crafted run files are refused before any data is read or written (issue #12, "Crafted files").

Each case of ``tests/_crafted_runs.py`` changes one thing in a good run file. Readers (``inspect``
on the command line, ``open_run`` under train/evaluate/predict) and the resume writer
(``RunWriter``, what ``acquire --resume`` writes through) must refuse it with one line naming the
file, and a file outside the run (the "victim") must never be read or written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from speckle_core.errors import UserError
from speckle_core.runfile import RunWriter, create_run, open_run
from speckle_lab.cli import run
from tests._crafted_runs import CASES, VICTIM_BYTES, make_victim
from tests._run_factory import frame_for, tiny_layout

READ_CASES = [name for name, (_, where) in CASES.items() if "read" in where]
RESUME_CASES = [name for name, (_, where) in CASES.items() if "resume" in where and name != "bit-rot-pattern"]


def good_run(path: Path) -> Path:
    """A laid-out run with its first four pairs written (so inspect has frames to show)."""
    create_run(path, tiny_layout())
    w = RunWriter(path, sync_interval_s=0.0)
    for row in range(4):
        w.write_pair(row, frame_for(row), 100.0, 1.0)
    w.close()
    return path


@pytest.fixture
def crafted(request, tmp_path):
    craft, _ = CASES[request.param]
    path = good_run(tmp_path / "run.h5")
    victim = make_victim(tmp_path)
    craft(path, victim)
    return path, victim


@pytest.mark.parametrize("crafted", READ_CASES, indirect=True)
def test_inspect_refuses_a_crafted_run_file_in_one_line(crafted, tmp_path, capsys):
    path, victim = crafted
    code = run(["inspect", str(path), "--sheet", str(tmp_path / "sheet.png")])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and str(path) in lines[0], err
    assert victim.read_bytes() == VICTIM_BYTES


@pytest.mark.parametrize("crafted", [c for c in READ_CASES if c != "bit-rot-pattern"], indirect=True)
def test_open_run_refuses_a_crafted_run_file_before_reading_data(crafted):
    path, victim = crafted
    with pytest.raises(UserError, match=str(path)):
        open_run(path).close()
    assert victim.read_bytes() == VICTIM_BYTES


@pytest.mark.parametrize("crafted", RESUME_CASES, indirect=True)
def test_the_resume_writer_refuses_a_crafted_run_file_before_writing(crafted):
    path, victim = crafted
    with pytest.raises(UserError, match=str(path)):
        RunWriter(path).close()
    assert victim.read_bytes() == VICTIM_BYTES


def test_external_storage_is_named_in_the_refusal(tmp_path):
    path = good_run(tmp_path / "run.h5")
    victim = make_victim(tmp_path)
    CASES["external-storage-speckle"][0](path, victim)
    with pytest.raises(UserError, match=r"/pairs/speckle keeps its data in another file"):
        open_run(path)


def test_bit_rot_in_the_objects_names_the_dataset(tmp_path, capsys):
    path = good_run(tmp_path / "run.h5")
    CASES["bit-rot-pattern"][0](path, make_victim(tmp_path))
    assert run(["inspect", str(path), "--sheet", str(tmp_path / "s.png")]) == 2
    assert "/objects/pattern" in capsys.readouterr().err


def test_a_good_run_file_passes_every_check(tmp_path):
    path = good_run(tmp_path / "run.h5")
    open_run(path).close()
    RunWriter(path).close()

"""``speckle-lab inspect``: the summary, the contact sheet, and bad files."""

from __future__ import annotations

import h5py
from PIL import Image

from speckle_lab.cli import run
from tests._fake_rig import fake_rig
from tests.test_engine import run_engine


def test_summary_counts_done_and_missing_per_block(tmp_path, capsys):
    path = tmp_path / "r.h5"
    run_engine(path, fake_rig(), stop_after=4)
    assert run(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "pairs: 4/12 done, 8 missing" in out
    assert "skipped faces: 1 (bad.jpg: truncated)" in out
    assert "min corr" in out and "missing" in out


def test_contact_sheet_shows_each_face_at_each_distance(tmp_path, capsys):
    path = tmp_path / "r.h5"
    run_engine(path, fake_rig())
    sheet = tmp_path / "sheet.png"
    assert run(["inspect", str(path), "--sheet", str(sheet)]) == 0
    img = Image.open(sheet)
    # 2 diffusers × 3 faces rows; object + 2 distances columns (160 px tiles + 4 px gaps, 150 px labels;
    # a 38 px head, a 14 px caption under each row)
    assert img.size == (150 + 3 * 164, 38 + 6 * (160 + 14 + 4))
    assert "contact sheet:" in capsys.readouterr().out


def test_default_sheet_goes_beside_the_run(tmp_path):
    path = tmp_path / "night.h5"
    run_engine(path, fake_rig(), stop_after=1)
    assert run(["inspect", str(path)]) == 0
    assert (tmp_path / "night.contact.png").exists()


def test_foreign_hdf5_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["data"] = [1, 2, 3]
    assert run(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a speckle-lab dataset" in err


def test_truncated_run_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "r.h5"
    run_engine(path, fake_rig())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert run(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err


def test_not_hdf5_at_all_exits_2(tmp_path, capsys):
    path = tmp_path / "notes.h5"
    path.write_text("hello")
    assert run(["inspect", str(path)]) == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err

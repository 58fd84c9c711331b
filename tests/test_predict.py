"""``speckle-lab predict``: frames and dataset rows in, PNGs out; bad input is one line, exit 2."""

import numpy as np
import pytest
from PIL import Image

from reconstruction.predict import parse_rows, predict_inputs
from speckle_core.errors import UserError
from speckle_lab.cli import run as cli_run


def test_png_tiff_and_npy_frames_give_pngs_of_the_model_size(trained, tmp_path):
    _, ckpt = trained
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(rng.integers(0, 4000, (40, 48), dtype=np.uint16)).save(tmp_path / "b.tiff")
    np.save(tmp_path / "c.npy", rng.random((40, 48)))
    out = predict_inputs(ckpt, [str(tmp_path / n) for n in ("a.png", "b.tiff", "c.npy")], tmp_path / "out")
    assert [p.name for p in out] == ["a.png", "b.png", "c.png"]
    assert Image.open(out[0]).size == (16, 16)


def test_dataset_rows_are_predicted(trained, tmp_path):
    run, ckpt = trained
    out = predict_inputs(ckpt, [f"{run}:0-2,5"], tmp_path)
    assert [p.name for p in out] == ["run_row0.png", "run_row1.png", "run_row2.png", "run_row5.png"]


def test_row_spec_parsing():
    assert parse_rows("0-3,8", 10, "x") == [0, 1, 2, 3, 8]
    for bad in ("a", "3-1", "0-10", ""):
        with pytest.raises(UserError):
            parse_rows(bad, 10, "x")


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_bytes(b"not an image"), "not a readable image"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((2, 20, 20))), "expected a 2-D gray frame"),
    (lambda p: np.save(p.with_suffix(".npy"), np.zeros((4, 4))), "smaller than"),
])
def test_bad_frames_exit_2_with_one_line(trained, tmp_path, capsys, make, needle):
    _, ckpt = trained
    target = tmp_path / "bad.png"
    make(target)
    path = target if target.exists() else target.with_suffix(".npy")
    assert cli_run(["predict", str(ckpt), str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_bad_row_spec_and_unfinished_row_exit_2(trained, tmp_path, capsys):
    run, ckpt = trained
    assert cli_run(["predict", str(ckpt), f"{run}:x-y", "--out", str(tmp_path)]) == 2
    assert "bad row spec" in capsys.readouterr().err
    assert cli_run(["predict", str(ckpt), f"{run}:35", "--out", str(tmp_path)]) == 2  # the last row: not done
    assert "done is False" in capsys.readouterr().err
    assert cli_run(["predict", str(ckpt), str(run), "--out", str(tmp_path)]) == 2
    assert "name the rows" in capsys.readouterr().err

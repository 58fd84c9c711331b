"""Every command that reads a run file refuses a broken one with the same one-line message.

``inspect`` (acquisition) and ``train`` (reconstruction) both open runs through
``speckle_core.runfile.open_run``; given the same broken file they must print the same line.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import pytest

from speckle_lab.cli import run
from tests.test_bad_input import RUN_FILES, valid_run


def _without_done(tmp: Path) -> Path:
    path = valid_run(tmp, "no-done.h5")
    with h5py.File(path, "r+") as f:
        del f["pairs/done"]
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "never-written.h5"


BROKEN = {**RUN_FILES, "missing-pairs-done": _without_done, "no-such-file": _missing}


def _refusal(argv: list[str], capsys) -> str:
    capsys.readouterr()
    code = run(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_inspect_and_train_refuse_a_broken_run_with_the_same_line(kind, tmp_path, capsys):
    path = BROKEN[kind](tmp_path)
    inspect_line = _refusal(["inspect", str(path), "--sheet", str(tmp_path / "sheet.png")], capsys)
    train_line = _refusal(["train", str(path), "--out", str(tmp_path / "train"), "--epochs", "1",
                           "--image-size", "16", "--model", "unet", "--device", "cpu", "--quiet"], capsys)
    assert inspect_line == train_line
    assert str(path) in inspect_line

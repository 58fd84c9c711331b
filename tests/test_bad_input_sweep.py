"""Bad input found by an adversarial sweep of the CLI (2026-12-01): each case once ended in a crash
(exit 1 and a crash log), a silent exit 0, or a refusal that left state behind. Every case runs
``speckle-lab`` in-process and must end with exit 2 and one line naming the file, key or value,
with nothing written or overwritten.

The wider corpus (protocols, rigs, face sources, run files, checkpoints) is tests/test_bad_input.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speckle_lab.cli import run
from tests.tiny_dataset import write_tiny_dataset

TINY_UNET = ["--image-size", "16", "--device", "cpu", "--quiet"]


@pytest.fixture(autouse=True)
def crash_log(tmp_path, monkeypatch) -> Path:
    """The CLI's crash log, in tmp_path: a case that writes one has crashed."""
    log = tmp_path / "crash.log"
    monkeypatch.setenv("SPECKLE_LAB_CRASH_LOG", str(log))
    monkeypatch.delenv("SPECKLE_LAB_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return log


@pytest.fixture
def run_file(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "run.h5")


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    from reconstruction.checkpoint import save_checkpoint
    from reconstruction.models import build_model

    model = build_model("unet", 16, base_channels=2)
    state = {"model_config": dict(model.config), "model": model.state_dict(), "epoch": 1,
             "history": {"train_loss": [1.0]}, "train_config": {"test_objects": []}}
    path = tmp_path / "model.pt"
    save_checkpoint(state, path)
    return path


def refused(argv: list[str], capsys, crash_log: Path, *needles: str) -> str:
    """Runs the CLI; asserts exit 2, one line, no crash log, and each needle in the line."""
    capsys.readouterr()
    code = run([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert not crash_log.exists(), f"crashed: {err.strip()}"
    assert "Traceback" not in err
    assert code == 2, f"exit {code}: {err.strip()}"
    assert len(lines) == 1 and lines[0].startswith("speckle-lab: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def compare_argv(run_path, out, *extra, image_size: str = "16") -> list:
    return ["compare", run_path, "--models", "unet,spt-unet-b", "--out", out, "--epochs", "1",
            "--image-size", image_size, "--device", "cpu", "--quiet", *extra]


# -- compare: every input checked before anything is written -------------------------------------------


def test_compare_out_that_is_a_user_file_is_refused_and_kept(run_file, tmp_path, capsys, crash_log):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    refused(compare_argv(run_file, notes), capsys, crash_log, "notes.txt", "is a file")
    assert notes.read_text() == "my notes\n"


def test_compare_out_under_a_file_is_refused(run_file, tmp_path, capsys, crash_log):
    (tmp_path / "notes.txt").write_text("my notes\n")
    refused(compare_argv(run_file, tmp_path / "notes.txt" / "cmp"), capsys, crash_log, "notes.txt")


def test_compare_out_that_is_the_run_file_is_refused_and_the_run_kept(run_file, capsys, crash_log):
    before = run_file.read_bytes()
    refused(compare_argv(run_file, run_file), capsys, crash_log, "run.h5")
    assert run_file.read_bytes() == before


@pytest.mark.parametrize("extra, needle", [
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "nan"], "--lr"),
    (["--eval-max", "0"], "--eval-max"),
    (["--device", "banana"], "banana"),
])
def test_compare_refused_option_writes_no_plan_a_rerun_would_refuse(extra, needle, run_file, tmp_path, capsys,
                                                                    crash_log):
    """It wrote OUT/unet/compare-plan.json with the bad value first; the corrected rerun then said
    "was trained with other compare options" about a model never trained."""
    refused(compare_argv(run_file, tmp_path / "cmp", *extra), capsys, crash_log, needle)
    assert not (tmp_path / "cmp").exists()


def test_compare_image_size_not_a_multiple_of_8_writes_nothing(run_file, tmp_path, capsys, crash_log):
    refused(compare_argv(run_file, tmp_path / "cmp", image_size="20"), capsys, crash_log, "image_size", "20")
    assert not (tmp_path / "cmp").exists()


def test_compare_run_that_is_a_folder_is_named_a_directory(tmp_path, capsys, crash_log):
    (tmp_path / "runs").mkdir()
    refused(compare_argv(tmp_path / "runs", tmp_path / "cmp"), capsys, crash_log, "runs", "is a directory")
    assert not (tmp_path / "cmp").exists()


def test_compare_run_that_is_not_hdf5_is_refused_before_any_folder(tmp_path, capsys, crash_log):
    (tmp_path / "notes.h5").write_text("not a run\n")
    refused(compare_argv(tmp_path / "notes.h5", tmp_path / "cmp"), capsys, crash_log, "notes.h5")
    assert not (tmp_path / "cmp").exists()


# -- evaluate, predict, train ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch", ["0", "-1"])  # 0 crashed in range(); -1 scored nothing and exited 0
def test_evaluate_batch_size_below_one_is_refused(batch, checkpoint, run_file, tmp_path, capsys, crash_log):
    argv = ["evaluate", checkpoint, run_file, "--out", tmp_path / "ev", "--device", "cpu",
            "--batch-size", batch]
    refused(argv, capsys, crash_log, "--batch-size", batch)
    assert not (tmp_path / "ev").exists()


def test_predict_folder_as_frame_is_named_a_directory(checkpoint, tmp_path, capsys, crash_log):
    (tmp_path / "frames").mkdir()
    refused(["predict", checkpoint, tmp_path / "frames", "--out", tmp_path / "pr", "--device", "cpu"],
            capsys, crash_log, "frames", "is a directory")


def test_predict_frame_beyond_float32_is_refused_not_a_nan_map(checkpoint, tmp_path, capsys, crash_log):
    np.save(tmp_path / "huge.npy", np.full((32, 32), 1e300))
    refused(["predict", checkpoint, tmp_path / "huge.npy", "--out", tmp_path / "pr", "--device", "cpu"],
            capsys, crash_log, "huge.npy", "float32")
    assert not list(tmp_path.rglob("huge*.png"))


@pytest.mark.parametrize("arg", ["attention=maybe", "shortcuts=1"])
def test_train_spt_switch_that_is_not_a_boolean_is_refused(arg, run_file, tmp_path, capsys, crash_log):
    key, _, value = arg.partition("=")
    refused(["train", run_file, "--out", tmp_path / "t", "--model", "spt-unet-b", "--model-arg", arg,
             "--epochs", "1", *TINY_UNET], capsys, crash_log, key, value)
    assert not (tmp_path / "t" / "last.pt").exists()


# -- inspect, live ---------------------------------------------------------------------------------------


def test_inspect_protocol_and_rig_together_is_refused(run_file, capsys, crash_log):
    refused(["inspect", run_file, "--protocol", "--rig"], capsys, crash_log, "--protocol", "--rig")


def test_inspect_sheet_over_a_user_file_named_png_keeps_it(run_file, tmp_path, capsys, crash_log):
    notes = tmp_path / "notes.png"
    notes.write_text("my notes, not a picture\n")
    refused(["inspect", run_file, "--sheet", notes], capsys, crash_log, "notes.png", "not a PNG")
    assert notes.read_text() == "my notes, not a picture\n"


def test_inspect_sheet_still_replaces_its_own_png(run_file, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert run(["inspect", str(run_file), "--sheet", str(sheet)]) == 0
    sheet.write_bytes(sheet.read_bytes()[:100])  # any PNG: an earlier sheet
    assert run(["inspect", str(run_file), "--sheet", str(sheet)]) == 0
    assert sheet.stat().st_size > 100


@pytest.mark.parametrize("under", [False, True])
def test_live_snapshots_that_is_a_file_is_refused_before_serving(under, tmp_path, capsys, crash_log):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    target = notes / "shots" if under else notes
    refused(["live", "--snapshots", target, "--port", "0"], capsys, crash_log, "--snapshots", "notes.txt")
    assert notes.read_text() == "my notes\n"

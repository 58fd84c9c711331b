"""Resuming without guesswork (issue #17): extending a finished run, checkpoints that know their run,
evaluation on another file, predict on the wrong geometry, and a report that stands next to the paper."""

import json

import h5py
import numpy as np
import pytest

from reconstruction.checkpoint import load_checkpoint, save_checkpoint
from reconstruction.data import run_identity
from reconstruction.evaluate import evaluate_checkpoint, evaluate_checkpoints
from reconstruction.train import TrainConfig, train
from speckle_core.errors import UserError
from speckle_lab.cli import run as cli_run
from tests.tiny_dataset import TINY_MODEL, train_tiny, write_tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("extend") / "run.h5")


def _cfg(run, out, **kw):
    return TrainConfig(run=str(run), out_dir=str(out), **{**TINY_MODEL, **kw})


def test_resume_with_more_epochs_extends_a_finished_run(run, tmp_path):
    train_tiny(run, tmp_path / "out", epochs=2)
    hist = train(_cfg(run, tmp_path / "out", epochs=2), resume=True, epochs=4, progress=False,
                 log=lambda *_: None)
    assert hist["epoch"] == [1, 2, 3, 4]
    # epochs 3 and 4 follow the schedule of a 4-epoch run: 1e-5 then 1e-6
    assert hist["lr"][2:] == pytest.approx([1e-5, 1e-6])
    assert load_checkpoint(tmp_path / "out" / "last.pt")["train_config"]["epochs"] == 4


def test_cli_resume_epochs_extends(run, tmp_path):
    args = ["train", str(run), "--model", "unet", "--model-arg", "base_channels=4", "--image-size", "16",
            "--quiet", "--out", str(tmp_path / "o")]
    assert cli_run([*args, "--epochs", "1"]) == 0
    assert cli_run([*args, "--resume", "--epochs", "2"]) == 0
    assert json.loads((tmp_path / "o" / "history.json").read_text())["epoch"] == [1, 2]


def test_resume_with_fewer_epochs_than_done_is_refused(run, tmp_path):
    train_tiny(run, tmp_path / "out", epochs=2)
    with pytest.raises(UserError, match="--epochs 1: .* has already trained 2 epochs"):
        train(_cfg(run, tmp_path / "out"), resume=True, epochs=1, progress=False, log=lambda *_: None)


def test_resuming_a_finished_run_says_so(run, tmp_path):
    train_tiny(run, tmp_path / "out", epochs=1)
    logs = []
    hist = train(_cfg(run, tmp_path / "out"), resume=True, progress=False, log=logs.append)
    assert hist["epoch"] == [1]
    assert any("all 1 epochs are done; give --epochs N" in m for m in logs)


def test_a_checkpoint_records_its_run(run, tmp_path):
    train_tiny(run, tmp_path / "out")
    state = load_checkpoint(tmp_path / "out" / "last.pt")
    ident = state["run_identity"]
    assert ident["objects_sha256"] == run_identity(run)["objects_sha256"]
    assert ident["protocol_sha256"] == run_identity(run)["protocol_sha256"]
    assert state["frame_shape"] == [40, 48] and state["eval_sizes"]["train"] > 0


def test_identity_changes_with_the_objects(tmp_path):
    a = write_tiny_dataset(tmp_path / "a.h5")
    b = write_tiny_dataset(tmp_path / "b.h5", seed=3)
    same = write_tiny_dataset(tmp_path / "c.h5")
    assert run_identity(a)["objects_sha256"] == run_identity(same)["objects_sha256"]
    assert run_identity(a)["objects_sha256"] != run_identity(b)["objects_sha256"]


def test_evaluate_on_another_run_finds_the_test_faces_by_name(run, tmp_path):
    train_tiny(run, tmp_path / "out", test_fraction=0.3)
    other = write_tiny_dataset(tmp_path / "other.h5", seed=4)
    with h5py.File(other, "a") as f:  # the same faces, stored in reverse order
        names = f["objects/name"].asstr()[()][::-1]
        del f["objects/name"]
        f.create_dataset("objects/name", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    ckpt = tmp_path / "out" / "last.pt"
    res = evaluate_checkpoint(ckpt, other, fallback_dir=tmp_path)
    assert "found again by name" in res["split_note"]
    test_names = load_checkpoint(ckpt)["test_faces"]
    rows = res["groups"]["test"]
    assert sum(r["n"] for r in rows) > 0 and test_names


def test_evaluate_on_another_run_without_names_is_refused(run, tmp_path):
    train_tiny(run, tmp_path / "out", test_fraction=0.3)
    ckpt = tmp_path / "out" / "last.pt"
    state = load_checkpoint(ckpt)
    state["test_faces"] = None
    save_checkpoint(state, ckpt)
    with pytest.raises(UserError, match="other objects than the run the checkpoint was trained on"):
        evaluate_checkpoint(ckpt, write_tiny_dataset(tmp_path / "other.h5", seed=4), fallback_dir=tmp_path)


def test_the_same_run_keeps_test_faces_by_index(trained):
    run, ckpt = trained
    assert evaluate_checkpoint(ckpt, run)["split_note"].startswith("same objects")


def test_predict_warns_on_another_geometry_and_writes_the_object(trained, tmp_path):
    from PIL import Image

    from reconstruction.predict import predict_inputs

    _, ckpt = trained
    np.save(tmp_path / "full.npy", np.random.default_rng(0).integers(0, 255, (64, 80)).astype(np.uint8))
    logs = []
    out = predict_inputs(ckpt, [str(tmp_path / "full.npy")], tmp_path / "p", side_by_side=True,
                         log=logs.append)
    assert len(logs) == 1 and "80x64 differs from the training data's ROI 48x40" in logs[0]
    obj = np.array(Image.open(tmp_path / "p" / "full_object.png"))
    assert set(np.unique(obj)) <= {0, 255} and out == [tmp_path / "p" / "full.png"]
    assert (tmp_path / "p" / "full_side.png").is_file()


@pytest.fixture(scope="module")
def report(run, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    train_tiny(run, d / "m", epochs=3, test_fraction=0.3)
    grid = d / "grid.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(grid)
    result = evaluate_checkpoints({"model": d / "m" / "best.pt"}, run, d / "e",
                                  figures={"Reconstructions": grid})
    return d, result, (d / "e" / "report.html").read_text()


def test_report_puts_the_paper_beside_ours_with_a_caveat(report):
    _, _, html = report
    assert "the paper, Table 1" in html and "&gt; 0.989" in html
    assert "not comparable one to one" in html and "input 16x16" in html and "on cpu" in html


def test_report_has_provenance_and_the_floor(report):
    d, result, html = report
    assert "Provenance" in html and "speckle-lab" in html and "Report written" in html
    assert "mean training face (the floor)" in html
    assert set(result["models"]["model"]) and json.loads((d / "e" / "metrics.json").read_text())[
        "floor_mean_training_face"]["validation"]["n"] > 0


def test_report_names_each_split_for_what_it_is(report):
    _, _, html = report
    assert "model-selection faces" in html and "not unseen" in html
    assert "Held-out faces (never trained on nor used to choose the epoch)" in html


def test_report_curves_cover_every_epoch_and_embed_the_grid(report):
    d, result, html = report
    assert result["models"]["model"]["history"]["epoch"] == [1, 2, 3]
    assert "Reconstructions</h2><img" in html
    assert "SSIM 0." in html  # Fig. 6 captions carry each example's score


def test_examples_span_the_range_of_scores(run, tmp_path):
    train_tiny(run, tmp_path / "m", epochs=1)
    res = evaluate_checkpoint(tmp_path / "m" / "last.pt", run, n_examples=3, fallback_dir=tmp_path)
    scores = [e["ssim"] for e in res["examples"]["holdout"]]
    assert scores == sorted(scores) and len(scores) == 3


def _as_old_checkpoint(path):
    """Rewrites a checkpoint as the format before run identities (MultiStepLR state, no new keys)."""
    state = load_checkpoint(path)
    for key in ("batch", "partial", "run_identity", "eval_sizes", "selected_on", "test_faces", "device",
                "frame_shape"):
        state.pop(key, None)
    state["scheduler"] = {"milestones": {1: 1}, "gamma": 0.1, "base_lrs": [1e-4], "last_epoch": 1,
                          "_step_count": 2, "_get_lr_called_within_step": False, "_last_lr": [1e-5]}
    save_checkpoint(state, path)


def test_an_old_checkpoint_resumes_and_evaluates(run, tmp_path):
    train_tiny(run, tmp_path / "out", epochs=1)
    _as_old_checkpoint(tmp_path / "out" / "last.pt")
    logs = []
    hist = train(_cfg(run, tmp_path / "out"), resume=True, epochs=2, progress=False, log=logs.append)
    assert hist["epoch"] == [1, 2] and any("predates run identities" in m for m in logs)
    _as_old_checkpoint(tmp_path / "out" / "last.pt")
    res = evaluate_checkpoint(tmp_path / "out" / "last.pt", run, fallback_dir=tmp_path)
    assert "predates" in res["split_note"]

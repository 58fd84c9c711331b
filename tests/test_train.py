"""Training: outputs, the learning-rate schedule, exact resume and bad options."""

import json

import pytest
import torch

from reconstruction.train import TrainConfig, train
from speckle_core.errors import UserError
from speckle_lab.cli import run as cli_run
from tests.tiny_dataset import TINY_MODEL, train_tiny, write_tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("train") / "run.h5")


def test_training_writes_checkpoints_and_history(run, tmp_path):
    train_tiny(run, tmp_path / "out", epochs=2)
    hist = json.loads((tmp_path / "out" / "history.json").read_text())
    assert hist["epoch"] == [1, 2]
    assert {"train_loss", "train_ssim", "test_ssim", "validation_ssim"} <= set(hist)
    assert (tmp_path / "out" / "last.pt").is_file() and (tmp_path / "out" / "best.pt").is_file()


def test_schedule_scales_with_the_number_of_epochs(run, tmp_path):
    hist = train_tiny(run, tmp_path / "out", epochs=4)
    assert hist["lr"] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-6])


def test_resume_continues_exactly(run, tmp_path):
    straight = train_tiny(run, tmp_path / "a", epochs=3, loss="bce+npcc")
    cfg = TrainConfig(run=str(run), out_dir=str(tmp_path / "c"), epochs=3, loss="bce+npcc", **TINY_MODEL)

    def stop_after_first_epoch(msg):
        if msg.startswith("epoch 1/3"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False, log=stop_after_first_epoch)
    resumed = train(cfg, resume=True, progress=False, log=lambda *_: None)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    c = torch.load(tmp_path / "c" / "last.pt", weights_only=True)
    for k, v in a["model"].items():
        assert torch.equal(v, c["model"][k]), k
    for key in ("train_loss", "test_loss", "lr"):
        assert resumed[key] == straight[key]


def test_existing_run_needs_resume(run, tmp_path):
    train_tiny(run, tmp_path / "out")
    with pytest.raises(UserError, match="last.pt: already exists"):
        train_tiny(run, tmp_path / "out")


def test_resume_without_checkpoint_is_a_user_error(run, tmp_path):
    cfg = TrainConfig(run=str(run), out_dir=str(tmp_path / "none"), **TINY_MODEL)
    with pytest.raises(UserError, match="no checkpoint to resume"):
        train(cfg, resume=True, progress=False)


def test_npcc_training_lowers_the_loss(run, tmp_path):
    hist = train_tiny(run, tmp_path / "out", epochs=6, loss="npcc", lr=3e-3, image_size=32,
                      model_args={"base_channels": 8})
    assert hist["train_loss"][-1] < hist["train_loss"][0] - 0.05


def test_clip_grad_norm_bounds_the_gradient_of_every_step(run, tmp_path, monkeypatch):
    original = torch.nn.utils.clip_grad_norm_
    norms_after = []

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        original(parameters, max_norm, *args, **kwargs)
        norms_after.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters if p.grad is not None]))))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train_tiny(run, tmp_path / "out", clip_grad_norm=1e-3, lr=1e-2)
    assert norms_after and max(norms_after) <= 1e-3 * (1 + 1e-5)


def test_gradients_are_not_clipped_by_default(run, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(a))
    train_tiny(run, tmp_path / "out")
    assert calls == []


def test_cli_train_runs_and_rejects_bad_options(run, tmp_path):
    args = ["train", str(run), "--model", "unet", "--model-arg", "base_channels=4", "--image-size", "16",
            "--epochs", "1", "--quiet", "--out"]
    assert cli_run(args + [str(tmp_path / "ok")]) == 0
    assert cli_run(args + [str(tmp_path / "bad"), "--loss", "mse"]) == 2
    assert cli_run(args + [str(tmp_path / "bad"), "--diffuser", "999"]) == 2
    assert cli_run(args + [str(tmp_path / "bad"), "--model-arg", "nope"]) == 2
    assert cli_run(args + [str(tmp_path / "bad"), "--model", "resnet"]) == 2
    assert cli_run(args + [str(tmp_path / "bad"), "--clip-grad-norm", "0"]) == 2


def test_cli_import_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, reconstruction.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_without_a_test_set_history_json_holds_null(run, tmp_path):
    train_tiny(run, tmp_path / "out", test_fraction=0.0)
    hist = json.loads((tmp_path / "out" / "history.json").read_text())
    assert hist["test_ssim"] == [None] and hist["train_ssim"][0] is not None

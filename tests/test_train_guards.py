"""Training refuses what it cannot do well, in one line (issue #12): bad options, non-finite losses,
weights and frames, memory and disk bombs, signals, two runs on one output, tampered checkpoints."""

import errno
import os
import signal

import h5py
import numpy as np
import pytest
import torch

from reconstruction import data, runtime
from reconstruction import epoch as epoch_mod
from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from reconstruction.train import TrainConfig, train
from speckle_core.errors import UserError
from speckle_core.signals import Terminated
from speckle_lab.cli import run as cli_run
from tests.tiny_dataset import TINY_MODEL, train_tiny, write_tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("guards") / "run.h5")


ARGS = ["--model", "unet", "--model-arg", "base_channels=4", "--image-size", "16", "--epochs", "1", "--quiet"]


@pytest.mark.parametrize("bad", [["--lr", "inf"], ["--lr", "nan"], ["--lr", "-1"], ["--weight-decay", "-1"],
                                 ["--eval-max", "-1"], ["--image-size", "100000"], ["--epochs", "0"],
                                 ["--batch-size", "0"], ["--seed", "-1"], ["--test-fraction", "nan"],
                                 ["--clip-grad-norm", "inf"], ["--max-pairs", "0"]])
def test_every_bad_option_is_one_line_exit_2(run, tmp_path, capsys, bad):
    code = cli_run(["train", str(run), *ARGS, "--out", str(tmp_path / "o"), *bad])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and bad[0] in err
    assert not (tmp_path / "o" / "last.pt").exists()


def test_a_non_finite_loss_stops_training_and_names_the_step(run, tmp_path, monkeypatch):
    original = epoch_mod.compute_loss
    calls = {"n": 0}

    def nan_at_third_step(logits, target, kind):
        calls["n"] += 1
        loss = original(logits, target, kind)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(epoch_mod, "compute_loss", nan_at_third_step)
    with pytest.raises(UserError, match=r"non-finite at step 3 \(epoch 1, batch 3 of \d+\)"):
        train_tiny(run, tmp_path / "out", batch_size=2)
    assert not (tmp_path / "out" / "last.pt").exists()


def test_nan_frames_in_a_float_run_are_refused(tmp_path):
    run = write_tiny_dataset(tmp_path / "float.h5")
    with h5py.File(run, "a") as f:
        frames = f["pairs/speckle"][()].astype(np.float32)
        frames[2, 3, 4] = np.nan
        del f["pairs/speckle"]
        f["pairs/speckle"] = frames
    with pytest.raises(UserError, match="float.h5"):
        train_tiny(run, tmp_path / "out")


def test_non_finite_weights_are_refused_on_load(trained, tmp_path):
    _, ckpt = trained
    state = torch.load(ckpt, weights_only=True)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = state["model"][name] * float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(UserError, match=f"model.{name}: holds NaN or infinite weights"):
        load_checkpoint(tmp_path / "nan.pt")


def test_a_model_too_big_for_memory_is_refused_before_allocating(run, tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "memory_bytes", lambda device: 2**20)
    with pytest.raises(UserError, match=r"--model unet --image-size 16: needs about .* memory for training"):
        train_tiny(run, tmp_path / "out")


def test_a_checkpoint_with_huge_base_channels_is_refused(trained):
    _, ckpt = trained
    state = load_checkpoint(ckpt)
    state["model_config"] = {**state["model_config"], "base_channels": 200_000}
    with pytest.raises(UserError, match="model_config: needs about"):
        model_from_checkpoint(state, "big.pt", device=torch.device("cpu"))


def _cache_leftovers(run):
    return [p.name for p in (run.parent / ".speckle-cache").glob("*tmp*")]


def test_the_cache_needs_free_space_first(tmp_path, monkeypatch):
    import speckle_core.fileio as fileio

    run = write_tiny_dataset(tmp_path / "run.h5")
    monkeypatch.setattr(fileio, "free_bytes", lambda path: 1000)
    with pytest.raises(UserError, match="disk full"):
        data.prepare_cache(run, 16)
    assert _cache_leftovers(run) == []


def test_a_cache_that_fails_half_way_is_removed(tmp_path, monkeypatch):
    run = write_tiny_dataset(tmp_path / "run.h5")
    original = data.preprocess_frames
    calls = {"n": 0}

    def full_on_second_block(frames, size):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(frames, size)

    monkeypatch.setattr(data, "preprocess_frames", full_on_second_block)
    with pytest.raises(UserError, match="disk full while writing the training cache"):
        data.prepare_cache(run, 16)
    assert _cache_leftovers(run) == [] and not list((run.parent / ".speckle-cache").glob("*/inputs.npy"))


def test_the_cache_is_not_sparse(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5")
    folder = data.prepare_cache(run, 64).folder
    st = (folder / "inputs.npy").stat()
    assert st.st_blocks * 512 >= st.st_size - 4096


def test_a_checkpoint_write_on_a_full_disk_is_one_line_and_leaves_no_temp(trained, tmp_path, monkeypatch):
    _, ckpt = trained
    state = load_checkpoint(ckpt)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="last.pt"):
        save_checkpoint(state, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_sigterm_finishes_the_step_saves_and_resumes_exactly(run, tmp_path, monkeypatch):
    straight = train_tiny(run, tmp_path / "a", epochs=2, batch_size=2)
    original = epoch_mod.train_step
    steps = {"n": 0}

    def term_after_third_step(t, positions):
        out = original(t, positions)
        steps["n"] += 1
        if steps["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(epoch_mod, "train_step", term_after_third_step)
    logs = []
    with pytest.raises(Terminated) as e:
        train(TrainConfig(run=str(run), out_dir=str(tmp_path / "b"), epochs=2, batch_size=2, **TINY_MODEL),
              progress=False, log=logs.append)
    assert e.value.signum == signal.SIGTERM
    assert load_checkpoint(tmp_path / "b" / "last.pt")["batch"] == 3
    assert any("SIGTERM: stopped in epoch 1 after step 3" in m and "--resume" in m for m in logs)
    monkeypatch.setattr(epoch_mod, "train_step", original)
    cfg = TrainConfig(run=str(run), out_dir=str(tmp_path / "b"), epochs=2, batch_size=2, **TINY_MODEL)
    resumed = train(cfg, resume=True, progress=False, log=lambda *_: None)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-6)


def test_a_second_train_on_the_same_out_is_refused_naming_the_holder(run, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "out"
    out.mkdir()
    code = ("import sys; from speckle_core.fileio import output_lock\n"
            f"with output_lock({str(out)!r}):\n print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"in use by another speckle-lab process \(PID {holder.pid}"):
            train_tiny(run, out)
    finally:
        holder.communicate("", timeout=30)
    assert not (out / "last.pt").exists()


def test_out_pointing_at_a_file_is_one_line(run, trained, tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("mine")
    assert cli_run(["train", str(run), *ARGS, "--out", str(f)]) == 2
    assert cli_run(["evaluate", str(trained[1]), str(run), "--out", str(f)]) == 2
    assert f.read_text() == "mine"
    assert all(len(e.splitlines()) == 1 for e in capsys.readouterr().err.strip().split("speckle-lab:")[1:])


@pytest.mark.parametrize(("key", "value", "match"), [("lr", "abc", r"train_config\.lr"),
                                                     ("epochs", -3, r"train_config\.epochs"),
                                                     ("bogus", 1, "unknown option 'bogus'")])
def test_a_tampered_train_config_is_refused_on_resume(run, tmp_path, key, value, match):
    train_tiny(run, tmp_path / "out")
    last = tmp_path / "out" / "last.pt"
    state = load_checkpoint(last)
    state["train_config"][key] = value
    save_checkpoint(state, last)
    cfg = TrainConfig(run=str(run), out_dir=str(tmp_path / "out"), **TINY_MODEL)
    with pytest.raises(UserError, match=match):
        train(cfg, resume=True, progress=False, log=lambda *_: None)


def test_resume_on_another_dataset_is_refused(run, tmp_path):
    other = write_tiny_dataset(tmp_path / "other.h5", seed=5)
    train_tiny(run, tmp_path / "out")
    cfg = TrainConfig(run=str(other), out_dir=str(tmp_path / "out"), epochs=2, **TINY_MODEL)
    with pytest.raises(UserError, match="not the run .*last.pt was trained on"):
        train(cfg, resume=True, progress=False, log=lambda *_: None)


def test_predict_never_overwrites_its_input(trained, tmp_path):
    from PIL import Image

    from reconstruction.predict import predict_inputs

    run, ckpt = trained
    frames = tmp_path / "frames"
    frames.mkdir()
    with h5py.File(run) as f:
        Image.fromarray(f["pairs/speckle"][0]).save(frames / "frame.png")
    before = (frames / "frame.png").read_bytes()
    with pytest.raises(UserError, match="frame.png"):
        predict_inputs(ckpt, [str(frames / "frame.png")], frames)
    assert (frames / "frame.png").read_bytes() == before


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_cli_train_exits_128_plus_the_signal_after_saving(run, tmp_path, signum):
    import subprocess
    import sys

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speckle_lab.cli", "train", str(run), *ARGS[:-3], "--epochs", "500",
           "--batch-size", "1", "--quiet", "--out", str(out)]
    p = subprocess.Popen(cmd,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in p.stdout:  # wait for the first epoch to end
            if line.startswith("epoch 1/500"):
                break
        p.send_signal(signum)
        stdout, _ = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 128 + signum
    assert "--resume" in stdout and load_checkpoint(out / "last.pt")["epoch"] >= 1


def test_resume_without_an_output_folder_creates_nothing(run, tmp_path):
    cfg = TrainConfig(run=str(run), out_dir=str(tmp_path / "none"), **TINY_MODEL)
    with pytest.raises(UserError, match="no checkpoint to resume"):
        train(cfg, resume=True, progress=False)
    assert not (tmp_path / "none").exists() and list(tmp_path.iterdir()) == []

"""The same train command under torchrun: 2 CPU processes (gloo), one writer."""

import json
import os
import subprocess
import sys

import torch

from tests.tiny_dataset import write_tiny_dataset


def test_torchrun_two_processes_train_with_one_writer(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def torchrun(*extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "speckle_lab.cli", "train", str(run), "--model", "unet",
               "--model-arg", "base_channels=4", "--image-size", "16", "--device", "cpu", "--quiet",
               "--out", str(out), *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)

    first = torchrun("--epochs", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.count("epoch 2/2") == 1  # only rank 0 prints
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and state["epoch"] == 2
    assert json.loads((out / "history.json").read_text())["epoch"] == [1, 2]

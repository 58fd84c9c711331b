"""bench/bench_train.py's time-to-SSIM run: it reports when a target is reached, says so when it is
not, and --record writes what it printed with the machine and the command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_dataset import write_tiny_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_train():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("bench") / "tiny.h5")


def time_to(bench_train, run, capsys, target, max_epochs=2):
    bench_train.bench_time_to_ssim(str(run), "unet", 16, max_epochs, "cpu", batch=4, lr=1e-3,
                                   loss="bce", max_minutes=5, target=target)
    return capsys.readouterr().out


def test_a_target_met_after_the_first_epoch_stops_the_run_there(bench_train, tiny_run, capsys):
    out = time_to(bench_train, tiny_run, capsys, target=-1.0)
    assert "- training pairs: SSIM -1.0 after epoch 1," in out
    assert "- test faces: SSIM -1.0 after epoch 1," in out
    assert "\n    2 |" not in out  # stopped after epoch 1


def test_an_unreachable_target_is_reported_with_the_best_ssim(bench_train, tiny_run, capsys):
    out = time_to(bench_train, tiny_run, capsys, target=1.5)
    assert "\n    1 |" in out and "\n    2 |" in out
    assert "- test faces: SSIM 1.5 not reached in 2 epochs" in out and "best 0." in out


def test_record_writes_the_output_machine_and_command(tiny_run, tmp_path):
    record = tmp_path / "RESULTS-tts.md"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_train.py"), "--skip-models", "--skip-loading",
           "--dataset", str(tiny_run), "--model", "unet", "--size", "16", "--max-epochs", "1",
           "--batch-size", "4", "--device", "cpu", "--record", str(record)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = record.read_text()
    assert text.startswith("## RESULTS-tts (recorded by `bench_train.py --record`")
    assert "--max-epochs 1" in text and "- CPU: " in text
    assert "test faces: SSIM 0.9" in text and text.count("```") == 2

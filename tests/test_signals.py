"""SIGTERM and SIGHUP are handled as Ctrl-C (issue #12, "Signals and a dropped SSH session").

systemd, docker, ``timeout`` and SLURM stop a process with SIGTERM; a dropped SSH session sends
SIGHUP. A real ``speckle-lab acquire`` process gets the signal mid-run: it must finish the current
pair, flush, write the end of its log, print one line and exit 128 + the signal (143, 129; Ctrl-C
stays 130); ``--resume`` then completes the run to the same bytes as a run that never stopped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speckle_core.signals import GracefulStop, Terminated, exit_code_for, terminate_as_interrupt
from speckle_lab.cli import run
from tests._run_files import (
    acquire_argv,
    assert_done_rows_hold_the_reference_frames,
    assert_same_run,
    uninterrupted_run,
)

ROOT = Path(__file__).resolve().parents[1]
# 24 pairs, >= 3.6 s: settle_ms is a real wait after each SLM flip, so the run outlasts a busy
# machine's scheduling delays between the test noticing the first block and sending the signal
SLOW_PROTOCOL = {
    "name": "signal test",
    "faces": {"source": "embedded", "count": 8, "holdout": 2, "target_px": [32, 32]},
    "slm": {"settle_ms": 150},
    "camera": {"roi_px": [64, 64], "exposure_us": "auto"},
    "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train"},
               {"diffuser": "1500", "distances_mm": [40], "role": "validation"}],
    "dark": {"frames": 2},
    "stability": {"reference_every": 10, "on_drift": "log"},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return uninterrupted_run(tmp_path_factory.mktemp("signals"), "slow", SLOW_PROTOCOL)


def start_acquire(protocol: Path, rig: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPECKLE_LAB_CRASH_LOG": str(out.with_suffix(".crash"))}
    return subprocess.Popen([sys.executable, "-m", "speckle_lab.cli", *acquire_argv(protocol, rig, out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_pairs(out: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until the first block's pairs are being captured (its exposure is logged just before them),
    and one sync interval (1 s) later, so some pairs are marked done."""
    log = out.with_suffix(".log")
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end and proc.poll() is None:
        if out.exists() and log.exists() and "block 1: auto exposure" in log.read_text(errors="replace"):
            time.sleep(1.5)
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not start capturing (exit {proc.poll()})")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_mid_run_stops_cleanly_and_resume_completes_the_same_bytes(reference, tmp_path, signum):
    protocol, rig, whole = reference
    out = tmp_path / "run.h5"
    proc = start_acquire(protocol, rig, out)
    wait_for_pairs(out, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert proc.returncode == exit_code_for(signum), err
    assert lines and "Traceback" not in err and not out.with_suffix(".crash").exists(), err
    assert str(out) in lines[-1] and signal.Signals(signum).name in lines[-1] + lines[0], err
    done = assert_done_rows_hold_the_reference_frames(whole, out)
    assert done > 0, "nothing was captured before the signal"
    log = out.with_suffix(".log").read_text()
    assert "run ended" in log, log[-500:]
    assert not (tmp_path / "run.h5.lock").exists()
    assert run(acquire_argv(protocol, rig, out, resume=True)) == 0
    assert_same_run(whole, out)


# -- the mechanism, in-process ---------------------------------------------------------------------

def test_sigterm_raises_terminated_so_finally_blocks_run():
    cleaned = []
    with pytest.raises(Terminated) as info, terminate_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler raises here
        finally:
            cleaned.append(True)
    assert info.value.signum == signal.SIGTERM and cleaned == [True]


def test_graceful_stop_sets_the_event_first_and_raises_on_the_second_signal():
    with GracefulStop() as stop:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)
        assert stop.event.is_set() and stop.exit_code == 129
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGHUP) is not stop._handler


def test_the_cli_exits_143_when_a_command_gets_sigterm(monkeypatch, capsys):
    import speckle_lab.cli as cli

    def slow_main(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)

    monkeypatch.setattr(cli.cli, "main", slow_main)
    assert run(["inspect", "x.h5"]) == 143
    assert "SIGTERM" in capsys.readouterr().err


def test_sigterm_inside_a_command_still_exits_143_through_clicks_abort(monkeypatch, capsys):
    """click turns a KeyboardInterrupt raised inside a command into Abort; the exit code must still
    be the signal's (train raises Terminated after its clean stop)."""
    import click

    import speckle_lab.cli as cli

    def command_main(*args, **kwargs):
        try:
            raise Terminated(signal.SIGTERM)
        except KeyboardInterrupt as e:
            raise click.exceptions.Abort() from e

    monkeypatch.setattr(cli.cli, "main", command_main)
    assert run(["train", "x.h5"]) == 143
    assert "SIGTERM" in capsys.readouterr().err

"""Device faults injected on the simulated rig at set rates (issue 8): retried and logged, never lost.

The rig file's ``[sim.faults]`` table sets the probability of a fault per operation: camera timeouts,
dropped frames, stage errors, filter-wheel errors and display loss. Faults come from their own seeded
generator, and every frame's noise is seeded by the frame's identity, so a retried capture yields
the same bytes as a first-time one.

- At moderate rates with enough retries, the run completes every pair, its log records each
  device's retries, and the data equal a fault-free run's.
- A device that keeps failing stops the run cleanly: exit 1, one line on stderr naming the device,
  a file that plain h5py opens, and every pair finished before the stop kept, with the same bytes as
  the fault-free run.
"""

from __future__ import annotations

import h5py
import pytest

from speckle_lab.cli import run
from tests._run_files import (
    TINY_SIM_RIG,
    acquire_argv,
    assert_done_rows_hold_the_reference_frames,
    assert_same_run,
    uninterrupted_run,
    write_toml,
)

FAULT_PROTOCOL = {
    "name": "fault test",
    "faces": {"source": "embedded", "count": 12, "holdout": 1, "target_px": [32, 32]},
    "camera": {"roi_px": [64, 64], "exposure_us": "auto"},
    "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train"},
               {"diffuser": "600", "distances_mm": [0], "role": "train"},
               {"diffuser": "1500", "distances_mm": [0, 20], "role": "train"},
               {"diffuser": "1500", "distances_mm": [40], "role": "validation"}],
    "dark": {"frames": 2},
    "stability": {"reference_every": 5, "on_drift": "log"},
    "retry": {"max_retries": 100, "backoff_s": 0.0, "backoff_max_s": 0.0},  # no sleeps in tests
}

MODERATE = {"camera_timeout": 0.1, "dropped_frame": 0.1, "display_error": 0.1, "stage_error": 0.3,
            "wheel_error": 0.3}
# One device at a time, at a rate that makes it fail at least once (moves and wheel turns are few)
EACH = [("camera_timeout", 0.3, "camera: no frame within"), ("dropped_frame", 0.3, "camera: frame dropped"),
        ("display_error", 0.3, "slm: display window lost"), ("stage_error", 0.9, "stage: motor stalled"),
        ("wheel_error", 0.9, "wheel: did not reach")]


def faulty_rig(rates: dict) -> dict:
    return {**TINY_SIM_RIG, "sim": {**TINY_SIM_RIG["sim"], "faults": rates}}


@pytest.fixture(scope="module")
def fault_free(tmp_path_factory):
    protocol, _, whole = uninterrupted_run(tmp_path_factory.mktemp("faults"), "faults", FAULT_PROTOCOL)
    return protocol, whole


@pytest.mark.parametrize(("fault", "rate", "logged"), EACH, ids=[e[0] for e in EACH])
def test_faults_of_one_device_are_retried_logged_and_leave_the_data_unchanged(
        fault_free, tmp_path, capsys, fault, rate, logged):
    protocol, whole = fault_free
    rig = write_toml(tmp_path / "faulty.toml", faulty_rig({fault: rate}))
    out = tmp_path / "faulty.h5"
    capsys.readouterr()
    assert run(acquire_argv(protocol, rig, out)) == 0, capsys.readouterr().err
    log = out.with_suffix(".log").read_text(encoding="utf-8")
    assert any(logged in line and "retrying" in line for line in log.splitlines()), log[-2000:]
    assert_same_run(whole, out)


def test_moderate_faults_of_every_device_at_once_leave_the_data_unchanged(fault_free, tmp_path, capsys):
    protocol, whole = fault_free
    rig = write_toml(tmp_path / "faulty.toml", faulty_rig(MODERATE))
    out = tmp_path / "faulty.h5"
    capsys.readouterr()
    assert run(acquire_argv(protocol, rig, out)) == 0, capsys.readouterr().err
    assert out.with_suffix(".log").read_text(encoding="utf-8").count("retrying") >= 10
    assert_same_run(whole, out)


STUBBORN = [  # (fault, rate, retries, the device the message must name); each stops after some pairs
    ("camera_timeout", 0.05, 0, "camera"),
    ("dropped_frame", 0.05, 0, "camera"),
    ("display_error", 0.05, 0, "slm"),
    ("stage_error", 1.0, 3, "stage"),  # the first block is at 0 mm, where the stage starts: kept
    ("wheel_error", 1.0, 3, "wheel"),  # the first blocks use the wheel's first diffuser: kept
]


@pytest.mark.parametrize(("fault", "rate", "retries", "device"), STUBBORN, ids=[s[0] for s in STUBBORN])
def test_a_device_that_keeps_failing_stops_cleanly_naming_it_and_keeps_finished_pairs(
        fault_free, tmp_path, capsys, fault, rate, retries, device):
    _, whole = fault_free
    protocol = write_toml(tmp_path / "p.toml",
                          {**FAULT_PROTOCOL, "retry": {**FAULT_PROTOCOL["retry"], "max_retries": retries}})
    rig = write_toml(tmp_path / "faulty.toml", faulty_rig({fault: rate}))
    out = tmp_path / "stopped.h5"
    capsys.readouterr()
    code = run(acquire_argv(protocol, rig, out))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert err[0].startswith(f"{out}:") and f"{device}:" in err[0] and "--resume" in err[0], err[0]
    done = assert_done_rows_hold_the_reference_frames(whole, out)  # plain h5py, same bytes
    with h5py.File(out, "r") as f:
        total = len(f["pairs/done"])
    assert 0 < done < total, "pairs finished before the stop are kept, and the stop came early"
    log = out.with_suffix(".log").read_text(encoding="utf-8")
    assert log.count("retrying") >= retries
    ended = [line for line in log.splitlines() if "run ended (exit 1)" in line]
    assert ended and f"{device}:" in ended[-1]


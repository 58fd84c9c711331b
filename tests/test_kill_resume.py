"""SIGKILL at random moments, then ``--resume``: the final file equals a run that never stopped (issue 8).

A real ``speckle-lab acquire`` process on the simulated rig is killed with SIGKILL:

- twice during file creation, at fixed points (halfway through laying out the file, and after the
  layout is written but before it is renamed into place), through a hook in the child process;
- once in the middle of a sync (metadata written, ``done`` flags not yet), through the same hook;
- at least five times at random moments of the acquisition (seeded delays after the run starts).

After every kill the run file, if it exists, opens with plain h5py and every row marked done holds
exactly the frame of the uninterrupted run. The final file equals the uninterrupted one byte for
byte in ``/objects`` and ``/pairs`` (timestamps and the camera's own frame counter aside: they
record when, not what), and in the block exposures, dark frames and stability references.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tomli_w

from speckle_lab.cli import run

# The camera's clock and frame counter restart with each process: they say when, not what.
WHEN_NOT_WHAT = {"pairs/timestamp", "pairs/device_timestamp", "pairs/frame_index"}
ALSO_COMPARED = ("blocks/exposure_us", "blocks/done", "dark/frame", "dark/done", "stability/frame",
                 "stability/correlation", "stability/done")

KILL_PROTOCOL = {
    "name": "kill test",
    "faces": {"source": "embedded", "count": 60, "holdout": 2, "target_px": [32, 32]},
    "camera": {"roi_px": [128, 128], "exposure_us": "auto"},
    "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train", "repeats": 2},
               {"diffuser": "1500", "distances_mm": [40], "role": "validation"}],
    "dark": {"frames": 2},
    # 32×32-pixel objects give weak speckle: the monitor logs instead of stopping the run
    "stability": {"reference_every": 10, "on_drift": "log"},
}

TINY_SIM_RIG = {"name": "tiny simulated rig", "slm": {"kind": "sim", "window_px": [32, 32]},
                "camera": {"kind": "sim"}, "stage": {"kind": "sim"}, "changer": {"kind": "sim"},
                "sim": {"seed": 0}}


def write_toml(path: Path, doc: dict) -> Path:
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    return path


def acquire_argv(protocol: Path, rig: Path, out: Path, resume: bool = False) -> list[str]:
    return ["acquire", str(protocol), "--rig", str(rig), "--out", str(out), "--unattended", "--no-progress",
            *(["--resume"] if resume else [])]


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a run file, read whole with plain h5py (fails if any byte is unreadable)."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset)
                     else None)
        for key in f.attrs:
            out[f"@{key}"] = f.attrs[key]
    return out


def compared_names(data: dict) -> list[str]:
    return sorted(n for n in data if (n.startswith(("objects/", "pairs/")) or n in ALSO_COMPARED)
                  and n not in WHEN_NOT_WHAT)


def assert_same_run(expected: Path, got: Path) -> None:
    """Byte for byte in /objects and /pairs (and exposures, darks, references), timestamps aside."""
    a, b = read_all(expected), read_all(got)
    names = compared_names(a)
    assert names == compared_names(b)
    assert "pairs/speckle" in names and "objects/pattern" in names
    for name in names:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        if x.dtype == object:
            assert x.tolist() == y.tolist(), name
        else:
            assert x.tobytes() == y.tobytes(), f"{name} differs"


def assert_done_rows_hold_the_reference_frames(reference: Path, path: Path) -> int:
    """An intermediate file: opens with plain h5py, and every done row holds the right frame."""
    data = read_all(path)
    ref = read_all(reference)
    done = data["pairs/done"].astype(bool)
    assert np.array_equal(data["pairs/speckle"][done], ref["pairs/speckle"][done])
    assert np.array_equal(data["pairs/exposure_us"][done], ref["pairs/exposure_us"][done])
    for name in ("blocks", "dark", "stability"):
        flags = data[f"{name}/done"].astype(bool)
        field = {"blocks": "exposure_us", "dark": "frame", "stability": "frame"}[name]
        assert np.array_equal(data[f"{name}/{field}"][flags], ref[f"{name}/{field}"][flags]), name
    return int(done.sum())


# The child: the real CLI, with an optional hook that SIGKILLs it at a chosen point.
CHILD = r"""
import os, signal, sys

import h5py

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def on_call(owner, name, n):
    original, calls = getattr(owner, name), [0]
    def hooked(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            die()
        return original(*args, **kwargs)
    setattr(owner, name, hooked)

where = os.environ.get("KILL_AT", "")
if where.startswith("create_dataset:"):  # halfway through laying out the file
    on_call(h5py.Group, "create_dataset", int(where.split(":")[1]))
elif where == "link":  # the layout is complete and fsync'ed, not yet renamed into place
    os.link = die
elif where.startswith("fsync:"):  # at the n-th fsync of a run: metadata written, done flags not yet
    on_call(os, "fsync", int(where.split(":")[1]))

from speckle_lab.cli import main
main(sys.argv[1:])
"""


def start_child(argv: list[str], kill_at: str = "") -> subprocess.Popen:
    env = {**os.environ, "KILL_AT": kill_at, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parent.parent)


def run_starts(log: Path) -> int:
    return log.read_text(encoding="utf-8").count(" INFO acquire ") if log.exists() else 0


@pytest.fixture(scope="module")
def kill_case(tmp_path_factory):
    """The protocol and rig files, and an uninterrupted run of them."""
    d = tmp_path_factory.mktemp("kill")
    protocol = write_toml(d / "kill.toml", KILL_PROTOCOL)
    rig = write_toml(d / "rig.toml", TINY_SIM_RIG)
    whole = d / "whole.h5"
    assert run(acquire_argv(protocol, rig, whole)) == 0
    return protocol, rig, whole


def kill_at_random_until_done(protocol: Path, rig: Path, whole: Path, part: Path, rng: random.Random,
                              sync_kill: bool) -> tuple[int, bool]:
    """Resumes ``part`` again and again, SIGKILLing each process a random time after its run
    starts (one kill lands in an fsync instead, if ``sync_kill``); returns (random kills, sync killed).

    After every kill the file must open with plain h5py, its done rows must hold the uninterrupted
    run's frames, and no done flag may go back to False.
    """
    log = part.with_suffix(".log")
    done_counts = [0]
    random_kills, synced = 0, False
    for _ in range(16):
        in_sync = sync_kill and not synced
        starts = run_starts(log)
        child = start_child(acquire_argv(protocol, rig, part, resume=part.exists()),
                            kill_at="fsync:6" if in_sync else "")
        if not in_sync:
            deadline = time.monotonic() + 60
            while run_starts(log) == starts and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)  # until this process has begun its run
            time.sleep(rng.uniform(0.0, 2.5))  # the engine syncs done flags every 1 s
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
        code = child.wait(60)
        if code == 0:
            return random_kills, synced
        assert code == -signal.SIGKILL, child.stderr.read().decode()
        synced = synced or in_sync
        random_kills += not in_sync
        done_counts.append(assert_done_rows_hold_the_reference_frames(whole, part))
        assert done_counts[-1] >= done_counts[-2], "a done flag went back to False"
    raise AssertionError(f"the run did not finish after 16 attempts ({done_counts})")


def test_sigkill_during_creation_random_moments_and_syncs_then_resume_equals_an_uninterrupted_run(
        kill_case, tmp_path):
    protocol, rig, whole = kill_case
    part = tmp_path / "part.h5"
    creating = tmp_path / "part.h5.creating"

    # 1. killed halfway through laying out the file: no run file, only the temporary one
    child = start_child(acquire_argv(protocol, rig, part), kill_at="create_dataset:12")
    assert child.wait(60) == -signal.SIGKILL, child.stderr.read().decode()
    assert not part.exists() and creating.exists()

    # 2. resumed, and killed after the layout is complete but before the rename
    child = start_child(acquire_argv(protocol, rig, part, resume=True), kill_at="link")
    assert child.wait(60) == -signal.SIGKILL, child.stderr.read().decode()
    assert not part.exists() and creating.exists()

    # 3. resumed, and killed at random moments (seeded) and once in a sync, until it completes
    rng = random.Random(20231)
    kills, synced = kill_at_random_until_done(protocol, rig, whole, part, rng, sync_kill=True)
    assert synced
    assert not creating.exists()
    assert_same_run(whole, part)

    # 4. fewer than 5 random kills landed before it completed (a fast machine): more runs, same checks
    n = 0
    while kills < 5:
        n += 1
        more, _ = kill_at_random_until_done(protocol, rig, whole, tmp_path / f"more{n}.h5", rng, False)
        assert_same_run(whole, tmp_path / f"more{n}.h5")
        kills += more
        assert n < 4, f"only {kills} random kills landed in {n + 1} runs"


def test_a_complete_run_resumed_again_is_left_unchanged(kill_case, tmp_path):
    protocol, rig, whole = kill_case
    copy = tmp_path / "copy.h5"
    copy.write_bytes(whole.read_bytes())
    before = read_all(copy)
    assert run(acquire_argv(protocol, rig, copy, resume=True)) == 0
    after = read_all(copy)
    for name in before:
        x, y = np.asarray(before[name]), np.asarray(after[name])
        assert x.tolist() == y.tolist() if x.dtype == object else x.tobytes() == y.tobytes(), name

"""SIGKILL at random moments, then ``--resume``: the final file equals a run that never stopped (issue 8).

A real ``speckle-lab acquire`` process on the simulated rig is killed with SIGKILL:

- twice during file creation, at fixed points (halfway through laying out the file, and after the
  layout is written but before it is renamed into place), through a hook in the child process;
- once as the ``done`` flags are written (frames and metadata already fsync'ed), by the same hook;
- at least five times at random moments of the acquisition (seeded delays after the run starts).

Each run is its own process, forked from a warm helper (``Launcher``) so that it starts in
milliseconds instead of re-importing numpy, h5py and speckle-lab each time.

After every kill the run file, if it exists, opens with plain h5py and every row marked done holds
exactly the frame of the uninterrupted run. The final file equals the uninterrupted one byte for
byte in ``/objects`` and ``/pairs`` (timestamps and the camera's own frame counter aside: they
record when, not what), and in the block exposures, dark frames and stability references.
"""

from __future__ import annotations

import json
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

from speckle_lab.cli import run
from tests._run_files import (
    TINY_SIM_RIG,
    acquire_argv,
    assert_done_rows_hold_the_reference_frames,
    assert_same_run,
    read_all,
    write_toml,
)

KILL_PROTOCOL = {
    "name": "kill test",
    "faces": {"source": "embedded", "count": 60, "holdout": 2, "target_px": [32, 32]},
    # settle_ms: a real wait after each SLM flip (as on the real rig), so that the run lasts ~3 s and
    # outlives the engine's 1 s sync interval; the simulated SLM settles at once, so frames are unchanged
    "slm": {"settle_ms": 15},
    "camera": {"roi_px": [128, 128], "exposure_us": "auto"},
    "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train"},
               {"diffuser": "1500", "distances_mm": [40], "role": "validation"}],
    "dark": {"frames": 2},
    # the monitor only logs: a drift stop would end the run early, which is not what is tested here
    "stability": {"reference_every": 10, "on_drift": "log"},
}


# The launcher: a helper process that imports speckle-lab once, then forks one child per run. Each
# child is a separate process running the real CLI (``speckle_lab.cli.run``), optionally with a hook
# that SIGKILLs it at a chosen point; the test SIGKILLs the others at random moments. Forking from a
# warm, single-threaded helper saves each run ~1 s of imports.
LAUNCHER = r"""
import importlib, json, os, signal, sys

import h5py

for name in ("numpy", "speckle_lab.cli", "acquisition.acquire", "acquisition.engine", "acquisition.plan",
             "acquisition.faces", "speckle_core.runfile", "hardware.sim.devices", "hardware.sim.optics",
             "hardware.drivers.manual", "protocols", "skimage.data", "rich.progress"):
    try:
        importlib.import_module(name)
    except ImportError:
        pass

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def nth_call(owner, name, n, only=lambda *args: True):
    original, calls = getattr(owner, name), [0]
    def hooked(*args, **kwargs):
        if only(*args):
            calls[0] += 1
            if calls[0] == n:
                die()
        return original(*args, **kwargs)
    setattr(owner, name, hooked)

def install(where):
    if where.startswith("create_dataset:"):  # halfway through laying out the file
        nth_call(h5py.Group, "create_dataset", int(where.split(":")[1]))
    elif where == "link":  # the layout is complete and fsync'ed, not yet renamed into place
        os.link = die
    elif where.startswith("done-write:"):  # the n-th write to /pairs/done: frames and metadata synced
        nth_call(h5py.Dataset, "__setitem__", int(where.split(":")[1]),
                 only=lambda ds, *args: ds.name == "/pairs/done")

def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "start":
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                null = os.open(os.devnull, os.O_RDWR)
                err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(null, 0), os.dup2(null, 1), os.dup2(err, 2)
                os.environ["SPECKLE_LAB_CRASH_LOG"] = req["crash_log"]
                install(req["kill_at"])
                from speckle_lab.cli import run
                code = run(req["argv"])
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(code)
        reply({"pid": pid})
    else:  # "poll" or "wait"
        done, status = os.waitpid(req["pid"], os.WNOHANG if req["op"] == "poll" else 0)
        reply({"code": os.waitstatus_to_exitcode(status) if done else None})
"""


class Launcher:
    """Starts ``speckle-lab`` runs as forked processes of a warm helper; see LAUNCHER."""

    def __init__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        self._p = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, env=env,
                                   cwd=Path(__file__).resolve().parent.parent)

    def _ask(self, **req) -> dict:
        self._p.stdin.write(json.dumps(req) + "\n")
        self._p.stdin.flush()
        return json.loads(self._p.stdout.readline())

    def start(self, argv: list[str], kill_at: str = "") -> Child:
        out = Path(argv[argv.index("--out") + 1])
        stderr = out.with_suffix(".stderr")
        pid = self._ask(op="start", argv=argv, kill_at=kill_at, stderr=str(stderr),
                        crash_log=str(out.with_suffix(".crash.log")))["pid"]
        return Child(self, pid, stderr)

    def close(self) -> None:
        self._p.stdin.close()
        self._p.wait(30)


class Child:
    def __init__(self, launcher: Launcher, pid: int, stderr: Path):
        self._launcher, self.pid, self.stderr, self.code = launcher, pid, stderr, None

    def poll(self) -> int | None:
        if self.code is None:
            self.code = self._launcher._ask(op="poll", pid=self.pid)["code"]
        return self.code

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)  # a zombie (already exited) ignores it

    def wait(self) -> int:
        if self.code is None:
            self.code = self._launcher._ask(op="wait", pid=self.pid)["code"]
        return self.code

    def errors(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""


@pytest.fixture(scope="module")
def launcher():
    la = Launcher()
    yield la
    la.close()


def _done(path: Path) -> int:
    if not path.exists():
        return 0
    with h5py.File(path, "r") as f:
        return int(f["pairs/done"][...].sum())


def run_starts(log: Path) -> int:
    return log.read_text(encoding="utf-8").count(" INFO acquire ") if log.exists() else 0


@pytest.fixture(scope="module")
def kill_case(tmp_path_factory, launcher):
    """The protocol and rig files, an uninterrupted run of them, and how long its run took (from
    the log's first line to the process's exit: the window in which the kills land)."""
    d = tmp_path_factory.mktemp("kill")
    protocol = write_toml(d / "kill.toml", KILL_PROTOCOL)
    rig = write_toml(d / "rig.toml", TINY_SIM_RIG)
    whole = d / "whole.h5"
    child = launcher.start(acquire_argv(protocol, rig, whole))
    while run_starts(whole.with_suffix(".log")) == 0 and child.poll() is None:
        time.sleep(0.002)
    t0 = time.monotonic()
    while child.poll() is None:
        time.sleep(0.002)
    assert child.wait() == 0, child.errors()
    return protocol, rig, whole, time.monotonic() - t0


def kill_at_random_until_done(launcher: Launcher, case: tuple, part: Path, rng: random.Random,
                              sync_kill: bool, trace: list, already: int = 0,
                              target: int = 5) -> tuple[int, bool]:
    """Resumes ``part`` again and again, SIGKILLing each process at a random moment after its run
    starts (one kill lands as the first done flags are written instead, if ``sync_kill``), until
    ``already`` + its random kills reach ``target``; then lets it finish. Returns (random kills, sync killed).
    ``trace`` gets (what, delay s, exit code, pairs done) per attempt.

    After every kill the file must open with plain h5py, its done rows must hold the uninterrupted
    run's frames, and no done flag may go back to False.
    """
    protocol, rig, whole, run_s = case
    log = part.with_suffix(".log")
    n_pairs = len(read_all(whole)["pairs/done"])
    done_counts = [_done(part)]
    random_kills, synced = 0, False
    for _ in range(target + 15):
        if random_kills + already >= target and not (sync_kill and not synced):
            break  # enough kills: the rest of the run goes uninterrupted
        in_sync = sync_kill and not synced
        starts = run_starts(log)
        child = launcher.start(acquire_argv(protocol, rig, part, resume=part.exists()),
                               kill_at="done-write:2" if in_sync else "")
        delay = float("nan")
        if not in_sync:
            deadline = time.monotonic() + 60
            while run_starts(log) == starts and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)  # until this process has begun its run
            # a moment within the time the rest of the run takes
            delay = rng.uniform(0.0, run_s * (1.0 - done_counts[-1] / n_pairs) + 0.01)
            time.sleep(delay)
            if child.poll() is None:
                child.kill()
        code = child.wait()
        trace.append(("sync" if in_sync else "random", round(delay, 3), code, _done(part)))
        if code == 0:
            return random_kills, synced
        assert code == -signal.SIGKILL, child.errors()
        synced = synced or in_sync
        random_kills += not in_sync
        done_counts.append(assert_done_rows_hold_the_reference_frames(whole, part))
        assert done_counts[-1] >= done_counts[-2], "a done flag went back to False"
    else:
        raise AssertionError(f"the run did not finish after {target + 15} attempts ({trace})")
    child = launcher.start(acquire_argv(protocol, rig, part, resume=True))
    assert child.wait() == 0, child.errors()
    trace.append(("none", 0.0, 0, _done(part)))
    return random_kills, synced


def kill_during_creation(launcher: Launcher, case: tuple, part: Path) -> None:
    """Kills a fresh run halfway through laying out its file, then its resume just before the rename."""
    protocol, rig, _, _ = case
    creating = part.with_name(part.name + ".creating")
    child = launcher.start(acquire_argv(protocol, rig, part), kill_at="create_dataset:12")
    assert child.wait() == -signal.SIGKILL, child.errors()
    assert not part.exists() and creating.exists()  # no run file: nothing half-made is visible
    child = launcher.start(acquire_argv(protocol, rig, part, resume=True), kill_at="link")
    assert child.wait() == -signal.SIGKILL, child.errors()
    assert not part.exists() and creating.exists()


def test_sigkill_during_creation_random_moments_and_syncs_then_resume_equals_an_uninterrupted_run(
        kill_case, launcher, tmp_path):
    part = tmp_path / "part.h5"
    kill_during_creation(launcher, kill_case, part)
    rng = random.Random(20231)
    trace: list = []
    kills, synced = kill_at_random_until_done(launcher, kill_case, part, rng, True, trace)
    assert synced
    assert not part.with_name("part.h5.creating").exists()
    assert_same_run(kill_case[2], part)
    n = 0
    while kills < 5:  # a fast machine finished before 5 random kills landed: another run, same checks
        n += 1
        assert n <= 4, f"only {kills} random kills landed in {n} runs: {trace}"
        more, _ = kill_at_random_until_done(launcher, kill_case, tmp_path / f"more{n}.h5", rng, False, trace,
                                            already=kills)
        assert_same_run(kill_case[2], tmp_path / f"more{n}.h5")
        kills += more
    print("attempts (what, delay s, exit code, pairs done):", trace)


def test_a_complete_run_resumed_again_is_left_unchanged(kill_case, tmp_path):
    protocol, rig, whole, _ = kill_case
    copy = tmp_path / "copy.h5"
    copy.write_bytes(whole.read_bytes())
    before = read_all(copy)
    assert run(acquire_argv(protocol, rig, copy, resume=True)) == 0
    after = read_all(copy)
    for name in before:
        x, y = np.asarray(before[name]), np.asarray(after[name])
        assert x.tolist() == y.tolist() if x.dtype == object else x.tobytes() == y.tobytes(), name

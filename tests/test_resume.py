"""Resuming: every pair done exactly once, and the same bytes as a run that never stopped."""

from __future__ import annotations

import os
import random
import signal
import time

import h5py
import numpy as np

from acquisition.engine import EngineSettings
from tests._fake_rig import fake_rig
from tests._run_factory import tiny_layout
from tests.test_engine import SETTINGS, run_engine

COMPARED = ("objects/pattern", "objects/name", "objects/split", "pairs/speckle", "pairs/object_index",
            "pairs/diffuser", "pairs/distance_mm", "pairs/exposure_us", "pairs/done", "blocks/exposure_us",
            "dark/frame", "stability/frame", "stability/correlation")


def same_content(a, b):
    with h5py.File(a) as fa, h5py.File(b) as fb:
        for name in COMPARED:
            x, y = fa[name][...], fb[name][...]
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_stopped_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    run_engine(tmp_path / "whole.h5", fake_rig())
    part = tmp_path / "part.h5"
    for stop in (2, 5, 9):  # stop three times, a fresh rig (process) each time
        assert run_engine(part, fake_rig(), stop_after=stop).exit_code == 130
    assert run_engine(part, fake_rig()).exit_code == 0
    same_content(tmp_path / "whole.h5", part)


def test_resume_after_a_device_failure_captures_each_pair_once(tmp_path):
    part = tmp_path / "part.h5"
    assert run_engine(part, fake_rig(fail_always_from=30)).exit_code == 1
    with h5py.File(part) as f:
        before = f["pairs/done"][...].copy()
        stamps = f["pairs/timestamp"][...].copy()
    rig = fake_rig()
    assert run_engine(part, rig).exit_code == 0
    pair_keys = rig.camera.pair_captures
    assert pair_keys == 12 - before.sum()  # only the missing pairs were captured
    with h5py.File(part) as f:
        assert f["pairs/done"][...].all()
        assert np.array_equal(f["pairs/timestamp"][...][before], stamps[before])  # finished pairs untouched


def test_resume_reuses_stored_exposures_instead_of_deciding_again(tmp_path):
    part = tmp_path / "part.h5"
    run_engine(part, fake_rig(), stop_after=2)
    rig = fake_rig()
    run_engine(part, rig)
    probed = {(k[1], k[2]) for k in rig.camera.keys if k[0] == "exposure"}
    assert probed == {("120", 20.0), ("220", 0.0), ("220", 20.0)}  # not block 0 ("120", 0.0): stored


def test_resume_of_a_complete_run_captures_nothing(tmp_path):
    path = tmp_path / "r.h5"
    run_engine(path, fake_rig())
    rig = fake_rig()
    out = run_engine(path, rig, SETTINGS)
    assert out.exit_code == 0 and rig.camera.captures == 0


def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path):
    layout = tiny_layout(n_objects=30, frame_shape=(48, 48), pattern_shape=(8, 8))
    settings = EngineSettings(**{**SETTINGS.__dict__, "roi_px": (48, 48)})
    run_engine(tmp_path / "whole.h5", fake_rig(), settings, layout)
    part = tmp_path / "part.h5"
    rng = random.Random(8)
    kills = 0
    for _ in range(40):
        pid = os.fork()  # a fresh "process" runs (or resumes) the run; the parent shoots it
        if pid == 0:
            try:
                os._exit(run_engine(part, fake_rig(), settings, layout).exit_code)
            finally:
                os._exit(3)
        time.sleep(rng.random() * 0.1)
        finished, status = os.waitpid(pid, os.WNOHANG)
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            kills += 1
        elif os.waitstatus_to_exitcode(status) == 0:
            break
    assert kills >= 5
    final = run_engine(part, fake_rig(), settings, layout)  # whatever is left, if anything
    assert final.exit_code == 0, final.message
    same_content(tmp_path / "whole.h5", part)

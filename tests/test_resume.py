"""Resuming: every pair done exactly once, and the same bytes as a run that never stopped."""

from __future__ import annotations

import os
import random
import signal
import time

import h5py
import numpy as np
import pytest

from tests._fake_rig import fake_rig
from tests._run_factory import tiny_layout
from tests._tiny_sim import tiny_files
from tests.test_engine import SETTINGS, run_engine


def _datasets(f, group):
    names = []
    f[group].visititems(lambda n, o: names.append(f"{group}/{n}") if isinstance(o, h5py.Dataset) else None)
    return names


def same_content(a, b):
    """Every dataset of /objects, /pairs (timestamps aside), /blocks, /dark and /stability equal."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names = [n for g in ("objects", "pairs", "blocks", "dark", "stability") for n in _datasets(fa, g)
                 if not n.endswith("timestamp")]
        assert set(names) == {n for g in ("objects", "pairs", "blocks", "dark", "stability")
                              for n in _datasets(fb, g) if not n.endswith("timestamp")}
        assert "pairs/speckle" in names and "pairs/done" in names
        for name in names:
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
    settings = SETTINGS.replace(camera={"roi_px": (48, 48)})
    t0 = time.perf_counter()
    run_engine(tmp_path / "whole.h5", fake_rig(), settings, layout)
    whole_s = time.perf_counter() - t0
    part = tmp_path / "part.h5"
    rng = random.Random(8)
    kills = 0
    for _ in range(12):
        pid = os.fork()  # a fresh "process" runs (or resumes) the run; the parent shoots it
        if pid == 0:
            try:
                os._exit(run_engine(part, fake_rig(), settings, layout).exit_code)
            finally:
                os._exit(3)
        time.sleep(whole_s * rng.uniform(0.02, 0.25))
        finished, status = os.waitpid(pid, os.WNOHANG)
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            kills += 1
        elif os.waitstatus_to_exitcode(status) == 0:
            break
    assert kills >= 4
    final = run_engine(part, fake_rig(), settings, layout)  # whatever is left, if anything
    assert final.exit_code == 0, final.message
    same_content(tmp_path / "whole.h5", part)


def test_resume_refuses_a_different_protocol(tmp_path):
    from acquisition.acquire import check_output
    from speckle_core.errors import UserError
    from speckle_core.runfile import create_run

    path = tmp_path / "r.h5"
    create_run(path, tiny_layout(protocol_text="a = 1\n", rig_text="r = 1\n"))
    with pytest.raises(UserError, match="different protocol than p.toml"):
        check_output(path, True, "a = 2\n", "r = 1\n", "p.toml", "rig.toml")
    with pytest.raises(UserError, match="different rig than rig.toml"):
        check_output(path, True, "a = 1\n", "r = 2\n", "p.toml", "rig.toml")
    assert check_output(path, True, "a = 1\n", "r = 1\n", "p.toml", "rig.toml") is False


def test_an_existing_run_without_resume_is_an_error(tmp_path):
    from acquisition.acquire import check_output
    from speckle_core.errors import UserError

    path = tmp_path / "r.h5"
    path.write_bytes(b"x")
    with pytest.raises(UserError, match="already exists; add --resume"):
        check_output(path, False, "", "", "p.toml", "rig.toml")


def test_resume_with_no_file_yet_starts_afresh(tmp_path):
    from acquisition.acquire import check_output

    path = tmp_path / "r.h5"
    assert check_output(path, True, "", "", "p.toml", "rig.toml") is True
    (tmp_path / "r.h5.creating").write_bytes(b"half")  # killed while the file was laid out
    assert check_output(path, True, "", "", "p.toml", "rig.toml") is True


# -- end to end on the simulated rig, through the CLI -----------------------------------------------

def _acquire(protocol, rig, out, *extra):
    from speckle_lab.cli import run

    return run(["acquire", str(protocol), "--rig", str(rig), "--out", str(out), "--no-progress", *extra])


def test_cli_run_on_the_simulated_rig_completes_with_a_log(tmp_path):
    protocol, rig = tiny_files(tmp_path)
    assert _acquire(protocol, rig, tmp_path / "r.h5") == 0
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["pairs/done"][...].all() and f.attrs["protocol"] == protocol.read_text()
    assert "run ended (exit 0)" in (tmp_path / "r.log").read_text()


def test_cli_refuses_to_overwrite_and_to_resume_another_protocol(tmp_path, capsys):
    protocol, rig = tiny_files(tmp_path)
    assert _acquire(protocol, rig, tmp_path / "r.h5") == 0
    capsys.readouterr()
    assert _acquire(protocol, rig, tmp_path / "r.h5") == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    other, _ = tiny_files(tmp_path / "other", count=3)
    assert _acquire(other, rig, tmp_path / "r.h5", "--resume") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "different protocol" in err


def _fork_acquire(protocol, rig, out, *extra) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(_acquire(protocol, rig, out, *extra))
        finally:
            os._exit(99)
    return pid


def test_cli_sigint_finishes_the_pair_exits_130_and_resume_is_byte_identical(tmp_path):
    protocol, rig = tiny_files(tmp_path, count=30)
    assert _acquire(protocol, rig, tmp_path / "whole.h5") == 0
    part = tmp_path / "part.h5"
    pid = _fork_acquire(protocol, rig, part)
    while not (part.exists() and (tmp_path / "part.log").exists()
               and "reference 1 " in (tmp_path / "part.log").read_text()):
        time.sleep(0.005)
    os.kill(pid, signal.SIGINT)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130
    with h5py.File(part) as f:
        assert 0 < f["pairs/done"][...].sum() < 90
    assert _acquire(protocol, rig, part, "--resume") == 0
    same_content(tmp_path / "whole.h5", part)


def test_cli_sigkill_at_random_moments_then_resume_is_byte_identical(tmp_path):
    protocol, rig = tiny_files(tmp_path, count=12)
    assert _acquire(protocol, rig, tmp_path / "whole.h5") == 0
    t0 = time.perf_counter()  # a second run, warm (caches filled) like the forked ones: its duration
    assert _acquire(protocol, rig, tmp_path / "again.h5") == 0
    whole_s = time.perf_counter() - t0
    same_content(tmp_path / "whole.h5", tmp_path / "again.h5")
    part = tmp_path / "part.h5"
    rng = random.Random(3)
    kills = 0
    for _ in range(20):  # `--resume` from the start: with no file yet it starts a new run
        pid = _fork_acquire(protocol, rig, part, "--resume")
        time.sleep(whole_s * rng.uniform(0.05, 0.35))  # anywhere: planning, layout, capture, writes
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        kills += 1
    assert kills >= 2
    assert _acquire(protocol, rig, part, "--resume") == 0
    same_content(tmp_path / "whole.h5", part)


def test_resume_of_a_tampered_file_is_a_one_line_error(tmp_path):
    from acquisition.acquire import check_output
    from speckle_core.errors import UserError
    from speckle_core.runfile import create_run

    path = tmp_path / "r.h5"
    create_run(path, tiny_layout(protocol_text="a\n", rig_text="r\n"))
    with h5py.File(path, "r+") as f:
        f["pairs/block"][0] = 99
    with pytest.raises(UserError, match="/pairs/block points outside /blocks") as e:
        check_output(path, True, "a\n", "r\n", "p.toml", "rig.toml")
    assert "\n" not in str(e.value)
    with h5py.File(path, "r+") as f:
        del f["dark/done"]
    with pytest.raises(UserError, match="cannot be resumed"):
        check_output(path, True, "a\n", "r\n", "p.toml", "rig.toml")

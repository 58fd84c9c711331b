"""Two processes, one output (issue #12): the second is refused with one line naming the first.

speckle-lab takes a lock of its own beside every output (``OUT.lock``: ``fcntl.flock``, holding the
holder's PID and host), so this holds with HDF5's locking off (``HDF5_USE_FILE_LOCKING=FALSE``,
the usual NFS setting). ``acquire --resume`` also refuses a run file another program (a notebook)
holds open, found through /proc whatever HDF5's locking does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speckle_core.errors import UserError
from speckle_core.fileio import lock_path_for, other_openers, output_lock
from speckle_lab.cli import run
from tests._run_files import TINY_SIM_RIG, acquire_argv, write_toml

ROOT = Path(__file__).resolve().parents[1]
HOLD = r"""
import sys, time
from speckle_core.fileio import output_lock
lock = output_lock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(60)
"""
NOTEBOOK = r"""
import sys, time, h5py
f = h5py.File(sys.argv[1], "r")
print("open", flush=True)
time.sleep(60)
"""
TINY = {"name": "lock test", "faces": {"source": "embedded", "count": 4, "holdout": 1, "target_px": [32, 32]},
        "camera": {"roi_px": [32, 32], "exposure_us": 500.0},
        "blocks": [{"diffuser": "120", "distances_mm": [0], "role": "train"}],
        "stability": {"on_drift": "log"}}


def child(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    proc.stdout.readline()  # "held" / "open": the child is ready
    return proc


@pytest.fixture
def files(tmp_path):
    return write_toml(tmp_path / "p.toml", TINY), write_toml(tmp_path / "rig.toml", TINY_SIM_RIG)


@pytest.mark.parametrize("hdf5_locking", ["TRUE", "FALSE"])
def test_a_second_acquire_on_the_same_out_is_refused_naming_the_first(files, tmp_path, capsys, monkeypatch,
                                                                        hdf5_locking):
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", hdf5_locking)
    protocol, rig = files
    out = tmp_path / "run.h5"
    holder = child(HOLD, str(out), env={"HDF5_USE_FILE_LOCKING": hdf5_locking})
    try:
        code = run(acquire_argv(protocol, rig, out))
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"PID {holder.pid} on {socket.gethostname()}" in err[0] and str(out) in err[0], err
    assert not out.exists()


def test_a_dead_holder_releases_the_lock(files, tmp_path):
    protocol, rig = files
    out = tmp_path / "run.h5"
    holder = child(HOLD, str(out))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path_for(out).exists()  # left behind by the killed holder, but not held
    assert run(acquire_argv(protocol, rig, out)) == 0
    assert not lock_path_for(out).exists()


@pytest.mark.parametrize("hdf5_locking", ["TRUE", "FALSE"])
def test_resume_while_a_notebook_holds_the_file_is_one_line(files, tmp_path, capsys, monkeypatch,
                                                             hdf5_locking):
    protocol, rig = files
    out = tmp_path / "run.h5"
    assert run(acquire_argv(protocol, rig, out)) == 0
    before = out.read_bytes()
    monkeypatch.setenv("HDF5_USE_FILE_LOCKING", hdf5_locking)
    notebook = child(NOTEBOOK, str(out), env={"HDF5_USE_FILE_LOCKING": hdf5_locking})
    try:
        capsys.readouterr()
        code = run(acquire_argv(protocol, rig, out, resume=True))
    finally:
        notebook.kill()
        notebook.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "open in another program" in err[0] and f"PID {notebook.pid}" in err[0], err
    assert out.read_bytes() == before


def test_other_openers_sees_a_process_holding_the_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    reader = child("import sys, time; f = open(sys.argv[1], 'rb'); print('open', flush=True); time.sleep(60)",
                   str(path))
    try:
        assert any(f"PID {reader.pid}" in h for h in other_openers(path))
    finally:
        reader.kill()
        reader.wait()
    assert other_openers(path) == []


def test_the_lock_is_reentrant_in_one_thread_but_not_across_threads(tmp_path):
    import threading

    out = tmp_path / "o.h5"
    outer = output_lock(out).acquire()
    inner = output_lock(out).acquire()  # what RunWriter does inside run_acquisition
    refused = []

    def other_thread():
        try:
            output_lock(out).acquire()
        except UserError as e:
            refused.append(str(e))

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert refused and "in use" in refused[0]
    inner.release()
    assert lock_path_for(out).exists()  # still held by the outer level
    outer.release()
    assert not lock_path_for(out).exists()


def test_out_named_like_the_runs_own_log_is_refused(files, tmp_path, capsys):
    protocol, rig = files
    code = run(acquire_argv(protocol, rig, tmp_path / "run.log"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "log" in err[0], err
    assert not (tmp_path / "run.log").exists()


def test_out_that_is_the_protocol_is_refused(files, capsys):
    protocol, rig = files
    before = protocol.read_bytes()
    code = run(acquire_argv(protocol, rig, protocol, resume=True))
    assert code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert protocol.read_bytes() == before


def test_a_log_that_would_land_on_a_run_file_is_refused(files, tmp_path, capsys):
    """--out data.hdf5 puts the log at data.log; if data.log holds another run, it is never appended to."""
    protocol, rig = files
    other = tmp_path / "other.h5"
    assert run(acquire_argv(protocol, rig, other)) == 0
    disguised = tmp_path / "data.log"
    disguised.write_bytes(other.read_bytes())
    code = run(acquire_argv(protocol, rig, tmp_path / "data.hdf5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "run file" in err[-1], err
    assert disguised.read_bytes() == other.read_bytes()


def test_out_inside_a_file_is_one_line(files, capsys):
    protocol, rig = files
    code = run(acquire_argv(protocol, rig, protocol / "run.h5"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is a file" in err[0], err


def test_a_second_process_waits_for_nothing_it_is_told_at_once(tmp_path):
    out = tmp_path / "o.h5"
    holder = child(HOLD, str(out))
    try:
        t0 = time.monotonic()
        with pytest.raises(UserError, match=f"PID {holder.pid}"):
            output_lock(out).acquire()
        assert time.monotonic() - t0 < 1.0
    finally:
        holder.kill()
        holder.wait()

"""A full disk (issues 8 and 12): the error is one clear line, the file stays valid, and
``--resume`` completes the run once space is freed — with the same bytes as a run that never stopped.

Ways the disk fails:

- a real small filesystem (an 8 MiB tmpfs) that another program fills during the run (a ballast
  file written after the 30th frame, deleted to free space); needs root (mount), as CI has —
  skipped otherwise;
- a frame write refused with ENOSPC at the h5py boundary (``Dataset.__setitem__``);
- ``fsync`` failing with ENOSPC (what NFS and delayed-allocation filesystems report late);
- a disk nearly full before the run starts (0 to 1 MiB left): refused before the layout, one line
  naming the disk as full, needed vs free; and, with that check bypassed, HDF5 meeting ENOSPC while
  it lays the file out (which crashed h5py with SIGSEGV at 24-40 KiB left): one line, no
  ``.creating`` left. These run in a child process, so a crash would show as a signal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from speckle_core.runfile import RunWriter
from speckle_lab.cli import run
from tests._run_files import (
    acquire_argv,
    assert_done_rows_hold_the_reference_frames,
    assert_same_run,
    uninterrupted_run,
)

DISK_PROTOCOL = {  # 120 frames of 128×128 uint8 (16 KiB each): ~2 MiB of frames
    "name": "disk test",
    "faces": {"source": "embedded", "count": 40, "holdout": 2, "target_px": [32, 32]},
    "camera": {"roi_px": [128, 128], "exposure_us": "auto"},
    "blocks": [{"diffuser": "120", "distances_mm": [0, 20], "role": "train"},
               {"diffuser": "1500", "distances_mm": [40], "role": "validation"}],
    "dark": {"frames": 2},
    "stability": {"reference_every": 10, "on_drift": "log"},
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return uninterrupted_run(tmp_path_factory.mktemp("disk"), "disk", DISK_PROTOCOL)


def stopped_for_lack_of_space(code: int, err: str, out: Path, whole: Path) -> int:
    """The checks after a write failure: exit 1, one line naming the file and the way on, no
    traceback, and a file that plain h5py opens with every done row holding the right frame."""
    lines = err.strip().splitlines()
    assert code == 1, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(out) in lines[0] and "--resume" in lines[0], lines[0]
    done = assert_done_rows_hold_the_reference_frames(whole, out)
    with h5py.File(out, "r") as f:
        assert done < len(f["pairs/done"])
    return done


def assert_says_the_disk_is_full(line: str, out: Path) -> None:
    """A clear line: it says the disk is full (not only an HDF5 error code) and names the file once
    (then, after "to continue, run:", the exact --resume command, which names it again)."""
    assert re.search(r"no space left|disk is full|ENOSPC", line, re.IGNORECASE), line
    message = line.split("; to continue, run:")[0]
    assert message.count(str(out)) == 1, line


def test_a_frame_write_refused_with_enospc_stops_cleanly_and_resume_completes(
        uninterrupted, tmp_path, capsys, monkeypatch):
    protocol, rig, whole = uninterrupted
    out = tmp_path / "run.h5"
    original, writes = h5py.Dataset.__setitem__, [0]

    def setitem(ds, key, value):
        if ds.name == "/pairs/speckle":
            writes[0] += 1
            if writes[0] > 50:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(ds, key, value)

    monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
    capsys.readouterr()
    code = run(acquire_argv(protocol, rig, out))
    monkeypatch.undo()  # space freed
    err = capsys.readouterr().err
    stopped_for_lack_of_space(code, err, out, whole)
    assert run(acquire_argv(protocol, rig, out, resume=True)) == 0
    assert_same_run(whole, out)
    assert_says_the_disk_is_full(err.strip(), out)


def test_fsync_failing_with_enospc_stops_cleanly_and_resume_completes(
        uninterrupted, tmp_path, capsys, monkeypatch):
    protocol, rig, whole = uninterrupted
    out = tmp_path / "run.h5"
    original, calls = os.fsync, [0]

    def fsync(fd):
        calls[0] += 1
        if calls[0] > 8:  # past the file's creation and the first block's records
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    capsys.readouterr()
    code = run(acquire_argv(protocol, rig, out))
    monkeypatch.undo()
    err = capsys.readouterr().err
    stopped_for_lack_of_space(code, err, out, whole)
    assert run(acquire_argv(protocol, rig, out, resume=True)) == 0
    assert_same_run(whole, out)
    assert_says_the_disk_is_full(err.strip(), out)


@pytest.fixture
def small_filesystem(tmp_path):
    """An empty 8 MiB tmpfs at tmp_path/mnt."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(folder: Path, leave_bytes: int = 0, name: str = "ballast") -> Path:
    """Another program fills the disk: a ballast file leaving ``leave_bytes`` free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    ballast = folder / name
    with open(ballast, "wb") as fh, contextlib.suppress(OSError):
        fh.write(b"\1" * max(free - leave_bytes, 0))
    return ballast


def test_a_really_full_filesystem_stops_cleanly_and_resume_completes_once_space_is_freed(
        uninterrupted, small_filesystem, capsys, monkeypatch):
    protocol, rig, whole = uninterrupted
    out = small_filesystem / "run.h5"
    original, frames = RunWriter.write_pair, [0]

    def write_pair(self, *args, **kwargs):
        frames[0] += 1
        if frames[0] == 30:  # the disk fills up while the run is under way
            fill(small_filesystem)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(RunWriter, "write_pair", write_pair)
    capsys.readouterr()
    code = run(acquire_argv(protocol, rig, out))
    monkeypatch.undo()
    err = capsys.readouterr().err
    done = stopped_for_lack_of_space(code, err, out, whole)
    (small_filesystem / "ballast").unlink()  # space freed
    assert run(acquire_argv(protocol, rig, out, resume=True)) == 0
    assert_same_run(whole, out)
    print(f"full disk: stopped with {done} pairs done; resumed to the end")
    assert_says_the_disk_is_full(err.strip(), out)


# -- a disk nearly full before the run starts ---------------------------------------------------------

LAYOUT_CHILD = r"""
import sys
import acquisition.acquire as acquire
from speckle_lab.cli import main
if sys.argv[1] == "bypass":  # as if the disk filled between the free-space check and the layout
    acquire.check_room = lambda *args, **kwargs: None
main(sys.argv[2:])
"""
ROOT = Path(__file__).resolve().parents[1]


def acquire_in_child(mode: str, argv: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", LAYOUT_CHILD, mode, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("left_kib", [0, 24, 32, 40, 256, 1024])
def test_a_nearly_full_disk_is_refused_before_the_layout(uninterrupted, small_filesystem, left_kib):
    protocol, rig, _ = uninterrupted
    out = small_filesystem / "run.h5"
    fill(small_filesystem, left_kib * 1024)
    res = acquire_in_child("check", acquire_argv(protocol, rig, out))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "disk full" in lines[0] and "needs" in lines[0] and "free" in lines[0], lines
    assert sorted(p.name for p in small_filesystem.iterdir()) == ["ballast"]


@pytest.mark.parametrize("left_kib", [0, 8, 24, 32, 40, 64])
def test_enospc_while_hdf5_lays_the_file_out_is_one_line_and_leaves_no_creating_file(
        uninterrupted, small_filesystem, left_kib):
    protocol, rig, _ = uninterrupted
    out = small_filesystem / "run.h5"
    fill(small_filesystem, left_kib * 1024)
    res = acquire_in_child("bypass", acquire_argv(protocol, rig, out))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr  # a crash would be negative (a signal) or 1
    assert len(lines) == 1 and "disk is full" in lines[0] and str(out) in lines[0], res.stderr
    assert not (small_filesystem / "run.h5.creating").exists() and not out.exists()

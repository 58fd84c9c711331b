"""Reading a run while it is written: inspect, the contact sheet and plain h5py open a file whose
writer is still running, every row they find done is complete, and a second writer is kept out."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speckle_core.runfile import RunWriter, create_run
from tests._run_factory import frame_for, tiny_layout

ROOT = Path(__file__).resolve().parents[1]


def in_another_process(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def writing(tmp_path):
    """A run whose writer is open, with the first 4 pairs done."""
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout(n_objects=4))
    w = RunWriter(path, sync_interval_s=0.0)
    for row in range(4):
        w.write_pair(row, frame_for(row), 100.0, 1.0)
    yield path, w
    w.close()


def test_plain_h5py_reads_a_run_while_it_is_written(writing):
    path, _ = writing
    r = in_another_process(f"""
        import h5py
        with h5py.File({str(path)!r}, "r") as f:
            print(int(f["pairs/done"][...].sum()))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4"


def test_inspect_and_its_contact_sheet_work_while_the_run_is_written(writing):
    path, _ = writing
    r = in_another_process(f"""
        from speckle_lab.cli import run
        raise SystemExit(run(["inspect", {str(path)!r}]))
    """)
    assert r.returncode == 0, r.stderr
    assert "4/16 done" in r.stdout.replace("pairs: ", "")
    assert path.with_name("run.contact.png").stat().st_size > 0


def test_a_second_writer_in_another_process_is_refused_naming_the_first(writing):
    path, _ = writing
    r = in_another_process(f"""
        from speckle_core.runfile import RunWriter
        RunWriter({str(path)!r})
    """)
    assert r.returncode != 0 and "in use by another speckle-lab process" in r.stderr
    assert f"PID {os.getpid()}" in r.stderr


def test_another_program_cannot_open_the_run_for_writing_while_it_is_written(writing):
    path, _ = writing
    r = in_another_process(f"""
        import h5py
        h5py.File({str(path)!r}, "r+")
    """)
    assert r.returncode != 0 and "unable to lock file" in r.stderr


def test_a_reader_in_the_writers_own_process_opens_the_run(writing):
    import h5py

    path, _ = writing
    with h5py.File(path, "r") as f:
        assert int(f["pairs/done"][...].sum()) == 4


def test_the_lock_is_released_when_the_writer_closes(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    RunWriter(path).close()
    RunWriter(path).close()  # no "in use": the first released it
    assert not path.with_name("run.h5.lock").exists()


def test_every_row_a_reader_finds_done_holds_its_whole_frame(tmp_path):
    """A reader in another process polls while the writer writes; each done row must hold exactly its
    frame (the writer makes frame and metadata durable before the done flag)."""
    path = tmp_path / "run.h5"
    layout = tiny_layout(n_objects=40, frame_shape=(64, 64))
    create_run(path, layout)
    n = len(layout.pair_block)
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time, numpy as np, h5py
        from tests._run_factory import frame_for
        checked, last = 0, 0
        deadline = time.monotonic() + 60
        while last < {n} and time.monotonic() < deadline:
            with h5py.File({str(path)!r}, "r") as f:
                done = f["pairs/done"][...]
                for row in np.flatnonzero(done):
                    assert (f["pairs/speckle"][row] == frame_for(int(row), (64, 64))).all(), row
                    assert f["pairs/exposure_us"][row] == 100.0, row
                    checked += 1
                last = int(done.sum())
        print(checked, last)
    """)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w = RunWriter(path, sync_interval_s=0.0)
    for row in range(n):
        w.write_pair(row, frame_for(row, (64, 64)), 100.0, float(row))
    w.close()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    checked, last = (int(x) for x in out.split())
    assert last == n and checked >= n


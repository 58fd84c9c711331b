"""The run file: the contract of docs/design.md, atomic creation, and survival of SIGKILL at any moment."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from speckle_core.errors import UserError
from speckle_core.runfile import FORMAT, RunWriter, create_run, open_run, read_strings
from tests._run_factory import frame_for, tiny_layout

ROOT = Path(__file__).resolve().parents[1]


def test_new_file_follows_the_design_contract(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout(protocol_text="p = 1\n", rig_text="r = 2\n"))
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT
        assert f.attrs["protocol"] == "p = 1\n" and f.attrs["rig"] == "r = 2\n"
        assert "T" in f.attrs["created"]
        assert json.loads(f.attrs["software"]) == {"test": "1"}
        assert f["objects/pattern"].shape == (3, 8, 8) and f["objects/pattern"].dtype == np.uint8
        assert list(f["objects/name"].asstr()[...]) == ["face_0", "face_1", "face_2"]
        assert list(f["objects/split"].asstr()[...]) == ["train", "train", "holdout"]
        m = 12
        assert f["pairs/speckle"].shape == (m, 16, 16) and f["pairs/speckle"].dtype == np.uint8
        assert f["pairs/speckle"].chunks == (1, 16, 16)
        assert f["pairs/object_index"].dtype == np.int32
        assert list(f["pairs/diffuser"].asstr()[...]) == ["120"] * 6 + ["220"] * 6
        assert f["pairs/distance_mm"].dtype == np.float32
        assert list(f["pairs/distance_mm"][:6]) == [0, 0, 0, 20, 20, 20]
        assert f["pairs/exposure_us"].dtype == np.float32
        assert f["pairs/timestamp"].dtype == np.float64
        assert f["pairs/done"].dtype == bool and not f["pairs/done"][...].any()
        assert f.attrs["skipped_faces"] == 1


def test_every_dataset_is_allocated_at_creation(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    with h5py.File(path, "r") as f:
        sizes = {}
        f.visititems(lambda name, obj: sizes.update({name: obj.id.get_storage_size()})
                     if isinstance(obj, h5py.Dataset) and obj.size else None)
        for name, size in sizes.items():
            assert size > 0, name


def test_existing_file_is_never_overwritten(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"captured data")
    with pytest.raises(UserError, match="already exists"):
        create_run(path, tiny_layout())
    assert path.read_bytes() == b"captured data"


def test_stale_temporary_from_a_killed_creation_is_replaced(tmp_path):
    (tmp_path / "run.h5.creating").write_bytes(b"half a file")
    create_run(tmp_path / "run.h5", tiny_layout())
    assert not (tmp_path / "run.h5.creating").exists()
    open_run(tmp_path / "run.h5").close()


def test_done_is_set_only_by_sync_after_the_frame(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    w = RunWriter(path, sync_interval_s=3600)
    w.write_pair(4, frame_for(4), exposure_us=250.0, timestamp_s=1.5e9, saturated_fraction=0.01,
                 frame_index=7)
    with h5py.File(path, "r") as f:  # the frame is in the file, its flag not yet
        assert np.array_equal(f["pairs/speckle"][4], frame_for(4))
        assert not f["pairs/done"][4]
    w.sync()
    with h5py.File(path, "r") as f:
        assert list(np.flatnonzero(f["pairs/done"][...])) == [4]
        assert f["pairs/exposure_us"][4] == 250.0 and f["capture/frame_index"][4] == 7
    w.close()


def test_uint16_frames_round_trip(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout(dtype=np.uint16))
    with RunWriterClosing(path) as w:
        w.write_pair(0, frame_for(0, dtype=np.uint16), 10.0, 1.0)
    with open_run(path) as f:
        assert np.array_equal(f["pairs/speckle"][0], frame_for(0, dtype=np.uint16))


def test_block_dark_and_reference_records_are_stored(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    with RunWriterClosing(path) as w:
        w.write_block_exposure(1, 321.0, 0.002)
        w.write_dark(1, np.full((16, 16), 3.5))
        w.write_reference(2, frame_for(99), 0.97, 2.0)
    with open_run(path) as f:
        assert f["blocks/exposure_us"][1] == 321.0
        assert list(f["blocks/done"][...]) == [False, True, False, False]
        assert f["dark/frame"][1].mean() == 3.5 and f["dark/done"][1]
        assert f["stability/correlation"][2] == pytest.approx(0.97) and f["stability/done"][2]
        assert read_strings(f["objects/skipped"]) == ["bad.jpg: truncated"]


def test_foreign_hdf5_is_refused_with_one_line(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(UserError, match="not a speckle-lab dataset") as e:
        open_run(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_truncated_file_is_refused_with_one_line(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(UserError) as e:
        open_run(path).close()
    assert "\n" not in str(e.value) and str(path) in str(e.value)


class RunWriterClosing:
    def __init__(self, path):
        self.w = RunWriter(path)

    def __enter__(self):
        return self.w

    def __exit__(self, *exc):
        self.w.close()


def _fill_runs_forever(out: Path) -> None:
    """Creates runs and fills them, forever (the forked child the kill test shoots)."""
    i = 0
    while True:
        path = out / f"run{i}.h5"
        create_run(path, tiny_layout(n_objects=40, frame_shape=(64, 64), pattern_shape=(64, 64)))
        w = RunWriter(path, sync_interval_s=0.0)
        for row in range(w.n_pairs):
            w.write_pair(row, frame_for(row, shape=(64, 64)), 100.0 + row, float(row))
        w.close()
        i += 1


def test_sigkill_at_random_moments_leaves_valid_files(tmp_path):
    rng = random.Random(5)
    for k in range(16):
        out = tmp_path / f"k{k}"
        out.mkdir()
        pid = os.fork()  # h5py is imported already, so the child starts writing at once
        if pid == 0:
            try:
                _fill_runs_forever(out)
            finally:
                os._exit(1)
        time.sleep(rng.random() * 0.25)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for path in sorted(out.glob("run*.h5")):
            with open_run(path) as f:  # plain h5py opens it; the contract holds
                done = f["pairs/done"][...]
                for row in np.flatnonzero(done):  # done implies the frame is complete on disk
                    assert np.array_equal(f["pairs/speckle"][row], frame_for(row, shape=(64, 64)))
                    assert f["pairs/exposure_us"][row] == 100.0 + row


def test_sigkill_during_creation_leaves_no_half_made_run(tmp_path):
    layout = tiny_layout(n_objects=400, frame_shape=(64, 64), pattern_shape=(64, 64))
    t0 = time.perf_counter()
    create_run(tmp_path / "timing.h5", layout)
    t_create = time.perf_counter() - t0
    half_made = 0
    for k in range(6):
        path = tmp_path / f"run{k}.h5"
        pid = os.fork()
        if pid == 0:
            try:
                create_run(path, layout)
            finally:
                os._exit(0)
        time.sleep(t_create * (0.05 + 0.1 * k))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if path.exists():
            open_run(path).close()  # finished before the kill: complete and valid
        elif path.with_name(path.name + ".creating").exists():  # killed mid-creation: no run file
            half_made += 1
            create_run(path, layout)  # a new run starts cleanly over the leftover
            open_run(path).close()
    assert half_made >= 1


def _raw_data_regions(path):
    regions = []
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.size:
                if obj.chunks:
                    for i in range(obj.id.get_num_chunks()):
                        info = obj.id.get_chunk_info(i)
                        regions.append((info.byte_offset, info.byte_offset + info.size))
                elif obj.id.get_offset() is not None:
                    regions.append((obj.id.get_offset(), obj.id.get_offset() + obj.id.get_storage_size()))
        f.visititems(visit)
    return regions


def test_writing_a_run_changes_only_raw_data_bytes_never_metadata(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    before = np.frombuffer(path.read_bytes(), np.uint8)
    w = RunWriter(path, sync_interval_s=0.0)
    w.write_pair(3, frame_for(3), 5.0, 6.0)
    w.write_block_exposure(1, 10.0, 0.0)
    w.write_dark(0, np.ones((16, 16)))
    w.write_reference(0, frame_for(9), 1.0, 1.0)
    w.close()
    after = np.frombuffer(path.read_bytes(), np.uint8)
    assert len(after) == len(before)  # nothing allocated after creation
    regions = _raw_data_regions(path)
    changed = np.flatnonzero(before != after)
    outside = [int(b) for b in changed if not any(a <= b < e for a, e in regions)]
    assert len(changed) > 256 and set(outside) <= {20, 21, 22, 23}  # only the superblock status word

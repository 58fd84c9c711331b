"""Dark frames as often as the physics needs them: one capture per exposure setting, reused by every
block at that exposure (also across a resume), through the rig's dark source."""

from __future__ import annotations

import h5py
import numpy as np

from tests._fake_rig import FakeOperator, fake_rig
from tests.test_engine import SETTINGS, run_engine

FIXED = SETTINGS.replace(camera={"exposure_us": 77.0})


class CountingDark:
    """A motorised dark source (a shutter) that counts its moves."""

    manual = False
    label = "a test shutter"

    def __init__(self, camera):
        self.camera, self.moves = camera, []

    def block(self):
        assert not self.camera.keys or self.camera.keys[-1][0] != "dark"  # before the darks
        self.moves.append("block")

    def unblock(self):
        assert self.camera.keys[-1][0] == "dark"  # after them
        self.moves.append("unblock")

    def close(self):
        pass


def dark_captures(rig) -> int:
    return sum(1 for k in rig.camera.keys if k and k[0] == "dark")


def test_a_fixed_exposure_takes_one_dark_for_every_block(tmp_path):
    rig = fake_rig()
    run_engine(tmp_path / "r.h5", rig, FIXED)
    with h5py.File(tmp_path / "r.h5") as f:
        darks, n = f["dark/frame"][...], int(f["dark"].attrs["n_frames"])
        assert f["dark/done"][...].all() and len(darks) == 4
    assert dark_captures(rig) == n  # one capture of n frames, not one per block
    assert all(np.array_equal(d, darks[0]) for d in darks)


def test_darks_per_block_when_the_protocol_asks(tmp_path):
    rig = fake_rig()
    run_engine(tmp_path / "r.h5", rig, FIXED.replace(dark={"per": "block"}))
    with h5py.File(tmp_path / "r.h5") as f:
        assert dark_captures(rig) == 4 * int(f["dark"].attrs["n_frames"])


def test_auto_exposure_gives_each_exposure_its_own_dark(tmp_path):
    rig = fake_rig()
    run_engine(tmp_path / "r.h5", rig)
    with h5py.File(tmp_path / "r.h5") as f:
        exposures = set(f["blocks/exposure_us"][...].tolist())
        assert dark_captures(rig) == len(exposures) * int(f["dark"].attrs["n_frames"])


def test_the_rigs_dark_source_blocks_once_per_dark_and_nobody_is_asked(tmp_path):
    op = FakeOperator(interactive=True)
    rig = fake_rig(operator=op)
    rig.dark = CountingDark(rig.camera)
    run_engine(tmp_path / "r.h5", rig, FIXED.replace(laser_blocked_for_dark=False))
    assert rig.dark.moves == ["block", "unblock"] and op.asked == []


def test_a_resumed_run_reuses_the_dark_in_its_file(tmp_path):
    first = fake_rig()
    out = run_engine(tmp_path / "r.h5", first, FIXED, stop_after=2)
    assert out.exit_code == 130 and dark_captures(first) > 0
    second = fake_rig()
    out = run_engine(tmp_path / "r.h5", second, FIXED)
    assert out.exit_code == 0 and dark_captures(second) == 0
    with h5py.File(tmp_path / "r.h5") as f:
        darks = f["dark/frame"][...]
        assert f["dark/done"][...].all() and all(np.array_equal(d, darks[0]) for d in darks)


def test_auto_exposure_aims_below_where_the_sensor_really_clips(tmp_path):
    """A colour sensor in mono8 clips (red channel) below 255: auto exposure uses its
    saturation_level, so the exposure is shorter than for a camera clipping at 255."""
    plain = fake_rig()
    run_engine(tmp_path / "a.h5", plain)
    clipping = fake_rig()
    clipping.camera.saturation_level = 96
    run_engine(tmp_path / "b.h5", clipping)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        ea, eb = a["blocks/exposure_us"][...], b["blocks/exposure_us"][...]
        assert (eb < 0.6 * ea).all(), (ea, eb)
        p99 = np.percentile(b["pairs/speckle"][...].reshape(len(b["pairs/speckle"]), -1), 99, axis=1)
        assert (p99 <= 96).all()

"""The Python API (``import speckle_lab as sl``): the CLI's steps as functions that raise, never exit."""

from __future__ import annotations

import numpy as np
import pytest

import speckle_lab as sl
from speckle_lab.cli import run as cli_run
from tests._run_files import TINY_SIM_RIG, write_toml
from tests.tiny_dataset import write_tiny_dataset


def test_import_is_lazy_and_lists_the_api():
    assert "open_rig" in dir(sl)
    with pytest.raises(AttributeError):
        sl.no_such_function  # noqa: B018


def test_open_rig_shows_a_binary_face_and_captures_a_frame(tmp_path):
    rig_file = write_toml(tmp_path / "rig.toml", TINY_SIM_RIG)
    with sl.open_rig(rig_file, roi_px=(24, 24), exposure_us=500) as rig:
        face = np.zeros(rig.slm.window_shape, dtype=bool)
        face[8:24, 8:24] = True
        rig.slm.show(face)
        shown = rig.slm.read_back()
        assert set(np.unique(shown)) == {0, rig.slm.gray_pi}
        frame = rig.camera.capture()
        assert frame.image.shape == (24, 24)
        assert frame.image.max() > 0


def test_slm_show_refuses_a_pattern_larger_than_the_window(tmp_path):
    rig_file = write_toml(tmp_path / "rig.toml", TINY_SIM_RIG)
    with sl.open_rig(rig_file) as rig, pytest.raises(ValueError, match="larger than the SLM window"):
        rig.slm.show(np.ones((64, 64), dtype=bool))


def test_camera_refuses_a_negative_exposure(tmp_path):
    rig_file = write_toml(tmp_path / "rig.toml", TINY_SIM_RIG)
    with sl.open_rig(rig_file) as rig, pytest.raises(ValueError, match="exposure_us"):
        rig.camera.capture(exposure_us=-1)


def test_open_run_selects_by_role_diffuser_and_distance(tmp_path):
    path = write_tiny_dataset(tmp_path / "run.h5", n_objects=4, diffusers=("120", "600"), n_not_done=0)
    with sl.open_run(path) as run:
        sel = run.select(role="validation", diffuser="600", distance_mm=40)
        frames, objects = sel.frames(), sel.objects()
        assert len(sel) == 4
        assert frames.shape == (4, *run.file["pairs/speckle"].shape[1:])
        assert objects.shape[0] == 4 and set(np.unique(objects)) <= {0, 1}
        assert set(sel.diffuser) == {"600"} and np.all(sel.distance_mm == 40)
        assert np.array_equal(frames[0], run.file["pairs/speckle"][sel.rows[0]])


def test_open_run_skips_rows_not_yet_captured(tmp_path):
    path = write_tiny_dataset(tmp_path / "run.h5", n_objects=3, n_not_done=2)
    with sl.open_run(path) as run:
        assert len(run.select()) == run.pairs_done == len(run.done) - 2
        assert len(run.select(done_only=False)) == len(run.done)


def test_api_and_cli_refuse_a_broken_run_with_the_same_line(tmp_path, capsys):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(sl.UserError) as e:
        sl.open_run(bad)
    assert cli_run(["inspect", str(bad)]) == 2
    assert str(e.value) in capsys.readouterr().err
    assert "\n" not in str(e.value)


def test_plan_is_printable_and_counts_the_pairs(tmp_path):
    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, count=3)
    plan = sl.plan(protocol, rig)
    assert plan.pairs > 0 and plan.duration_s > 0 and plan.disk_bytes > 0
    assert "estimated duration" in str(plan)


def test_plan_raises_user_error_not_system_exit(tmp_path):
    with pytest.raises(sl.UserError, match="nope.toml"):
        sl.plan(tmp_path / "nope.toml")


@pytest.mark.slow
def test_train_evaluate_predict_from_python(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5", n_objects=6)
    record = sl.train(run, tmp_path / "model", model="unet", model_args={"base_channels": 4},
                      image_size=16, epochs=1, batch_size=4, device="cpu")
    assert (tmp_path / "model" / "best.pt").is_file()
    assert isinstance(record, dict)
    metrics = sl.evaluate(tmp_path / "model" / "best.pt", run, tmp_path / "eval", device="cpu")
    assert "model" in metrics["models"]
    written = sl.predict(tmp_path / "model" / "best.pt", [f"{run}:0-1"], tmp_path / "pred", device="cpu")
    assert written and all(p.is_file() for p in written)


def test_train_refuses_a_bad_option_with_user_error(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5", n_objects=4)
    with pytest.raises(sl.UserError, match="lr"):
        sl.train(run, tmp_path / "model", lr=float("nan"))


def test_acquire_calls_on_pair_after_each_pair_and_returns_the_file(tmp_path):
    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, count=3)
    events = []
    out = sl.acquire(protocol, tmp_path / "run.h5", rig, on_pair=events.append)
    with sl.open_run(out) as run:
        assert run.pairs_done == len(run.done) == events[-1].total
    assert [e.done for e in events] == list(range(1, len(events) + 1))


def test_acquire_refuses_an_existing_file_with_the_cli_message(tmp_path, capsys):
    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, count=3)
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    with pytest.raises(sl.UserError) as e:
        sl.acquire(protocol, out, rig)
    assert cli_run(["acquire", str(protocol), "--rig", str(rig), "--out", str(out), "--unattended"]) == 2
    assert str(e.value) in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_a_callback_that_raises_is_dropped_and_the_run_completes(tmp_path):
    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, count=3)

    def broken(event):
        raise RuntimeError("a notebook's bug")

    out = sl.acquire(protocol, tmp_path / "run.h5", rig, on_pair=broken)
    with sl.open_run(out) as run:
        assert run.pairs_done == len(run.done)


REAL_RIG = """[slm]
kind = "exulus"
[camera]
kind = "uc480"
[stage]
kind = "kinesis"
serial = "27000001"
[changer]
kind = "fw102c"
port = "/dev/ttyUSB9"
"""


def test_a_missing_device_is_a_device_error_naming_it_in_api_and_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)  # no screen for the SLM: it cannot be opened
    monkeypatch.setenv("SPECKLE_LAB_CRASH_LOG", str(tmp_path / "crash.log"))
    rig = tmp_path / "rig.toml"
    rig.write_text(REAL_RIG)
    with pytest.raises(sl.DeviceError) as e:
        sl.open_rig(rig)
    assert e.value.device == "slm"
    protocol = tmp_path / "p.toml"
    from tests._tiny_sim import TINY_PROTOCOL

    text = TINY_PROTOCOL.format(count=3)  # at the real SLM's window, with no darks to block by hand
    protocol.write_text(text.replace("target_px = [64, 64]", "target_px = [800, 800]").replace("frames = 2",
                                                                                              "frames = 0"))
    code = cli_run(["acquire", str(protocol), "--rig", str(rig), "--out", str(tmp_path / "run.h5"),
                    "--unattended"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert str(e.value) in err
    assert not (tmp_path / "crash.log").exists()


def test_the_run_file_records_the_camera_settings_read_back(tmp_path):
    import json

    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, count=3)
    out = sl.acquire(protocol, tmp_path / "run.h5", rig)
    with sl.open_run(out) as run:
        settings = json.loads(run.file.attrs["camera_settings"])
    assert settings["gamma"] == 1.0 and settings["auto_gain"] is False
    assert settings["color_mode"] == "mono8" and 0 < settings["saturation_level"] <= 255


def test_a_run_without_roles_has_its_largest_distance_as_validation_as_in_training(tmp_path):
    from reconstruction.data import read_index

    path = write_tiny_dataset(tmp_path / "run.h5", n_objects=3, with_role=False, n_not_done=0)
    with sl.open_run(path) as run:
        validation = run.select(role="validation")
        assert set(validation.distance_mm) == {40.0}
        assert len(validation) == len(run.select(distance_mm=40))
    index = read_index(path)
    assert np.array_equal(np.sort(index.rows[index.role == "validation"]), validation.rows)

"""The engine on a fake rig: order, exposure, darks, references, retries, clean stops."""

from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from acquisition.acquire import preflight_devices, preflight_people
from acquisition.engine import Engine
from acquisition.settings import RunSettings
from protocols.schema import AutoExposureConfig, CameraConfig, DarkConfig, RetryConfig, StabilityConfig
from speckle_core.errors import UserError
from speckle_core.runfile import RunWriter, create_run
from tests._fake_rig import FakeOperator, FakeStage, fake_rig
from tests._run_factory import tiny_layout

SETTINGS = RunSettings(camera=CameraConfig(roi_px=(16, 16), auto_exposure=AutoExposureConfig(start_us=50.0)),
                       retry=RetryConfig(backoff_s=0.0), stability=StabilityConfig(threshold=0.5),
                       laser_blocked_for_dark=True, sync_interval_s=0.0)


def run_engine(path, rig, settings=SETTINGS, layout=None, stop_after=None):
    if not path.exists():
        create_run(path, layout or tiny_layout())
    eng = Engine(rig, RunWriter(path, settings.sync_interval_s), settings, sleep=lambda s: None)
    if stop_after is not None:
        eng.progress = lambda done, total, label: eng.stop_requested.set() if done >= stop_after else None
    return eng.run()


def test_complete_run_marks_every_pair_done(tmp_path):
    out = run_engine(tmp_path / "r.h5", fake_rig())
    assert out.exit_code == 0 and out.pairs_done == out.pairs_total == 12
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["pairs/done"][...].all()
        assert np.isfinite(f["pairs/exposure_us"][...]).all() and np.isfinite(f["pairs/timestamp"][...]).all()
        assert f["pairs/speckle"][...].reshape(12, -1).std(axis=1).min() > 0  # real frames, not zeros
        assert f["blocks/done"][...].all() and f["dark/done"][...].all() and f["stability/done"][...].all()


def test_each_diffuser_is_selected_once_and_each_distance_visited_once_per_diffuser(tmp_path):
    rig = fake_rig()
    run_engine(tmp_path / "r.h5", rig)
    assert rig.changer.selects == 2  # 120, 220
    assert rig.stage.moves == 4  # 0, 20 for each diffuser


def test_auto_exposure_keeps_saturation_under_the_limit(tmp_path):
    run_engine(tmp_path / "r.h5", fake_rig())
    auto = SETTINGS.camera.auto_exposure
    with h5py.File(tmp_path / "r.h5") as f:
        assert (f["blocks/saturated_fraction"][...] <= auto.max_saturated_fraction).all()
        assert (f["pairs/exposure_us"][...] != auto.start_us).all()  # it did adjust


def test_fixed_exposure_is_used_for_every_pair(tmp_path):
    settings = SETTINGS.replace(camera={"exposure_us": 77.0})
    run_engine(tmp_path / "r.h5", fake_rig(), settings)
    with h5py.File(tmp_path / "r.h5") as f:
        assert (f["pairs/exposure_us"][...] == 77.0).all()


def test_dark_frames_are_mean_of_laser_off_frames(tmp_path):
    run_engine(tmp_path / "r.h5", fake_rig())
    with h5py.File(tmp_path / "r.h5") as f:
        assert 1.0 < f["dark/frame"][...].mean() < 3.0  # the fake's offset is 2 counts


def test_real_rig_darks_ask_the_operator_to_block_the_laser(tmp_path):
    op = FakeOperator(interactive=True)
    run_engine(tmp_path / "r.h5", fake_rig(operator=op),
               SETTINGS.replace(laser_blocked_for_dark=False))
    assert sum("Block the laser" in a for a in op.asked) == 4


def test_camera_timeouts_are_retried_and_the_run_completes(tmp_path, caplog):
    out = run_engine(tmp_path / "r.h5", fake_rig(fail_calls={5, 6, 20}))
    assert out.exit_code == 0 and out.pairs_done == 12
    assert "retrying" in caplog.text


def test_persistent_camera_failure_stops_cleanly_naming_the_camera(tmp_path):
    out = run_engine(tmp_path / "r.h5", fake_rig(fail_always_from=40))
    assert out.exit_code == 1 and out.device == "camera"
    assert out.message.startswith("camera:") and "--resume" in out.message
    with h5py.File(tmp_path / "r.h5") as f:
        done = f["pairs/done"][...]
        assert 0 < done.sum() < 12 and done.sum() == out.pairs_done
        assert not done[int(np.argmin(done)):].any()  # finished pairs are a prefix, all kept


def test_stage_errors_are_retried(tmp_path):
    rig = fake_rig()
    rig.stage = FakeStage(fail_moves=2)
    assert run_engine(tmp_path / "r.h5", rig).exit_code == 0


def test_drift_stops_an_unattended_run_cleanly(tmp_path):
    out = run_engine(tmp_path / "r.h5", fake_rig(drift_after=2))
    assert out.exit_code == 1 and out.device == "stability" and "correlation" in out.message
    with h5py.File(tmp_path / "r.h5") as f:
        corr = f["stability/correlation"][...]
        assert np.nanmin(corr) < 0.5 and corr[0] == 1.0


def test_drift_asks_an_attended_operator_who_may_continue(tmp_path):
    op = FakeOperator(interactive=True, yes=True)
    out = run_engine(tmp_path / "r.h5", fake_rig(operator=op, drift_after=2),
                     SETTINGS.replace(laser_blocked_for_dark=True))
    assert out.exit_code == 0
    assert any("Continue anyway" in a for a in op.asked)


def test_stop_request_finishes_the_current_pair_and_exits_130(tmp_path):
    out = run_engine(tmp_path / "r.h5", fake_rig(), stop_after=5)
    assert out.exit_code == 130 and out.pairs_done == 5
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["pairs/done"][...].sum() == 5


def test_write_failure_stops_cleanly_and_keeps_the_file_valid(tmp_path, monkeypatch):
    calls = {"n": 0}
    orig = RunWriter.write_pair

    def failing(self, row, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return orig(self, row, *a, **k)

    monkeypatch.setattr(RunWriter, "write_pair", failing)
    out = run_engine(tmp_path / "r.h5", fake_rig())
    assert out.exit_code == 1 and out.device == "disk" and "No space left" in out.message
    with h5py.File(tmp_path / "r.h5") as f:
        assert f["pairs/done"][...].sum() == 3 == out.pairs_done


def test_a_frame_of_the_wrong_size_stops_the_run_naming_the_camera(tmp_path):
    rig = fake_rig()
    rig.camera.configure = lambda roi_px, exposure_us: 100.0  # ignores the ROI: stays 16x16
    out = run_engine(tmp_path / "r.h5", rig, SETTINGS.replace(camera={"roi_px": (8, 8)}),
                     tiny_layout(frame_shape=(8, 8)))
    assert out.exit_code == 1 and out.device == "camera" and "frame" in out.message


def test_drift_policy_log_warns_and_goes_on(tmp_path, caplog):
    out = run_engine(tmp_path / "r.h5", fake_rig(drift_after=2),
                     SETTINGS.replace(stability={"on_drift": "log"}))
    assert out.exit_code == 0 and "stability: reference correlation" in caplog.text


def test_drift_policy_stop_stops_even_an_attended_run(tmp_path):
    op = FakeOperator(interactive=True, yes=True)
    out = run_engine(tmp_path / "r.h5", fake_rig(operator=op, drift_after=2),
                     SETTINGS.replace(stability={"on_drift": "stop"}))
    assert out.exit_code == 1 and not op.asked


def _run_settings(**kw):
    base = RunSettings(camera=CameraConfig(roi_px=(16, 16)), target_px=(8, 8), dark=DarkConfig(frames=0))
    return base.replace(**kw)


def test_preflight_refuses_manual_steps_when_nobody_answers():
    from hardware.rig import RigConfig

    real = {"slm": {"kind": "exulus"}, "camera": {"kind": "uc480"}}
    manual = SimpleNamespace(config=RigConfig.model_validate(
        {**real, "stage": {"kind": "kinesis"}, "changer": {"kind": "manual"}}), path="rig.toml")
    with pytest.raises(UserError, match="needs a person .*swapping diffusers"):
        preflight_people(_run_settings(), manual, FakeOperator())
    with pytest.raises(UserError, match="dark frames"):
        preflight_people(_run_settings(dark={"frames": 4}), manual, FakeOperator())
    preflight_people(_run_settings(dark={"frames": 4}), manual, FakeOperator(interactive=True))


def test_preflight_refuses_the_wrong_stroke_mode_before_any_frame():
    rig = fake_rig()
    rig.slm._stroke = "half-wave"
    with pytest.raises(UserError, match="stroke mode is 'half-wave' but the protocol requires 'full-wave'"):
        preflight_devices(rig, _run_settings())
    assert rig.camera.captures == 0 and rig.slm.shows == 0
    preflight_devices(rig, _run_settings(slm={"stroke_mode": "any"}))


def test_sim_faults_are_retried_and_the_frames_are_unchanged(tmp_path):
    from speckle_lab.cli import run
    from tests._tiny_sim import tiny_files
    from tests.test_resume import same_content

    protocol, rig = tiny_files(tmp_path)
    (tmp_path / "faulty").mkdir()
    _, faulty_rig = tiny_files(tmp_path / "faulty", faults={
        "camera_timeout": 0.1, "dropped_frame": 0.05, "stage_error": 0.3, "wheel_error": 0.3,
        "display_error": 0.05})
    assert run(["acquire", str(protocol), "--rig", str(rig), "--out", str(tmp_path / "a.h5"),
                "--no-progress"]) == 0
    assert run(["acquire", str(protocol), "--rig", str(faulty_rig), "--out", str(tmp_path / "b.h5"),
                "--no-progress"]) == 0
    log = (tmp_path / "b.log").read_text()
    assert "retrying" in log and "camera" in log
    same_content(tmp_path / "a.h5", tmp_path / "b.h5")


def test_sim_camera_that_always_times_out_stops_the_run_naming_it(tmp_path, capsys):
    from speckle_lab.cli import run
    from tests._tiny_sim import tiny_files

    protocol, rig = tiny_files(tmp_path, faults={"camera_timeout": 1.0})
    assert run(["acquire", str(protocol), "--rig", str(rig), "--out", str(tmp_path / "r.h5"),
                "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"{tmp_path / 'r.h5'}: camera:") and "--resume" in err
    with h5py.File(tmp_path / "r.h5") as f:  # the file is laid out and valid, nothing done
        assert not f["pairs/done"][...].any()


def test_cli_refuses_an_unattended_run_that_needs_a_person_before_opening_devices(tmp_path, capsys):
    from speckle_lab.cli import run
    from tests._tiny_sim import tiny_files

    protocol, _ = tiny_files(tmp_path)
    rig = tmp_path / "manual.toml"  # real devices (none attached) with a manual stage and changer
    rig.write_text('[slm]\nkind = "exulus"\nwindow_px = [64, 64]\n[camera]\nkind = "uc480"\n'
                   '[stage]\nkind = "manual"\n[changer]\nkind = "manual"\n')
    assert run(["acquire", str(protocol), "--rig", str(rig), "--out", str(tmp_path / "r.h5"),
                "--unattended"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a person" in err
    assert not (tmp_path / "r.h5").exists()

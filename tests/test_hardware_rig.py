"""The real rig. Unmarked tests check the example rig file; ``-m hardware`` tests need the devices.

In the lab: SPECKLE_LAB_RIG=path/to/rig.toml .venv/bin/python -m pytest -m hardware tests/test_hardware_rig.py
Each hardware test opens one device from the rig file and skips when that device is not of the
kind it tests (e.g. a manual stage).
"""

import os
from importlib import resources

import numpy as np
import pytest

from hardware.rig import load_rig


def lab_rig():
    path = os.environ.get("SPECKLE_LAB_RIG")
    if not path:
        pytest.skip("set SPECKLE_LAB_RIG=path/to/rig.toml to run the hardware tests")
    return load_rig(path)


def test_example_lab_rig_file_is_valid_and_wholly_real():
    text = resources.files("hardware").joinpath("rigs", "lab-example.toml").read_text()
    assert "kind = \"exulus\"" in text
    rig = load_rig(str(resources.files("hardware").joinpath("rigs", "lab-example.toml")))
    cfg = rig.config
    assert not cfg.simulated
    assert (cfg.camera.kind, cfg.camera.color_mode, cfg.stage.kind, cfg.changer.kind) == \
        ("uc480", "mono8", "kinesis", "fw102c")
    assert cfg.changer.diffusers == ("120", "220", "600", "1500", "empty")


@pytest.mark.hardware
def test_camera_captures_a_centred_800px_frame():
    cfg = lab_rig().config.camera
    if cfg.kind == "uc480":
        from hardware.drivers.uc480_camera import UC480CameraDriver as Driver
    elif cfg.kind == "tsi":
        from hardware.drivers.tsi_camera import TSICameraDriver as Driver
    else:
        pytest.skip(f"camera kind {cfg.kind!r}")
    cam = Driver.from_config(cfg)
    try:
        applied = cam.configure((800, 800), 1000.0)
        assert applied == pytest.approx(1000.0, rel=0.05)
        frames = [cam.capture(cfg.timeout_ms) for _ in range(2)]
        averaged = cam.capture(cfg.timeout_ms, average=4)
    finally:
        cam.close()
    assert frames[0].image.shape == (800, 800) and averaged.image.shape == (800, 800)
    assert frames[1].frame_index != frames[0].frame_index
    assert 0.0 <= averaged.saturated_fraction <= 1.0
    assert frames[0].image.max() <= cam.max_value


@pytest.mark.hardware
def test_camera_short_timeout_raises_device_timeout():
    from hardware.errors import DeviceTimeout

    cfg = lab_rig().config.camera
    if cfg.kind != "uc480":
        pytest.skip(f"camera kind {cfg.kind!r}")
    from hardware.drivers.uc480_camera import UC480CameraDriver

    cam = UC480CameraDriver.from_config(cfg)
    try:
        cam.configure((800, 800), 500_000.0)  # a half-second exposure cannot arrive within 10 ms
        with pytest.raises(DeviceTimeout):
            cam.capture(10)
    finally:
        cam.close()


@pytest.mark.hardware
def test_stage_moves_to_the_paper_distances_and_reads_back():
    cfg = lab_rig().config.stage
    if cfg.kind != "kinesis":
        pytest.skip(f"stage kind {cfg.kind!r}")
    from hardware.drivers.kinesis_stage import KinesisStage

    stage = KinesisStage.from_config(cfg)
    try:
        if stage.distance_mm() is None:
            stage.home()
        for distance in (20.0, 40.0, 0.0):
            reached = stage.move_to_mm(distance)
            assert abs(reached - distance) * 1e3 <= cfg.tolerance_um
            assert stage.distance_mm() == pytest.approx(reached, abs=cfg.tolerance_um * 1e-3)
    finally:
        stage.close()


@pytest.mark.hardware
def test_wheel_selects_every_diffuser_and_reads_back():
    cfg = lab_rig().config.changer
    if cfg.kind != "fw102c":
        pytest.skip(f"changer kind {cfg.kind!r}")
    from hardware.drivers.fw_wheel import FilterWheelChanger

    wheel = FilterWheelChanger.from_config(cfg)
    try:
        for name in wheel.diffusers:
            wheel.select(name)
            assert wheel.current() == name
    finally:
        wheel.close()


@pytest.mark.hardware
def test_exulus_control_answers_and_reports_the_rig_files_stroke_mode():
    cfg = lab_rig().config.slm
    if cfg.control != "exulus-dll":
        pytest.skip("slm.control is not 'exulus-dll'")
    from hardware.drivers.exulus_control import ExulusControl

    ctl = ExulusControl.open(cfg.control_port, cfg.control_library)
    try:
        ctl.check_communication()
        assert ctl.stroke_mode() == cfg.stroke_mode
    finally:
        ctl.close()


@pytest.mark.hardware
def test_whole_rig_opens_shows_and_captures():
    from hardware.drivers.manual import ConsoleOperator
    from hardware.rig import build_rig

    rig_file = lab_rig()
    rig = build_rig(rig_file, ConsoleOperator())
    try:
        gray = np.zeros(rig.slm.window_shape, np.uint8)
        rig.slm.show_gray(gray)
        assert np.array_equal(rig.slm.read_back(), gray)
        rig.camera.configure((800, 800), 1000.0)
        assert rig.camera.capture(rig_file.config.camera.timeout_ms).image.shape == (800, 800)
    finally:
        rig.close()


@pytest.mark.hardware
def test_dark_source_blocks_the_laser_and_gives_it_back():
    from hardware.drivers.manual import ConsoleOperator
    from hardware.rig import build_rig

    rig_file = lab_rig()
    rig = build_rig(rig_file, ConsoleOperator())
    try:
        if getattr(rig.dark, "manual", True):
            pytest.skip("the rig file has no dark source (changer.dark_slot or [shutter])")
        rig.changer.select(rig.changer.diffusers[0])
        rig.slm.show_gray(np.full(rig.slm.window_shape, 0, np.uint8))
        rig.camera.configure((800, 800), 1000.0)
        timeout = rig_file.config.camera.timeout_ms
        lit = rig.camera.capture(timeout).image.mean()
        rig.dark.block()
        dark = rig.camera.capture(timeout).image.mean()
        rig.dark.unblock()
        back = rig.camera.capture(timeout).image.mean()
        assert dark < 0.2 * lit and back > 0.8 * lit, (lit, dark, back)
    finally:
        rig.close()

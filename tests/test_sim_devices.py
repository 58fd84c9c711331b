"""The simulated devices: interfaces, determinism, camera model, optional effects, faults, operator."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from hardware.errors import DeviceError, DeviceTimeout
from hardware.interfaces import SLM, Camera, DiffuserChanger, DistanceStage, Operator
from hardware.lut import PhaseLUT
from hardware.rig import build_rig, load_rig
from hardware.sim import build_sim_devices
from hardware.sim.operator import ABORT, ScriptedOperator
from speckle_core.errors import UserError
from tests._sim_helpers import blocks, pearson, small_config, small_rig

pytestmark = pytest.mark.timeout(60)
KEY = ("pair", "220", 20.0, 3, 0)


def shown(slm, seed=1, window=128):
    slm.show_gray(blocks(window, seed) * np.uint8(128))


def test_default_rig_builds_devices_that_satisfy_the_interfaces():
    rig = build_rig(load_rig(), ScriptedOperator())
    assert isinstance(rig.slm, SLM) and isinstance(rig.camera, Camera)
    assert isinstance(rig.stage, DistanceStage) and isinstance(rig.changer, DiffuserChanger)
    assert isinstance(ScriptedOperator(), Operator)
    assert rig.slm.window_shape == (800, 800) and rig.camera.max_value == 255
    assert rig.changer.diffusers == ("120", "220", "600", "1500", "empty")
    assert rig.slm.stroke_mode() == "full-wave"


def test_same_key_gives_the_same_bytes_in_a_fresh_rig():
    frames = []
    for _ in range(2):
        slm, cam, stage, changer = small_rig(noise=True)
        changer.select("220")
        stage.move_to_mm(20)
        shown(slm)
        frames.append(cam.capture(100, key=KEY).image)
    assert np.array_equal(frames[0], frames[1])


def test_a_different_key_gives_different_noise_on_the_same_light():
    slm, cam, stage, changer = small_rig(noise=True)
    shown(slm)
    a = cam.capture(100, key=KEY).image
    b = cam.capture(100, key=KEY[:-1] + (1,)).image
    assert not np.array_equal(a, b) and pearson(a, b) > 0.95


def test_same_key_gives_the_same_bytes_in_another_process():
    code = ("import hashlib, numpy as np\n"
            "from tests._sim_helpers import small_rig, blocks\n"
            "slm, cam, stage, changer = small_rig(noise=True)\n"
            "changer.select('220'); stage.move_to_mm(20)\n"
            "slm.show_gray(blocks(128, 1) * np.uint8(128))\n"
            f"print(hashlib.sha256(cam.capture(100, key={KEY!r}).image.tobytes()).hexdigest())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    slm, cam, stage, changer = small_rig(noise=True)
    changer.select("220")
    stage.move_to_mm(20)
    shown(slm)
    here = hashlib.sha256(cam.capture(100, key=KEY).image.tobytes()).hexdigest()
    assert out.strip() == here


def test_noise_depends_on_the_diffuser_and_distance_state_too():
    slm, cam, stage, changer = small_rig(noise=True, seed=5)
    shown(slm)
    changer.select("220")
    a = cam.capture(100, key=("dark", 0)).image
    changer.select("600")
    b = cam.capture(100, key=("dark", 0)).image
    assert not np.array_equal(a, b)


def test_keyless_captures_count_up_from_auto_zero():
    slm1, cam1, *_ = small_rig(noise=True)
    slm2, cam2, *_ = small_rig(noise=True)
    shown(slm1)
    shown(slm2)
    first, second = cam1.capture(100).image, cam1.capture(100).image
    assert not np.array_equal(first, second)
    assert np.array_equal(first, cam2.capture(100, key=("auto", 0)).image)


def test_dark_frames_have_no_laser_light():
    slm, cam, stage, changer = small_rig(noise=True)
    slm.show_gray(np.full((128, 128), 128, np.uint8))
    cam.configure((128, 128), 5000)
    dark = cam.capture(100, key=("dark", "220", 0.0, 0)).image
    lit = cam.capture(100, key=("pair", 0)).image
    assert dark.mean() < 4 < lit.mean()  # black level 8 ADC counts = 2 in 8-bit


def test_irradiance_scales_with_exposure():
    slm, cam, stage, changer = small_rig()
    shown(slm)
    cam.configure((128, 128), 10_000)
    a = cam.capture(100, key=("a",)).image.astype(float)
    cam.configure((128, 128), 20_000)
    b = cam.capture(100, key=("a",)).image.astype(float)
    ok = b < cam.saturation_level - 1  # no red pixel clipped in either frame
    black = 2.0  # 8 ADC counts of black level, 10-bit → 8-bit
    assert (b[ok] - black).sum() / (a[ok] - black).sum() == pytest.approx(2.0, rel=0.05)


def test_saturated_fraction_reports_the_red_pixels_at_full_scale():
    slm, cam, stage, changer = small_rig(camera={"color_mode": "raw8"})
    shown(slm)
    cam.configure((128, 128), 20_000)
    frame = cam.capture(100, key=("a",))
    red = frame.image[0::2, 0::2]  # ROI origin (448, 576) is even: RGGB starts with red
    at_top = float(np.mean(red == 255))  # the top 8-bit value holds codes 1020..1023: clipped and nearly
    assert frame.saturated_fraction <= at_top <= frame.saturated_fraction + 0.01
    assert 0 < frame.saturated_fraction < 1 and frame.image[1::2, 1::2].max() < 255  # blue never clips


def test_configure_quantises_and_clamps_the_exposure():
    slm, cam, stage, changer = small_rig()
    assert cam.configure((64, 96), 1234.4) == 1234.0
    assert cam.configure((64, 96), 1.0) == 40.0
    assert cam.capture(100, key=("a",)).image.shape == (64, 96)


def test_configure_refuses_a_roi_larger_than_the_sensor():
    slm, cam, stage, changer = small_rig()
    with pytest.raises(UserError, match="roi_px"):
        cam.configure((2000, 800), 1000)


def test_averaging_reduces_noise():
    slm, cam, stage, changer = small_rig(noise=True)
    shown(slm)
    cam.configure((128, 128), 100)
    single = [cam.capture(100, key=("s", i)).image.astype(float) for i in range(2)]
    avg = [cam.capture(100, average=8, key=("m", i)).image.astype(float) for i in range(2)]
    assert np.std(avg[0] - avg[1]) < 0.6 * np.std(single[0] - single[1])


def test_raw8_mode_gives_a_bayer_mosaic_dim_in_green_and_blue():
    slm, cam, stage, changer = small_rig(camera={"color_mode": "raw8"})
    slm.show_gray(np.zeros((128, 128), np.uint8))
    img = cam.capture(100, key=("a",)).image.astype(float) - 2.0
    red = img[0::2, 0::2].mean()  # ROI origin (448, 576) is even: RGGB starts with red
    assert img[0::2, 1::2].mean() < 0.3 * red and img[1::2, 1::2].mean() < 0.3 * red


def test_unsimulated_color_mode_is_a_user_error():
    cfg = small_config(camera={"color_mode": "rgb8p"})
    with pytest.raises(UserError, match="camera.color_mode"):
        build_sim_devices(cfg, PhaseLUT.linear())


def test_a_diffuser_without_constants_is_a_user_error():
    cfg = small_config()
    cfg = cfg.model_copy(update={"changer": cfg.changer.model_copy(update={"slots": {"1": "80"}})})
    with pytest.raises(UserError, match="'80'"):
        build_sim_devices(cfg, PhaseLUT.linear())


def test_unknown_sim_key_in_a_rig_file_names_it(tmp_path):
    p = tmp_path / "rig.toml"
    p.write_text("[sim]\nseed = 1\nimaging_nA = 0.1\n")
    with pytest.raises(UserError, match="sim.imaging_nA: unknown key"):
        load_rig(p)


def test_stage_refuses_distances_beyond_its_travel():
    slm, cam, stage, changer = small_rig()
    assert stage.move_to_mm(40) == 40.0 and stage.distance_mm() == 40.0
    with pytest.raises(DeviceError, match="stage"):
        stage.move_to_mm(60)


def test_changer_selects_only_its_diffusers():
    slm, cam, stage, changer = small_rig()
    changer.select("600")
    assert changer.current() == "600"
    with pytest.raises(DeviceError, match="wheel"):
        changer.select("80")


def test_slm_reads_back_what_it_shows_and_refuses_wrong_shapes():
    slm, cam, stage, changer = small_rig()
    gray = blocks(128, 2) * np.uint8(128)
    slm.show_gray(gray)
    assert np.array_equal(slm.read_back(), gray)
    with pytest.raises(ValueError, match="uint8"):
        slm.show_gray(np.zeros((64, 64), np.uint8))


def test_unsettled_slm_shows_a_blend_of_the_old_and_new_pattern():
    slm, cam, stage, changer = small_rig(slm_response_ms=10_000.0)
    old, new = blocks(128, 1) * np.uint8(128), blocks(128, 2) * np.uint8(128)
    settled = small_rig()
    settled[0].show_gray(old)
    old_frame = settled[1].capture(100, key=("a",)).image
    settled[0].show_gray(new)
    new_frame = settled[1].capture(100, key=("a",)).image
    slm.show_gray(old)
    slm._bench.flip_s -= 120.0  # long settled
    slm.show_gray(new)
    early = cam.capture(100, key=("a",)).image
    assert pearson(early, old_frame) > 0.99 > pearson(early, new_frame)


def test_drift_decorrelates_repeated_frames_and_is_off_by_default():
    slm, cam, stage, changer = small_rig(diffuser_drift_um_per_hour=2000.0, capture_period_s=10.0)
    shown(slm)
    first = cam.capture(100, key=("ref", 0)).image
    for i in range(20):  # 20 captures × 10 s at 2 mm/h: the diffuser slides 111 µm
        cam.capture(100, key=("pair", i))
    later = cam.capture(100, key=("ref", 0)).image
    steady = small_rig()
    shown(steady[0])
    assert np.array_equal(steady[1].capture(100, key=("ref", 0)).image,
                          steady[1].capture(100, key=("ref", 0)).image)
    assert pearson(first, later) < 0.9


@pytest.mark.parametrize("knob, call, error", [
    ("camera_timeout", lambda d: d[1].capture(100, key=("a",)), DeviceTimeout),
    ("dropped_frame", lambda d: d[1].capture(100, key=("a",)), DeviceError),
    ("stage_error", lambda d: d[2].move_to_mm(20), DeviceError),
    ("wheel_error", lambda d: d[3].select("600"), DeviceError),
    ("display_error", lambda d: d[0].show_gray(np.zeros((128, 128), np.uint8)), DeviceError),
])
def test_fault_injection_raises_device_errors(knob, call, error):
    devices = small_rig(faults={knob: 1.0})
    with pytest.raises(error):
        call(devices)


def test_faults_never_change_the_bytes_of_a_successful_frame():
    clean = small_rig(noise=True)
    faulty = small_rig(noise=True, faults={"dropped_frame": 0.5, "camera_timeout": 0.2})
    shown(clean[0])
    shown(faulty[0])
    got, failures = 0, 0
    for i in range(12):
        try:
            frame = faulty[1].capture(100, key=("pair", i))
        except DeviceError:
            failures += 1
            continue
        got += 1
        assert np.array_equal(frame.image, clean[1].capture(100, key=("pair", i)).image)
    assert got and failures


def test_scripted_operator_answers_in_order_and_records_prompts():
    op = ScriptedOperator(["done", True, "n"], interactive=False)
    assert op.request("Put the 220 diffuser in") == "done"
    assert op.ask_yes_no("Continue?") is True
    assert op.ask_yes_no("Again?", default=True) is False
    assert op.request("Block the laser") == ""  # answers used up: just Enter
    assert op.prompts == ["Put the 220 diffuser in", "Continue?", "Again?", "Block the laser"]
    assert op.interactive is False


def test_scripted_operator_can_abort():
    op = ScriptedOperator([ABORT])
    with pytest.raises(DeviceError, match="operator"):
        op.request("Move the camera to 20 mm")

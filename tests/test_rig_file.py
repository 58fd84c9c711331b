"""Rig files are validated on load: unknown keys, bad values and mixed rigs are one-line errors."""

import pytest

from hardware.rig import load_rig
from speckle_core.errors import UserError


def write(tmp_path, text):
    p = tmp_path / "rig.toml"
    p.write_text(text)
    return p


def test_default_rig_is_simulated():
    assert load_rig().config.simulated


def test_unknown_key_names_file_and_key(tmp_path):
    p = write(tmp_path, "[camera]\nkind='sim'\nexposur_us=3\n")
    with pytest.raises(UserError, match=r"rig.toml: camera.exposur_us: unknown key"):
        load_rig(p)


def test_negative_settle_time_is_refused(tmp_path):
    p = write(tmp_path, "[slm]\nsettle_ms=-1\n")
    with pytest.raises(UserError, match=r"slm.settle_ms"):
        load_rig(p)


def test_a_real_camera_behind_a_simulated_slm_is_refused(tmp_path):
    p = write(tmp_path, "[camera]\nkind='uc480'\n")
    with pytest.raises(UserError, match="simulated together or real together"):
        load_rig(p)


def test_simulated_optics_with_a_manual_stage_is_refused(tmp_path):
    p = write(tmp_path, "[stage]\nkind='manual'\n")
    with pytest.raises(UserError, match="stage.kind: a simulated SLM and camera need the simulated stage"):
        load_rig(p)


@pytest.mark.parametrize("stage, changer, simulated", [
    ("sim", "sim", ("stage", "changer")), ("manual", "sim", ("changer",)), ("kinesis", "manual", ())])
def test_a_real_camera_may_have_simulated_or_manual_movers(tmp_path, stage, changer, simulated):
    p = write(tmp_path, f"[slm]\nkind='exulus'\n[camera]\nkind='uc480'\n[stage]\nkind='{stage}'\n"
                        f"[changer]\nkind='{changer}'\n")
    cfg = load_rig(p).config
    assert cfg.simulated_devices == simulated
    assert cfg.rig_kind == ("mixed" if simulated else "real") and not cfg.simulated


@pytest.mark.parametrize("changer, message", [
    ("kind='fw102c'\ndark_slot=2", "slot 2 holds diffuser '220'"),
    ("kind='manual'\ndark_slot=6", "only a filter wheel"),
])
def test_a_dark_slot_must_be_a_blank_slot_of_a_filter_wheel(tmp_path, changer, message):
    p = write(tmp_path, f"[slm]\nkind='exulus'\n[camera]\nkind='uc480'\n[stage]\nkind='manual'\n"
                        f"[changer]\n{changer}\n")
    with pytest.raises(UserError, match=message):
        load_rig(p)


def test_a_shutter_on_the_simulated_rig_is_refused(tmp_path):
    p = write(tmp_path, "[shutter]\nkind='mff101'\nserial='37000001'\n")
    with pytest.raises(UserError, match="renders dark frames itself"):
        load_rig(p)


def test_duplicate_diffuser_in_wheel_is_refused(tmp_path):
    p = write(tmp_path, "[changer]\nslots={1='120', 2='120'}\n")
    with pytest.raises(UserError, match="appears twice"):
        load_rig(p)


def test_lut_gray_pi_is_half_the_full_wave_range():
    assert load_rig().lut().gray_pi == 128

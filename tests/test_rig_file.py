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


def test_half_simulated_rig_is_refused(tmp_path):
    p = write(tmp_path, "[camera]\nkind='uc480'\n")
    with pytest.raises(UserError, match="wholly simulated or wholly real"):
        load_rig(p)


def test_duplicate_diffuser_in_wheel_is_refused(tmp_path):
    p = write(tmp_path, "[changer]\nslots={1='120', 2='120'}\n")
    with pytest.raises(UserError, match="appears twice"):
        load_rig(p)


def test_lut_gray_pi_is_half_the_full_wave_range():
    assert load_rig().lut().gray_pi == 128

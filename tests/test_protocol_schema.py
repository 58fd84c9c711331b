"""Protocol files: the shipped ones load, and every kind of bad input is one line naming file and key."""

from pathlib import Path

import pytest

from protocols import load_protocol, shipped
from speckle_core.errors import UserError
from speckle_lab.cli import run

MINIMAL = """
[faces]
count = 10
holdout = 2

[[blocks]]
diffuser = "120"
distances_mm = [0, 20]
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as e:
        load_protocol(write(tmp_path, text))
    msg = str(e.value)
    assert "\n" not in msg
    assert "p.toml" in msg
    return msg


def test_paper_protocol_has_the_papers_pair_counts():
    cfg = load_protocol(shipped("paper-2023")).model
    per_role = {"train": 0, "validation": 0}
    for b in cfg.blocks:
        per_role[b.role] += cfg.faces.count * len(b.distances_mm) * b.repeats
    assert cfg.faces.count == 1500
    assert per_role == {"train": 12_000, "validation": 6_000}
    assert cfg.pairs_total == 18_000
    assert sorted({b.diffuser for b in cfg.blocks}) == ["120", "1500", "220", "600"]


def test_quick_protocol_uses_embedded_faces_two_diffusers_and_three_distances():
    cfg = load_protocol(shipped("quick")).model
    assert cfg.faces.embedded and cfg.faces.holdout > 0
    assert len({b.diffuser for b in cfg.blocks}) >= 2
    assert {d for b in cfg.blocks for d in b.distances_mm} == {0, 20, 40}
    assert all(b.role == "validation" for b in cfg.blocks if 40 in b.distances_mm)
    assert 300 <= cfg.pairs_total <= 2000  # <= 2 minutes at 30 pairs/s with room to spare


def test_minimal_protocol_fills_documented_defaults(tmp_path):
    cfg = load_protocol(write(tmp_path, MINIMAL)).model
    assert cfg.faces.source == "embedded"
    assert cfg.faces.binarise.method == "otsu"
    assert cfg.faces.target_px == (800, 800)
    assert cfg.camera.auto and cfg.slm.gray_pi == "auto"
    assert cfg.pairs_total == 20


def test_unknown_key_names_file_and_key(tmp_path):
    msg = error_of(tmp_path, MINIMAL.replace("holdout = 2", "holdout = 2\nhold_out = 3"))
    assert "faces.hold_out" in msg and "unknown key" in msg


def test_unknown_top_level_section_is_refused(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[camra]\nroi_px = [8, 8]\n")
    assert "camra" in msg


@pytest.mark.parametrize("edit, key", [
    (("count = 10", "count = -1"), "faces.count"),
    (("count = 10", "count = 10000000"), "faces.count"),
    (("holdout = 2", "holdout = 10"), "holdout"),
    (("distances_mm = [0, 20]", "distances_mm = []"), "[[blocks]] #1.distances_mm"),
    (("distances_mm = [0, 20]", "distances_mm = [0, 0]"), "[[blocks]] #1.distances_mm"),
    (("distances_mm = [0, 20]", "distances_mm = [0, 5000]"), "[[blocks]] #1.distances_mm"),
    (("distances_mm = [0, 20]", "distances_mm = [0, 20]\nrole = \"test\""), "[[blocks]] #1.role"),
    (("distances_mm = [0, 20]", "distances_mm = [0, 20]\nrepeats = 0"), "[[blocks]] #1.repeats"),
])
def test_out_of_range_values_are_refused_naming_the_key(tmp_path, edit, key):
    msg = error_of(tmp_path, MINIMAL.replace(*edit))
    assert key in msg


@pytest.mark.parametrize("section, key", [
    ("[camera]\nexposure_us = -5", "camera.exposure_us"),
    ("[camera]\nroi_px = [0, 800]", "camera.roi_px"),
    ("[camera]\naverage = 100000", "camera.average"),
    ("[slm]\ngray_pi = 300", "slm.gray_pi"),
    ("[slm]\nsettle_ms = -1", "slm.settle_ms"),
    ("[slm]\nstroke_mode = \"quarter-wave\"", "slm.stroke_mode"),
    ("[dark]\nframes = -2", "dark.frames"),
    ("[stability]\nthreshold = 1.5", "stability.threshold"),
    ("[stability]\non_drift = \"panic\"", "stability.on_drift"),
    ("[retry]\nmax_retries = 1000", "retry.max_retries"),
    ("[camera.auto_exposure]\nstart_us = 0.5\nmin_us = 1", "camera.auto_exposure"),
])
def test_bad_section_values_are_refused_naming_the_key(tmp_path, section, key):
    msg = error_of(tmp_path, MINIMAL + "\n" + section + "\n")
    assert key in msg


def test_the_same_diffuser_and_distance_twice_is_refused(tmp_path):
    again = '\n[[blocks]]\ndiffuser = "120"\ndistances_mm = [20]\nrole = "validation"\n'
    msg = error_of(tmp_path, MINIMAL + again)
    assert "[[blocks]] #2" in msg and "20 mm" in msg


def test_a_protocol_without_blocks_is_refused(tmp_path):
    msg = error_of(tmp_path, "[faces]\ncount = 3\n")
    assert "blocks" in msg


def test_absurd_total_pair_count_is_refused(tmp_path):
    text = MINIMAL.replace("count = 10", "count = 20000").replace("distances_mm = [0, 20]",
                                                                  "distances_mm = [0, 20]\nrepeats = 100")
    assert "pairs" in error_of(tmp_path, text)


def test_numeric_diffuser_name_is_read_as_text(tmp_path):
    cfg = load_protocol(write(tmp_path, MINIMAL.replace('diffuser = "120"', "diffuser = 120"))).model
    assert cfg.blocks[0].diffuser == "120"


def test_not_toml_is_one_line_naming_the_file(tmp_path):
    msg = error_of(tmp_path, "[faces\ncount = 3")
    assert "not valid TOML" in msg


def test_cli_plan_with_a_bad_protocol_exits_2_with_one_line(tmp_path, capsys):
    p = write(tmp_path, MINIMAL.replace("count = 10", "count = 0"))
    assert run(["plan", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "faces.count" in err


def test_a_rig_file_given_as_a_protocol_is_named_as_such(capsys):
    from speckle_lab.cli import run

    rig = Path(__file__).resolve().parents[1] / "hardware" / "rigs" / "lab-example.toml"
    assert run(["plan", str(rig)]) == 2
    err = capsys.readouterr().err
    assert "is a rig file" in err and "--rig" in err and len(err.strip().splitlines()) == 1


def test_a_protocol_given_as_the_rig_is_named_as_such(capsys):
    from protocols import shipped
    from speckle_lab.cli import run

    assert run(["plan", str(shipped("quick")), "--rig", str(shipped("quick"))]) == 2
    assert "is a protocol" in capsys.readouterr().err


def test_no_library_prefix_leaks_into_messages(tmp_path):
    from hardware.rig import load_rig

    rig = tmp_path / "rig.toml"
    rig.write_text('[changer]\nkind = "sim"\nslots = { 1 = "120", 2 = "120" }\n')
    with pytest.raises(UserError) as e:
        load_rig(rig)
    assert "a diffuser appears twice" in str(e.value) and "Value error" not in str(e.value)

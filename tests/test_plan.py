"""The run plan: order, moves, a person's steps, estimates, checks against the rig, and `speckle-lab plan`."""

import collections
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition import plan as plan_mod
from acquisition import plan_report
from acquisition.plan import build_objects, make_plan, reference_schedule
from protocols import shipped
from speckle_core.errors import UserError
from speckle_lab.cli import run

FOUR_BY_THREE = """
name = "4 diffusers x 3 distances"
[faces]
count = 5
holdout = 1
target_px = [{t}, {t}]
[camera]
roi_px = [64, 64]
[stability]
reference_every = 2
{blocks}
"""
BLOCKS = "".join(f'[[blocks]]\ndiffuser = "{d}"\ndistances_mm = [0, 20]\n'
                 f'[[blocks]]\ndiffuser = "{d}"\ndistances_mm = [40]\nrole = "validation"\n'
                 for d in ("120", "220", "600", "1500"))


def rig_toml(tmp_path: Path, window: int = 32, real: bool = False, stage: str = "sim", changer: str = "sim",
             extra: str = "") -> Path:
    kinds = {"slm": "exulus", "camera": "uc480"} if real else {"slm": "sim", "camera": "sim"}
    p = tmp_path / "rig.toml"
    p.write_text(f'[slm]\nkind = "{kinds["slm"]}"\nwindow_px = [{window}, {window}]\n'
                 f'[camera]\nkind = "{kinds["camera"]}"\n[stage]\nkind = "{stage}"\n{extra}'
                 f'[changer]\nkind = "{changer}"\n')
    return p


def protocol_toml(tmp_path: Path, text: str | None = None, target: int = 32) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text if text is not None else FOUR_BY_THREE.format(t=target, blocks=BLOCKS))
    return p


@pytest.fixture
def small(tmp_path):
    return make_plan(protocol_toml(tmp_path), rig_toml(tmp_path))


def test_every_pair_is_planned_exactly_once(small):
    keys = collections.Counter((r.diffuser, r.distance_mm, r.object_index, r.repeat) for r in small.rows)
    assert len(small.rows) == 4 * 3 * 5 == len(keys)
    assert set(keys.values()) == {1}
    assert [r.row for r in small.rows] == list(range(len(small.rows)))


def test_blocks_are_contiguous_and_hold_every_face(small):
    for b in small.blocks:
        rows = small.rows[b.first_row:b.first_row + b.pairs]
        assert {(r.diffuser, r.distance_mm, r.role, r.block) for r in rows} == {
            (b.diffuser, b.distance_mm, b.role, b.index)}
        assert [r.object_index for r in rows] == list(range(5))


def test_order_changes_each_diffuser_once_and_snakes_the_distances(small):
    changer = [m for m in small.moves if m.device == "changer"]
    stage = [m for m in small.moves if m.device == "stage"]
    assert [m.target for m in changer] == ["120", "220", "600", "1500"]  # the protocol's order
    assert len(stage) == 1 + 4 * 2  # the first positioning, then two moves per diffuser
    assert [b.distance_mm for b in small.blocks] == [0, 20, 40, 40, 20, 0, 0, 20, 40, 40, 20, 0]


def test_roles_follow_the_blocks(small):
    roles = collections.Counter((r.distance_mm, r.role) for r in small.rows)
    assert roles == {(0.0, "train"): 20, (20.0, "train"): 20, (40.0, "validation"): 20}


def test_a_manual_stage_with_a_motorised_wheel_moves_the_stage_least(tmp_path):
    rig = rig_toml(tmp_path, real=True, stage="manual", changer="fw102c")
    plan = make_plan(protocol_toml(tmp_path), rig)
    stage = [m for m in plan.moves if m.device == "stage"]
    assert [m.target for m in stage] == ["0", "20", "40"]
    assert all(m.manual for m in stage)
    assert sum("set the camera" in s for s in plan.manual_steps) == 3


def test_manual_changer_steps_are_listed_for_the_person(tmp_path):
    rig = rig_toml(tmp_path, real=True, stage="kinesis", changer="manual")
    plan = make_plan(protocol_toml(tmp_path), rig)
    swaps = [s for s in plan.manual_steps if "put diffuser" in s]
    assert len(swaps) == 4 and "diffuser 120" in swaps[0]
    assert any("dark frames" in s for s in plan.manual_steps)  # a real rig: a person blocks the laser


def test_the_simulated_rig_needs_no_person(small):
    assert small.manual_steps == ()


def test_reference_captures_every_n_pairs_of_a_block_and_at_its_end(small):
    first = small.blocks[0]
    mine = [r for r, b in zip(small.reference_before_rows, small.reference_blocks, strict=True) if b == 0]
    assert mine == [first.first_row, first.first_row + 2, first.first_row + 4, first.first_row + 5]
    assert reference_schedule(small.blocks, 0) == ([], [])


def test_gray_pi_auto_comes_from_the_rig_lut(small, tmp_path):
    assert small.gray_pi == 128  # EXULUS full wave, linear LUT: 2π at 256
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS) + "[slm]\ngray_pi = 100\n"
    assert make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path)).gray_pi == 100


def test_disk_need_counts_frames_objects_references_and_darks(small):
    parts = small.estimate.disk_parts
    assert parts["frames"] == 60 * 64 * 64
    assert parts["objects"] == 5 * 32 * 32
    assert parts["references and darks"] == (len(small.reference_before_rows) + 12) * 64 * 64 + 32 * 32
    assert small.estimate.disk_bytes == sum(parts.values())


def test_duration_on_the_simulated_rig_is_pairs_at_30_per_second(small):
    assert small.estimate.duration_parts["pairs"] == pytest.approx(60 / 30)
    assert small.estimate.duration_parts["moves"] == 0


def test_duration_on_a_real_rig_includes_moves_settle_and_exposure(tmp_path):
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS) + "[slm]\nsettle_ms = 100\n"
    plan = make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path, real=True, stage="kinesis",
                                                             changer="fw102c"))
    t = plan_mod.REAL_TIMINGS
    per_pair = (t.flip_ms + 100 + 1000 / 1000 * 1 + t.readout_ms + t.overhead_ms) / 1000  # start_us = 1 ms
    assert plan.estimate.duration_parts["pairs"] == pytest.approx(60 * per_pair)
    assert plan.estimate.duration_parts["moves"] > 8 * 20 / t.stage_mm_per_s  # eight 20 mm stage moves


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace('diffuser = "600"', 'diffuser = "999"'), "[[blocks]] #5.diffuser: '999'"),
    (lambda t: t.replace("[0, 20]", "[0, 70]", 1), "[[blocks]] #1.distances_mm: 70 mm"),
    (lambda t: t.replace("roi_px = [64, 64]", "roi_px = [2000, 64]"), "camera.roi_px: 2000x64"),
    (lambda t: t.replace("target_px = [32, 32]", "target_px = [48, 48]"), "faces.target_px: [48, 48]"),
    (lambda t: t + '[slm]\nstroke_mode = "half-wave"\n', "slm.stroke_mode"),
    (lambda t: t.replace("count = 5", "count = 101"), "faces.count: 101"),
])
def test_protocol_is_checked_against_the_rig(tmp_path, edit, expected):
    text = edit(FOUR_BY_THREE.format(t=32, blocks=BLOCKS))
    with pytest.raises(UserError) as e:
        make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path))
    assert expected in str(e.value) and "p.toml" in str(e.value) and "\n" not in str(e.value)


def test_build_objects_gives_binary_patterns_names_and_splits(small):
    patterns, names, splits, skipped = build_objects(small)
    assert patterns.shape == (5, 32, 32) and patterns.dtype == np.uint8
    assert set(np.unique(patterns)) <= {0, 1} and patterns.any()
    assert names == sorted(names) and all(n.startswith("lfw_subset_") for n in names)
    assert splits.count("holdout") == 1 and skipped == []


def test_build_objects_skips_a_corrupt_face_and_keeps_the_count(tmp_path):
    from skimage.data import lfw_subset

    from tests.test_faces import make_folder

    root = make_folder(tmp_path / "lfw", lfw_subset()[:8])
    (root / "Person_A" / "Person_A_0001.jpg").write_bytes(b"broken")
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS).replace("[faces]", '[faces]\nsource = "lfw"')
    text = text.replace("count = 5", "count = 7")
    patterns, names, _, skipped = build_objects(make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path)))
    assert len(patterns) == 7 and "Person_A_0001" not in names
    assert [s.split(":")[0] for s in skipped] == ["Person_A_0001"]


def test_plan_never_decodes_an_image(small, tmp_path, monkeypatch):
    from acquisition import sources

    def boom(*a, **k):
        raise AssertionError("plan decoded an image")

    monkeypatch.setattr(sources, "decode_gray", boom)
    monkeypatch.setattr(sources.EmbeddedSource, "read", boom)
    assert run(["plan", str(protocol_toml(tmp_path)), "--rig", str(rig_toml(tmp_path))]) == 0


def test_cli_plan_prints_blocks_moves_people_duration_and_disk(capsys):
    assert run(["plan", str(shipped("quick"))]) == 0
    out = capsys.readouterr().out
    for text in ("pairs: 600 in 6 blocks", "validation", "device moves: 2 diffuser selections",
                 "a person must: nothing", "estimated duration", "disk need"):
        assert text in out


def test_cli_plan_refuses_when_the_disk_is_too_small(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plan_report.shutil, "disk_usage", lambda p: collections.namedtuple(
        "U", "total used free")(10**9, 10**9 - 1000, 1000))
    assert run(["plan", str(shipped("quick")), "--out", str(tmp_path / "run.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "free" in err and str(tmp_path) in err


def test_cli_plan_refuses_an_out_folder_that_does_not_exist(tmp_path, capsys):
    assert run(["plan", str(shipped("quick")), "--out", str(tmp_path / "nope" / "run.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_paper_protocol_on_the_default_rig_plans_18000_pairs_in_the_papers_blocks(tmp_path):
    import io
    import tarfile

    with tarfile.open(tmp_path / "lfw.tgz", "w:gz") as tf:  # names only: plan never decodes an image
        for i in range(1600):
            info = tarfile.TarInfo(f"lfw/P{i // 4}/P{i // 4}_{i % 4 + 1:04d}.jpg")
            tf.addfile(info, io.BytesIO(b""))
    text = shipped("paper-2023").read_text()  # source = "lfw.tgz": relative to the protocol file
    plan = make_plan(protocol_toml(tmp_path, text), None)
    roles = collections.Counter(r.role for r in plan.rows)
    assert roles == {"train": 12_000, "validation": 6_000}
    assert len(plan.blocks) == 12 and {b.pairs for b in plan.blocks} == {1500}
    assert sum(m.device == "changer" for m in plan.moves) == 4
    assert sum(m.device == "stage" for m in plan.moves) == 9
    assert plan.estimate.disk_parts["frames"] == 18_000 * 800 * 800


def test_faces_sheet_shows_the_runs_first_faces(small, tmp_path):
    from PIL import Image

    out = plan_mod.faces_sheet(small, tmp_path / "faces.png", n=3)
    with Image.open(out) as im:
        assert im.size[0] > 3 * 128


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=st.dictionaries(st.sampled_from(["120", "220", "600", "1500"]),
                              st.sets(st.sampled_from([0, 10, 20, 30, 40]), min_size=1), min_size=1),
       faces=st.integers(1, 4), repeats=st.integers(1, 2))
def test_any_protocol_plans_each_pair_once_with_one_selection_per_diffuser(tmp_path, layout, faces, repeats):
    blocks = "".join(f'[[blocks]]\ndiffuser = "{d}"\ndistances_mm = {sorted(ds)}\nrepeats = {repeats}\n'
                     for d, ds in layout.items())
    text = f"[faces]\ncount = {faces}\ntarget_px = [32, 32]\n[camera]\nroi_px = [8, 8]\n{blocks}"
    plan = make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path))
    expected = {(d, float(x), o, r) for d, ds in layout.items() for x in ds for o in range(faces)
                for r in range(repeats)}
    got = [(r.diffuser, r.distance_mm, r.object_index, r.repeat) for r in plan.rows]
    assert sorted(got) == sorted(expected) and len(got) == len(expected)
    assert sum(m.device == "changer" for m in plan.moves) == len(layout)
    sets = [frozenset(ds) for ds in layout.values()]
    if len(set(sets)) == 1:  # the same distances for every diffuser: snaking saves a move per change
        assert sum(m.device == "stage" for m in plan.moves) == 1 + len(sets) * (len(sets[0]) - 1)


def test_plan_of_a_protocol_whose_faces_are_missing_still_estimates_the_run(tmp_path, capsys):
    text = shipped("paper-2023").read_text()  # source = "lfw.tgz", not downloaded in tmp_path
    assert run(["plan", str(protocol_toml(tmp_path, text))]) == 0
    out = capsys.readouterr().out
    assert "faces: 1500 MISSING" in out and "lfw.tgz does not exist" in out
    assert "pairs: 18000 in 12 blocks" in out and "estimated duration" in out and "disk need" in out


def test_acquire_refuses_a_protocol_whose_faces_are_missing(tmp_path):
    text = shipped("paper-2023").read_text()
    with pytest.raises(UserError, match="faces.source: .*lfw.tgz does not exist"):
        make_plan(protocol_toml(tmp_path, text), None)


def test_a_flat_folder_of_a_labs_own_objects_is_planned_and_binarised(tmp_path, capsys):
    from skimage.data import lfw_subset

    from tests.test_sources import flat_folder

    flat_folder(tmp_path / "digits", lfw_subset()[:6])
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS).replace(
        "[faces]", '[faces]\nkind = "objects"\nsource = "digits"')
    plan = make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path))
    patterns, names, splits, skipped = build_objects(plan)
    assert len(patterns) == 5 and skipped == [] and all(n.startswith("digit_") for n in names)
    assert "objects: 5 of 6 in folder" in plan_mod.format_plan(plan)


def test_plan_names_each_block_and_the_protocol_table_it_comes_from_as_errors_do(tmp_path, capsys):
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS)
    assert run(["plan", str(protocol_toml(tmp_path, text)), "--rig", str(rig_toml(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "[[blocks]] #2" in out  # the 40 mm validation block of diffuser 120 (the 2nd table)
    bad = text.replace("[0, 20]", "[0, 70]", 1)
    assert run(["plan", str(protocol_toml(tmp_path, bad)), "--rig", str(rig_toml(tmp_path))]) == 2
    assert "[[blocks]] #1.distances_mm" in capsys.readouterr().err


def test_a_fixed_exposure_needs_one_dark_capture_for_the_whole_run(tmp_path):
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS).replace("roi_px = [64, 64]",
                                                             "roi_px = [64, 64]\nexposure_us = 500")
    plan = make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path, real=True, stage="kinesis",
                                                             changer="manual"))
    assert plan.darks.captures == 1 and plan.darks.manual
    dark_steps = [s for s in plan.manual_steps if "dark" in s]
    assert len(dark_steps) == 1 and dark_steps[0].startswith("once: block the laser")


def test_darks_per_block_on_request(tmp_path):
    text = FOUR_BY_THREE.format(t=32, blocks=BLOCKS).replace(
        "roi_px = [64, 64]", "roi_px = [64, 64]\nexposure_us = 500") + '[dark]\nper = "block"\n'
    plan = make_plan(protocol_toml(tmp_path, text), rig_toml(tmp_path))
    assert plan.darks.captures == len(plan.blocks) == 12


def test_the_wheels_blank_slot_takes_darks_without_a_person(tmp_path):
    rig = rig_toml(tmp_path, real=True, stage="kinesis", changer="fw102c")
    rig.write_text(rig.read_text() + 'port = "COM4"\ndark_slot = 6\n')
    plan = make_plan(protocol_toml(tmp_path), rig)
    assert plan.manual_steps == () and "blank slot 6" in plan.darks.source
    assert "the laser blocked by the filter wheel's blank slot 6" in plan_mod.format_plan(plan)


def test_plan_states_which_devices_of_a_mixed_rig_are_simulated(tmp_path):
    plan = make_plan(protocol_toml(tmp_path), rig_toml(tmp_path, real=True, stage="sim", changer="sim"))
    text = plan_mod.format_plan(plan)
    assert "MIXED: stage, changer simulated" in text
    assert plan.timings is plan_mod.REAL_TIMINGS  # a real camera: real exposure and readout times

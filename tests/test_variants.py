"""Object variants (faces.variants): mirrored and shifted copies of each face, captured as new objects,
held out and split by person together with their face (issue 18, item 4)."""

from __future__ import annotations

import os
import signal

import h5py
import numpy as np
import pytest

from acquisition.faces import with_variants
from speckle_core.errors import UserError
from speckle_core.person import person_of
from speckle_core.variants import apply_variant, base_name, parse_variant, variant_name
from tests._tiny_sim import tiny_files
from tests.test_resume import same_content

VARIANTS = '["mirror", "shift:8,-4"]'


def test_mirror_is_numpy_fliplr_of_the_object():
    obj = (np.random.default_rng(0).random((6, 9)) > 0.5).astype(np.uint8)
    assert np.array_equal(apply_variant(obj, parse_variant("mirror")), np.fliplr(obj))


def test_a_shift_moves_the_pattern_and_fills_the_uncovered_band_with_zero():
    obj = np.arange(1, 7 * 8 + 1, dtype=np.uint8).reshape(7, 8)
    out = apply_variant(obj, parse_variant("shift:2,-3"))  # 2 rows down, 3 columns left
    assert np.array_equal(out[2:, :-3], obj[:-2, 3:])
    assert not out[:2].any() and not out[:, -3:].any()


def test_steps_apply_in_order():
    obj = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = apply_variant(obj, parse_variant("mirror shift:0,1"))
    assert np.array_equal(out[:, 1:], np.fliplr(obj)[:, :-1]) and not out[:, 0].any()


@pytest.mark.parametrize("spec", ["flip", "shift:3", "shift:0,0", "", "mirror shift:a,b"])
def test_a_bad_variant_is_a_one_line_error(spec):
    with pytest.raises(ValueError) as e:
        parse_variant(spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(("name", "person"), [
    ("Aaron_Eckhart_0001~mirror", "Aaron_Eckhart"), ("lfw_subset_017~mirror~shift+8-4", "lfw_subset_017"),
    ("A/A_0002.jpg~shift-3+0", "A"), ("notes~draft", "notes~draft")])
def test_a_variant_is_its_faces_person(name, person):
    assert person_of(name) == person


def test_variant_names_strip_back_to_the_face():
    assert base_name(variant_name("A_0001", parse_variant("mirror shift:-2,5"))) == "A_0001"


def test_each_face_is_followed_by_its_variants_with_its_split():
    patterns = np.stack([np.eye(4, dtype=np.uint8), np.tri(4, dtype=np.uint8)])
    out, names, splits = with_variants(patterns, ["a", "b"], ["train", "holdout"], ["mirror"])
    assert names == ["a", "a~mirror", "b", "b~mirror"]
    assert splits == ["train", "train", "holdout", "holdout"]
    assert np.array_equal(out[3], np.fliplr(patterns[1]))


def _protocol_with(tmp_path, variants: str):
    protocol, rig = tiny_files(tmp_path)
    text = protocol.read_text()
    protocol.write_text(text.replace("target_px = [64, 64]", f"target_px = [64, 64]\nvariants = {variants}"))
    return protocol, rig


@pytest.mark.parametrize(("variants", "why"), [
    ('["mirror", "mirror"]', "same object"), ('["shift:64,0"]', "more than target_px"),
    ('["shift:40,0 shift:-30,0"]', "more than target_px"),
    ('["turn"]', "unknown step")])
def test_bad_variants_in_a_protocol_are_refused_naming_the_key(tmp_path, variants, why):
    from protocols import load_protocol

    protocol, _ = _protocol_with(tmp_path, variants)
    with pytest.raises(UserError) as e:
        load_protocol(protocol)
    msg = str(e.value)
    assert "faces.variants" in msg and why in msg and "\n" not in msg


def test_the_pair_count_includes_the_variants(tmp_path):
    from protocols import load_protocol

    protocol, _ = _protocol_with(tmp_path, VARIANTS)
    cfg = load_protocol(protocol).model
    assert cfg.faces.objects_total == 12 and cfg.pairs_total == 12 * 3


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """A tiny simulated capture with 2 variants per face: 4 faces (1 held out) -> 12 objects."""
    from acquisition.acquire import run_acquisition

    tmp = tmp_path_factory.mktemp("variants")
    protocol, rig = _protocol_with(tmp, VARIANTS)
    out = tmp / "whole.h5"
    assert run_acquisition(protocol, out, rig, unattended=True).exit_code == 0
    return protocol, rig, out


def test_captured_variants_are_the_mirrored_and_shifted_faces(captured):
    *_, run = captured
    with h5py.File(run) as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["objects/name"][...]]
        pattern = f["objects/pattern"][...]
    assert len(names) == 12
    for i in range(0, 12, 3):
        assert names[i + 1] == f"{names[i]}~mirror" and names[i + 2] == f"{names[i]}~shift+8-4"
        assert np.array_equal(pattern[i + 1], np.fliplr(pattern[i]))
        assert np.array_equal(pattern[i + 2], apply_variant(pattern[i], parse_variant("shift:8,-4")))


def test_held_out_faces_variants_never_reach_training_or_model_selection(captured):
    from reconstruction.data import read_index, split_test_objects, training_faces

    *_, run = captured
    index = read_index(run)
    names = [str(n) for n in index.object_name]
    held = {person_of(n) for n, s in zip(names, index.object_split, strict=True) if s == "holdout"}
    assert len(held) == 1 and sum(person_of(n) in held for n in names) == 3  # the face and its 2 variants
    trained = {person_of(names[o]) for o in training_faces(index)}
    assert trained and not trained & held
    test = split_test_objects(index, 0.3, seed=0)
    test_persons = {person_of(names[o]) for o in test}
    assert test
    assert not {person_of(names[o]) for o in training_faces(index) if o not in test} & test_persons


def test_a_stopped_and_resumed_capture_with_variants_is_byte_identical(captured, tmp_path):
    from acquisition.acquire import run_acquisition

    protocol, rig, whole = captured

    class StopAt:
        def on_progress(self, done, total, label):
            if done == 7:
                os.kill(os.getpid(), signal.SIGINT)

    part = tmp_path / "part.h5"
    assert run_acquisition(protocol, part, rig, unattended=True, observers=(StopAt(),)).exit_code == 130
    with h5py.File(part) as f:
        assert 0 < f["pairs/done"][...].sum() < 36
    assert run_acquisition(protocol, part, rig, resume=True, unattended=True).exit_code == 0
    same_content(whole, part)

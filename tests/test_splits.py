"""Clean splits (issue #18): by person, validation and test disjoint, best epoch chosen off the report's
unseen sets."""

import h5py
import numpy as np
import pytest

from reconstruction import data
from reconstruction.train import TrainConfig, select_sets
from speckle_core.person import person_of
from tests.tiny_dataset import write_tiny_dataset


def _rename(run, names):
    with h5py.File(run, "a") as f:
        del f["objects/name"]
        f.create_dataset("objects/name", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    return run


@pytest.mark.parametrize(("name", "person"), [
    ("A_0001", "A"), ("Aaron_Eckhart_0001", "Aaron_Eckhart"), ("Aaron_Eckhart/Aaron_Eckhart_0002.jpg",
                                                                 "Aaron_Eckhart"),
    ("lfw_subset_017", "lfw_subset_017"), ("face_3", "face_3"), ("digit_12345", "digit_12345"),
    ("B_0001.png", "B"), ("C\\C_0003.tif", "C")])
def test_person_of_strips_the_lfw_image_number(name, person):
    assert person_of(name) == person


def test_test_faces_are_whole_persons(tmp_path):
    run = _rename(write_tiny_dataset(tmp_path / "run.h5", n_objects=9),
                  ["A_0001", "A_0002", "A_0003", "B_0001", "B_0002", "C_0001", "D_0001", "D_0002", "E_0001"])
    idx = data.read_index(run)
    persons = data.object_persons(idx)
    for seed in range(6):
        test = data.split_test_objects(idx, 0.3, seed)
        train = set(data.training_faces(idx).tolist()) - set(test)
        assert test and not set(persons[test]) & set(persons[sorted(train)])


def test_training_faces_leave_out_a_person_who_is_held_out(tmp_path):
    # the last object is the held-out face; object 0 shows the same person
    run = _rename(write_tiny_dataset(tmp_path / "run.h5", n_objects=6),
                  ["Z_0001", "A_0001", "B_0001", "C_0001", "D_0001", "Z_0002"])
    idx = data.read_index(run)
    assert 0 not in data.training_faces(idx).tolist()
    cache = data.prepare_cache(run, 16)
    sets = select_sets(cache, TrainConfig(run=str(run), out_dir="x", image_size=16, test_fraction=0.3))
    for name in ("train", "test", "validation"):
        assert 0 not in set(idx.object_index[sets[name]].tolist())


def test_validation_holds_no_test_face(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5", n_objects=8)
    cache = data.prepare_cache(run, 16)
    cfg = TrainConfig(run=str(run), out_dir="x", image_size=16, test_fraction=0.3)
    sets = select_sets(cache, cfg)
    idx = cache.index
    assert cfg.test_objects
    assert not set(idx.object_index[sets["validation"]]) & set(cfg.test_objects)
    assert set(idx.object_index[sets["validation"]]) == set(idx.object_index[sets["train"]])


def test_test_and_holdout_share_no_object(tmp_path):
    run = write_tiny_dataset(tmp_path / "run.h5", n_objects=8)
    cache = data.prepare_cache(run, 16)
    cfg = TrainConfig(run=str(run), out_dir="x", image_size=16, test_fraction=0.5)
    select_sets(cache, cfg)
    held = set(np.flatnonzero(cache.index.object_split == "holdout").tolist())
    assert held and not held & set(cfg.test_objects)

"""Pair selection, preprocessing and the prepared cache (reconstruction.data)."""

import h5py
import numpy as np
import pytest

from reconstruction import data
from reconstruction.train import TrainConfig, select_sets
from speckle_core.errors import UserError
from tests.tiny_dataset import write_tiny_dataset


@pytest.fixture()
def run(tmp_path):
    return write_tiny_dataset(tmp_path / "run.h5")


def test_index_keeps_only_done_rows(run):
    with h5py.File(run) as f:
        done = f["pairs/done"][()]
    idx = data.read_index(run)
    assert list(idx.rows) == list(np.flatnonzero(done)) and len(idx.rows) < len(done)


def test_role_comes_from_the_role_dataset(run):
    idx = data.read_index(run)
    assert set(idx.distance_mm[idx.role == "validation"]) == {40.0}


def test_without_role_the_largest_distance_is_validation(tmp_path):
    run = write_tiny_dataset(tmp_path / "norole.h5", with_role=False, distances=(0.0, 20.0))
    idx = data.read_index(run)
    assert set(idx.distance_mm[idx.role == "validation"]) == {20.0}
    assert set(idx.distance_mm[idx.role == "train"]) == {0.0}


def test_held_out_faces_never_enter_training_or_test(run):
    cache = data.prepare_cache(run, 16)
    sets = select_sets(cache, TrainConfig(run=str(run), out_dir="unused", image_size=16))
    for name in ("train", "test", "validation"):
        assert set(cache.index.face_split[sets[name]]) == {"train"}


def test_test_faces_are_disjoint_from_training_faces(run):
    cache = data.prepare_cache(run, 16)
    cfg = TrainConfig(run=str(run), out_dir="unused", image_size=16, test_fraction=0.3)
    sets = select_sets(cache, cfg)
    train_faces = set(cache.index.object_index[sets["train"]])
    test_faces = set(cache.index.object_index[sets["test"]])
    assert test_faces and not train_faces & test_faces
    assert set(cache.index.role[sets["train"]]) == {"train"}


def test_diffuser_selection_and_unknown_diffuser(run):
    cache = data.prepare_cache(run, 16)
    sets = select_sets(cache, TrainConfig(run=str(run), out_dir="x", image_size=16, diffusers=["600"]))
    assert set(cache.index.diffuser[sets["train"]]) == {"600"}
    with pytest.raises(UserError, match="--diffuser: 999"):
        select_sets(cache, TrainConfig(run=str(run), out_dir="x", image_size=16, diffusers=["999"]))


def test_preprocessed_frame_is_square_and_spans_zero_to_one():
    frame = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48)
    x = data.preprocess_frames(frame, 20)
    assert x.shape == (1, 20, 20)
    assert float(x.min()) == 0.0 and float(x.max()) == pytest.approx(1.0)


def test_preprocessing_crops_the_centre_square():
    frame = np.zeros((32, 48), dtype=np.uint8)
    frame[:, 8:40] = np.arange(32)[None, :] * 4  # only the central 32 columns vary
    frame[:, :8] = 255  # outside the crop: must not show
    x = data.preprocess_frames(frame, 32)[0].numpy()
    assert np.allclose(x, np.arange(32)[None, :] / 31, atol=1e-6)


def test_labels_are_area_averaged_then_binary():
    pattern = np.zeros((1, 8, 8), dtype=np.uint8)
    pattern[0, :, :5] = 1  # 5 of 8 columns on: the 2x2 blocks of columns 4-5 are half on
    lab = data.preprocess_labels(pattern, 4)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) <= {0, 1}
    assert lab[0, 0].tolist() == [1, 1, 1, 0]


def test_cache_holds_the_preprocessed_frames(run):
    cache = data.prepare_cache(run, 16)
    with h5py.File(run) as f:
        raw = f["pairs/speckle"][int(cache.index.rows[3])]
    x, y = cache.batch([3])
    assert np.allclose(x[0, 0].numpy(), data.preprocess_frames(raw, 16)[0].numpy(), atol=1e-3)
    with h5py.File(run) as f:
        pattern = f["objects/pattern"][int(cache.index.object_index[3])]
    assert np.array_equal(y[0, 0].numpy(), data.preprocess_labels(pattern[None], 16)[0])


def test_cache_is_reused_then_rebuilt_when_the_file_changes(run):
    first = data.prepare_cache(run, 16).folder
    assert data.prepare_cache(run, 16).folder == first
    with h5py.File(run, "a") as f:
        f["pairs/done"][0] = False
    again = data.prepare_cache(run, 16)
    assert again.folder != first and 0 not in again.index.rows


def test_not_an_hdf5_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(UserError, match="bad.h5: not a readable HDF5 file"):
        data.read_index(bad)


def test_missing_dataset_is_named(tmp_path, run):
    with h5py.File(run, "a") as f:
        del f["pairs/done"]
    with pytest.raises(UserError, match="/pairs/done is missing"):
        data.read_index(run)


def test_wrong_format_attribute_is_named(run):
    with h5py.File(run, "a") as f:
        f.attrs["format"] = "other/9"
    with pytest.raises(UserError, match="format attribute"):
        data.read_index(run)


def test_max_pairs_caps_the_training_set(run):
    cache = data.prepare_cache(run, 16)
    sets = select_sets(cache, TrainConfig(run=str(run), out_dir="x", image_size=16, max_pairs=5))
    assert len(sets["train"]) == 5

"""One rule for picking pairs (speckle_core.runfile.selection.pair_mask): the Python API's
``RunData.select`` and training's ``PairIndex.select`` give the same rows for the same filters."""

from __future__ import annotations

import numpy as np
import pytest

from reconstruction.data import read_index
from speckle_core.runfile.selection import PairColumns, RunData, pair_mask
from tests.tiny_dataset import write_tiny_dataset


def _columns() -> PairColumns:
    return PairColumns(role=np.array(["train", "train", "validation", "validation"]),
                       diffuser=np.array(["120", "600", "120", "600"]),
                       distance_mm=np.array([0.0, 20.0, 40.0, 40.0004]),
                       split=np.array(["train", "holdout", "train", "train"]),
                       object_index=np.array([0, 1, 2, 3]))


def test_one_value_and_a_list_of_values_filter_alike():
    cols = _columns()
    assert np.array_equal(pair_mask(cols, role="validation"), pair_mask(cols, role=["validation"]))
    assert pair_mask(cols, role="validation").tolist() == [False, False, True, True]


def test_diffuser_names_compare_as_strings():
    assert pair_mask(_columns(), diffuser=600).tolist() == [False, True, False, True]


def test_distances_match_to_a_micrometre():
    cols = _columns()
    assert pair_mask(cols, distance_mm=40).tolist() == [False, False, True, True]  # 0.4 µm off: same
    assert pair_mask(cols, distance_mm=40.002).tolist() == [False, False, False, False]


def test_every_given_filter_must_match():
    mask = pair_mask(_columns(), role="validation", diffuser="600", split="train", object_index={3, 0})
    assert mask.tolist() == [False, False, False, True]


@pytest.mark.parametrize("filters", [
    {},
    {"role": "validation"},
    {"diffuser": ["600"], "distance_mm": [0, 40]},
    {"role": "train", "split": "holdout"},
    {"diffuser": "120", "split": ["train"], "distance_mm": 20},
])
def test_api_and_training_select_the_same_rows(tmp_path, filters):
    path = write_tiny_dataset(tmp_path / "run.h5", n_objects=4, n_not_done=2)
    index = read_index(path)
    picked = index.select(roles=filters.get("role"), diffusers=filters.get("diffuser"),
                          distances_mm=filters.get("distance_mm"), faces=filters.get("split"))
    with RunData.open(path) as run:
        assert np.array_equal(run.select(**filters).rows, index.rows[picked])

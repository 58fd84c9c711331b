"""Run files carry NeXus attributes, so a general viewer's default plot is the speckle frames.

Checked two ways: with ``nexusformat`` (NeXpy's reader, an independent implementation of the
NeXus default-plot rules) and with plain h5py against the rules themselves.
"""

from __future__ import annotations

import h5py
import numpy as np
from nexusformat.nexus import nxload

from speckle_core.runfile import create_run, open_run
from speckle_core.runfile.nexus import UNITS
from tests._run_factory import tiny_layout


def _run(tmp_path):
    path = tmp_path / "run.h5"
    create_run(path, tiny_layout())
    return path


def test_nexusformat_default_plot_is_the_speckle_stack(tmp_path):
    root = nxload(str(_run(tmp_path)), "r")
    data = root.plottable_data
    assert data is not None
    assert data.nxsignal.nxname == "speckle"
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert data.nxsignal.shape == f["pairs/speckle"].shape


def test_default_chain_follows_the_nexus_rules_in_h5py(tmp_path):
    with h5py.File(_run(tmp_path), "r") as f:
        assert f.attrs["NX_class"] == "NXroot"
        entry = f[f.attrs["default"]]
        assert entry.attrs["NX_class"] == "NXentry"
        data = entry[entry.attrs["default"]]
        assert data.attrs["NX_class"] == "NXdata"
        signal = data[data.attrs["signal"]]
        assert signal.shape == f["pairs/speckle"].shape
        assert len(data.attrs["axes"]) == signal.ndim
        # the signal is the contract's dataset itself, reached through a soft link (no copy)
        assert isinstance(data.get(data.attrs["signal"], getlink=True), h5py.SoftLink)
        assert signal.id == f["pairs/speckle"].id


def test_every_dataset_with_a_unit_names_it(tmp_path):
    with h5py.File(_run(tmp_path), "r") as f:
        for path, unit in UNITS.items():
            assert f[path].attrs["units"] == unit, path
        for name in ("objects", "pairs", "capture", "blocks", "dark", "stability"):
            assert f[name].attrs["NX_class"] == "NXcollection"


def test_visititems_still_meets_each_dataset_once_under_its_contract_name(tmp_path):
    names: list[str] = []
    with h5py.File(_run(tmp_path), "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    assert "pairs/speckle" in names and "objects/pattern" in names
    assert not any(n.startswith("entry/") for n in names)


def test_a_file_without_nexus_attributes_still_opens(tmp_path):
    path = _run(tmp_path)
    with h5py.File(path, "r+") as f:
        del f["entry"]
        for key in ("NX_class", "default"):
            del f.attrs[key]
    with open_run(path) as f:
        assert np.asarray(f["pairs/done"]).shape[0] > 0

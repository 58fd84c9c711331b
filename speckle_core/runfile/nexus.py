"""NeXus attributes, so general HDF5 viewers (h5web, silx, NeXpy) plot a run file by default.

Written once, when the file is laid out (:func:`speckle_core.runfile.writer.create_run`); nothing in
the run-file contract (``FORMAT``) changes, and files written before open as they did.

What is added (NeXus base classes NXroot, NXentry, NXdata, NXcollection; the default-plot rule is
NeXus' "Find the plottable data", https://manual.nexusformat.org/datarules.html):

- ``NX_class`` on the root (``NXroot``) and on every group of the contract (``NXcollection``);
- ``/entry`` (``NXentry``) holding two ``NXdata`` groups whose signals are soft links inside the
  file to the contract's datasets (no copy; the NeXus linking rule, with ``@target`` on the
  target): ``/entry/speckle`` (signal ``speckle`` → ``/pairs/speckle``, an image stack) and
  ``/entry/objects`` (signal ``pattern`` → ``/objects/pattern``). Soft links are not objects, so
  ``visititems`` still meets each dataset once, under its contract name;
- ``@default``: root → ``entry`` → ``speckle``, so the default plot is the speckle frames;
- ``@units`` on every dataset that has a unit (:data:`UNITS`).
"""

from __future__ import annotations

import h5py
import numpy as np

# dataset → unit (NeXus unit strings: "us" is microseconds; camera pixel values are "counts")
UNITS = {
    "pairs/speckle": "counts",
    "pairs/distance_mm": "mm",
    "pairs/exposure_us": "us",
    "pairs/timestamp": "s",
    "capture/device_timestamp": "s",
    "blocks/distance_mm": "mm",
    "blocks/exposure_us": "us",
    "dark/frame": "counts",
    "stability/frame": "counts",
    "stability/timestamp": "s",
}
CONTRACT_GROUPS = ("objects", "pairs", "capture", "blocks", "dark", "stability")
# NXdata groups under /entry: name → (signal name, the contract dataset it links to)
PLOTS = {"speckle": ("speckle", "pairs/speckle"), "objects": ("pattern", "objects/pattern")}
DEFAULT_PLOT = "speckle"


def write_nexus(f: h5py.File, layout=None) -> None:
    """Adds the NeXus attributes and the ``/entry`` group to a file being laid out.

    ``layout`` is accepted (and unused) so this fits the writer's list of layout writers.
    """
    f.attrs["NX_class"] = "NXroot"
    f.attrs["default"] = "entry"
    for name in CONTRACT_GROUPS:
        if isinstance(f.get(name), h5py.Group):
            f[name].attrs["NX_class"] = "NXcollection"
    for path, unit in UNITS.items():
        if isinstance(f.get(path), h5py.Dataset):
            f[path].attrs["units"] = unit
    entry = f.create_group("entry")
    entry.attrs["NX_class"] = "NXentry"
    entry.attrs["default"] = DEFAULT_PLOT
    for group_name, (signal, target) in PLOTS.items():
        g = entry.create_group(group_name)
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = signal
        # (row, y, x) with no axis coordinates: plotted in pixels
        g.attrs["axes"] = np.array([".", ".", "."], dtype=h5py.string_dtype())
        g[signal] = h5py.SoftLink("/" + target)
        f[target].attrs["target"] = "/" + target
        f[target].attrs["interpretation"] = "image"

"""The run file: one HDF5 file per run, in one package (docs/design.md, "The run file").

- :mod:`.format`: the contract (names, shapes, the crash-safety rules), ``FORMAT``, :class:`RunLayout`;
- :mod:`.writer`: :func:`create_run` (atomic) and :class:`RunWriter` (frames into preallocated space);
- :mod:`.reader`: :func:`open_run` / :func:`check_run` (one-line refusal of a broken file),
  :func:`check_resumable`, :func:`read_strings`.

Import from here: ``from speckle_core.runfile import open_run``.
"""

from speckle_core.runfile.format import (
    CREATING_SUFFIX,
    DEFAULT_SYNC_INTERVAL_S,
    FORMAT,
    OBJECT_FIELDS,
    PAIR_FIELDS,
    RESUME_NEEDS,
    ROOT_ATTRS,
    BlockSpec,
    RunLayout,
)
from speckle_core.runfile.reader import (
    RUN_CHECKS,
    check_resumable,
    check_run,
    dataset,
    open_run,
    read_array,
    read_roles,
    read_string_array,
    read_strings,
)
from speckle_core.runfile.writer import RunWriter, create_run, software_versions

__all__ = [
    "CREATING_SUFFIX", "DEFAULT_SYNC_INTERVAL_S", "FORMAT", "OBJECT_FIELDS", "PAIR_FIELDS", "RESUME_NEEDS",
    "ROOT_ATTRS", "RUN_CHECKS", "BlockSpec", "RunLayout", "RunWriter", "check_resumable", "check_run",
    "create_run", "dataset", "open_run", "read_array", "read_roles", "read_string_array", "read_strings",
    "software_versions",
]

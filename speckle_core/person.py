"""Which person an object (face image) shows, from its name: the key that splits faces by person.

The rule (docs/design.md, "Splits"): Labeled Faces in the Wild names each image ``<Person>_<NNNN>``
(``Aaron_Eckhart_0001.jpg`` in the folder ``Aaron_Eckhart/``), so a trailing underscore followed by
exactly four digits is the image number and is dropped: ``A_0001`` and ``A_0002`` are person ``A``.
Any folder part, object-variant labels (``A_0001~mirror`` is a mirrored copy of ``A_0001``,
``speckle_core.variants``) and file suffix are dropped first. Every other name (``lfw_subset_017`` of the
embedded set, ``digit_3.png``) is a person of its own. Splits that must not share a person
(training / model-selection / held-out faces) group objects by this key.
"""

from __future__ import annotations

import re

from speckle_core.variants import base_name

_LFW_IMAGE = re.compile(r"(.+)_\d{4}")


def person_of(name: str) -> str:
    """The person key of an object name (see the module docstring)."""
    stem = base_name(str(name).replace("\\", "/").rsplit("/", 1)[-1])
    head, dot, suffix = stem.rpartition(".")
    if dot and head and suffix.isalnum() and not suffix.isdigit():
        stem = head
    m = _LFW_IMAGE.fullmatch(stem)
    return m.group(1) if m else stem

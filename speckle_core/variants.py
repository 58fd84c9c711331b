"""Object variants: new objects made from each selected face by mirroring and shifting it (issue 18).

A protocol's ``faces.variants`` (``protocols.schema.FacesConfig``) lists them; each selected face then
yields itself plus one object per variant, all captured by the rig like any object. A variant is a
short string of steps applied in order, separated by spaces:

- ``mirror``: left-right mirror of the binary object (``np.fliplr``);
- ``shift:DY,DX``: move the object DY rows down and DX columns right (negative: up / left), in pixels
  of the object (``faces.target_px``, the SLM window). Pixels shifted out are dropped; the uncovered
  band is 0 (shown at gray 0), never wrapped round from the other side.

``"mirror shift:0,64"`` mirrors, then shifts 64 px right. The variant of object ``NAME`` is named
``NAME~mirror~shift+0+64`` (:func:`variant_name`): one ``~label`` per step. :func:`base_name` strips
those labels again; ``speckle_core.person.person_of`` uses it, so a face and all its variants are one
person: the holdout split and the model-selection split never put them on two sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SEPARATOR = "~"
MAX_VARIANTS = 16  # per face: enough for mirrors x a few shifts; keeps runs within the pair limit
_SHIFT = re.compile(r"shift:\s*([+-]?\d+)\s*,\s*([+-]?\d+)")
_LABEL = re.compile(r"~(?:mirror|shift[+-]\d+[+-]\d+)$")


@dataclass(frozen=True)
class Step:
    """One step of a variant: a mirror, or a shift by (dy, dx) object pixels."""

    mirror: bool = False
    shift: tuple[int, int] = (0, 0)

    @property
    def label(self) -> str:
        if self.mirror:
            return "mirror"
        dy, dx = self.shift
        return f"shift{dy:+d}{dx:+d}"


def parse_variant(spec: str) -> tuple[Step, ...]:
    """The steps of a variant string; a ValueError (one line) for anything else."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{spec!r} is not a variant: use 'mirror', 'shift:DY,DX' or both, e.g. "
                         "'mirror shift:0,64'")
    steps = []
    for token in spec.split():
        m = _SHIFT.fullmatch(token)
        if token == "mirror":
            steps.append(Step(mirror=True))
        elif m:
            shift = (int(m.group(1)), int(m.group(2)))
            if shift == (0, 0):
                raise ValueError(f"{spec!r}: shift:0,0 leaves the object unchanged")
            steps.append(Step(shift=shift))
        else:
            raise ValueError(f"{spec!r}: unknown step {token!r} (use 'mirror' or 'shift:DY,DX' in object "
                             "pixels, e.g. 'shift:0,64')")
    return tuple(steps)


def variant_label(steps: tuple[Step, ...]) -> str:
    """``~mirror~shift+0+64``: what :func:`variant_name` appends to an object's name."""
    return "".join(SEPARATOR + s.label for s in steps)


def variant_name(name: str, steps: tuple[Step, ...]) -> str:
    return name + variant_label(steps)


def base_name(name: str) -> str:
    """``name`` without its variant labels (``A_0001~mirror`` → ``A_0001``); other names unchanged."""
    name = str(name)
    while True:
        stripped = _LABEL.sub("", name)
        if stripped == name or not stripped:
            return name
        name = stripped


def max_shift(steps: tuple[Step, ...]) -> tuple[int, int]:
    """How far a variant's shifts move the object in all, per axis (Σ|dy|, Σ|dx|): from that far on,
    nothing of it remains in the window."""
    return sum(abs(s.shift[0]) for s in steps), sum(abs(s.shift[1]) for s in steps)


def apply_variant(obj, steps: tuple[Step, ...]):
    """The variant of a 2-D object array: each step in order (a new array; ``obj`` is untouched)."""
    import numpy as np

    out = np.asarray(obj)
    for step in steps:
        out = np.fliplr(out) if step.mirror else _shifted(out, *step.shift)
    return np.ascontiguousarray(out)


def _shifted(a, dy: int, dx: int):
    import numpy as np

    out = np.zeros_like(a)
    h, w = a.shape
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_r, dst_r = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_c, dst_c = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[dst_r, dst_c] = a[src_r, src_c]
    return out

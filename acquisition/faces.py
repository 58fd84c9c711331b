"""Which objects a run shows, and which of them are held out: selection and the holdout split.

The images come from a source (``acquisition.sources``: the embedded faces, a folder of images or
LFW's layout, an archive). Faces or a lab's own objects (digits, letters, patterns: ``faces.kind``)
are handled alike.

Selection is deterministic: the names are sorted, permuted by ``numpy.random.default_rng(seed)``,
and the first ``count`` readable ones in that order are taken (a skipped image is replaced by the
next candidate, so ``count`` holds). The objects are then sorted by name.

The holdout split (``split_holdout``; rule stated in docs/protocol.md) never puts one person on both
sides. A person is ``speckle_core.person.person_of(name)``: LFW's ``A_0001`` and ``A_0002`` are
person ``A``; any other name is a person of its own (so every embedded face and every
``digit_3.png`` stands alone). Either

- ``faces.holdout = N``: whole persons are held out, taken from the end of the selection order (a
  person's place is that of their first selected image), skipping a person whose images would take
  the holdout past N, until N images are held out. With persons of one image each (the embedded
  faces) these are the last N in selection order. When whole persons cannot make N, fewer are held
  out (or, when even the smallest person has more than N images, that person), with a warning; or
- ``faces.holdout_match = REGEX``: the selected images whose name matches (``re.search``) are
  held out. A person with images on both sides of that rule is refused, naming the person.

Variants (``faces.variants``, ``speckle_core.variants``; :func:`with_variants`): after binarising,
each selected face is followed by its mirrored / shifted copies, new objects named ``NAME~mirror``,
``NAME~shift+0+64``. A variant takes its face's split, and ``person_of`` maps it to its face's
person, so a held-out person's variants are all held out and no split puts a face and its variant on
two sides.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import numpy as np

from acquisition.sources import (  # noqa: F401 - the sources' public names, re-exported
    ARCHIVE_SUFFIXES,
    EMBEDDED_FACES,
    IMAGE_SUFFIXES,
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    ArchiveSource,
    EmbeddedSource,
    FaceSource,
    FolderSource,
    ZipSource,
    check_member,
    decode_gray,
    is_archive,
    open_source,
)
from speckle_core.errors import UserError
from speckle_core.person import person_of

log = logging.getLogger("speckle_lab.faces")


@dataclass(frozen=True)
class LoadedFaces:
    """Faces selected and read: gray images in [0, 1] (float32), sorted by name."""

    names: list[str]
    images: list[np.ndarray]
    splits: list[str]  # "train" | "holdout"
    skipped: list[str] = field(default_factory=list)  # "name: reason", for the dataset


def selection_order(names: list[str], seed: int) -> list[str]:
    """The candidates in selection order: sorted names permuted by ``default_rng(seed)``."""
    ordered = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def check_count(source: FaceSource, names: list[str], count: int) -> None:
    if count > len(names):
        pre = f"{source.origin}: " if source.origin else ""
        raise UserError(f"{pre}faces.count: {count} faces requested but {source.label} holds only "
                        f"{len(names)} images")


def split_holdout(chosen: list[str], holdout: int = 0, holdout_match: str | None = None,
                  origin: str = "") -> dict[str, str]:
    """name → "train" | "holdout" for ``chosen`` (in selection order); see the module docstring."""
    pre = f"{origin}: " if origin else ""
    if holdout_match is not None:
        rule = re.compile(holdout_match)
        split = {n: "holdout" if rule.search(n) else "train" for n in chosen}
        sides: dict[str, set[str]] = {}
        for n in chosen:
            sides.setdefault(person_of(n), set()).add(split[n])
        both = sorted(p for p, s in sides.items() if len(s) == 2)
        if both:
            raise UserError(f"{pre}faces.holdout_match: {holdout_match!r} puts person {both[0]!r} on both "
                            "sides (some images held out, some not); match whole persons")
        if "train" not in split.values():
            raise UserError(f"{pre}faces.holdout_match: {holdout_match!r} holds out every selected image; "
                            "some must remain for training")
        return split
    persons: dict[str, list[str]] = {}
    for n in chosen:  # insertion order: the selection order of each person's first image
        persons.setdefault(person_of(n), []).append(n)
    held: list[str] = []
    for images in reversed(list(persons.values())):
        if len(held) == holdout:
            break
        if len(held) + len(images) <= holdout and len(images) < len(chosen):
            held.extend(images)
    if holdout and not held:  # every person is larger than the holdout: the smallest, last selected
        smallest = min(reversed(list(persons.values())), key=len)
        if len(persons) < 2:
            raise UserError(f"{pre}faces.holdout: cannot hold out {holdout} images without splitting a "
                            f"person (the {len(chosen)} selected images show one person)")
        held = list(smallest)
    if len(held) != holdout:
        log.warning("holding out %d images, not %d: whole persons only (speckle_core.person)",
                    len(held), holdout)
    out = set(held)
    return {n: "holdout" if n in out else "train" for n in chosen}


def load_faces(source: FaceSource, count: int, holdout: int, seed: int,
               names: list[str] | None = None, holdout_match: str | None = None) -> LoadedFaces:
    """Selects and reads ``count`` faces (see the module docstring); unreadable ones are skipped."""
    names = source.names() if names is None else names
    check_count(source, names, count)
    order = selection_order(names, seed)
    chosen: list[tuple[str, np.ndarray]] = []
    skipped: list[str] = []
    k = 0
    while len(chosen) < count and k < len(order):
        need = count - len(chosen)
        batch = order[k:k + need + max(8, need // 10)]  # a few spares: one pass usually suffices
        k += len(batch)
        got = {name: (img, why) for name, img, why in source.read(batch)}
        for name in batch:  # selection order, whatever order the source yielded them in
            if len(chosen) == count:
                break
            img, why = got.get(name, (None, "not read"))
            if img is None:
                log.warning("skipping face %s: %s", name, why)
                skipped.append(f"{name}: {why}")
            else:
                chosen.append((name, img))
    if len(chosen) < count:
        first = f"; first: {skipped[0]}" if skipped else ""
        pre = f"{source.origin}: " if source.origin else ""
        raise UserError(f"{pre}faces.count: {count} faces requested but only {len(chosen)} of the "
                        f"{len(names)} images in {source.label} are readable ({len(skipped)} skipped{first})")
    split = split_holdout([n for n, _ in chosen], holdout, holdout_match, source.origin)
    chosen.sort(key=lambda t: t[0])
    return LoadedFaces([n for n, _ in chosen], [im for _, im in chosen], [split[n] for n, _ in chosen],
                       skipped)


def with_variants(patterns: np.ndarray, names: list[str], splits: list[str],
                  variants: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """The objects with each one's variants right after it (face order kept; see the module docstring):
    (patterns (N·(1+V), H, W), names, splits). No variants: the inputs unchanged."""
    from speckle_core.variants import apply_variant, parse_variant, variant_name

    if not variants:
        return patterns, names, splits
    steps = [parse_variant(v) for v in variants]
    out = np.empty((len(names) * (1 + len(steps)), *patterns.shape[1:]), dtype=patterns.dtype)
    out_names: list[str] = []
    out_splits: list[str] = []
    for i, (name, split) in enumerate(zip(names, splits, strict=True)):
        k = len(out_names)
        out[k] = patterns[i]
        for j, st in enumerate(steps, start=1):
            out[k + j] = apply_variant(patterns[i], st)
        out_names += [name] + [variant_name(name, st) for st in steps]
        out_splits += [split] * (1 + len(steps))
    return out, out_names, out_splits

"""Property-based tests of protocol files (issue 8): generated TOML documents through ``load_protocol``.

- Every document inside the schema's bounds loads, and the model holds what the file says.
- Every mutation of one value — a wrong type, a number beyond its bound, NaN or infinity, an unknown
  key — is refused with a one-line ``UserError`` that names the file and the key; never another
  exception.

Bounds for the "beyond its bound" mutation are read from the schema's own field constraints
(``ge``/``gt``/``le``/``lt``), so the test follows the schema instead of restating it.
Bounded and derandomised: ~100 examples each, a deadline per example, no example database.
"""

from __future__ import annotations

import math
import tempfile
import typing
from datetime import timedelta
from pathlib import Path

import annotated_types as at
import pytest
import tomli_w
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from protocols import load_protocol
from protocols.schema import ProtocolConfig
from speckle_core.errors import UserError

# No shrinking: on this 2-core machine shrinking a failure takes a minute; the failing example is
# printed with what was mutated, which is readable as it is.
SETTINGS = settings(max_examples=100, deadline=timedelta(milliseconds=500), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow],
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])

finite = {"allow_nan": False, "allow_infinity": False}


def opt(strategy):
    """An optional key: present with a value from ``strategy``, or absent (the default applies)."""
    return st.one_of(st.none(), strategy)


def table(**fields) -> st.SearchStrategy[dict]:
    """A TOML table whose keys may each be left out."""
    return st.fixed_dictionaries({k: opt(v) for k, v in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not None})


px2 = st.lists(st.integers(8, 64), min_size=2, max_size=2)


@st.composite
def faces(draw) -> dict:
    count = draw(st.integers(1, 60))
    doc = draw(table(
        source=st.sampled_from(["embedded", "lfw", "data/lfw.tgz"]),
        seed=st.integers(0, 2**32 - 1),
        crop_px=st.lists(st.integers(0, 100), min_size=2, max_size=2).flatmap(
            lambda tl: st.lists(st.integers(1, 250), min_size=2, max_size=2).map(lambda hw: tl + hw)),
        target_px=px2,
        interpolation=st.sampled_from(["bilinear", "nearest"]),
        binarise=table(method=st.sampled_from(["otsu", "fixed"]), threshold=st.floats(0, 1, **finite),
                       invert=st.booleans()),
    ))
    doc["count"] = count
    if draw(st.booleans()):
        doc["holdout"] = draw(st.integers(0, count - 1))
    return doc


@st.composite
def auto_exposure(draw) -> dict:
    lo, mid, hi = sorted(draw(st.lists(st.floats(1.0, 1e6, **finite), min_size=3, max_size=3)))
    doc = draw(table(target_percentile=st.floats(0.5, 100, **finite),
                     target_level=st.floats(0.01, 1, **finite),
                     max_saturated_fraction=st.floats(0, 0.5, **finite)))
    return {**doc, "min_us": lo, "start_us": mid, "max_us": hi}


@st.composite
def blocks(draw) -> list[dict]:
    names = ["120", "220", "600", "1500"]
    out, used = [], set()
    for _ in range(draw(st.integers(1, 4))):
        diffuser = draw(st.sampled_from(names))
        free = [d for d in (0.0, 10.0, 20.0, 30.0, 40.0, 45.5) if (diffuser, d) not in used]
        if not free:
            continue
        dists = draw(st.lists(st.sampled_from(free), min_size=1, max_size=len(free), unique=True))
        used.update((diffuser, d) for d in dists)
        block = {"diffuser": diffuser, "distances_mm": dists}
        block.update(draw(table(role=st.sampled_from(["train", "validation"]), repeats=st.integers(1, 5))))
        out.append(block)
    return out


protocols = st.fixed_dictionaries(
    {"blocks": blocks(), "faces": faces()},
    optional={
        "name": st.text(min_size=1, max_size=30),
        "description": st.text(max_size=60),
        "slm": table(gray_pi=st.one_of(st.just("auto"), st.integers(1, 255)),
                     settle_ms=st.floats(0, 10_000, **finite),
                     stroke_mode=st.sampled_from(["full-wave", "half-wave", "any"])),
        "camera": table(roi_px=px2, exposure_us=st.one_of(st.just("auto"), st.floats(1, 1e7, **finite)),
                        auto_exposure=auto_exposure(), average=st.integers(1, 256),
                        timeout_ms=st.floats(1, 600_000, **finite)),
        "dark": table(frames=st.integers(0, 1000)),
        "stability": table(reference_every=st.integers(0, 10_000), threshold=st.floats(-1, 1, **finite),
                           on_drift=st.sampled_from(["ask", "stop", "log"])),
        "retry": table(max_retries=st.integers(0, 100), backoff_s=st.floats(0, 600, **finite),
                       backoff_max_s=st.floats(0, 3600, **finite)),
    })


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def load_doc(folder: Path, doc: dict | str):
    path = folder / "gen.toml"
    path.write_text(doc if isinstance(doc, str) else tomli_w.dumps(doc), encoding="utf-8")
    return path, load_protocol(path)


# -- valid documents --------------------------------------------------------------------------------


@SETTINGS
@given(doc=protocols)
def test_every_document_within_the_schema_loads_as_written(folder, doc):
    _, loaded = load_doc(folder, doc)
    p = loaded.model
    assert p.faces.count == doc["faces"]["count"]
    assert p.faces.holdout == doc["faces"].get("holdout", 0)
    assert [b.diffuser for b in p.blocks] == [b["diffuser"] for b in doc["blocks"]]
    assert [b.distances_mm for b in p.blocks] == [b["distances_mm"] for b in doc["blocks"]]
    per_face = sum(len(b["distances_mm"]) * b.get("repeats", 1) for b in doc["blocks"])
    assert p.pairs_total == doc["faces"]["count"] * per_face
    for section in ("slm", "camera", "dark", "stability", "retry"):
        for key, value in doc.get(section, {}).items():
            if not isinstance(value, dict):
                got = getattr(getattr(p, section), key)
                assert (list(got) if isinstance(got, tuple) else got) == value, f"{section}.{key}"
    assert loaded.text == (folder / "gen.toml").read_text(encoding="utf-8")


# -- one mutated value ---------------------------------------------------------------------------------


def leaves(doc, path=()):
    """(path, value) of every scalar, and every list of scalars, in a document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, (*path, k))
    elif isinstance(doc, list) and doc and isinstance(doc[0], dict):
        for i, v in enumerate(doc):
            yield from leaves(v, (*path, i))
    else:
        yield path, doc
        if isinstance(doc, list):
            for i, v in enumerate(doc):
                yield (*path, i), v


def tables(doc, path=()):
    """Paths of every table in a document (where an unknown key may be put)."""
    if isinstance(doc, dict):
        yield path
        for k, v in doc.items():
            yield from tables(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            if isinstance(v, dict):
                yield from tables(v, (*path, i))


def set_at(doc, path, value):
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def field_info(path):
    """The pydantic FieldInfo of a document path (list indices skipped), or None."""
    model, info = ProtocolConfig, None
    for key in path:
        if isinstance(key, int):
            continue
        if model is None or key not in model.model_fields:
            return None
        info = model.model_fields[key]
        ann = info.annotation
        args = getattr(ann, "__args__", ())
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = nested[0] if nested else None
    return info


def bounds(info) -> list:
    return [m for m in getattr(info, "metadata", []) if isinstance(m, at.Ge | at.Gt | at.Le | at.Lt)]


def beyond(bound, is_int: bool):
    """A value just outside one bound (and one far outside, for absurdity)."""
    if isinstance(bound, at.Le | at.Lt):
        edge = bound.le if isinstance(bound, at.Le) else bound.lt
        return int(edge) + 1 if is_int else float(edge) * 2 + 1
    edge = bound.ge if isinstance(bound, at.Ge) else bound.gt
    return int(edge) - 1 if is_int else float(edge) - abs(float(edge)) - 1


def admits_number(path) -> bool:
    """Whether the field at ``path`` takes a number as one of its types (e.g. ``int | "auto"``)."""
    info = field_info(path)
    ann = getattr(info, "annotation", None)
    return any(t in (int, float) for t in (ann, *typing.get_args(ann)))


def key_name(path) -> str:
    return next(str(k) for k in reversed(path) if not isinstance(k, int))


def wrong_types(value) -> list:
    """Values of another TOML type than ``value``'s that no lax conversion turns into it."""
    if isinstance(value, bool):
        return ["maybe", [True], {"x": 1}, 2]
    if isinstance(value, int | float):
        return ["abc", [1, 2], {"x": 1}, "", True]
    if isinstance(value, str):
        return [5, 2.5, [value], {"x": value}, False]
    if isinstance(value, list):
        return ["abc", 5, {"x": 1}, True]
    return ["abc"]


@st.composite
def mutated(draw):
    """(document, key the error must name, what was done)."""
    doc = draw(protocols)
    kind = draw(st.sampled_from(["wrong type", "beyond bound", "absurd number", "unknown key"]))
    if kind == "unknown key":
        where = draw(st.sampled_from(list(tables(doc))))
        key = draw(st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True))
        node = doc
        for k in where:
            node = node[k]
        if key in node or (field_info((*where, key)) is not None):
            key = f"{key}_typo"
        node[key] = draw(st.one_of(st.integers(0, 9), st.text(max_size=5), st.booleans()))
        return doc, key, f"unknown key {'.'.join(map(str, (*where, key)))}"
    if kind == "wrong type":
        path, value = draw(st.sampled_from(list(leaves(doc))))
        choices = wrong_types(value)
        if admits_number(path) or (path[0] == "blocks" and path[-1] == "diffuser"):
            # e.g. gray_pi = "auto" or 128; `diffuser = 120` names diffuser "120": numbers are right there
            choices = [c for c in choices if not isinstance(c, int | float) or isinstance(c, bool)]
        new = draw(st.sampled_from(choices))
        set_at(doc, path, new)
        return doc, key_name(path), f"{'.'.join(map(str, path))} = {new!r} (was {value!r})"
    numeric = [(p, v) for p, v in leaves(doc) if isinstance(v, int | float) and not isinstance(v, bool)]
    if kind == "beyond bound":
        bounded = [(p, v, b) for p, v in numeric for b in bounds(field_info(p))]
        if bounded:
            path, value, bound = draw(st.sampled_from(bounded))
            new = beyond(bound, field_info(path).annotation is int)
            set_at(doc, path, new)
            return doc, key_name(path), f"{'.'.join(map(str, path))} = {new!r} beyond {bound}"
    path, value = draw(st.sampled_from(numeric))
    new = draw(st.sampled_from([math.nan, math.inf, -math.inf, 10**30, -(10**30)]))
    set_at(doc, path, new)
    return doc, key_name(path), f"{'.'.join(map(str, path))} = {new!r}"


@SETTINGS
@given(case=mutated())
def test_every_mutated_value_is_refused_with_one_line_naming_the_key(folder, case):
    doc, key, what = case
    try:
        load_doc(folder, doc)
    except UserError as e:
        message = str(e)
    else:
        pytest.fail(f"accepted without an error: {what}")
    assert "\n" not in message, what
    assert "gen.toml" in message, what
    assert key in message, f"{what}: {message}"

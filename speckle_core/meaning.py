"""Two TOML configuration texts compared by meaning, not by text.

``differences(model, stored, given)`` parses and validates both texts with the same pydantic model,
so comments, key order, quoting, whitespace, ``20`` vs ``20.0`` and a key left at its default versus
written out all compare equal; what remains are the keys whose values differ, as
``"camera.exposure_us: 500 → 800"``. Used by ``acquire --resume`` (a run continues only with the
protocol and rig it was started with) and shown to the person so they need not guess.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

from pydantic import BaseModel, ValidationError

MISSING = object()


def normalised(model: type[BaseModel], text: str) -> dict[str, Any]:
    """The validated meaning of ``text``: every key (defaults filled in) as JSON-like values.

    Raises ValueError (one line) when the text is not TOML or does not validate."""
    try:
        data = tomllib.loads(text)
        return model.model_validate(data).model_dump(mode="json")
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"not valid TOML ({e})") from None
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
        raise ValueError(f"{loc}: {first.get('msg', 'invalid')}") from None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "l": [{"x": 2}]}`` → ``{"a.b": 1, "l[1].x": 2}`` (list items counted from 1)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        out = {}
        for i, v in enumerate(value, start=1):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _show(v: Any) -> str:
    return "(absent)" if v is MISSING else json.dumps(v, ensure_ascii=False)


def differences(model: type[BaseModel], stored: str, given: str) -> list[str]:
    """The keys whose validated values differ, ``"key: stored → given"``, sorted; [] when the two
    mean the same. Raises ValueError when either text does not validate."""
    a, b = flatten(normalised(model, stored)), flatten(normalised(model, given))
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, MISSING), b.get(key, MISSING)
        if va != vb:
            out.append(f"{key}: {_show(va)} → {_show(vb)}")
    return out


def describe(diffs: list[str], limit: int = 4) -> str:
    """The first ``limit`` differences on one line, "; "-separated, with a count of the rest."""
    shown = "; ".join(diffs[:limit])
    return shown + (f"; and {len(diffs) - limit} more" if len(diffs) > limit else "")

"""docs/protocol.md's reference table lists every protocol key of the schema, and only those, with the
schema's defaults."""

import json
import re
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from protocols.schema import ProtocolConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"


def toml_text(v) -> str:
    """A default as the table writes it: TOML-like, "unset" for None."""
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, tuple | list):
        return "[" + ", ".join(toml_text(x) for x in v) + "]"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _submodel(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, "[]."
    return None, ""


def schema_keys(model=ProtocolConfig, prefix: str = "") -> dict[str, str]:
    """key path → default text ("required" when there is none)."""
    out = {}
    for name, f in model.model_fields.items():
        sub, sep = _submodel(f.annotation)
        if sub is not None:
            out.update(schema_keys(sub, f"{prefix}{name}{sep}"))
        elif f.default is PydanticUndefined and f.default_factory is None:
            out[prefix + name] = "required"
        else:
            out[prefix + name] = toml_text(f.get_default(call_default_factory=True))
    return out


def doc_keys() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## Every key"):]
    rows = re.findall(r"^\| `([^`]+)` \| (`[^|]*`|required) \|", table, flags=re.M)
    return {key: default.strip("`") for key, default in rows}


def test_every_schema_key_is_documented():
    missing = sorted(set(schema_keys()) - set(doc_keys()))
    assert not missing, f"docs/protocol.md lacks {missing}"


def test_every_documented_key_exists_in_the_schema():
    extra = sorted(set(doc_keys()) - set(schema_keys()))
    assert not extra, f"docs/protocol.md documents keys the schema does not have: {extra}"


def test_documented_defaults_are_the_schemas():
    schema, doc = schema_keys(), doc_keys()
    wrong = {k: (doc[k], schema[k]) for k in schema if k in doc and doc[k] != schema[k]}
    assert not wrong, f"docs/protocol.md defaults (doc, schema) differ: {wrong}"


def test_every_schema_field_has_a_description():
    def undescribed(model, prefix=""):
        for name, f in model.model_fields.items():
            sub, sep = _submodel(f.annotation)
            if not f.description:
                yield prefix + name
            if sub is not None:
                yield from undescribed(sub, f"{prefix}{name}{sep}")

    assert list(undescribed(ProtocolConfig)) == []

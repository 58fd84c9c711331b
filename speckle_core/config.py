"""Loading TOML files (protocols, rigs) into validated pydantic models.

Every failure becomes a one-line :class:`UserError` naming the file, the key and what was
expected, so that ``speckle-lab`` exits 2 without a traceback.
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from speckle_core.errors import UserError

MAX_CONFIG_BYTES = 1_000_000  # a protocol or rig file is a few kB; refuse anything absurd

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for config sections: unknown keys are errors, a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_coerced_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic's lax mode reads `count = true` as 1 and `count = "100"` as 100; in a lab file
        # those are typos, so a number must be written as a TOML number.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _coerced(field.annotation, value):
            raise ValueError("expected a number, not " + ("true/false" if _has_bool(value) else "text"))
        return value


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _has_bool(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, list) and any(_has_bool(v) for v in value))


def _takes_as_is(annotation: Any, value: Any) -> bool:
    if annotation is Any or annotation is type(value):
        return True
    return get_origin(annotation) is Literal and value in get_args(annotation)


def _coerced(annotation: Any, value: Any) -> bool:
    """Whether lax validation would turn a TOML bool or string into a number for this type."""
    annotation = _strip(annotation)
    if annotation in (int, float):
        return isinstance(value, bool | str)
    origin = get_origin(annotation)
    if origin is Union or isinstance(annotation, UnionType):
        members = [_strip(a) for a in get_args(annotation) if a is not type(None)]
        if any(_takes_as_is(m, value) for m in members):
            return False
        return any(_coerced(m, value) for m in members)
    if origin in (tuple, list) and isinstance(value, list):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        if not args:
            return False
        return any(_coerced(args[min(i, len(args) - 1)], v) for i, v in enumerate(value))
    return False


def read_text(path: str | Path, what: str = "file") -> str:
    """Reads a small UTF-8 text file, or raises a one-line UserError naming it."""
    p = Path(path)
    try:
        if p.is_dir():
            raise UserError(f"{p}: is a directory, expected a {what} file")
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{p}: not a regular file, expected a {what} file")
        size = st.st_size
        if size > MAX_CONFIG_BYTES:
            raise UserError(f"{p}: {size} bytes is too large for a {what} file (max {MAX_CONFIG_BYTES})")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{p}: no such {what} file") from None
    except PermissionError:
        raise UserError(f"{p}: permission denied") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read {what} file ({e.strerror or e})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (bad byte at offset {e.start})") from None


LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")


def format_validation_error(source: str, err: ValidationError) -> str:
    """One line: ``source: key.path: message (got value)`` for the first error."""
    first = err.errors(include_url=False)[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
    msg = first.get("msg", "invalid")
    for prefix in LIBRARY_PREFIXES:  # pydantic's "Value error, ..." for a validator's ValueError
        msg = msg.removeprefix(prefix)
    got = first.get("input")
    shown = ""
    if first.get("type") not in ("missing", "extra_forbidden") and not isinstance(got, dict):
        r = repr(got)
        shown = f" (got {r[:60] + '...' if len(r) > 60 else r})"
    if first.get("type") == "extra_forbidden":
        msg = "unknown key"
    more = len(err.errors()) - 1
    tail = f" [+{more} more]" if more > 0 else ""
    return f"{source}: {loc}: {msg}{shown}{tail}"


def parse_toml_model(text: str, model: type[M], source: str, context: dict | None = None) -> M:
    """Parses TOML text into ``model``; ``source`` names the file in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: not valid TOML ({e})") from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply to be a {model.__name__} file") from None
    try:
        return model.model_validate(data, context=context)
    except ValidationError as e:
        raise UserError(format_validation_error(source, e)) from None
    except RecursionError:
        raise UserError(f"{source}: nested too deeply to be a {model.__name__} file") from None
    except (ValueError, TypeError) as e:
        raise UserError(f"{source}: {e}") from None


def load_toml_model(
    path: str | Path, model: type[M], what: str, context: dict | None = None
) -> tuple[M, str]:
    """Reads and validates a TOML file; returns the model and the file's text (stored in datasets)."""
    text = read_text(path, what)
    return parse_toml_model(text, model, str(path), context), text

"""A small TOML writer for the files the calibrations write (the twin's rig file)."""

from __future__ import annotations

import tomllib


def toml_text(data: dict, header: list[str]) -> str:
    """A small TOML writer for the twin's rig file (tables, scalars, arrays, inline tables of slots)."""
    lines = [f"# {h}" for h in header]

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(float(v)) if isinstance(v, float) else str(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def key(k: str) -> str:
        return k if k.replace("_", "").replace("-", "").isalnum() and not k.isdigit() else f'"{k}"'

    def table(path: list[str], d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict) and v is not None}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if path:
            lines.append("")
            lines.append("[" + ".".join(key(p) for p in path) + "]")
        for k, v in scalars.items():
            lines.append(f"{key(k)} = {value(v)}")
        for k, v in subs.items():
            if k == "slots":
                inner = ", ".join(f"{key(s)} = {value(n)}" for s, n in v.items())
                lines.append(f"slots = {{ {inner} }}")
            else:
                table(path + [k], v)

    table([], data)
    text = "\n".join(lines) + "\n"
    tomllib.loads(text)  # never write what cannot be read back
    return text

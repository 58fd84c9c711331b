"""Which kind of speckle-lab TOML file a text is: a protocol or a rig file, by its tables.

A protocol has ``[[blocks]]`` (and ``[faces]``, ``[dark]``, ``[stability]``, ``[retry]``); a rig file
has ``[stage]``, ``[changer]``, ``[sim]`` and a ``kind`` in its ``[slm]`` / ``[camera]`` tables. Used
to name the mistake when one is given where the other is expected, instead of reporting the first
key that does not validate.
"""

from __future__ import annotations

import tomllib

PROTOCOL_TABLES = ("blocks", "faces", "dark", "stability", "retry")
RIG_TABLES = ("stage", "changer", "sim")


def toml_kind(text: str) -> str | None:
    """"protocol", "rig", or None (not TOML, or neither / both kinds of tables)."""
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return None
    protocol = any(k in data for k in PROTOCOL_TABLES)
    rig = any(k in data for k in RIG_TABLES) or any(
        isinstance(data.get(k), dict) and "kind" in data[k] for k in ("slm", "camera"))
    if protocol == rig:
        return None
    return "protocol" if protocol else "rig"


def wrong_kind_message(path, text: str, expected: str) -> str | None:
    """A one-line error when ``text`` is the other kind of file than ``expected``; else None."""
    kind = toml_kind(text)
    if kind is None or kind == expected:
        return None
    if kind == "rig":
        return (f"{path}: is a rig file (it has [stage], [changer] or a device kind), not a protocol; "
                "give it with --rig RIG.toml and a protocol (e.g. protocols/quick.toml) as PROTOCOL")
    return (f"{path}: is a protocol (it has [[blocks]] or [faces]), not a rig file; give it as PROTOCOL "
            "and a rig file (e.g. hardware/rigs/lab-example.toml) with --rig")

"""The websocket commands a ``live`` page may send, and their validation.

A message is one JSON object ``{"cmd": NAME, ...fields}``. Anything else (not JSON, not an object,
an unknown command, a missing or unknown field, a wrong type, a value out of range) is refused with
a one-line reason that the page shows; nothing is changed. Booleans are not numbers here, and
numbers must be finite.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from console.source import CommandError

EXPOSURE_RANGE_US = (1.0, 10_000_000.0)  # the console's bounds; the camera clamps/quantises inside
MAX_AVERAGE = 64
SLM_PATTERNS = ("blank", "pi", "face", "step", "test")
ENCODINGS = ("raw", "jpeg")


@dataclass(frozen=True)
class Field:
    kind: type  # int, float, str or bool
    lo: float | None = None
    hi: float | None = None
    required: bool = True
    choices: tuple[str, ...] | None = None


COMMANDS: dict[str, dict[str, Field]] = {
    "exposure": {"exposure_us": Field(float, *EXPOSURE_RANGE_US)},
    "auto_exposure": {},
    "roi": {"rows": Field(int, 1, 65535), "cols": Field(int, 1, 65535)},
    "average": {"frames": Field(int, 1, MAX_AVERAGE)},
    "dark": {},  # a frame with the laser blocked: its mean becomes the black level
    "slm": {"pattern": Field(str, choices=SLM_PATTERNS), "face": Field(int, 0, 1_000_000, required=False),
            "period_px": Field(int, 2, 4096, required=False)},
    "diffuser": {"name": Field(str)},
    "distance": {"distance_mm": Field(float, -1000.0, 1000.0)},
    "snapshot": {"seq": Field(int, 0, 2**32 - 1, required=False)},
    # handled by the server itself, per page:
    "encoding": {"encoding": Field(str, choices=ENCODINGS)},
    "ack": {"seq": Field(int, 0, 2**32 - 1), "latency_ms": Field(float, -1e9, 1e9, required=False)},
    "visible": {"visible": Field(bool)},  # a hidden tab is sent no frames until it is shown again
}
SERVER_COMMANDS = ("encoding", "ack", "visible")


def _value(cmd: str, name: str, spec: Field, v: object) -> object:
    where = f"{cmd}: {name}"
    if spec.kind is bool:
        if not isinstance(v, bool):
            raise CommandError(f"{where} must be true or false (got {json.dumps(v)})")
        return v
    if spec.kind is str:
        if not isinstance(v, str):
            raise CommandError(f"{where} must be a string (got {json.dumps(v)})")
        if spec.choices is not None and v not in spec.choices:
            raise CommandError(f"{where} must be one of {', '.join(spec.choices)} (got {json.dumps(v)})")
        return v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CommandError(f"{where} must be a number (got {json.dumps(v)})")
    if spec.kind is int:
        if isinstance(v, float) and not v.is_integer():
            raise CommandError(f"{where} must be a whole number (got {v})")
        v = int(v)
    elif not math.isfinite(v):
        raise CommandError(f"{where} must be finite (got {v})")
    if (spec.lo is not None and v < spec.lo) or (spec.hi is not None and v > spec.hi):
        raise CommandError(f"{where} {v:g} is out of range {spec.lo:g}..{spec.hi:g}")
    return spec.kind(v)


def parse_command(text: str | bytes | None) -> dict:
    """Parses and validates one message; returns ``{"cmd": ..., fields...}`` or raises CommandError."""
    if not isinstance(text, str):
        raise CommandError("commands are JSON text messages, not binary")
    try:
        msg = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise CommandError("not a JSON message") from None
    if not isinstance(msg, dict):
        raise CommandError("a command is a JSON object with a \"cmd\" field")
    cmd = msg.get("cmd")
    if not isinstance(cmd, str) or cmd not in COMMANDS:
        raise CommandError(f"unknown command {json.dumps(cmd)[:40]} (known: {', '.join(COMMANDS)})")
    fields = COMMANDS[cmd]
    extra = sorted(set(msg) - set(fields) - {"cmd"})
    if extra:
        raise CommandError(f"{cmd}: unknown field {extra[0]!r}")
    out: dict = {"cmd": cmd}
    for name, spec in fields.items():
        if name not in msg:
            if spec.required:
                raise CommandError(f"{cmd}: missing field {name!r}")
            continue
        out[name] = _value(cmd, name, spec, msg[name])
    return out

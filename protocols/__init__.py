"""Protocol files: format, validation, and the shipped protocols (paper-2023.toml, quick.toml)."""

from __future__ import annotations

from pathlib import Path


def load_protocol(path: str | Path):
    """PLACEHOLDER until the protocol schema lands: reads the file so bad paths exit 2."""
    from speckle_lab.config import read_text

    return read_text(path, "protocol")

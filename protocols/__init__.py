"""Protocol files: format, validation, and the shipped protocols (paper-2023.toml, quick.toml).

``load_protocol(path)`` reads and validates one (``protocols.schema``); every error is a one-line
``UserError`` naming the file and key (exit 2). ``shipped(name)`` is the path of a shipped one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from protocols.schema import ProtocolConfig, name_blocks_in

SHIPPED_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ProtocolFile:
    """A validated protocol, the file's text (stored verbatim in the dataset) and its path."""

    model: ProtocolConfig
    text: str
    path: Path

    @property
    def folder(self) -> Path:
        """Relative paths in the protocol (faces.source) are taken from here."""
        return self.path.resolve().parent


def load_protocol(path: str | Path) -> ProtocolFile:
    """Reads and validates a protocol file; raises a one-line UserError on any problem."""
    from speckle_core.config import load_toml_model, read_text
    from speckle_core.errors import UserError
    from speckle_core.tomlkind import wrong_kind_message

    try:
        model, text = load_toml_model(path, ProtocolConfig, "protocol")
    except UserError as e:
        try:
            message = wrong_kind_message(path, read_text(path, "protocol"), "protocol")
        except UserError:
            message = None
        raise UserError(message or name_blocks_in(str(e))) from None
    return ProtocolFile(model, text, Path(path))


def shipped(name: str) -> Path:
    """The path of a shipped protocol, e.g. ``shipped("quick")`` → protocols/quick.toml."""
    return SHIPPED_DIR / (name if name.endswith(".toml") else f"{name}.toml")

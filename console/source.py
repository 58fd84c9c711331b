"""What a console page watches: a *source* of frames, SLM patterns, status and (for ``live``)
commands. ``console.live.LiveSession`` (the rig, driven from the page) and ``console.view.RunView``
(an acquisition run, read-only) are the two sources; ``console.server`` serves either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from console.slot import LatestSlot


@dataclass(frozen=True)
class FrameItem:
    """A frame as handed to the view: never copied, never modified after it is put in the slot."""

    image: np.ndarray
    max_value: int | None  # full scale; None: found from the frame by the server (console.pump)
    time_s: float  # host unix time at the end of the capture
    exposure_us: float
    black_level: float = 0.0
    saturation_level: int | None = None  # where the sensor clips, if below max_value
    info: dict[str, Any] = field(default_factory=dict)  # what the page shows beside it (kind, pair...)


class CommandError(Exception):
    """A command the page sent that was refused: the message goes back to the page, nothing changed."""


class Source(Protocol):
    readonly: bool
    frames: LatestSlot  # FrameItem
    slm: LatestSlot  # uint8 gray pattern shown on the SLM

    def status(self) -> dict:
        """A JSON-able snapshot of the state the page shows (cheap: called a few times a second)."""
        ...

    def status_version(self) -> int:
        """Changes whenever ``status()`` would."""
        ...

    def command(self, message: dict) -> dict:
        """Carries out one validated command; returns what the page should know (JSON-able).

        Runs in a worker thread and may block (auto exposure takes seconds). Raises CommandError."""
        ...

    def clients_changed(self, n: int) -> None:
        """How many pages are connected now."""
        ...

"""The device interfaces every rig implements, real or simulated.

Small on purpose: an SLM shows a pattern, a camera captures a frame, a stage moves to a
distance, a diffuser changer selects a diffuser, an operator answers prompts. Units are in
the names. Public methods validate and convert units; drivers talk to the vendor API in
private ``_..._hw`` hooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

# A frame's identity, e.g. ("pair", 17) or ("dark", 0, 2) or ("reference", 3).
# The simulated camera seeds its noise from it (docs/design.md, "Determinism"); real cameras log it.
FrameKey = tuple


@dataclass(frozen=True)
class Frame:
    """One captured (possibly averaged) camera frame."""

    image: np.ndarray  # (H, W) uint8 or uint16, as the camera delivers it
    exposure_us: float  # the exposure actually used
    timestamp_s: float  # host unix time at the end of the capture
    frame_index: int | None = None  # the camera's own frame counter, if it has one
    device_timestamp_s: float | None = None  # the camera's own clock, if it has one
    saturated_fraction: float = 0.0  # share of pixels at the ADC maximum
    meta: dict = field(default_factory=dict)


@runtime_checkable
class SLM(Protocol):
    """A phase SLM driven as a display. Only the central window carries the pattern."""

    @property
    def window_shape(self) -> tuple[int, int]:
        """(rows, cols) of the pattern window, 800×800 on the paper's rig."""
        ...

    def show_gray(self, gray: np.ndarray) -> float:
        """Displays ``gray`` (window_shape, uint8 gray levels) after a vsync'd flip.

        Returns the host time (``time.monotonic()``) of the flip. Does not wait for the liquid
        crystal to settle: the caller waits ``settle_ms`` from that time before capturing.
        """
        ...

    def read_back(self) -> np.ndarray:
        """The gray levels actually displayed in the window now (window_shape, uint8)."""
        ...

    def stroke_mode(self) -> str:
        """``"full-wave"`` or ``"half-wave"``, read from the device where it can be."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Camera(Protocol):
    """A camera delivering single-channel frames from a region of interest."""

    @property
    def max_value(self) -> int:
        """The largest pixel value the output mode can give (255 for 8-bit modes)."""
        ...

    def configure(self, roi_px: tuple[int, int], exposure_us: float) -> float:
        """Sets a centred ROI of (rows, cols) pixels and the exposure; returns the exposure applied."""
        ...

    def capture(self, timeout_ms: float, average: int = 1, key: FrameKey | None = None) -> Frame:
        """Captures one frame, or the mean of ``average`` frames, within ``timeout_ms`` each.

        Raises :class:`hardware.errors.DeviceTimeout` when no frame comes in time.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class DistanceStage(Protocol):
    """Sets the camera's distance from the focal plane of the last lens (0, 20, 40 mm)."""

    def move_to_mm(self, distance_mm: float) -> float:
        """Moves, waits, reads back and checks the position; returns the distance reached in mm."""
        ...

    def distance_mm(self) -> float | None:
        """The present distance, or None when unknown (a manual stage before its first move)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DiffuserChanger(Protocol):
    """Puts one of the rig's diffusers (named by grit, e.g. "220") in the beam."""

    @property
    def diffusers(self) -> tuple[str, ...]:
        """The diffusers this changer can select."""
        ...

    def select(self, diffuser: str) -> None:
        """Puts ``diffuser`` in the beam and checks it is there."""
        ...

    def current(self) -> str | None:
        """The diffuser in the beam, or None when unknown."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class DarkSource(Protocol):
    """What blocks the laser for dark frames (hardware/drivers/shutter.py): a flip mount, a shutter,
    the filter wheel's blank slot, or a person."""

    manual: bool  # a person does it (the run cannot be unattended)
    label: str  # what the plan and the log call it

    def block(self) -> None:
        """The laser no longer reaches the camera (checked where the device can tell)."""
        ...

    def unblock(self) -> None:
        """The beam is back as it was before ``block``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Operator(Protocol):
    """The person at the rig, or a script standing in for one."""

    @property
    def interactive(self) -> bool:
        """False for unattended runs: a protocol needing a manual step must refuse to start."""
        ...

    def request(self, instruction: str) -> str:
        """Asks for a manual step ("Put the 220-grit diffuser in, then press Enter").

        Blocks until done and returns the answer, which callers log. Raises
        :class:`hardware.errors.DeviceError` (device "operator") when the person aborts.
        """
        ...

    def ask_yes_no(self, question: str, default: bool = False) -> bool: ...

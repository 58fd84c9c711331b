"""The rig's dark source: which device blocks the laser for dark frames (``[shutter]`` and
``changer.dark_slot`` in the rig file), described without opening it (for ``plan``) and built.

In order of precedence: the simulated rig (its camera renders darks), a ``[shutter]`` (an MFF101
flip mount or an SH05 on a KSC101), the FW102C's blank ``changer.dark_slot``, else a person asked
at the console. The drivers are in ``hardware.drivers.shutter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from speckle_core.config import StrictModel


class ShutterConfig(StrictModel):
    """``[shutter]``: a motorised beam block for dark frames (none: the changer's dark slot or a person)."""

    kind: Literal["none", "mff101", "ksc101"] = "none"  # MFF101 flip mount; SH05 shutter on a KSC101
    serial: str | None = None  # the K-Cube's serial number (or serial port on Linux)
    blocked_state: int = Field(default=1, ge=0, le=1)  # MFF101: the flip position (0/1) that blocks the beam
    channel: int = Field(default=1, ge=1, le=4)  # KSC101: the solenoid channel (1)
    timeout_s: float = Field(default=5.0, gt=0, le=600)  # a move must finish within this
    settle_ms: float = Field(default=0.0, ge=0, le=10_000)  # wait after each move (vibration of a flip mount)


@dataclass(frozen=True)
class DarkSourceInfo:
    label: str  # what blocks the laser, for plan and the log
    manual: bool  # a person must do it


def describe_dark_source(rig_config) -> DarkSourceInfo:
    """What will block the laser, from the rig file alone (opens nothing)."""
    if rig_config.simulated:
        return DarkSourceInfo("the simulated camera (renders dark frames)", False)
    sh, ch = rig_config.shutter, rig_config.changer
    if sh.kind == "mff101":
        return DarkSourceInfo(f"MFF101 flip mount {sh.serial or ''}".rstrip(), False)
    if sh.kind == "ksc101":
        return DarkSourceInfo(f"SH05 shutter on KSC101 {sh.serial or ''}".rstrip(), False)
    if ch.dark_slot is not None and ch.kind == "fw102c":
        return DarkSourceInfo(f"the filter wheel's blank slot {ch.dark_slot}", False)
    return DarkSourceInfo("a person (asked at the console)", True)


def build_dark_source(rig_config, changer, operator, vendor=None):
    """Opens the dark source described by ``describe_dark_source``."""
    from hardware.drivers import shutter

    if rig_config.simulated:
        return shutter.NoDarkSource()
    sh, ch = rig_config.shutter, rig_config.changer
    if sh.kind == "mff101":
        return shutter.FlipMountShutter.from_config(sh, vendor)
    if sh.kind == "ksc101":
        return shutter.SolenoidShutter.from_config(sh, vendor)
    if ch.dark_slot is not None and ch.kind == "fw102c":
        return shutter.WheelDarkSlot(changer, ch.dark_slot)
    return shutter.OperatorDark(operator)

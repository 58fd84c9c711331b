"""Device plugins: a lab's own package adds a device ``kind`` that rig files accept, without
editing speckle-lab (docs/design.md, "Devices").

A plugin is a :class:`DevicePlugin` registered in the entry-point group ``speckle_lab.devices``
of the lab package's ``pyproject.toml``; the entry point's name is the ``kind``::

    [project.entry-points."speckle_lab.devices"]
    mycam = "mylab.cameras:PLUGIN"

    # mylab/cameras.py
    class MyCamConfig(hardware.rig.CameraConfig):      # the rig file's [camera] table for this kind
        kind: Literal["mycam"] = "mycam"
        address: str                                   # the device's own keys
    PLUGIN = DevicePlugin(role="camera", kind="mycam", open=MyCam.from_config, config_model=MyCamConfig)

Rig files then accept ``[camera] kind = "mycam"``: the table is validated with ``config_model``
(one-line errors naming the key, like every rig key), and :func:`hardware.rig.build_rig` opens the
device with ``open(config, operator)``. The device must implement the role's Protocol in
``hardware/interfaces.py``; ``hardware/drivers/template.py`` is a camera scaffold to start from.
Without ``config_model`` the table is the role's built-in one with this ``kind``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from speckle_core.errors import UserError
from speckle_core.text import one_line

GROUP = "speckle_lab.devices"
Role = Literal["slm", "camera", "stage", "changer"]
ROLES: tuple[Role, ...] = ("slm", "camera", "stage", "changer")
BUILT_IN_KINDS: dict[str, tuple[str, ...]] = {  # what hardware.rig opens itself
    "slm": ("sim", "exulus"), "camera": ("sim", "uc480", "tsi"), "stage": ("sim", "kinesis", "manual"),
    "changer": ("sim", "fw102c", "manual"),
}


@dataclass(frozen=True)
class DevicePlugin:
    """One device kind from a lab's package."""

    role: Role  # which device of the rig it is
    kind: str  # the rig file's ``kind`` value; must equal the entry point's name
    open: Callable[[Any, Any], Any]  # (the validated rig-file table, the operator) -> the opened device
    config_model: type | None = None  # a subclass of the role's rig-file table, kind: Literal[kind]


@functools.cache
def device_plugins() -> dict[tuple[str, str], DevicePlugin]:
    """Every installed plugin by (role, kind). A broken one is a one-line UserError naming it.

    Cached: call ``device_plugins.cache_clear()`` after installing a plugin in a running process.
    """
    found: dict[tuple[str, str], DevicePlugin] = {}
    for ep in metadata.entry_points(group=GROUP):
        where = f"device plugin {ep.name!r} ({ep.value}, entry point group {GROUP})"
        try:
            plugin = ep.load()
        except Exception as e:  # noqa: BLE001 - a lab's package failing to import: one line
            raise UserError(f"{where}: cannot be loaded ({one_line(e, 160, with_type=True)})") from None
        _check(plugin, ep.name, where)
        key = (plugin.role, plugin.kind)
        if key in found:
            raise UserError(f"{where}: {plugin.role} kind {plugin.kind!r} is registered twice")
        found[key] = plugin
    return found


def _check(plugin: object, name: str, where: str) -> None:
    if not isinstance(plugin, DevicePlugin):
        raise UserError(f"{where}: is a {type(plugin).__name__}, not a hardware.plugins.DevicePlugin")
    if plugin.role not in ROLES:
        raise UserError(f"{where}: role {plugin.role!r} is not one of {', '.join(ROLES)}")
    if plugin.kind != name:
        raise UserError(f"{where}: its kind {plugin.kind!r} differs from the entry point's name")
    if plugin.kind in BUILT_IN_KINDS[plugin.role]:
        raise UserError(f"{where}: {plugin.role} kind {plugin.kind!r} is built in; choose another name")
    if not callable(plugin.open):
        raise UserError(f"{where}: its open is not callable")


def plugin_for(role: str, kind: str) -> DevicePlugin | None:
    """The plugin that opens ``kind`` for ``role``, or None for a built-in kind."""
    return device_plugins().get((role, kind))


def open_device(role: str, config: Any, operator: Any) -> Any:
    """Opens a plugin device from its validated rig-file table."""
    plugin = plugin_for(role, config.kind)
    if plugin is None:
        raise ValueError(f"{role} kind {config.kind!r} is not a plugin kind")
    return plugin.open(config, operator)

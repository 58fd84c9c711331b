"""A rig: one SLM, camera, distance stage, diffuser changer and operator, built from a TOML file.

The rig file names each device's kind and address, the SLM's phase LUT and settle time
(docs/design.md, "The rig file" and "Devices"). ``hardware/rigs/sim.toml`` is the default: the simulated rig.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hardware.clock import REAL_CLOCK, Clock
from hardware.dark import ShutterConfig, build_dark_source
from hardware.interfaces import SLM, Camera, DarkSource, DiffuserChanger, DistanceStage, Operator
from hardware.lut import PhaseLUT
from hardware.plugins import BUILT_IN_KINDS, device_plugins, open_device, plugin_for
from hardware.sim.config import SimConfig
from speckle_core.config import StrictModel, format_validation_error, load_toml_model, parse_toml_model
from speckle_core.errors import UserError

PositivePx = Annotated[int, Field(gt=0, le=100_000)]
Px2 = tuple[PositivePx, PositivePx]


class SlmConfig(StrictModel):
    kind: Literal["sim", "exulus"] = "sim"
    monitor: int | Literal["auto"] = "auto"  # screen index, or "auto": the one 1920×1200 screen
    allow_primary: bool = False  # never cover the operator's main screen unless forced
    window_px: Px2 = (800, 800)  # the pattern window, centred on the panel (paper: 800×800)
    window_offset_px: tuple[int, int] = (0, 0)  # (rows, cols) shift of the window from the centre
    settle_ms: float = Field(default=0.0, ge=0, le=10_000)  # the device's liquid-crystal response time
    stroke_mode: Literal["full-wave", "half-wave"] = "full-wave"
    lut_gray_2pi: float = Field(
        default=256.0, gt=0, le=4096)  # linear LUT: 2π at this gray (EXULUS full wave)
    lut_file: str | None = None  # a measured LUT (CSV gray,phase_rad), relative to the rig file
    control: Literal["none", "exulus-dll"] = "none"  # the USB control port, through Thorlabs' library
    control_port: str | None = None  # EXULUS serial number or COM port, e.g. "COM5"
    control_library: str | None = None  # folder holding EXULUS_COMMAND_LIB.py and its DLL


class CameraConfig(StrictModel):
    kind: Literal["sim", "uc480", "tsi"] = "sim"
    id: int | None = Field(default=None, ge=0)  # uc480 camera id (0 = first)
    serial: str | None = None  # or open by serial number
    backend: Literal["uc480", "ueye"] = "uc480"  # ThorCam's uc480 DLL or IDS's ueye driver
    color_mode: str = "mono8"  # a colour sensor: set an explicit mono or raw mode
    sensor_px: Px2 = (1024, 1280)  # DCC1645C: 1280×1024 (rows, cols)
    pixel_um: float = Field(default=3.6, gt=0)  # DCC1645C pixel pitch
    timeout_ms: float = Field(default=2000.0, gt=0, le=600_000)
    dll_path: str | None = None  # folder of the uc480 / ueye DLLs if not on PATH


class StageConfig(StrictModel):
    kind: Literal["sim", "kinesis", "manual"] = "sim"
    serial: str | None = None  # KDC101 serial number, e.g. "27000001"
    scale: str = "MTS50-Z8"  # pylablib stage scale
    zero_mm: float = Field(
        default=0.0, ge=0, le=50)  # stage reading at which the camera is at the focal plane
    # which way increasing stage travel moves the camera: "away" from L2 (+) or "toward" it (-)
    direction: Literal["away", "toward"] = "away"
    travel_mm: tuple[float, float] = (0.0, 50.0)  # MTS50-Z8: 50 mm
    tolerance_um: float = Field(default=5.0, gt=0, le=1000)  # read-back must be within this of the target
    move_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    home_on_start: bool = False


class ChangerConfig(StrictModel):
    kind: Literal["sim", "fw102c", "manual"] = "sim"
    port: str | None = None  # FW102C serial port, e.g. "COM4" or "/dev/ttyUSB0"
    slots: dict[str, str] = Field(
        default_factory=lambda: {"1": "120", "2": "220", "3": "600", "4": "1500"}
    )  # wheel slot (1..6) → diffuser grit; a manual changer uses only the names
    timeout_s: float = Field(default=20.0, gt=0, le=600)
    dark_slot: int | None = Field(default=None, ge=1, le=12)  # FW102C slot holding a blank: darks need nobody

    @model_validator(mode="after")
    def _check_slots(self) -> ChangerConfig:
        if not self.slots:
            raise ValueError("slots: at least one diffuser is needed")
        for slot, name in self.slots.items():
            if not slot.isdigit() or not 1 <= int(slot) <= 12:
                raise ValueError(f"slots: slot {slot!r} must be a number 1..12")
            if not name.strip():
                raise ValueError(f"slots: slot {slot} has an empty diffuser name")
        names = list(self.slots.values())
        if len(set(names)) != len(names):
            raise ValueError(f"slots: a diffuser appears twice ({names})")
        if self.dark_slot is not None:
            if str(self.dark_slot) in self.slots:
                raise ValueError(f"dark_slot: slot {self.dark_slot} holds diffuser "
                                 f"{self.slots[str(self.dark_slot)]!r}; the dark slot must hold a blank")
            if self.kind != "fw102c":
                raise ValueError("dark_slot: only a filter wheel (kind = 'fw102c') has a slot to block the "
                                 "beam; use a [shutter] or leave darks to a person")
        return self

    @property
    def diffusers(self) -> tuple[str, ...]:
        return tuple(self.slots[k] for k in sorted(self.slots, key=int))


class RigConfig(StrictModel):
    name: str = "unnamed rig"
    slm: SlmConfig = SlmConfig()
    camera: CameraConfig = CameraConfig()
    stage: StageConfig = StageConfig()
    changer: ChangerConfig = ChangerConfig()
    shutter: ShutterConfig = ShutterConfig()
    sim: SimConfig = SimConfig()

    @property
    def simulated(self) -> bool:
        """The optics are simulated (SLM and camera); stage and changer are then simulated too."""
        return self.slm.kind == "sim"

    @property
    def simulated_devices(self) -> tuple[str, ...]:
        """The devices of kind "sim", in slm, camera, stage, changer order."""
        kinds = (("slm", self.slm.kind), ("camera", self.camera.kind), ("stage", self.stage.kind),
                 ("changer", self.changer.kind))
        return tuple(name for name, kind in kinds if kind == "sim")

    @property
    def rig_kind(self) -> str:
        """"simulated", "real", or "mixed" (real optics, a simulated stage or changer)."""
        sim = self.simulated_devices
        return "simulated" if self.simulated else ("mixed" if sim else "real")

    @model_validator(mode="after")
    def _simulated_parts(self) -> RigConfig:
        # The optics are simulated or real as a whole: a simulated SLM cannot light a real camera.
        # Around real optics, a stage or changer may be simulated (a rig brought up one device at a
        # time); around simulated optics they must be simulated (the model sets distance and diffuser).
        if (self.slm.kind == "sim") != (self.camera.kind == "sim"):
            raise ValueError(f"slm.kind {self.slm.kind!r} with camera.kind {self.camera.kind!r}: the SLM "
                             "and camera are simulated together or real together (a simulated SLM cannot "
                             "light a real camera); a real camera may have a simulated stage and changer")
        if self.simulated:
            real = [n for n, k in (("stage", self.stage.kind), ("changer", self.changer.kind)) if k != "sim"]
            if real:
                raise ValueError(f"{real[0]}.kind: a simulated SLM and camera need the simulated {real[0]} "
                                 f"(the optical model sets it); use kind = 'sim' or real optics")
            if self.shutter.kind != "none":
                raise ValueError("shutter.kind: the simulated camera renders dark frames itself; "
                                 "use kind = 'none'")
        return self


DEFAULT_RIG = "sim.toml"
ROLE_TABLES: dict[str, type[StrictModel]] = {"slm": SlmConfig, "camera": CameraConfig, "stage": StageConfig,
                                             "changer": ChangerConfig}


def rig_config_model() -> type[RigConfig]:
    """``RigConfig``, widened by the installed device plugins (``hardware.plugins``): a role with
    plugin kinds takes its built-in table or a plugin's, chosen by ``kind``."""
    plugins = device_plugins()
    return _widened(tuple(sorted(plugins))) if plugins else RigConfig


@functools.cache
def _widened(keys: tuple[tuple[str, str], ...]) -> type[RigConfig]:
    validators: dict[str, Any] = {}
    for role in ROLE_TABLES:
        kinds = tuple(kind for r, kind in keys if r == role)
        if kinds:
            check = _plugin_section(role, kinds)
            validators[f"_{role}_plugin_table"] = field_validator(role, mode="before")(check)
    return create_model("RigConfig", __base__=RigConfig, __validators__=validators)


def _plugin_section(role: str, plugin_kinds: tuple[str, ...]):
    """A before-validator of the ``role`` table: a plugin kind's section is validated with the
    plugin's table (its own keys), a built-in kind's is left to the built-in table."""
    every = ", ".join(repr(k) for k in (*BUILT_IN_KINDS[role], *plugin_kinds))

    def validate(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        kind = value.get("kind", "sim")
        if kind in BUILT_IN_KINDS[role]:
            return value
        if kind not in plugin_kinds:
            line = f"kind: must be one of {every} (got {kind!r})"
            raise PydanticCustomError("value_error", "{line}", {"line": line})
        table = _plugin_table(device_plugins()[(role, kind)], ROLE_TABLES[role])
        try:
            return table.model_validate(value)
        except ValidationError as e:  # one line, the key inside this table named
            line = format_validation_error(role, e).removeprefix(f"{role}: ")
            raise PydanticCustomError("value_error", "{line}", {"line": line}) from None

    return validate


def _plugin_table(plugin, base: type[StrictModel]) -> type[StrictModel]:
    """The rig-file table of a plugin kind: its own model, or the role's table with that kind."""
    if plugin.config_model is None:
        # the kind itself is checked by _plugin_section, which chose this table by it
        return create_model(f"{plugin.kind}_table", __base__=base, kind=(str, plugin.kind))
    model = plugin.config_model
    if not (isinstance(model, type) and issubclass(model, base)):
        raise UserError(f"device plugin {plugin.kind!r}: config_model must subclass hardware.rig."
                        f"{base.__name__} (the [{plugin.role}] table)")
    return model


@dataclass
class RigFile:
    config: RigConfig
    text: str  # stored verbatim in the dataset's `rig` attribute
    path: Path | None  # None for the packaged default

    def lut(self) -> PhaseLUT:
        slm = self.config.slm
        if slm.lut_file:
            base = self.path.parent if self.path else Path.cwd()
            return PhaseLUT.from_csv(base / slm.lut_file)
        return PhaseLUT.linear(slm.lut_gray_2pi)


def load_rig(path: str | Path | None = None) -> RigFile:
    """Reads and validates a rig file; ``None`` gives the packaged simulated rig."""
    if path is None:
        text = importlib.resources.files("hardware").joinpath("rigs", DEFAULT_RIG).read_text()
        return RigFile(parse_toml_model(text, rig_config_model(), f"<default rig {DEFAULT_RIG}>"), text, None)
    try:
        config, text = load_toml_model(path, rig_config_model(), "rig")
    except UserError:
        _refuse_a_protocol(path)
        raise
    return RigFile(config, text, Path(path))


def _refuse_a_protocol(path) -> None:
    """A protocol given as the rig file is named as such (not as its first unknown key)."""
    from speckle_core.config import read_text
    from speckle_core.tomlkind import wrong_kind_message

    try:
        message = wrong_kind_message(path, read_text(path, "rig"), "rig")
    except UserError:
        return
    if message:
        raise UserError(message) from None


class Closable(Protocol):
    def close(self) -> None: ...


@dataclass
class Rig:
    """One of each device, plus the file it was built from."""

    file: RigFile
    slm: SLM
    camera: Camera
    stage: DistanceStage
    changer: DiffuserChanger
    operator: Operator
    lut: PhaseLUT
    clock: Clock = REAL_CLOCK  # hardware.clock: wait for the devices on this (the sim's is virtual)
    dark: DarkSource | None = None  # blocks the laser for dark frames (hardware.dark)

    @property
    def config(self) -> RigConfig:
        return self.file.config

    def close(self) -> None:
        """Closes every device, even if one of them fails to close."""
        errors = []
        for dev in (self.camera, self.slm, self.stage, self.changer, self.dark):
            if dev is None:
                continue
            try:
                dev.close()
            except Exception as e:  # noqa: BLE001 - close them all, report the first
                errors.append(e)
        if errors:
            raise errors[0]

    def manual_devices(self) -> list[str]:
        """Which of the rig's movers a person operates ("stage", "changer"): those with ``manual = True``."""
        return [name for name, dev in (("stage", self.stage), ("changer", self.changer))
                if getattr(dev, "manual", False)]


def build_rig(rig_file: RigFile, operator: Operator) -> Rig:
    """Opens every device named in the rig file. Vendor libraries are imported only here."""
    cfg = rig_file.config
    lut = rig_file.lut()
    if cfg.simulated:
        from hardware.sim import build_sim_devices

        slm, camera, stage, changer = build_sim_devices(cfg, lut)
        return Rig(rig_file, slm, camera, stage, changer, operator, lut, clock=slm.clock,
                   dark=build_dark_source(cfg, changer, operator))

    opened: list[Closable] = []
    try:
        slm = _open_slm(cfg, lut, operator)
        opened.append(slm)
        camera = _open_camera(cfg, operator)
        opened.append(camera)
        sim_stage, sim_changer = None, None
        if "sim" in (cfg.stage.kind, cfg.changer.kind):  # a mixed rig: positions only, no optics
            from hardware.sim.movers import build_sim_movers

            sim_stage, sim_changer = build_sim_movers(cfg)
        stage = sim_stage if cfg.stage.kind == "sim" and sim_stage is not None else _open_stage(cfg, operator)
        opened.append(stage)
        changer = (sim_changer if cfg.changer.kind == "sim" and sim_changer is not None
                   else _open_changer(cfg, operator))
        opened.append(changer)
        dark = build_dark_source(cfg, changer, operator)
        opened.append(dark)
    except BaseException:
        for dev in reversed(opened):
            with contextlib.suppress(Exception):  # already failing: keep the first error
                dev.close()
        raise
    return Rig(rig_file, slm, camera, stage, changer, operator, lut, dark=dark)


# -- one device each: a plugin's kind (hardware.plugins), else a built-in driver ---------------------

def _open_slm(cfg: RigConfig, lut: PhaseLUT, operator: Operator) -> SLM:
    if plugin_for("slm", cfg.slm.kind) is not None:
        return open_device("slm", cfg.slm, operator)
    from hardware.drivers.exulus import ExulusSLM

    return ExulusSLM.from_config(cfg.slm, lut)


def _open_camera(cfg: RigConfig, operator: Operator) -> Camera:
    if plugin_for("camera", cfg.camera.kind) is not None:
        return open_device("camera", cfg.camera, operator)
    if cfg.camera.kind == "uc480":
        from hardware.drivers.uc480_camera import UC480CameraDriver

        return UC480CameraDriver.from_config(cfg.camera)
    from hardware.drivers.tsi_camera import TSICameraDriver

    return TSICameraDriver.from_config(cfg.camera)


def _open_stage(cfg: RigConfig, operator: Operator) -> DistanceStage:
    if plugin_for("stage", cfg.stage.kind) is not None:
        return open_device("stage", cfg.stage, operator)
    if cfg.stage.kind == "kinesis":
        from hardware.drivers.kinesis_stage import KinesisStage

        return KinesisStage.from_config(cfg.stage)
    from hardware.drivers.manual import ManualStage

    return ManualStage(operator)


def _open_changer(cfg: RigConfig, operator: Operator) -> DiffuserChanger:
    if plugin_for("changer", cfg.changer.kind) is not None:
        return open_device("changer", cfg.changer, operator)
    if cfg.changer.kind == "fw102c":
        from hardware.drivers.fw_wheel import FilterWheelChanger

        return FilterWheelChanger.from_config(cfg.changer)
    from hardware.drivers.manual import ManualDiffuserChanger

    return ManualDiffuserChanger(operator, cfg.changer.diffusers)

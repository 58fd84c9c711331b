"""A rig: one SLM, camera, distance stage, diffuser changer and operator, built from a TOML file.

The rig file names each device's kind and address, the SLM's phase LUT and settle time
(DESIGN.md, "Device interfaces"). ``hardware/rigs/sim.toml`` is the default: the simulated rig.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from hardware.clock import REAL_CLOCK
from hardware.dark import ShutterConfig, build_dark_source
from hardware.lut import PhaseLUT
from hardware.sim.config import SimConfig
from speckle_core.config import StrictModel, load_toml_model, parse_toml_model
from speckle_core.errors import UserError

PositivePx = Annotated[int, Field(gt=0, le=100_000)]
Px2 = tuple[PositivePx, PositivePx]


class SlmConfig(StrictModel):
    kind: Literal["sim", "exulus"] = "sim"
    monitor: int | Literal["auto"] = "auto"  # screen index, or "auto": the one 1920×1200 screen
    allow_primary: bool = False  # never cover the operator's main screen unless forced
    window_px: Px2 = (800, 800)  # the pattern window, centred on the panel (paper: 800×800)
    window_offset_px: tuple[int, int] = (0, 0)  # (rows, cols) shift of the window from the centre
    settle_ms: float = Field(0.0, ge=0, le=10_000)  # the device's liquid-crystal response time
    stroke_mode: Literal["full-wave", "half-wave"] = "full-wave"
    lut_gray_2pi: float = Field(256.0, gt=0, le=4096)  # linear LUT: 2π at this gray (EXULUS full wave)
    lut_file: str | None = None  # a measured LUT (CSV gray,phase_rad), relative to the rig file
    control: Literal["none", "exulus-dll"] = "none"  # the USB control port, through Thorlabs' library
    control_port: str | None = None  # EXULUS serial number or COM port, e.g. "COM5"
    control_library: str | None = None  # folder holding EXULUS_COMMAND_LIB.py and its DLL


class CameraConfig(StrictModel):
    kind: Literal["sim", "uc480", "tsi"] = "sim"
    id: int | None = Field(None, ge=0)  # uc480 camera id (0 = first)
    serial: str | None = None  # or open by serial number
    backend: Literal["uc480", "ueye"] = "uc480"  # ThorCam's uc480 DLL or IDS's ueye driver
    color_mode: str = "mono8"  # a colour sensor: set an explicit mono or raw mode
    sensor_px: Px2 = (1024, 1280)  # DCC1645C: 1280×1024 (rows, cols)
    pixel_um: float = Field(3.6, gt=0)  # DCC1645C pixel pitch
    timeout_ms: float = Field(2000.0, gt=0, le=600_000)
    dll_path: str | None = None  # folder of the uc480 / ueye DLLs if not on PATH


class StageConfig(StrictModel):
    kind: Literal["sim", "kinesis", "manual"] = "sim"
    serial: str | None = None  # KDC101 serial number, e.g. "27000001"
    scale: str = "MTS50-Z8"  # pylablib stage scale
    zero_mm: float = Field(0.0, ge=0, le=50)  # stage reading at which the camera is at the focal plane
    # which way increasing stage travel moves the camera: "away" from L2 (+) or "toward" it (-)
    direction: Literal["away", "toward"] = "away"
    travel_mm: tuple[float, float] = (0.0, 50.0)  # MTS50-Z8: 50 mm
    tolerance_um: float = Field(5.0, gt=0, le=1000)  # read-back must be within this of the target
    move_timeout_s: float = Field(60.0, gt=0, le=3600)
    home_on_start: bool = False


class ChangerConfig(StrictModel):
    kind: Literal["sim", "fw102c", "manual"] = "sim"
    port: str | None = None  # FW102C serial port, e.g. "COM4" or "/dev/ttyUSB0"
    slots: dict[str, str] = Field(
        default_factory=lambda: {"1": "120", "2": "220", "3": "600", "4": "1500"}
    )  # wheel slot (1..6) → diffuser grit; a manual changer uses only the names
    timeout_s: float = Field(20.0, gt=0, le=600)
    dark_slot: int | None = Field(None, ge=1, le=12)  # FW102C slot holding a blank: darks need nobody

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
        return RigFile(parse_toml_model(text, RigConfig, f"<default rig {DEFAULT_RIG}>"), text, None)
    try:
        config, text = load_toml_model(path, RigConfig, "rig")
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


@dataclass
class Rig:
    """One of each device, plus the file it was built from."""

    file: RigFile
    slm: object
    camera: object
    stage: object
    changer: object
    operator: object
    lut: PhaseLUT
    clock: object = REAL_CLOCK  # hardware.clock: wait for the devices on this (the sim's is virtual)
    dark: object = None  # hardware.drivers.shutter: blocks the laser for dark frames (see hardware.dark)

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


def build_rig(rig_file: RigFile, operator: object) -> Rig:
    """Opens every device named in the rig file. Vendor libraries are imported only here."""
    cfg = rig_file.config
    lut = rig_file.lut()
    if cfg.simulated:
        from hardware.sim import build_sim_devices

        slm, camera, stage, changer = build_sim_devices(cfg, lut)
        return Rig(rig_file, slm, camera, stage, changer, operator, lut, clock=slm.clock,
                   dark=build_dark_source(cfg, changer, operator))

    opened: list[object] = []
    try:
        from hardware.drivers.exulus import ExulusSLM

        slm = ExulusSLM.from_config(cfg.slm, lut)
        opened.append(slm)
        if cfg.camera.kind == "uc480":
            from hardware.drivers.uc480_camera import UC480CameraDriver as CameraClass
        else:
            from hardware.drivers.tsi_camera import TSICameraDriver as CameraClass
        camera = CameraClass.from_config(cfg.camera)
        opened.append(camera)
        if "sim" in (cfg.stage.kind, cfg.changer.kind):  # a mixed rig: positions only, no optics
            from hardware.sim.movers import build_sim_movers

            sim_stage, sim_changer = build_sim_movers(cfg)
        if cfg.stage.kind == "kinesis":
            from hardware.drivers.kinesis_stage import KinesisStage

            stage = KinesisStage.from_config(cfg.stage)
        elif cfg.stage.kind == "sim":
            stage = sim_stage
        else:
            from hardware.drivers.manual import ManualStage

            stage = ManualStage(operator)
        opened.append(stage)
        if cfg.changer.kind == "fw102c":
            from hardware.drivers.fw_wheel import FilterWheelChanger

            changer = FilterWheelChanger.from_config(cfg.changer)
        elif cfg.changer.kind == "sim":
            changer = sim_changer
        else:
            from hardware.drivers.manual import ManualDiffuserChanger

            changer = ManualDiffuserChanger(operator, cfg.changer.diffusers)
        opened.append(changer)
        dark = build_dark_source(cfg, changer, operator)
        opened.append(dark)
    except BaseException:
        for dev in reversed(opened):
            with contextlib.suppress(Exception):  # already failing: keep the first error
                dev.close()
        raise
    return Rig(rig_file, slm, camera, stage, changer, operator, lut, dark=dark)

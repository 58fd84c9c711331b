"""A run's settings: the protocol's tables as validated, with the rig's values filled in.

There is one translation, :meth:`RunSettings.from_plan`, and it renames nothing: ``settings.camera``
is the protocol's ``[camera]`` table (``protocols.schema.CameraConfig``), ``settings.retry`` its
``[retry]`` table, and so on, so a key reads the same in the TOML file, the plan and the engine
(``camera.auto_exposure.target_level``, ``retry.max_retries``, ``stability.on_drift``).
What the rig decides is written into those tables once, here:

- ``slm.gray_pi``: the protocol's, or the rig LUT's π level when the protocol says "auto";
- ``slm.settle_ms``: the larger of the protocol's and the rig's (the plan resolves both);
- ``camera.timeout_ms``: the protocol's, or the rig file's ``camera.timeout_ms`` when unset.

The rest are the engine's own knobs (not protocol keys): how many objects auto exposure probes,
how often done flags are synced, how far the writer thread may lag.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from hardware.rig import CameraConfig as RigCameraConfig
from protocols.schema import CameraConfig, DarkConfig, RetryConfig, SlmConfig, StabilityConfig
from speckle_core.runfile import DEFAULT_SYNC_INTERVAL_S

if TYPE_CHECKING:
    from acquisition.plan import RunPlan

DEFAULT_TIMEOUT_MS = float(RigCameraConfig.model_fields["timeout_ms"].default)


@dataclass(frozen=True)
class RunSettings:
    """What a run needs, by the protocol's table and key names (units in the names)."""

    camera: CameraConfig = field(default_factory=CameraConfig)  # [camera]; timeout_ms resolved
    slm: SlmConfig = field(default_factory=SlmConfig)  # [slm]; gray_pi and settle_ms resolved
    dark: DarkConfig = field(default_factory=DarkConfig)  # [dark]
    stability: StabilityConfig = field(default_factory=StabilityConfig)  # [stability]
    retry: RetryConfig = field(default_factory=RetryConfig)  # [retry]
    target_px: tuple[int, int] | None = None  # [faces] target_px: the patterns' size (None: not checked)
    manual_steps: tuple[str, ...] = ()  # what a person must do, from the plan
    laser_blocked_for_dark: bool = False  # the rig makes darks itself (sim); else the operator blocks it
    # the engine's own knobs
    probe_objects: int = 3  # objects of a block probed by auto exposure
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S  # see speckle_core.runfile: done flags follow an fsync
    queue_frames: int = 8  # frames the writer thread may lag behind
    pipelined: bool = True  # False: each capture waits for its write (only to measure the gain)

    def __post_init__(self) -> None:
        if self.camera.timeout_ms is None:  # made without a rig (tests, benchmarks): the rig's default
            camera = self.camera.model_copy(update={"timeout_ms": DEFAULT_TIMEOUT_MS})
            object.__setattr__(self, "camera", camera)

    @classmethod
    def from_plan(cls, plan: RunPlan, **engine: Any) -> RunSettings:
        """The run's settings from its plan (validated protocol and rig file); ``engine``: its knobs."""
        protocol, rig = plan.protocol.model, plan.rig.config
        camera = protocol.camera
        if camera.timeout_ms is None:
            camera = camera.model_copy(update={"timeout_ms": rig.camera.timeout_ms})
        slm = protocol.slm.model_copy(update={"gray_pi": int(plan.gray_pi),
                                              "settle_ms": float(plan.settle_ms)})
        return cls(camera=camera, slm=slm, dark=protocol.dark, stability=protocol.stability,
                   retry=protocol.retry, target_px=protocol.faces.target_px,
                   manual_steps=tuple(plan.manual_steps),
                   laser_blocked_for_dark=rig.simulated, **engine)

    def replace(self, **changes: Any) -> RunSettings:
        """A copy with some keys changed; a table is changed key by key:
        ``settings.replace(camera={"exposure_us": 77.0}, retry={"backoff_s": 0.0}, pipelined=False)``."""
        out: dict[str, Any] = {}
        for name, value in changes.items():
            current = getattr(self, name)
            out[name] = current.model_copy(update=value) if isinstance(value, dict) else value
        return replace(self, **out)

    @property
    def timeout_ms(self) -> float:
        """The per-frame capture timeout: ``camera.timeout_ms``, resolved against the rig."""
        return float(self.camera.timeout_ms if self.camera.timeout_ms is not None else DEFAULT_TIMEOUT_MS)

    @property
    def fixed_exposure_us(self) -> float | None:
        """The protocol's fixed exposure, or None for ``exposure_us = "auto"``."""
        return None if self.camera.auto else float(self.camera.exposure_us)

    @property
    def required_stroke_mode(self) -> str | None:
        """The SLM phase-stroke mode the run requires; None for ``stroke_mode = "any"``."""
        return None if self.slm.stroke_mode == "any" else self.slm.stroke_mode

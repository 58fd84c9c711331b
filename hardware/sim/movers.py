"""A simulated stage and diffuser changer around REAL optics: a rig brought up one device at a time.

With a real SLM and camera but ``stage.kind = "sim"`` or ``changer.kind = "sim"`` (a mixed rig, see
``hardware.rig``), these stand in for the missing movers: they check the request as the real
device would (the stage's reach, the changer's diffusers) and remember the position, but nothing
moves, so the real camera sees whatever the bench holds. ``plan`` and the run file say which
devices were simulated (the root attribute ``simulated_devices``; ``rig_kind = "mixed"``).
They reuse the simulated rig's ``SimStage`` / ``SimChanger`` on a positions-only bench: no optical
model is built, and the ``[sim.faults]`` rates apply as on the simulated rig.
"""

from __future__ import annotations

from typing import cast

import numpy as np

from hardware.sim.devices import SimBench, SimChanger, SimStage
from hardware.sim.diffuser import seed_sequence


class PositionsBench:
    """What ``SimStage`` and ``SimChanger`` need of a bench: the position state and the faults."""

    def __init__(self, config):
        self.config = config
        self.sim = config.sim
        self.diffuser: str = config.changer.diffusers[0]
        self.distance_mm: float = 0.0
        self._faults = np.random.Generator(np.random.PCG64(seed_sequence("faults", self.sim.seed)))

    def fault(self, rate: float) -> bool:
        return rate > 0.0 and bool(self._faults.random() < rate)


def build_sim_movers(config) -> tuple[SimStage, SimChanger]:
    """(stage, changer) on one positions-only bench; the rig uses those its file marks "sim"."""
    bench = cast("SimBench", PositionsBench(config))  # duck-typed: the movers use only what it has
    return SimStage(bench), SimChanger(bench)

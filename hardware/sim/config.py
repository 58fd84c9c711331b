"""Parameters of the simulated rig (the ``[sim]`` table of a rig file).

PLACEHOLDER SCHEMA: the simulated-rig work extends this with every physical constant, each
cited where it comes from (see docs/simulation.md).
"""

from __future__ import annotations

from pydantic import Field

from speckle_lab.config import StrictModel


class SimConfig(StrictModel):
    seed: int = Field(0, ge=0, description="fixes every diffuser's phase screen and all noise")
    noise: bool = True

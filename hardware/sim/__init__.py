"""The simulated rig: a physical model of the paper's optics (docs/simulation.md)."""

from __future__ import annotations


def build_sim_devices(config, lut):
    """Returns (slm, camera, stage, changer) sharing one simulated optical bench."""
    from speckle_lab.errors import NotAvailableError

    raise NotAvailableError("the simulated rig is not built yet")

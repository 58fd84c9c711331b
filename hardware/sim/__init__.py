"""The simulated rig: a physical model of the paper's optics (docs/simulation.md).

``build_sim_devices`` builds the SLM, camera, stage and diffuser changer on one shared bench.
Modules: ``config`` (the ``[sim]`` table), ``geometry`` (the grid and iris), ``optics`` (the field
chain, drift, the SLM's faults), ``diffuser`` (phase screens), ``sensor`` (the Bayer camera: noise,
ADC, demosaic, grey), ``devices`` (the Protocol implementations), ``operator`` (the scripted
operator for tests).
"""

from __future__ import annotations


def build_sim_devices(config, lut):
    """Returns (slm, camera, stage, changer) sharing one simulated optical bench.

    Raises ``UserError`` when the rig file asks for something the model cannot do: a diffuser
    without ``[sim.diffusers]`` constants, or a colour mode that is not simulated.
    """
    from hardware.sim.devices import SimBench, SimCamera, SimChanger, SimSLM, SimStage
    from hardware.sim.sensor import COLOR_MODES
    from speckle_core.errors import UserError

    missing = [d for d in config.changer.diffusers if d not in config.sim.diffusers]
    if missing:
        raise UserError(f"rig: changer.slots names diffuser {missing[0]!r} but sim.diffusers has no "
                        f"constants for it (it has {', '.join(config.sim.diffusers)})")
    if config.camera.color_mode not in COLOR_MODES:
        raise UserError(f"rig: camera.color_mode: the simulated camera offers {', '.join(COLOR_MODES)} "
                        f"(got {config.camera.color_mode!r})")
    bench = SimBench(config, lut)
    return SimSLM(bench), SimCamera(bench), SimStage(bench), SimChanger(bench)

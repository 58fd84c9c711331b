"""Small simulated rigs for the hardware/sim tests (small windows keep them fast)."""

from __future__ import annotations

import numpy as np

from hardware.lut import PhaseLUT
from hardware.rig import RigConfig
from hardware.sim import build_sim_devices


def small_config(window: int = 128, camera: dict | None = None, **sim) -> RigConfig:
    sim = {"seed": 3, "noise": False, **sim}
    return RigConfig.model_validate({"slm": {"window_px": [window, window]}, "camera": camera or {},
                                     "sim": sim})


def small_rig(window: int = 128, camera: dict | None = None, **sim):
    """(slm, camera, stage, changer) with the ROI set to the window."""
    cfg = small_config(window, camera, **sim)
    slm, cam, stage, changer = build_sim_devices(cfg, PhaseLUT.linear(256))
    cam.configure((window, window), 1000.0)
    return slm, cam, stage, changer


def blocks(window: int, seed: int, cells: int = 8) -> np.ndarray:
    """A random binary object of cells×cells blocks (a stand-in for an upsampled face), 0/1 uint8."""
    small = np.random.default_rng(seed).integers(0, 2, (cells, cells), dtype=np.uint8)
    rep = -(-window // cells)
    return np.kron(small, np.ones((rep, rep), np.uint8))[:window, :window]


def irradiance(cam, gray: np.ndarray, diffuser: str, distance_mm: float) -> np.ndarray:
    """The noiseless camera irradiance for ``gray`` (float64)."""
    bench = cam._bench
    irr = bench.optics.irradiance(bench.optics.slm_field(gray), diffuser, distance_mm, cam.roi)
    return irr.astype(np.float64)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])

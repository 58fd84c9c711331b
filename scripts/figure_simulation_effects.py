"""Figures and numbers for docs/simulation.md's issue-16 effects: the grid and iris, the colour
camera, drift, the SLM's faults and the diffuser constants.

Run: ``.venv/bin/python scripts/figure_simulation_effects.py [--out docs/img/simulation_effects.png]``.
It prints every number the page quotes (a few minutes on 2 cores) and writes one figure.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

W = 256  # SLM window and ROI of the small rigs used here (the real window is 800)


def rig(window: int = W, **sim):
    from tests._sim_helpers import small_rig

    return small_rig(window=window, **sim)


def face(window: int) -> np.ndarray:
    from skimage import data
    from skimage.filters import threshold_otsu
    from skimage.transform import resize

    img = data.lfw_subset()[0].astype(np.float64)
    small = (img > threshold_otsu(img)).astype(np.uint8)
    up = resize(small, (window, window), order=0, anti_aliasing=False) > 0.5
    return up.astype(np.uint8) * np.uint8(128)


def pearson(a, b) -> float:
    return float(np.corrcoef(np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64))[0, 1])


def grid_panel(ax) -> None:
    slm, cam, stage, changer = rig()
    optics = cam._bench.optics
    field = optics.slm_field(face(W))
    n = optics.plan((W, W)).shape[0]
    print("\n## Grid and iris (window 256, 120 grit)")
    print("| iris edge | distance | corr(N, 1.5N) | mean error |")
    print("|---|---|---|---|")
    for edge in (0.0, 0.1):
        slm, cam, stage, changer = rig(iris_edge=edge)
        optics = cam._bench.optics
        n = optics.plan((W, W)).shape[0]
        for z in (0.0, 40.0):
            a = optics.irradiance(field, "120", z, (W, W)).astype(np.float64)
            b = optics.irradiance(field, "120", z, (W, W), grid=(int(1.5 * n),) * 2).astype(np.float64)
            print(f"| {edge:g} | {z:g} mm | {pearson(a, b):.4f} | {np.abs(a - b).mean() / b.mean():.2%} |")
            if z == 0.0:
                ax.plot(np.abs(a - b)[W // 2] / b.mean(), label=f"edge {edge:g}: |N − 1.5N| / mean", lw=0.8)
    ax.set_title("one frame on grids N and 1.5N (row)")
    ax.set_xlabel("pixel")
    ax.legend(fontsize=7)


def camera_panel(ax) -> None:
    slm, cam, stage, changer = rig(noise=True)
    changer.select("1500")
    slm.show_gray(face(W))
    print("\n## Colour camera (1500 grit, 0 mm)")
    print(f"saturation level (grey where red clips): {cam.saturation_level} of {cam.max_value}")
    print("| exposure µs | mean grey | grey max | red pixels clipped |")
    print("|---|---|---|---|")
    exposures = [250, 500, 1000, 2000, 4000, 8000]
    means = []
    for e in exposures:
        cam.configure((W, W), e)
        fr = cam.capture(100, average=4, key=("fig", e))
        means.append(fr.image.mean())
        print(f"| {e} | {fr.image.mean():.2f} | {fr.image.max()} | {fr.saturated_fraction:.2%} |")
    ax.plot(exposures, means, "o-", label="mean grey")
    ax.axhline(cam.saturation_level, color="r", ls="--", lw=0.8, label="red clips (grey ≈ 96)")
    ax.set_xscale("log")
    ax.set_xlabel("exposure (µs)")
    ax.set_title("mono8 under 633 nm light")
    ax.legend(fontsize=7)


def drift_panels(ax_shift, ax_tilt) -> None:
    from scipy.special import j1

    from hardware.sim.optics import Drift

    na = 0.0075
    slm, cam, stage, changer = rig(384, imaging_na=na, diffuser_drift_um_per_hour=1.0,
                                   diffusers={k: {"rms_height_um": 0.6, "corr_length_um": 6.0}
                                              for k in ("120", "220", "600", "1500")})
    optics = cam._bench.optics
    field = optics.slm_field(np.zeros((384, 384), np.uint8))

    def frame(d):
        return optics.irradiance(field, "120", 0.0, (384, 384), drift=d)[32:-32, 32:-32]

    rest = frame(Drift())
    vs = np.linspace(0.25, 5, 12)
    shifts = vs * 0.6328 / (2 * math.pi * na)
    ax_shift.plot(vs, [pearson(rest, frame(Drift(shift_um=s))) for s in shifts], "o", label="simulated")
    v = np.linspace(0.01, 5, 200)
    ax_shift.plot(v, (2 * j1(v) / v) ** 2, label="[2J1(v)/v]²")
    ax_shift.set_xlabel("v = 2π·NA·shift/λ")
    ax_shift.set_title("diffuser slides: frame correlation")
    ax_shift.legend(fontsize=7)
    qs = np.linspace(0.05, 0.95, 10)
    ax_tilt.plot(qs, [pearson(rest, frame(Drift(tilt_rad=2 * q * na))) for q in qs], "o", label="simulated")
    q = np.linspace(0, 1, 200)
    ax_tilt.plot(q, ((2 / np.pi) * (np.arccos(q) - q * np.sqrt(1 - q * q))) ** 2, label="hard-iris OTF²")
    ax_tilt.set_xlabel("q = tilt / (2·NA)")
    ax_tilt.set_title("beam tilts: frame correlation")
    ax_tilt.legend(fontsize=7)


def slm_panel(axes) -> None:
    gray = face(W)
    faults = [("ideal SLM", {}), ("10 % unmodulated", {"slm_unmodulated_share": 0.1}),
              ("fringing 3 µm", {"slm_fringing_um": 3.0}),
              ("Gaussian beam w 1 mm", {"slm_beam_waist_mm": 1.0})]
    print("\n## SLM faults (the face, 20 mm)")
    print("| fault | corr with the ideal SLM's frame, 1500 grit | 600 grit |")
    print("|---|---|---|")
    ideal = {}
    for ax, (name, keys) in zip(axes, faults, strict=True):
        slm, cam, stage, changer = rig(**keys)
        optics = cam._bench.optics
        frames = {d: optics.irradiance(optics.slm_field(gray), d, 20.0, (W, W)) for d in ("1500", "600")}
        if not keys:
            ideal = frames
        corr = [pearson(frames[d], ideal[d]) for d in ("1500", "600")]
        print(f"| {name} | {corr[0]:.3f} | {corr[1]:.3f} |")
        ax.imshow(frames["1500"], cmap="gray")
        ax.set_title(f"{name} (1500, 20 mm)", fontsize=8)
        ax.axis("off")
    slm, cam, stage, changer = rig(slm_flicker_rad=0.3)
    optics = cam._bench.optics
    a = optics.irradiance(optics.slm_field(gray, 0.0), "1500", 20.0, (W, W))
    b = optics.irradiance(optics.slm_field(gray, 1 / 240), "1500", 20.0, (W, W))
    print(f"| flicker 0.3 rad: frames a quarter period apart | {pearson(a, b):.3f} | |")


def diffuser_panel(ax) -> None:
    from hardware.sim.config import DiffuserSpec
    from hardware.sim.diffuser import ballistic_fraction

    gray = face(W)
    other = face(W)[::-1].copy()
    print("\n## 1500 grit across its plausible roughness (w 8 µm, 20 mm)")
    print("| σh µm | unscattered exp(−σφ²) | frame contrast | corr(frame, bare object's frame) "
          "| corr(two faces) |")
    print("|---|---|---|---|---|")
    heights = (0.15, 0.20, 0.25, 0.30, 0.35, 0.45)
    shown = []
    bare_slm = rig(diffusers={k: {"rms_height_um": 0.0, "corr_length_um": 8.0}
                              for k in ("120", "220", "600", "1500")})
    bo = bare_slm[1]._bench.optics
    bare = bo.irradiance(bo.slm_field(gray), "1500", 20.0, (W, W))
    for h in heights:
        spec = {"rms_height_um": h, "corr_length_um": 8.0}
        slm, cam, stage, changer = rig(diffusers={k: spec for k in ("120", "220", "600", "1500")})
        optics = cam._bench.optics
        f1 = optics.irradiance(optics.slm_field(gray), "1500", 20.0, (W, W))
        f2 = optics.irradiance(optics.slm_field(other), "1500", 20.0, (W, W))
        share = ballistic_fraction(DiffuserSpec(**spec), 0.6328, 1.515)
        shown.append(pearson(f1, bare))
        contrast = f1.std() / f1.mean()
        print(f"| {h:.2f} | {share:.1%} | {contrast:.2f} | {shown[-1]:.2f} | {pearson(f1, f2):.2f} |")
    ax.plot(heights, shown, "o-", label="corr(frame, bare object)")
    unscattered = [ballistic_fraction(DiffuserSpec(rms_height_um=h, corr_length_um=8.0), 0.6328, 1.515)
                   for h in heights]
    ax.plot(heights, unscattered, "s--", label="unscattered share")
    ax.set_xlabel("σh (µm), 1500 grit")
    ax.set_title("the object shows through")
    ax.legend(fontsize=7)


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/img/simulation_effects.png")
    args = ap.parse_args()
    fig, axes = plt.subplots(3, 4, figsize=(15, 10.5))
    grid_panel(axes[0, 0])
    camera_panel(axes[0, 1])
    drift_panels(axes[0, 2], axes[0, 3])
    slm_panel(list(axes[1]))
    diffuser_panel(axes[2, 0])
    for ax in axes[2, 1:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

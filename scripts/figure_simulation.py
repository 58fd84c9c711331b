"""Makes docs/img/simulation_faces.png and prints the model's constants and their consequences.

One LFW face (``skimage.data.lfw_subset()[0]``, Otsu-binarised, nearest-neighbour upsampled to the
800×800 SLM window) through each diffuser of the default simulated rig at 0, 20 and 40 mm, as
the camera delivers it (noise on) at an exposure that fills the ADC, plus the 40 mm frame area-
averaged to 64×64 (what the demo's network sees). Run: ``.venv/bin/python scripts/figure_simulation.py``.

``--ridge RUN.h5`` instead checks how much of the object a LINEAR read-out finds in a captured run
(e.g. ``speckle-lab acquire protocols/quick.toml``): ridge regression from the 64×64-averaged frames
at 0 and 20 mm of the training faces to the 25×25-averaged objects, scored by PCC at 40 mm.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISTANCES_MM = (0.0, 20.0, 40.0)


def face_pattern(window: tuple[int, int]) -> np.ndarray:
    from skimage import data, filters
    from skimage.transform import resize

    face = data.lfw_subset()[0]
    binary = face > filters.threshold_otsu(face)
    return resize(binary.astype(np.uint8), window, order=0, preserve_range=True,
                  anti_aliasing=False).astype(np.uint8)


def downsample(img: np.ndarray, n: int) -> np.ndarray:
    """Area average to n×n (the crop is trimmed to a multiple of n first)."""
    h, w = (img.shape[0] // n) * n, (img.shape[1] // n) * n
    return img[:h, :w].reshape(n, h // n, n, w // n).mean(axis=(1, 3))


def ridge_check(path: str, alpha: float = 1000.0) -> None:
    import h5py

    with h5py.File(path, "r") as f:
        def text(ds):
            return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[...]]

        obj, blk = f["pairs/object_index"][...], f["pairs/block"][...]
        diff, dist = text(f["blocks/diffuser"]), f["blocks/distance_mm"][...]
        split = text(f["objects/split"])
        y = np.stack([downsample(p.astype(np.float32), 25).ravel() for p in f["objects/pattern"]])
        x = np.stack([downsample(s.astype(np.float32), 64).ravel() for s in f["pairs/speckle"]])
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    print("| diffuser | faces scored at 40 mm | ridge PCC | mean-face PCC |")
    print("|---|---|---|---|")
    for d in dict.fromkeys(diff):
        rows = [i for i in range(len(obj)) if diff[blk[i]] == d]
        train = [i for i in rows if dist[blk[i]] < 30 and split[obj[i]] == "train"]
        a, b = x[train], y[obj[train]]
        mean = b.mean(0)
        w = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ (b - mean))
        for which in ("train", "holdout"):
            test = [i for i in rows if dist[blk[i]] == 40 and split[obj[i]] == which]
            pred = x[test] @ w + mean
            pcc = np.mean([np.corrcoef(p, y[obj[i]])[0, 1] for p, i in zip(pred, test, strict=True)])
            base = np.mean([np.corrcoef(mean, y[obj[i]])[0, 1] for i in test])
            print(f"| {d} | {len(test)} {which} faces | {pcc:.3f} | {base:.3f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "simulation_faces.png"))
    ap.add_argument("--ridge", metavar="RUN.h5", help="run the linear read-out check on a captured run")
    args = ap.parse_args()
    if args.ridge:
        ridge_check(args.ridge)
        return 0

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hardware.rig import build_rig, load_rig
    from hardware.sim.diffuser import ballistic_fraction, phase_rms_rad, scatter_angle_rad
    from hardware.sim.operator import ScriptedOperator

    rig = build_rig(load_rig(), ScriptedOperator(interactive=False))
    bench = rig.camera._bench
    geo, sim, optics = bench.geometry, bench.sim, bench.optics
    roi = (800, 800)
    pattern = face_pattern(rig.slm.window_shape)
    gray = rig.lut.binary_to_gray(pattern)
    print(f"grid: diffuser-plane sample {geo.dx_diffuser_um:.3f} µm, camera pixel {geo.camera_px_um} µm "
          f"(L3–L4 magnification {geo.m_imaging:.3f}); camera-side NA {geo.na_camera:.5f}")
    print(f"speckle grain λ/(2NA) = {geo.grain_px:.2f} px; grid "
          + f"{optics.plan(roi).shape[0]}² at every distance (guard {geo.guard_px()} px = 3 Airy radii; "
          f"imaging_na limit {geo.max_imaging_na():.4f})")
    print("| diffuser | σφ (rad) | θ0 (mrad) | ballistic | light in 800² window at 0 / 20 / 40 mm "
          "| exposure to fill the ADC (µs) |")
    print("|---|---|---|---|---|---|")
    diffusers = rig.changer.diffusers
    fig, axes = plt.subplots(len(diffusers), 5, figsize=(13, 2.7 * len(diffusers)))
    axes = np.atleast_2d(axes)
    full_well = sim.sensor.full_well_e
    for r, name in enumerate(diffusers):
        spec = sim.diffusers[name]
        lam = geo.wavelength_um
        shares, exposure = [], None
        rig.changer.select(name)
        rig.slm.show_gray(gray)
        for c, z in enumerate(DISTANCES_MM):
            shares.append(optics.light_share(name, z, roi))
            irr = optics.irradiance(optics.slm_field(gray), name, z, roi)
            # the exposure that puts the 99.9th percentile at 85 % of the full well
            exp_us = 0.85 * full_well / (sim.sensor.flux_e_per_us * float(np.percentile(irr, 99.9)))
            exposure = exposure or exp_us
            rig.stage.move_to_mm(z)
            rig.camera.configure(roi, exp_us)
            frame = rig.camera.capture(1000.0, key=("figure", name, z))
            ax = axes[r, c + 1]
            ax.imshow(frame.image, cmap="gray", vmin=0, vmax=255)
            ax.set_title(f"{name} grit, {z:g} mm", fontsize=9)
            if z == DISTANCES_MM[-1]:
                axes[r, 4].imshow(downsample(frame.image.astype(np.float32), 64), cmap="gray")
                axes[r, 4].set_title(f"{z:g} mm, 64×64 average", fontsize=9)
        axes[r, 0].imshow(pattern, cmap="gray")
        axes[r, 0].set_title(f"object (θ0 {1e3 * scatter_angle_rad(spec, sim.glass_index):.0f} mrad)",
                             fontsize=9)
        print(f"| {name} | {phase_rms_rad(spec, lam, sim.glass_index):.2f} "
              f"| {1e3 * scatter_angle_rad(spec, sim.glass_index):.1f} "
              f"| {100 * ballistic_fraction(spec, lam, sim.glass_index):.2g} % "
              f"| {' / '.join(f'{100 * s:.2f} %' for s in shares)} | {exposure:.0f} |")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Simulated rig: one LFW face through each diffuser (camera frames, 800×800 ROI, noise on)")
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

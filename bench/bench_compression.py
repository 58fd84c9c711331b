"""Compression of speckle frames in the run file: write speed, read speed and size, per filter.

Frames: the simulated rig's own 800×800 frames when it is available (face-like blob objects,
diffuser 220 at 0/20/40 mm, auto-exposed as the engine does), else a stand-in of fully developed
speckle (an FFT of a random-phase pupil, exposed so its 99th percentile sits at 75 % of 8-bit full
scale, with Poisson and read noise). Each filter
writes the same frames one chunk per frame, as the engine does, and flushes after each frame.

Decision rule (speckle_core/runfile.py): uncompressed chunks can be preallocated, so a frame write
touches raw bytes only and a SIGKILL cannot tear HDF5 metadata; a filter must save a lot to be
worth giving that up. Usage: ``python bench/bench_compression.py [--frames 60]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def standin_speckle(n: int, shape=(800, 800), grain_px: float = 4.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    h, w = shape
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    pupil = np.hypot(fy, fx) < 1.0 / (2 * grain_px)  # grain ≈ 1 / pupil diameter in frequency
    frames = []
    for _ in range(n):
        field = np.fft.ifft2(pupil * np.exp(2j * np.pi * rng.random(shape)))
        inten = np.abs(field) ** 2
        inten *= 0.75 * 255 / np.percentile(inten, 99)
        counts = rng.poisson(inten * 4) / 4 + rng.normal(0, 1.0, shape)  # shot noise (4 e-/count), read noise
        frames.append(np.clip(np.rint(counts), 0, 255).astype(np.uint8))
    return frames


def blob_pattern(rng: np.random.Generator, shape) -> np.ndarray:
    """A face-like binary object: smooth blobs (low-pass noise thresholded), not pixel noise, which
    would diffract outside the relay pupil and leave an almost black, very compressible frame."""
    from scipy.ndimage import gaussian_filter

    return (gaussian_filter(rng.standard_normal(shape), 40.0) > 0).astype(np.uint8)


def sim_speckle(n: int) -> list[np.ndarray] | None:
    """Frames as a run stores them: diffuser 220 at 0/20/40 mm, auto-exposed as the engine does."""
    try:
        from hardware.rig import build_rig, load_rig

        rig = build_rig(load_rig(None), operator=None)
    except Exception:  # noqa: BLE001 - the simulated rig is not available
        return None
    from acquisition.exposure import auto_expose

    try:
        rng = np.random.default_rng(0)
        window = rig.slm.window_shape
        frames = []
        rig.changer.select("220")
        for z in (0.0, 20.0, 40.0):
            rig.stage.move_to_mm(z)
            probe_pattern = blob_pattern(rng, window)

            def probe(exposure_us, it, z=z, pattern=probe_pattern):
                applied = rig.camera.configure(window, exposure_us)
                rig.slm.show_gray(rig.lut.binary_to_gray(pattern))
                return applied, [rig.camera.capture(2000.0, key=("exposure", z, it)).image]

            exp = auto_expose(probe, 1000.0, rig.camera.max_value)
            rig.camera.configure(window, exp.exposure_us)
            for i in range(n // 3):
                rig.slm.show_gray(rig.lut.binary_to_gray(blob_pattern(rng, window)))
                frames.append(rig.camera.capture(2000.0, key=("pair", "220", z, i, 0)).image)
        return frames
    finally:
        rig.close()


MIN_SAVING = 0.4

FILTERS = [
    ("none (preallocated)", {}),
    ("lzf", {"compression": "lzf"}),
    ("gzip 1", {"compression": "gzip", "compression_opts": 1}),
    ("gzip 4", {"compression": "gzip", "compression_opts": 4}),
    ("gzip 6", {"compression": "gzip", "compression_opts": 6}),
]


def measure(frames: list[np.ndarray], opts: dict, folder: str) -> tuple[float, float, float]:
    path = os.path.join(folder, "c.h5")
    h, w = frames[0].shape
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("s", shape=(len(frames), h, w), dtype=frames[0].dtype, chunks=(1, h, w), **opts)
        t0 = time.perf_counter()
        for i, fr in enumerate(frames):
            ds[i] = fr
            f.flush()
        write_s = time.perf_counter() - t0
        stored = ds.id.get_storage_size()
    with h5py.File(path, "r") as f:
        t0 = time.perf_counter()
        for i in range(len(frames)):
            f["s"][i]
        read_s = time.perf_counter() - t0
    os.remove(path)
    return write_s / len(frames) * 1e3, read_s / len(frames) * 1e3, stored / sum(fr.nbytes for fr in frames)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=60)
    args = ap.parse_args()
    frames = sim_speckle(args.frames)
    source = "simulated rig (hardware.sim)"
    if frames is None:
        frames = standin_speckle(args.frames)
        source = "stand-in speckle (FFT of random-phase pupil; the simulated rig was not available)"
    h, w = frames[0].shape
    print(f"compression of {len(frames)} speckle frames {h}x{w} {frames[0].dtype} from {source}")
    print(f"{'filter':22s} {'write ms/frame':>15s} {'read ms/frame':>14s} {'size':>8s} {'18k-pair run':>13s}")
    raw_gb = 18000 * h * w * frames[0].itemsize / 1e9
    best = ("none", 1.0)
    with tempfile.TemporaryDirectory() as d:
        for name, opts in FILTERS:
            wms, rms, ratio = measure(frames, opts, d)
            print(f"{name:22s} {wms:15.2f} {rms:14.2f} {ratio:7.1%} {raw_gb * ratio:10.1f} GB")
            if opts and ratio < best[1]:
                best = (name, ratio)
    saving = 1 - best[1]
    verdict = ("none (as speckle_core/runfile.py does)" if saving < MIN_SAVING
               else f"{best[0]}: RECONSIDER the layout")
    print(f"rule: compress only if a filter saves >= {MIN_SAVING:.0%} (it gives up preallocated, kill-proof "
          f"chunks); best here: {best[0]} saves {saving:.0%} -> {verdict}")


if __name__ == "__main__":
    main()

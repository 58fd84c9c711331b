"""Simulated-rig frame rate: ms per 800×800 frame, beside the floor set by the FFTs the chain needs.

Each timed frame shows a NEW pattern on the SLM (so no cached irradiance is reused) and captures
it with noise, as the acquisition engine does for a pair. The floor is the time of the chain's
FFTs alone, on the same grid and arrays: the forward and inverse FFTs pruned to the iris's rows
and columns (what the chain runs), and beside it two full 2-D FFTs (what an unpruned chain would
need) (docs/simulation.md, "Speed"). Target (issue 16): a frame within 1.5× its FFT floor; the
ratio is printed beside each row.
Run: ``.venv/bin/python bench/bench_sim.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_FRAMES = 40
REPEATS = 3


def best_ms(fn, n: int) -> float:
    """Median over REPEATS of the mean time of n calls, in ms."""
    fn()
    runs = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t0) / n * 1e3)
    return statistics.median(runs)


def fft_floor_ms(shape, nr: int, nc: int, window) -> tuple[float, float]:
    """(the pruned FFT calls of OpticalModel.camera_field_roi, two full 2-D FFTs), in ms."""
    from hardware.sim.optics import WORKERS

    (n0, n1) = shape
    g = np.ones(window, np.complex64)
    a = np.ones((nr, window[1]), np.complex64)
    x = np.ones((nr, n1), np.complex64)
    z = np.ones((n0, 800), np.complex64)
    buf = np.ones(shape, np.complex64)

    def pruned():
        sfft.fft(g, n=n0, axis=0, workers=WORKERS)
        sfft.fft(a, n=n1, axis=1, workers=WORKERS)
        sfft.ifft(x, axis=1, workers=WORKERS)
        sfft.ifft(z, axis=0, workers=WORKERS)

    def full():
        sfft.ifft2(sfft.fft2(buf, workers=WORKERS), workers=WORKERS)

    return best_ms(pruned, N_FRAMES), best_ms(full, N_FRAMES)


def cpu_model() -> str:
    """The CPU's model name (as lscpu prints it), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main() -> int:
    from hardware.rig import build_rig, load_rig
    from hardware.sim.operator import ScriptedOperator
    from hardware.sim.optics import WORKERS

    rig = build_rig(load_rig(), ScriptedOperator(interactive=False))
    optics = rig.camera._bench.optics
    window = rig.slm.window_shape
    rng = np.random.default_rng(0)
    patterns = [rig.lut.binary_to_gray(np.kron(rng.integers(0, 2, (25, 25)), np.ones((32, 32), np.uint8)))
                for _ in range(8)]
    print(f"cpu: {cpu_model()}; cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; "
          f"scipy.fft workers={WORKERS}; frame 800×800, window {window}")
    print("| diffuser, distance | grid | ms/frame (show + capture) | frames/s | FFT floor: pruned pair ms "
          "| frame / floor | two full 2-D FFTs ms |")
    print("|---|---|---|---|---|---|---|")
    for diffuser, distance in (("220", 0.0), ("220", 20.0), ("220", 40.0), ("1500", 40.0)):
        rig.changer.select(diffuser)
        rig.stage.move_to_mm(distance)
        rig.camera.configure((800, 800), 2000.0)
        counter = [0]

        def frame(diffuser=diffuser, distance=distance, counter=counter):
            i = counter[0] = counter[0] + 1
            rig.slm.show_gray(patterns[i % len(patterns)])
            rig.camera._cache = None  # a new pattern each frame: never reuse the last irradiance
            rig.camera.capture(1000.0, key=("pair", diffuser, distance, i, 0))

        ms = best_ms(frame, N_FRAMES)
        plan = optics.plan((800, 800))
        pr = optics.pruned(plan, distance)
        floor, full_ms = fft_floor_ms(plan.shape, len(pr.rows), len(pr.cols), window)
        (n0, n1), nr, nc = plan.shape, len(pr.rows), len(pr.cols)
        print(f"| {diffuser} grit, {distance:g} mm | {n0}×{n1} (iris: {nr}×{nc}) | {ms:.1f} | {1e3 / ms:.0f} "
              f"| {floor:.1f} | {ms / floor:.2f} | {full_ms:.1f} |")

    # where the time goes, for the 40 mm block
    rig.changer.select("220")
    rig.stage.move_to_mm(40.0)
    field = optics.slm_field(patterns[0])
    cam = rig.camera
    irr = optics.irradiance(field, "220", 40.0, (800, 800))
    lam = cam.sensor.mean_electrons(irr, 2000.0, (800, 800))
    noise_rng = np.random.Generator(np.random.SFC64(1))
    parts = {
        "SLM gray → field (LUT)": lambda: optics.slm_field(patterns[0]),
        "optics: diffuser, pruned FFTs, |E|²": lambda: optics.irradiance(field, "220", 40.0, (800, 800)),
        "sensor: expected electrons": lambda: cam.sensor.mean_electrons(irr, 2000.0, (800, 800)),
        "sensor: noise + ADC": lambda: cam.sensor.read_out(lam, noise_rng),
    }
    print("\nbreakdown at 40 mm (ms):")
    for name, fn in parts.items():
        print(f"  {name:34s} {best_ms(fn, 20):6.1f}")
    print("\n(indicative when the machine is shared; make bench re-runs it on a quiet machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

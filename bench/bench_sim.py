"""Simulated-rig frame rate: ms per 800×800 frame, beside the floor set by the FFTs the chain needs.

Each timed frame shows a NEW pattern on the SLM (so no cached irradiance is reused) and captures
it with noise, as the acquisition engine does for a pair. The floor is the time of the chain's
FFTs alone, on the same grid and arrays: the forward and inverse FFTs pruned to the iris's rows
and columns (what the chain runs), and beside it two full 2-D FFTs (what an unpruned chain would
need) (docs/simulation.md, "Speed"). Target (issue 16): a frame within 1.5× its FFT floor; the
ratio is printed beside each row.
Run: ``.venv/bin/python bench/bench_sim.py``. ``--before REV`` also times, in the same run and on
the same rig, the optics and sensor of hardware/sim at git revision REV (``git show`` into a temp
module; e.g. ``--before HEAD`` before committing a speed change), frame for frame in alternation,
and checks whether both give the same noiseless irradiance bytes (the noisy frames' bytes differ
when the noise sampler changed). ``--frames N`` (default 40) frames per timing. The first frame
of the run is timed apart: it loads the compiled kernels from numba's cache (or compiles them).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_FRAMES = 40
REPEATS = 3
CLOCK = time.perf_counter  # --cpu-time: time.process_time (this process's CPU, all threads)


def best_ms(fn, n: int) -> float:
    """Median over REPEATS of the mean time of n calls, in ms."""
    fn()
    runs = []
    for _ in range(REPEATS):
        t0 = CLOCK()
        for _ in range(n):
            fn()
        runs.append((CLOCK() - t0) / n * 1e3)
    return statistics.median(runs)


def interleaved_ms(fns, n: int) -> list[float]:
    """best_ms of each function, timed in alternation (the same load for all), in ms."""
    for fn in fns:
        fn()
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEATS):
        for fn, out in zip(fns, runs, strict=True):
            t0 = CLOCK()
            for _ in range(n):
                fn()
            out.append((CLOCK() - t0) / n * 1e3)
    return [statistics.median(r) for r in runs]


def same_irradiance(optics_a, optics_b, gray, diffuser: str, distance: float) -> bool:
    """Whether two optical models give the same noiseless irradiance bytes for ``gray``."""
    a = optics_a.irradiance(optics_a.slm_field(gray), diffuser, distance, (800, 800))
    b = optics_b.irradiance(optics_b.slm_field(gray), diffuser, distance, (800, 800))
    return a.tobytes() == b.tobytes()


def fft_floor_fns(shape, nr: int, window):
    """(the pruned FFT calls of OpticalModel.camera_field_roi, two full 2-D FFTs) as functions."""
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

    return pruned, full


def module_at(rev: str, path: str, name: str, tmp: Path):
    """hardware/sim's module ``path`` as it was at git revision ``rev``, imported as ``name``."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=root, check=True, capture_output=True,
                          text=True).stdout
    file = tmp / f"{name}.py"
    file.write_text(text)
    spec = importlib.util.spec_from_file_location(name, file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def before_parts(rev: str, rig, tmp: Path):
    """(OpticalModel, Sensor) built from hardware/sim/optics.py and sensor.py at ``rev``; where
    ``rev`` has the counter-based kernels (hardware/sim/kernels.py, compiled.py), its sensor runs
    ``rev``'s kernels too, so a change to a compiled kernel is timed against the kernel it replaces."""
    optics_mod = module_at(rev, "hardware/sim/optics.py", "_before_optics", tmp)
    sensor_mod = module_at(rev, "hardware/sim/sensor.py", "_before_sensor", tmp)
    if hasattr(sensor_mod, "kernels"):
        old_kernels = module_at(rev, "hardware/sim/kernels.py", "_before_kernels", tmp)
        old_compiled = module_at(rev, "hardware/sim/compiled.py", "_before_compiled", tmp)
        old_kernels._compiled = lambda shape: (
            None if int(np.prod(shape)) < old_kernels.COMPILED_FROM_PIXELS else old_compiled)
        sensor_mod.kernels = old_kernels
    now = rig.camera._bench.optics
    optics = optics_mod.OpticalModel(now.sim, now.geo, _PhaseTable(now.lut_phase), now.seed)
    optics.lut_field, optics.lut_phase = now.lut_field, now.lut_phase  # the very same LUT
    s = rig.camera.sensor
    sensor = sensor_mod.Sensor(s.spec, s.color_mode, s.sensor_px, s.noise)
    return optics, sensor


def same_frame(sensor_a, sensor_b, irr: np.ndarray) -> bool:
    """Whether two sensors give the same noisy 8-bit bytes for one irradiance and noise key."""
    a = sensor_a.expose(irr, 2000.0, irr.shape, 12345)[0]
    b = sensor_b.expose(irr, 2000.0, irr.shape, 12345)[0]
    return a.tobytes() == b.tobytes()


class _PhaseTable:
    """The one attribute of a PhaseLUT that OpticalModel reads (its tables are then replaced)."""

    def __init__(self, phase_rad):
        self.phase_rad = np.asarray(phase_rad)


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
    global N_FRAMES, CLOCK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", metavar="REV", help="also time hardware/sim's optics and sensor at REV")
    ap.add_argument("--frames", type=int, default=N_FRAMES, help="frames per timing (default 40)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time this process's CPU (all threads) instead of the wall clock: steadier "
                         "on a shared machine, where waiting for a core dominates wall times")
    args = ap.parse_args()
    N_FRAMES = args.frames
    CLOCK = time.process_time if args.cpu_time else time.perf_counter
    from hardware.rig import build_rig, load_rig
    from hardware.sim.diffuser import seed_sequence
    from hardware.sim.operator import ScriptedOperator
    from hardware.sim.optics import WORKERS

    rig = build_rig(load_rig(), ScriptedOperator(interactive=False))
    bench = rig.camera._bench
    optics, sensor = bench.optics, rig.camera.sensor
    before = None
    if args.before:
        tmp = Path(tempfile.mkdtemp(prefix="bench_sim_before_"))
        before = before_parts(args.before, rig, tmp)
    window = rig.slm.window_shape
    rng = np.random.default_rng(0)
    patterns = [rig.lut.binary_to_gray(np.kron(rng.integers(0, 2, (25, 25)), np.ones((32, 32), np.uint8)))
                for _ in range(8)]
    print(f"cpu: {cpu_model()}; cores: {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}; "
          f"scipy.fft workers={WORKERS}; frame 800×800, window {window}"
          + (f"; before = hardware/sim at {args.before}" if before else "")
          + ("; times: process CPU time" if args.cpu_time else "; times: wall clock"))
    extra = " before ms/frame | before / floor | same irradiance | same noisy frame |" if before else ""
    print("| diffuser, distance | grid | ms/frame (show + capture) | frames/s | FFT floor: pruned pair ms "
          "| frame / floor | two full 2-D FFTs ms |" + extra)
    print("|---|---|---|---|---|---|---|" + ("---|---|---|---|" if before else ""))
    first_ms = None
    for diffuser, distance in (("220", 0.0), ("220", 20.0), ("220", 40.0), ("1500", 40.0)):
        rig.changer.select(diffuser)
        rig.stage.move_to_mm(distance)
        rig.camera.configure((800, 800), 2000.0)
        counter = [0]

        def frame(diffuser=diffuser, distance=distance, counter=counter):
            i = counter[0] = counter[0] + 1
            rig.slm.show_gray(patterns[i % len(patterns)])
            rig.camera._cache = None  # a new pattern each frame: never reuse the last irradiance
            rig.camera.capture(1000.0, key=("pair", diffuser, distance, i % 3, 0))

        def frame_before(diffuser=diffuser, distance=distance, counter=counter):
            # what SimCamera.capture did at REV: irradiance, then the sensor (a 64-bit noise key
            # for the counter-based sensor; else expected electrons and a seeded generator)
            i = counter[0] = counter[0] + 1
            rig.slm.show_gray(patterns[i % len(patterns)])
            old_optics, old_sensor = before
            irr = old_optics.irradiance(old_optics.slm_field(bench.gray), diffuser, distance, (800, 800))
            if hasattr(old_sensor, "expose"):
                old_sensor.expose(irr, 2000.0, (800, 800), 1000 + i)
                return
            identity = (bench.sim.seed, diffuser, float(distance), ("pair", diffuser, distance, i % 3, 0))
            rng = np.random.Generator(np.random.SFC64(seed_sequence("frame", identity, 0)))
            old_sensor.read_out(old_sensor.mean_electrons(irr, 2000.0, (800, 800)), rng, (800, 800))

        if first_ms is None:
            t0 = time.perf_counter()
            frame()
            first_ms = (time.perf_counter() - t0) * 1e3
        plan = optics.plan((800, 800))
        pr = optics.pruned(plan, distance)
        pruned, full = fft_floor_fns(plan.shape, len(pr.rows), window)
        # interleaved, so the frame, its floor (and the old frame) see the same load
        if before:
            ms, floor, full_ms, old_ms = interleaved_ms((frame, pruned, full, frame_before), N_FRAMES)
        else:
            ms, floor, full_ms = interleaved_ms((frame, pruned, full), N_FRAMES)
        (n0, n1), nr, nc = plan.shape, len(pr.rows), len(pr.cols)
        row = (f"| {diffuser} grit, {distance:g} mm | {n0}×{n1} (iris: {nr}×{nc}) | {ms:.1f} "
               f"| {1e3 / ms:.0f} | {floor:.1f} | {ms / floor:.2f} | {full_ms:.1f} |")
        if before:
            same = same_irradiance(optics, before[0], patterns[1], diffuser, distance)
            irr = optics.irradiance(optics.slm_field(patterns[1]), diffuser, distance, (800, 800))
            noisy = "yes" if same_frame(sensor, before[1], irr) else "NO"
            if not hasattr(before[1], "expose"):
                noisy = "n/a"  # the generator-based sensor draws other noise
            row += f" {old_ms:.1f} | {old_ms / floor:.2f} | {'yes' if same else 'NO'} | {noisy} |"
        print(row)
    print(f"\nfirst frame of the run (loads the numba kernels): {first_ms:.0f} ms")

    # where the time goes, for the 40 mm block
    rig.changer.select("220")
    rig.stage.move_to_mm(40.0)
    gray = patterns[0]
    sensor = rig.camera.sensor
    irr = optics.irradiance(gray, "220", 40.0, (800, 800))
    parts = {
        "optics: LUT × diffuser, pruned FFTs, |E|²": lambda: optics.irradiance(gray, "220", 40.0, (800, 800)),
        "sensor: electrons, noise, ADC, grey, 8 bits": lambda: sensor.expose(irr, 2000.0, (800, 800), 12345),
    }
    print("\nbreakdown at 40 mm (ms):")
    for name, fn in parts.items():
        print(f"  {name:44s} {best_ms(fn, 20):6.1f}")
    print("\n(indicative when the machine is shared; make bench re-runs it on a quiet machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The simulated rig's per-pixel work: the random numbers, and where each kernel runs.

The kernels exist twice with the same arithmetic: compiled by numba (hardware/sim/compiled.py)
and in numpy (hardware/sim/reference.py); tests/test_sim_kernels.py checks they give the same
bytes. Frames of at least ``COMPILED_FROM_PIXELS`` run compiled, split into row bands on a small
thread pool of this module (``run_bands``), not numba's ``parallel=True``: of its threading
layers present here, ``workqueue`` aborts the process when two Python threads launch kernels at
once (the live console captures in a thread) and GNU OpenMP is not fork-safe; a pool re-made
after ``fork`` keeps forked children safe. Smaller
frames run in numpy: numba is imported only when a large frame needs it, since importing it and
readying its compiler costs about a second of CPU per process (docs/simulation.md, "Speed").

Random numbers are counter-based: pixel i of a frame draws ``splitmix64(key + (i + 1)·φ64)``, a
hash of the frame's 64-bit key (derived from the pair's identity, hardware/sim/devices.py) and the
pixel's index (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA
2014). So a frame's noise is the same for any band split, thread count or call order.

From one 64-bit draw a pixel takes a standard normal (the top 16 bits index a 65536-entry table
of normal quantiles, midpoints of equal-probability bins; the two outermost bins are refined by
the next 16 bits through a second table down to 2⁻³³, so the tails reach ±6.4σ instead of being
cut at ±4.3σ) and a uniform from the low 32 bits, independent of the normal's bits.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.special import ndtri

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31 = np.uint64(30), np.uint64(27), np.uint64(31)
S32, S48 = np.uint64(32), np.uint64(48)
LOW16, LOW32 = np.uint64(0xFFFF), np.uint64(0xFFFFFFFF)

# Normal quantiles at the midpoints of 65536 equal-probability bins; the outermost bin on each
# side is split again into 65536 (TAIL: the lower one; the upper one is its mirror image).
NORMAL_TABLE = ndtri((np.arange(65536) + 0.5) / 65536.0).astype(np.float32)
NORMAL_TAIL = ndtri((np.arange(65536) + 0.5) / 65536.0**2).astype(np.float32)
MAX_POISSON_TERMS = 200  # the inversion below stops here (only reached for λ ≫ its cut)
INV_K = np.array([0.0] + [1.0 / k for k in range(1, MAX_POISSON_TERMS + 1)])


# -- row bands on a thread pool -----------------------------------------------------------------------
MIN_BAND_PIXELS = 65536  # a band's worth of work below which one thread does the whole frame
COMPILED_FROM_PIXELS = 65536  # frames this large run compiled (numba), smaller ones in numpy
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)
_pool_lock = threading.Lock()
_threads = max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def set_threads(n: int) -> int:
    """Set how many threads run the bands (tests check the bytes do not depend on it); the old value."""
    global _threads
    old, _threads = _threads, max(1, int(n))
    return old


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != threads:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)  # another thread count: its idle threads go
            _pool = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="sim-kernel"))
        return _pool[2]


def run_bands(kernel: Callable[..., object], rows: int, cols: int, *args: object) -> list:
    """``kernel(*args, r0, r1)`` over row bands covering 0..rows; the kernels' results, in band order.

    The calling thread takes bands too, and waits only for bands another thread has started: a
    pool thread that cannot get the GIL soon (the run writer's HDF5 calls hold it) is never waited
    for, its bands are taken by the caller instead.
    """
    threads = _threads
    bands = min(2 * threads, max(1, rows * cols // MIN_BAND_PIXELS), rows)
    if bands <= 1 or threads <= 1:
        return [kernel(*args, 0, rows)]
    edges = [rows * k // bands for k in range(bands + 1)]
    results: list = [None] * bands
    errors: list[BaseException] = []
    done = [threading.Event() for _ in range(bands)]
    claim = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        for k in iter(claim.__next__, None):
            if k >= bands:
                return
            try:
                results[k] = kernel(*args, edges[k], edges[k + 1])
            except BaseException as e:  # re-raised by the caller
                errors.append(e)
            finally:
                done[k].set()

    pool = _executor(threads)
    for _ in range(threads - 1):
        pool.submit(work)
    work()
    for event in done:
        event.wait()
    if errors:
        raise errors[0]
    return results


# -- the public entry points ----------------------------------------------------------------------------
def set_compiled_from(pixels: int) -> int:
    """Set the frame size from which the compiled kernels run (tests compare both); the old value."""
    global COMPILED_FROM_PIXELS
    old, COMPILED_FROM_PIXELS = COMPILED_FROM_PIXELS, int(pixels)
    return old


def _compiled(shape: tuple[int, ...]):
    """hardware.sim.compiled when a frame of ``shape`` runs compiled, else None (numpy)."""
    if math.prod(shape) < COMPILED_FROM_PIXELS:  # (math.prod: np.prod's call costs 60 µs)
        return None
    from hardware.sim import compiled  # imports numba: only when a frame needs it

    return compiled


def window_field(lut: np.ndarray, gray: np.ndarray, screen: np.ndarray, out: np.ndarray) -> None:
    """``out[...] = lut[gray] * screen`` (complex64; ``out`` and ``screen`` may be views)."""
    jit = _compiled(gray.shape)
    if jit is None:
        reference.window_field(lut, gray, screen, out)
    else:
        run_bands(jit.window_field_band, gray.shape[0], gray.shape[1], lut, gray, screen, out)


def intensity(field: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """|field|² (float32) as re·re + im·im."""
    if out is None:
        out = np.empty(field.shape, np.float32)
    jit = _compiled(field.shape)
    if jit is None:
        reference.intensity(field, out)
    else:
        run_bands(jit.intensity_band, field.shape[0], field.shape[1], field, out)
    return out


def sensor_codes(irr: np.ndarray, lit: bool, site_scale: np.ndarray, dark: float, noise: bool,
                 read_noise: float, exact_below: float, key: int, to_adu: float, black: float,
                 adc_max: int, red_at: tuple[int, int], codes: np.ndarray) -> int:
    """Fill ``codes`` (float32, the ROI) with the ADC codes; returns how many red sites clipped."""
    f32 = np.float32
    args = (irr, bool(lit), np.ascontiguousarray(site_scale, f32), f32(dark), bool(noise), f32(read_noise),
            f32(exact_below), np.uint64(key), f32(to_adu), f32(black), f32(adc_max), int(red_at[0]),
            int(red_at[1]), NORMAL_TABLE, NORMAL_TAIL, INV_K, codes)
    jit = _compiled(codes.shape)
    if jit is None:
        return reference.sensor_codes(*args)
    band = jit.sensor_band_exact if exact_below > 0 else jit.sensor_band
    return int(sum(run_bands(band, codes.shape[0], codes.shape[1], *args)))


def grey8(codes: np.ndarray, stencil: np.ndarray, scale: float, gamma: float, out: np.ndarray) -> None:
    """The 8-bit grey image of the codes into ``out`` (uint8): bilinear demosaic + grey formula as
    one stencil per colour site, scale, clip, gamma, 8 bits (compiled.grey_band)."""
    args = (codes, stencil, np.float32(scale), np.float32(gamma), out)
    jit = _compiled(codes.shape)
    if jit is None:
        reference.grey8(*args)
    else:
        run_bands(jit.grey_band, codes.shape[0], codes.shape[1], *args)


def electrons(lam: np.ndarray, read_noise: float, exact_below: float, key: int,
              compiled: bool = True) -> np.ndarray:
    """The sensor's noisy electrons for a 1-D array of means (float32), as a frame draws them."""
    args = (np.ascontiguousarray(lam, np.float32), np.float32(read_noise), np.float32(exact_below),
            np.uint64(key))
    if not compiled:
        index = np.arange(args[0].shape[0], dtype=np.uint64)
        return reference.electrons(*args, index, NORMAL_TABLE, NORMAL_TAIL, INV_K)
    from hardware.sim import compiled as jit

    return jit.electrons_flat(*args, NORMAL_TABLE, NORMAL_TAIL, INV_K)


def clear(a: np.ndarray) -> None:
    """``a[...] = 0`` for a C-contiguous 2-D array, in row bands on the pool for large ones (the
    optics' 6 MB work arrays: half the time of one thread's memset on 2 cores)."""
    jit = _compiled(a.shape)
    if jit is None:
        a.fill(0)
    else:
        run_bands(jit.zero_band, a.shape[0], a.shape[1], a)


def frame_key(seed_words: np.ndarray) -> np.uint64:
    """The 64-bit key of a frame's noise from a SeedSequence's state (two uint32 words)."""
    return np.uint64(int(seed_words[0]) | (int(seed_words[1]) << 32))


def compile_all() -> None:
    """Compile (or load from numba's cache) every kernel for the argument types the rig uses.

    The first call of a kernel in a fresh checkout compiles it (seconds) and writes numba's cache
    next to this file; later processes load it. ``make test`` calls this once before the suite, so
    that no timed test pays the compilation.
    """
    from hardware.sim.config import SensorSpec
    from hardware.sim.sensor import Sensor

    old = set_compiled_from(0)
    try:
        _compile_all(SensorSpec, Sensor)
    finally:
        set_compiled_from(old)


def _compile_all(spec_type, sensor_type) -> None:
    screen = np.ones((6, 6), np.complex64)
    field = np.empty((4, 4), np.complex64)
    window_field(np.ones(256, np.complex64), np.zeros((4, 4), np.uint8), screen[1:5, 1:5], field)
    intensity(field)
    intensity(screen[1:5, 1:5])  # a 2-D slice of the full-grid field (relay pupil on)
    clear(field)
    irr = np.ones((4, 4), np.float32)
    for read_noise in (8.0, 0.0):  # the normal path, then the exact Poisson branch
        for mode in ("mono8", "raw8"):
            sensor = sensor_type(spec_type(read_noise_e=read_noise), mode, (8, 8), True)
            sensor.expose(irr, 100.0, (4, 4), 1)
            sensor.expose(None, 100.0, (4, 4), None)
    electrons(np.ones(4, np.float32), 8.0, 10.0, 1)


from hardware.sim import reference  # noqa: E402  (it imports this module's constants)

"""The compiled kernels (numba) and their numpy reference give the same bytes (hardware/sim/kernels.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.sim import kernels
from hardware.sim.config import SensorSpec
from hardware.sim.sensor import Sensor

pytestmark = pytest.mark.timeout(120)


def both(fn):
    """fn() with the compiled kernels for every frame size, then with numpy for every size."""
    old = kernels.set_compiled_from(0)
    try:
        compiled = fn()
        kernels.set_compiled_from(1 << 62)
        numpy = fn()
    finally:
        kernels.set_compiled_from(old)
    return compiled, numpy


@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (1, 9), (300, 257)])
@pytest.mark.parametrize("mode", ["mono8", "raw8"])
@pytest.mark.parametrize("read_noise", [8.0, 0.5])  # the normal path; the exact Poisson branch
def test_a_frame_read_out_compiled_and_in_numpy_is_the_same_bytes(shape, mode, read_noise):
    sensor = Sensor(SensorSpec(read_noise_e=read_noise), mode, (1024, 1280), noise=True)
    irr = np.random.default_rng(2).exponential(0.003, shape).astype(np.float32)
    irr[0, :3] = 1.0  # some clipped pixels too
    (a, clip_a), (b, clip_b) = both(lambda: sensor.expose(irr, 2000.0, shape, key=77))
    assert a.dtype == b.dtype == np.uint8 and np.array_equal(a, b)
    assert clip_a == clip_b
    (c, _), (d, _) = both(lambda: sensor.expose(None, 2000.0, shape, key=78))  # a dark frame
    assert np.array_equal(c, d)


def test_the_optics_element_wise_steps_compiled_and_in_numpy_are_the_same_bytes():
    rng = np.random.default_rng(3)
    lut = np.exp(1j * rng.uniform(0, 2 * np.pi, 256)).astype(np.complex64)
    gray = rng.integers(0, 256, (70, 90), dtype=np.uint8)
    canvas = np.exp(1j * rng.normal(0, 3, (80, 100))).astype(np.complex64)
    screen = canvas[5:75, 5:95]  # a view, as the window of the diffuser's canvas

    def window():
        out = np.empty((70, 90), np.complex64)
        kernels.window_field(lut, gray, screen, out)
        return out

    a, b = both(window)
    assert np.array_equal(a, b)
    c, d = both(lambda: kernels.intensity(a))
    assert np.array_equal(c, d)


def test_the_electron_sampler_compiled_and_in_numpy_is_the_same_bytes():
    lam = np.concatenate([np.linspace(0, 30, 5000), np.geomspace(30, 1e5, 5000)]).astype(np.float32)
    for read_noise, exact_below in ((8.0, 0.0), (0.0, 10.0), (1.0, 10.0)):
        a = kernels.electrons(lam, read_noise, exact_below, 5, compiled=True)
        b = kernels.electrons(lam, read_noise, exact_below, 5, compiled=False)
        assert np.array_equal(a, b)


def test_small_frames_run_in_numpy_without_importing_numba():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from hardware.sim.config import SensorSpec; "
            "from hardware.sim.sensor import Sensor; "
            "s = Sensor(SensorSpec(), 'mono8', (64, 64), True); "
            "s.expose(np.ones((48, 48), np.float32), 100.0, (48, 48), 1); "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _frame_bytes(queue):
    sensor = Sensor(SensorSpec(), "mono8", (1024, 1280), noise=True)
    irr = np.random.default_rng(4).exponential(0.003, (512, 512)).astype(np.float32)
    queue.put(sensor.expose(irr, 2000.0, (512, 512), key=5)[0].tobytes())


def test_a_forked_child_computes_the_same_frame_on_its_own_thread_pool():
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    _frame_bytes(queue)  # the parent's pool and kernels are up before the fork
    here = queue.get(timeout=60)
    child = ctx.Process(target=_frame_bytes, args=(queue,))
    child.start()
    there = queue.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and there == here

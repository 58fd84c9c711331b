"""A tiny deterministic fake rig implementing hardware/interfaces.py, for engine tests.

Frames are linear in exposure (like a camera), depend on the pattern shown, the diffuser and the
distance, and carry noise seeded from the frame key, as the simulated rig does (docs/design.md,
"Determinism"). Faults are injected by call number; drift by capture count.
"""

from __future__ import annotations

import time
import zlib
from types import SimpleNamespace

import numpy as np

from hardware.errors import DeviceError, DeviceTimeout
from hardware.interfaces import Frame
from hardware.lut import PhaseLUT


class FakeSLM:
    def __init__(self, window=(8, 8), stroke="full-wave"):
        self.window_shape = window
        self._shown = np.zeros(window, np.uint8)
        self._stroke = stroke
        self.shows = 0

    def show_gray(self, gray):
        assert gray.shape == self.window_shape and gray.dtype == np.uint8
        self._shown = gray.copy()
        self.shows += 1
        return time.monotonic()

    def read_back(self):
        return self._shown.copy()

    def stroke_mode(self):
        return self._stroke

    def close(self):
        pass


class FakeCamera:
    max_value = 255

    def __init__(self, bench, roi=(16, 16), fail_calls=(), fail_always_from=None, gain=0.2, drift_after=None):
        self.bench = bench
        self.roi = roi
        self.exposure_us = 100.0
        self.fail_calls = set(fail_calls)
        self.fail_always_from = fail_always_from
        self.calls = 0
        self.captures = 0
        self.pair_captures = 0  # drift starts after this many pair frames
        self.keys: list = []
        self.gain = gain
        self.drift_after = drift_after

    def configure(self, roi_px, exposure_us):
        self.roi = tuple(roi_px)
        self.exposure_us = float(round(exposure_us, 1))
        return self.exposure_us

    def _irradiance(self, key):
        if key and key[0] == "dark":
            return np.zeros(self.roi)
        b = self.bench
        seed = zlib.crc32(b.slm._shown.tobytes() + f"{b.changer.current()}/{b.stage.distance_mm()}".encode())
        if self.drift_after is not None and self.pair_captures > self.drift_after:
            seed += 1
        return np.random.default_rng(seed).exponential(1.0, self.roi)

    def capture(self, timeout_ms, average=1, key=None):
        self.calls += 1
        if self.calls in self.fail_calls or (self.fail_always_from and self.calls >= self.fail_always_from):
            raise DeviceTimeout("camera", f"no frame within {timeout_ms:g} ms")
        self.captures += 1
        self.keys.append(key)
        self.pair_captures += bool(key and key[0] == "pair")
        noise = np.random.default_rng(zlib.crc32(repr(key).encode())).normal(0, 1.0, self.roi)
        img = np.clip(np.rint(self.exposure_us * self.gain * self._irradiance(key) + 2 + noise), 0, 255)
        img = img.astype(np.uint8)
        return Frame(img, self.exposure_us, time.time(), frame_index=self.captures,
                     saturated_fraction=float(np.mean(img >= 255)))

    def close(self):
        pass


class FakeStage:
    def __init__(self, fail_moves=0):
        self._mm = None
        self.moves = 0
        self.fail_moves = fail_moves

    def move_to_mm(self, distance_mm):
        if self.fail_moves:
            self.fail_moves -= 1
            raise DeviceError("stage", "motor stalled")
        self._mm = float(distance_mm)
        self.moves += 1
        return self._mm

    def distance_mm(self):
        return self._mm

    def close(self):
        pass


class FakeChanger:
    diffusers = ("120", "220", "600", "1500")

    def __init__(self):
        self._cur = None
        self.selects = 0

    def select(self, diffuser):
        self._cur = diffuser
        self.selects += 1

    def current(self):
        return self._cur

    def close(self):
        pass


class FakeOperator:
    def __init__(self, interactive=False, yes=False):
        self.interactive = interactive
        self.yes = yes
        self.asked: list[str] = []

    def request(self, instruction):
        self.asked.append(instruction)
        return ""

    def ask_yes_no(self, question, default=False):
        self.asked.append(question)
        return self.yes


def fake_rig(operator=None, **camera_kw):
    bench = SimpleNamespace(slm=FakeSLM(), stage=FakeStage(), changer=FakeChanger(),
                            operator=operator or FakeOperator(), lut=PhaseLUT.linear(256))
    bench.camera = FakeCamera(bench, **camera_kw)
    bench.close = lambda: None
    return bench

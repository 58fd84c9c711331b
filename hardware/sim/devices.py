"""The simulated devices: SLM, camera, stage and diffuser changer on one shared optical bench.

They implement the Protocols of hardware/interfaces.py. The camera computes each frame from what
the bench holds now: the SLM's pattern, the diffuser in the beam, the camera distance.

Determinism (docs/design.md, "Determinism"): a frame's noise is drawn pixel by pixel from a 64-bit
key, a hash of (rig seed, diffuser, distance, frame key, sub-frame index), and the pixel's index
(counter-based, hardware/sim/kernels.py), never from a running generator, so the same key gives
the same bytes in any process, in any order, with any number of threads. ``capture(key=None)`` uses
("auto", n), n the count of key-less captures since the camera was built. Two optional effects make
frames depend on history, by design: drift (the diffuser sliding, the beam tilting; on the capture
count) and SLM settling (on the time since the flip). That time is the bench's virtual clock
(``SimBench.clock``, hardware/clock.py), which moves only when a caller sleeps on it or the camera
exposes, so a frame taken a given delay after a flip is the same on every run. Faults come from a
separate running generator (seeded by the rig seed) and are drawn before a frame is computed, so
they never change the bytes of a frame that succeeds.
"""

from __future__ import annotations

import math
import time

import numpy as np

from hardware.clock import SimClock
from hardware.errors import DeviceError, DeviceTimeout
from hardware.interfaces import Frame
from hardware.lut import PhaseLUT
from hardware.sim.diffuser import seed_sequence
from hardware.sim.kernels import frame_key
from hardware.sim.optics import Drift, Geometry, OpticalModel
from hardware.sim.sensor import Sensor
from hardware.sim.slm_response import LiquidCrystal, true_phase_curve
from speckle_core.errors import UserError


def _plain(value: object) -> object:
    """Numpy scalars and nested tuples as plain Python values, so their repr is stable."""
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return round(value, 9)
    return value


class SimBench:
    """The shared state of the simulated optical bench, and the fault generator."""

    def __init__(self, config, lut: PhaseLUT):
        self.config = config
        self.sim = config.sim
        self.geometry = Geometry.from_rig(config)
        response = self.sim.slm
        if response.phase_curve == "nonlinear":  # the glass's own curve; the rig's LUT only picks grays
            lut = PhaseLUT(true_phase_curve(response, self.sim.wavelength_nm, config.slm.stroke_mode))
        self.optics = OpticalModel(self.sim, self.geometry, lut, self.sim.seed)
        window = tuple(config.slm.window_px)
        self.clock = SimClock(time.monotonic(), self.sim.real_time_waits)  # virtual: see the module doc
        self.clock_start = self.clock.monotonic()  # bench time 0 (the SLM flicker's phase)
        self.lc = LiquidCrystal(self.optics.lut_phase, response, self.sim.slm_response_ms, window)
        self.gray = np.zeros(window, np.uint8)
        self.slm_version = 0
        self.diffuser: str = config.changer.diffusers[0]  # a wheel reports its slot: known at start
        self.distance_mm: float = 0.0
        self.captures = 0  # every successful capture, for the drift model
        self._faults = np.random.Generator(np.random.PCG64(seed_sequence("faults", self.sim.seed)))

    def fault(self, rate: float) -> bool:
        return rate > 0.0 and bool(self._faults.random() < rate)

    @property
    def flip_s(self) -> float:
        return self.lc.flip_s

    @flip_s.setter
    def flip_s(self, value: float) -> None:  # tests move a flip into the past
        self.lc.flip_s = value

    def settling(self, now_s: float) -> bool:
        """Whether the liquid crystal is still moving to the last pattern shown."""
        return not self.lc.settled(now_s)

    def slm_field(self, now_s: float) -> np.ndarray:
        """The field leaving the SLM window at ``now_s`` on the bench clock; an ideal, settled SLM
        gives its gray levels instead, which the optics look up in the LUT as they use them."""
        if self.settling(now_s):
            # hardware/sim/slm_response.py: each pixel relaxes from its phase at the flip
            return self.optics.slm_field_from_phase(self.lc.phase(now_s), now_s - self.clock_start)
        if not self.optics.slm_faults:
            return self.gray
        return self.optics.slm_field(self.gray, now_s - self.clock_start)

    def drift(self) -> Drift:
        """How far the bench has drifted: rate × bench time, bench time = captures × capture period."""
        hours = self.captures * self.sim.capture_period_s / 3600.0
        return Drift(shift_um=round(self.sim.diffuser_drift_um_per_hour * hours, 9),
                     tilt_rad=round(self.sim.beam_tilt_urad_per_hour * 1e-6 * hours, 12))


class SimSLM:
    """The EXULUS-HD2 window: gray levels → phase through the rig's LUT."""

    def __init__(self, bench: SimBench):
        self._bench = bench

    @property
    def window_shape(self) -> tuple[int, int]:
        return tuple(self._bench.config.slm.window_px)

    def show_gray(self, gray: np.ndarray) -> float:
        gray = np.asarray(gray)
        if gray.shape != self.window_shape or gray.dtype != np.uint8:
            raise ValueError(f"slm: expected a {self.window_shape} uint8 pattern, "
                             f"got {gray.shape} {gray.dtype}")
        b = self._bench
        if b.fault(b.sim.faults.display_error):
            raise DeviceError("slm", "display window lost (simulated fault)")
        b.gray = gray.copy()
        b.slm_version += 1
        now = b.clock.monotonic()
        b.lc.flip(b.gray, now)
        return now

    @property
    def clock(self) -> SimClock:
        """The bench's virtual clock, shared by every simulated device (``Rig.clock``)."""
        return self._bench.clock

    def read_back(self) -> np.ndarray:
        return self._bench.gray.copy()

    def stroke_mode(self) -> str:
        return self._bench.config.slm.stroke_mode

    def close(self) -> None:
        pass


class SimCamera:
    """The DCC1645C: a centred ROI of the 1280×1024 Bayer sensor, 3.6 µm pixels, 8-bit output.

    ``max_value`` is the output's largest value (255). ``saturation_level`` is the output value at
    which the red channel clips under 633 nm light (about 95 in mono8): frames report the share of
    red pixels clipped as ``saturated_fraction``, which is what the saturation check must use.
    """

    max_value = Sensor.max_value

    def __init__(self, bench: SimBench):
        cam = bench.config.camera
        self._bench = bench
        sensor_px = (int(cam.sensor_px[0]), int(cam.sensor_px[1]))
        self.sensor = Sensor(bench.sim.sensor, cam.color_mode, sensor_px, bench.sim.noise)
        self.roi: tuple[int, int] = (min(800, sensor_px[0]), min(800, sensor_px[1]))
        self.exposure_us = 1000.0
        self._auto_keys = 0
        self._frames = 0
        self._t0 = bench.clock.monotonic()
        self._cache: tuple[tuple, np.ndarray] | None = None
        self._irr = [np.empty((0, 0), np.float32), np.empty((0, 0), np.float32)]  # see _irradiance
        self._spare = 0

    def configure(self, roi_px: tuple[int, int], exposure_us: float) -> float:
        sensor = tuple(self._bench.config.camera.sensor_px)
        try:
            roi = tuple(int(v) for v in roi_px)
        except (TypeError, ValueError):
            raise ValueError(f"camera: roi_px must be two integers (got {roi_px!r})") from None
        if len(roi) != 2 or not all(1 <= r <= s for r, s in zip(roi, sensor, strict=True)):
            raise UserError(f"camera: roi_px {roi_px!r} must be within the {sensor[0]}×{sensor[1]} sensor")
        if not (isinstance(exposure_us, (int, float)) and math.isfinite(exposure_us) and exposure_us > 0):
            raise ValueError(f"camera: exposure_us must be a positive number (got {exposure_us!r})")
        spec = self.sensor.spec
        step = spec.exposure_step_us
        applied = round(float(exposure_us) / step) * step
        applied = min(max(applied, spec.exposure_min_us), spec.exposure_max_us)
        self.roi, self.exposure_us = (roi[0], roi[1]), float(applied)
        return self.exposure_us

    def _irradiance(self, now_s: float) -> np.ndarray:
        b = self._bench
        settling = b.settling(now_s) or b.sim.slm_flicker_rad > 0  # flicker: every frame differs
        drift = b.drift()
        state = (b.slm_version, b.diffuser, b.distance_mm, self.roi, drift)
        if not settling and self._cache is not None and self._cache[0] == state:
            return self._cache[1]
        # two arrays in turn: the one the cache holds is never the one being computed into, and
        # no new 2.5 MB array (page faults) per frame
        held = self._cache[1] if self._cache is not None else None
        self._spare = 1 if held is self._irr[0] else 0
        if self._irr[self._spare].shape != self.roi:
            self._irr[self._spare] = np.empty(self.roi, np.float32)
        irr = b.optics.irradiance(b.slm_field(now_s), b.diffuser, b.distance_mm, self.roi, drift=drift,
                                  out=self._irr[self._spare])
        if not settling:
            self._cache = (state, irr)
        return irr

    def capture(self, timeout_ms: float, average: int = 1, key: tuple | None = None) -> Frame:
        if not (isinstance(timeout_ms, (int, float)) and timeout_ms > 0):
            raise ValueError(f"camera: timeout_ms must be > 0 (got {timeout_ms!r})")
        if not (isinstance(average, (int, np.integer)) and average >= 1):
            raise ValueError(f"camera: average must be an integer ≥ 1 (got {average!r})")
        b = self._bench
        faults = b.sim.faults
        if b.fault(faults.camera_timeout):
            raise DeviceTimeout("camera", f"no frame within {timeout_ms:g} ms (simulated fault)")
        if b.fault(faults.dropped_frame):
            raise DeviceError("camera", "frame dropped by the driver (simulated fault)")
        if key is None:
            key = ("auto", self._auto_keys)
            self._auto_keys += 1
        plain_key = _plain(key)
        b.captures += 1
        # the simulated rig blocks the laser itself
        dark = isinstance(plain_key, tuple) and bool(plain_key) and plain_key[0] == "dark"
        # The frame integrates from now for the exposure; a settling SLM is taken at mid-exposure.
        start = b.clock.monotonic()
        irr = None if dark else self._irradiance(start + 0.5e-6 * self.exposure_us)
        b.clock.advance(1e-6 * self.exposure_us * int(average))
        identity = (b.sim.seed, b.diffuser, _plain(float(b.distance_mm)), plain_key)
        frames, clipped = [], 0.0
        for i in range(int(average)):
            # the sub-frame's noise key: a hash of its identity (hardware/sim/kernels.py)
            noise_key = int(frame_key(seed_sequence("frame", identity, i).generate_state(2)))
            image, red_clipped = self.sensor.expose(irr, self.exposure_us, self.roi,
                                                    noise_key if b.sim.noise else None)
            frames.append(image)
            clipped = max(clipped, red_clipped)  # averaging must not hide clipping
        if len(frames) == 1:
            image = frames[0]
        else:
            image = np.rint(np.mean(frames, axis=0, dtype=np.float32)).astype(np.uint8)
        self._frames += 1
        return Frame(image=image, exposure_us=self.exposure_us, timestamp_s=time.time(),
                     frame_index=self._frames, device_timestamp_s=b.clock.monotonic() - self._t0,
                     saturated_fraction=clipped,
                     meta={"key": plain_key, "diffuser": b.diffuser, "distance_mm": b.distance_mm,
                           "settings": self.settings})

    @property
    def saturation_level(self) -> int:
        """The output value at which the red channel clips under 633 nm light (sensor.py)."""
        return self.sensor.saturation_code

    @property
    def settings(self) -> dict:
        """What the driver set and read back (as ``UC480CameraDriver.settings``)."""
        spec = self.sensor.spec
        return {"color_mode": self.sensor.color_mode, "gamma": spec.gamma, "auto_gain": False,
                "master_gain": 1.0, "white_balance_rgb": list(spec.white_balance_rgb),
                "grey_weights_rgb": list(spec.grey_weights_rgb), "saturation_level": self.saturation_level}

    def close(self) -> None:
        pass


class SimStage:
    """The camera's distance from L4's focal plane (KDC101 + MTS50-Z8 on the real rig)."""

    def __init__(self, bench: SimBench):
        self._bench = bench
        st = bench.config.stage
        self.range_mm = (st.travel_mm[0] - st.zero_mm, st.travel_mm[1] - st.zero_mm)

    def move_to_mm(self, distance_mm: float) -> float:
        d = float(distance_mm)
        lo, hi = self.range_mm
        if not (math.isfinite(d) and lo - 1e-9 <= d <= hi + 1e-9):
            raise DeviceError("stage", f"{distance_mm!r} mm is outside the stage's reach {lo:g}..{hi:g} mm")
        b = self._bench
        if b.fault(b.sim.faults.stage_error):
            raise DeviceError("stage", "motor stalled before the target (simulated fault)")
        b.distance_mm = d
        return d

    def distance_mm(self) -> float | None:
        return self._bench.distance_mm

    def close(self) -> None:
        pass


class SimChanger:
    """The FW102C filter wheel holding the rig's diffusers (``[changer].slots``)."""

    def __init__(self, bench: SimBench):
        self._bench = bench

    @property
    def diffusers(self) -> tuple[str, ...]:
        return self._bench.config.changer.diffusers

    def select(self, diffuser: str) -> None:
        if diffuser not in self.diffusers:
            raise DeviceError("wheel", f"no diffuser {diffuser!r} in the wheel "
                                       f"(it holds {', '.join(self.diffusers)})")
        b = self._bench
        if b.fault(b.sim.faults.wheel_error):
            raise DeviceError("wheel", f"did not reach the slot of diffuser {diffuser} (simulated fault)")
        b.diffuser = diffuser

    def current(self) -> str | None:
        return self._bench.diffuser

    def close(self) -> None:
        pass

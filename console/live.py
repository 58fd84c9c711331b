"""``speckle-lab live``: the rig driven from the console page.

One capture thread owns the devices: while a page is connected it captures frames back to back, at
the camera's own rate but no faster than the server takes them (a frame is captured while the last
one is being sent; none is made that nobody would see) and at most ``max_fps``, and it carries out
the pages' commands between frames, so no two threads ever talk to a device at once. Each frame
goes to a one-slot buffer (``console.slot``); the server takes the newest. A camera that fails is
shown on the page and retried (1 s, doubling up to 10 s) while the server keeps running.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

from console.slot import LatestSlot
from console.snapshot import save_snapshot
from console.source import CommandError, FrameItem
from hardware.errors import DeviceError
from speckle_core.errors import UserError
from speckle_core.text import one_line

log = logging.getLogger("speckle_lab.console")

RETRY_FIRST_S, RETRY_MAX_S = 1.0, 10.0
HISTORY_BYTES = 64 * 2**20  # recent frames kept so a snapshot saves the very frame the page shows
TEST_PERIOD_PX = 32


class LiveSession:
    """The rig, a capture thread, and the state the page shows."""

    readonly = False

    def __init__(self, rig, *, protocol_path: str | Path | None = None,
                 snapshot_dir: str | Path = "snapshots", max_fps: float = 30.0,
                 timeout_ms: float | None = None, black_level: float = 0.0):
        self.rig = rig
        self.frames = LatestSlot()
        self.slm = LatestSlot()
        self.protocol_path = protocol_path
        self.snapshot_dir = Path(snapshot_dir)
        self.min_period_s = 1.0 / max_fps if max_fps else 0.0
        self.timeout_ms = float(timeout_ms or rig.config.camera.timeout_ms)
        cam = rig.config.camera
        self.sensor_px = tuple(int(v) for v in cam.sensor_px)
        self.roi = tuple(min(800, s) for s in self.sensor_px)
        self.exposure_us = 1000.0
        self.average = 1
        self.black_level = float(black_level)
        self.slm_state: dict = {"pattern": "blank"}
        self.manual = rig.manual_devices()
        self.camera_error: str | None = None
        self.last_snapshot: str | None = None
        self.captured = 0
        self._faces = None  # (names in selection order, source, faces config), loaded on first use
        self._history: deque[tuple[int, FrameItem]] = deque()
        self._jobs: deque[tuple[Callable[[], dict], concurrent.futures.Future]] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._clients = 0
        self._version = 0
        self._retry_s = RETRY_FIRST_S
        self._retry_at = 0.0
        self._fps = 0.0
        self._thread = threading.Thread(target=self._loop, name="live-capture", daemon=True)

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> LiveSession:
        self.exposure_us = float(self.rig.camera.configure(self.roi, self.exposure_us))
        self._show(np.zeros(self.rig.slm.window_shape, np.uint8))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    # -- Source ----------------------------------------------------------------------------------
    def status_version(self) -> int:
        return self._version

    def clients_changed(self, n: int) -> None:
        self._clients = n
        self._wake.set()

    def status(self) -> dict:
        rig, cfg = self.rig, self.rig.config
        return {
            "mode": "live", "rig": cfg.name, "simulated": cfg.simulated,
            "camera": {"ok": self.camera_error is None, "error": self.camera_error, "roi": list(self.roi),
                       "sensor_px": list(self.sensor_px), "exposure_us": self.exposure_us,
                       "average": self.average, "max_value": int(rig.camera.max_value),
                       "black_level": self.black_level},
            "slm": {**self.slm_state, "window": list(rig.slm.window_shape)},
            "diffusers": list(rig.changer.diffusers), "diffuser": rig.changer.current(),
            "distance_mm": rig.stage.distance_mm(), "manual": self.manual,
            "snapshot_dir": str(self.snapshot_dir), "last_snapshot": self.last_snapshot,
        }

    def command(self, message: dict) -> dict:
        """Runs a validated command in the capture thread and waits for it (Source.command)."""
        handler = getattr(self, f"_cmd_{message['cmd']}", None)
        if handler is None:
            raise CommandError(f"{message['cmd']}: not available on this page")
        return self.call(lambda: handler(message))

    def call(self, fn: Callable[[], dict], timeout_s: float = 60.0) -> dict:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.append((fn, fut))
        self._wake.set()
        return fut.result(timeout_s)

    def saturation_level(self) -> int | None:
        """Where the sensor really clips, when below max_value (a colour sensor read as mono)."""
        level = getattr(self.rig.camera, "saturation_level", None)
        return None if level is None else int(level)

    # -- the capture thread ----------------------------------------------------------------------
    def _loop(self) -> None:
        next_t = 0.0
        while not self._stop.is_set():
            self._run_jobs()
            now = time.monotonic()
            wait = 0.5 if self._clients == 0 else max(self._retry_at - now, next_t - now, 0.0)
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            next_t = time.monotonic() + self.min_period_s
            if self._capture_once() is not None:
                self._until_taken(self.frames.seq)

    def _until_taken(self, seq: int) -> None:
        """Captures on demand: the next frame once the server has taken this one (it takes one when
        a page has room for it), so frames nobody will see are not made, yet capture overlaps
        sending. A command, the last page leaving or stop() end the wait at once."""
        while not self.frames.wait_taken(seq, 0.05):
            if self._jobs or self._stop.is_set() or self._clients == 0:
                return

    def _run_jobs(self) -> None:
        while self._jobs:
            fn, fut = self._jobs.popleft()
            try:
                fut.set_result(fn())
            except CommandError as e:
                fut.set_exception(e)
            except (DeviceError, UserError, ValueError) as e:
                fut.set_exception(CommandError(str(e)))
            except Exception as e:  # noqa: BLE001 - any failure goes back to the page, one line
                log.warning("live command failed", exc_info=True)
                fut.set_exception(CommandError(f"{type(e).__name__}: {e}"))
            finally:
                self._changed()

    def _changed(self) -> None:
        self._version += 1

    def _capture_once(self, key: tuple | None = None) -> FrameItem | None:
        t0 = time.monotonic()
        try:
            frame = self.rig.camera.capture(self.timeout_ms, self.average, key=key)
        except Exception as e:  # noqa: BLE001 - shown on the page, retried; the server keeps running
            msg = one_line(e)
            if self.camera_error != msg:
                log.warning("camera failed: %s (retrying)", msg)
            self.camera_error = msg
            self._retry_at = time.monotonic() + self._retry_s
            self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
            self._changed()
            return None
        if self.camera_error is not None:
            log.info("camera works again")
            self.camera_error, self._retry_s, self._retry_at = None, RETRY_FIRST_S, 0.0
            self._changed()
        dt = time.monotonic() - t0
        self._fps = 0.9 * self._fps + 0.1 / max(dt, 1e-6) if self._fps else 1.0 / max(dt, 1e-6)
        self.captured += 1
        info = {"kind": "live", "camera_frame": frame.frame_index, "average": self.average,
                "capture_ms": round(dt * 1e3, 2)}
        item = FrameItem(frame.image, int(self.rig.camera.max_value), frame.timestamp_s, frame.exposure_us,
                         self.black_level, self.saturation_level(), info)
        seq = self.frames.put(item)
        self._history.append((seq, item))
        while len(self._history) > 2 and len(self._history) * frame.image.nbytes > HISTORY_BYTES:
            self._history.popleft()
        return item

    # -- commands (in the capture thread) -----------------------------------------------------------
    def _configure(self, roi: tuple[int, int], exposure_us: float) -> float:
        applied = float(self.rig.camera.configure(roi, exposure_us))
        self.roi, self.exposure_us = roi, applied
        return applied

    def _cmd_exposure(self, m: dict) -> dict:
        return {"exposure_us": self._configure(self.roi, m["exposure_us"])}

    def _cmd_roi(self, m: dict) -> dict:
        roi = (m["rows"], m["cols"])
        if roi[0] > self.sensor_px[0] or roi[1] > self.sensor_px[1]:
            raise CommandError(f"roi: {roi[0]}×{roi[1]} is larger than the {self.sensor_px[0]}×"
                               f"{self.sensor_px[1]} sensor")
        self._configure(roi, self.exposure_us)
        return {"roi": list(roi)}

    def _cmd_average(self, m: dict) -> dict:
        self.average = m["frames"]
        return {"average": self.average}

    def _cmd_auto_exposure(self, m: dict) -> dict:
        from acquisition.exposure import auto_expose

        def probe(exposure_us: float, iteration: int):
            applied = self._configure(self.roi, exposure_us)
            item = self._capture_once()
            if item is None:
                raise CommandError(f"auto exposure: the camera failed ({self.camera_error})")
            return applied, [item.image]

        level = self.saturation_level() or int(self.rig.camera.max_value)
        res = auto_expose(probe, self.exposure_us, level)  # the protocols' default settings
        applied = self._configure(self.roi, res.exposure_us)
        return {"exposure_us": applied, "p99": res.statistic, "saturated_fraction": res.saturated_fraction,
                "iterations": res.iterations, "converged": res.converged}

    def _cmd_dark(self, m: dict) -> dict:
        key = ("dark", "live", self.captured)  # the simulated rig blocks its laser for "dark" keys
        frame = self.rig.camera.capture(self.timeout_ms, max(self.average, 4), key=key)
        self.black_level = float(np.mean(frame.image, dtype=np.float64))
        return {"black_level": self.black_level}

    def _cmd_diffuser(self, m: dict) -> dict:
        if "changer" in self.manual:
            raise CommandError("diffuser: this rig's diffusers are changed by hand")
        if m["name"] not in self.rig.changer.diffusers:
            raise CommandError(f"diffuser: no {m['name']!r} on this rig "
                               f"(it has {', '.join(self.rig.changer.diffusers)})")
        self.rig.changer.select(m["name"])
        return {"diffuser": m["name"]}

    def _cmd_distance(self, m: dict) -> dict:
        if "stage" in self.manual:
            raise CommandError("distance: this rig's camera is moved by hand")
        return {"distance_mm": float(self.rig.stage.move_to_mm(m["distance_mm"]))}

    def _cmd_snapshot(self, m: dict) -> dict:
        seq, item = self._pick(m.get("seq"))
        if item is None:
            raise CommandError("snapshot: no frame yet")
        settings = {"seq": seq, "roi": list(self.roi), "average": self.average, "slm": self.slm_state,
                    "diffuser": self.rig.changer.current(), "distance_mm": self.rig.stage.distance_mm(),
                    "rig": self.rig.config.name, "rig_file": str(self.rig.file.path or "default sim rig")}
        paths = save_snapshot(self.snapshot_dir, item, settings)
        self.last_snapshot = str(paths[0])
        return {"files": [str(p) for p in paths]}

    def frame(self, seq: int) -> FrameItem | None:
        """One of the last frames by its number (what a page drew), or None when already gone."""
        return next((item for s, item in list(self._history) if s == seq), None)

    def _pick(self, seq: int | None) -> tuple[int, FrameItem | None]:
        if seq is not None:
            for s, item in self._history:
                if s == seq:
                    return s, item
        if self._history:
            return self._history[-1]
        return 0, None

    # -- the SLM -------------------------------------------------------------------------------------
    def _show(self, gray: np.ndarray) -> None:
        self.rig.slm.show_gray(gray)
        self.slm.put(gray)

    def _cmd_slm(self, m: dict) -> dict:
        window = tuple(self.rig.slm.window_shape)
        pi = np.uint8(self.rig.lut.gray_pi)
        kind = m["pattern"]
        state: dict = {"pattern": kind}
        if kind == "blank":
            gray = np.zeros(window, np.uint8)
        elif kind == "pi":
            gray = np.full(window, pi, np.uint8)
        elif kind == "step":
            gray = np.zeros(window, np.uint8)
            gray[:, window[1] // 2:] = pi
        elif kind == "test":
            period = m.get("period_px", TEST_PERIOD_PX)
            r, c = np.ogrid[: window[0], : window[1]]
            half = period // 2
            gray = np.where((r // half + c // half) % 2 == 1, pi, np.uint8(0)).astype(np.uint8)
            state["period_px"] = period
        else:
            face = m.get("face", 0)
            name, pattern01 = self._face(face, window)
            gray = np.multiply(pattern01, pi, dtype=np.uint8)
            state.update(face=face, face_name=name)
        self._show(gray)
        self.slm_state = state
        return {"slm": state}

    def _face(self, index: int, window: tuple[int, int]) -> tuple[str, np.ndarray]:
        """The ``index``-th face the protocol would select, binarised as the run would show it."""
        from acquisition.binarise import binarise
        from acquisition.faces import open_source, selection_order
        from protocols import load_protocol, shipped

        if self._faces is None:
            pf = load_protocol(self.protocol_path or shipped("quick"))
            cfg = pf.model.faces
            src = open_source(cfg.source, pf.folder, str(pf.path))
            self._faces = (selection_order(src.names(), cfg.seed), src, cfg)
        names, src, cfg = self._faces
        if not 0 <= index < len(names):
            raise CommandError(f"slm: face {index} does not exist (the protocol's source has {len(names)})")
        if tuple(cfg.target_px) != window:
            raise CommandError(f"slm: the protocol's faces are {cfg.target_px[0]}×{cfg.target_px[1]} but the "
                               f"SLM window is {window[0]}×{window[1]}")
        for name, img, why in src.read([names[index]]):
            if img is None:
                raise CommandError(f"slm: face {name} cannot be read ({why})")
            return name, binarise(img, cfg)
        raise CommandError(f"slm: face {names[index]} not found")


@contextlib.contextmanager
def live_session(rig_path: str | None, **kwargs):
    """Opens the rig (one-line UserError for a bad rig file) and runs a session on it."""
    from hardware.drivers.manual import ConsoleOperator
    from hardware.rig import build_rig, load_rig

    rig_file = load_rig(rig_path)
    rig = build_rig(rig_file, ConsoleOperator())  # live never asks: it refuses to move manual devices
    session = LiveSession(rig, **kwargs)
    try:
        yield session.start()
    finally:
        session.stop()
        with contextlib.suppress(Exception):
            rig.close()

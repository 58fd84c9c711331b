"""The acquisition engine: runs a laid-out run file on a rig, resumably, pipelined, with retries.

The run file (``speckle_core.runfile``) is the single source of truth: the engine reads the plan
(pair rows, blocks, reference schedule) and what is already done from it, so a fresh run and a
resumed one execute the same code. Per block (one diffuser and distance) it moves the slow devices
once, decides the exposure once (stored: a resume reuses it), takes the dark frame, then shows each
object, waits ``settle_ms`` from the SLM flip, captures, and hands the frame to a writer thread
through a bounded queue — so the next pattern is shown and settles while the last frame is written.

Failure policy:

- a ``DeviceError`` (timeouts, dropped frames, display loss, stage and wheel errors) is retried with
  exponential backoff; after ``retry.max_retries`` the run stops cleanly (every finished pair kept) with a
  message naming the device (exit 1). ``DriverMissing`` / ``DeviceNotFound`` are not retried;
- a reference correlation below the threshold pauses and asks the operator, or stops cleanly when
  unattended (exit 1);
- Ctrl-C (SIGINT) finishes the current pair, flushes and closes the file (exit 130);
- a write failure (a full disk) stops the run; the file stays valid and ``--resume`` continues it.

The engine's settings are :class:`acquisition.settings.RunSettings` (the protocol's tables, with
their names); a run's set-up around the engine (plan, preflight, file, progress bar, SIGINT,
RUN.log) is ``acquisition.acquire.run_acquisition``, the one entry point of a run.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from acquisition.exposure import auto_expose, mean_dark
from acquisition.settings import RunSettings
from acquisition.stability import StabilityMonitor
from hardware.clock import REAL_CLOCK, Clock
from hardware.errors import DeviceError, DeviceNotFound, DriverMissing
from hardware.rig import Rig
from speckle_core.h5safety import read_checked
from speckle_core.runfile import RunWriter, dataset, read_array, read_strings
from speckle_core.text import one_line

log = logging.getLogger("speckle_lab.acquire")
T = TypeVar("T")

EXIT_OK, EXIT_STOPPED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass
class RunOutcome:
    exit_code: int
    message: str
    pairs_done: int
    pairs_total: int
    device: str | None = None
    log_path: Path | None = None  # RUN.log, when the run was started by run_acquisition


class StopRun(Exception):
    """Stops the run cleanly: finished pairs are kept. ``device`` names the culprit, if any."""

    def __init__(self, message: str, device: str | None = None):
        super().__init__(message)
        self.device = device


class _Writer:
    """The writer thread: owns the RunWriter once started; jobs come through a bounded queue."""

    def __init__(self, writer: RunWriter, maxsize: int):
        self.writer = writer
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="run-writer", daemon=True)
        self.busy_s = 0.0  # time spent writing (for the benchmark)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                if self._error is not None:
                    continue  # drain: after a failure nothing more is written
                t0 = time.perf_counter()
                try:
                    job(self.writer)
                except BaseException as e:  # noqa: BLE001 - handed to the capture thread
                    self._error = e
                self.busy_s += time.perf_counter() - t0
            finally:
                self._q.task_done()

    def check(self) -> None:
        if self._error is not None:
            raise _write_failure(self._error, self.writer.path)

    def put(self, job: Callable[[RunWriter], None], wait: bool = False) -> None:
        self.check()
        self._q.put(job)
        if wait:  # not pipelined: the capture waits for the write (benchmark comparison)
            self._q.join()
            self.check()

    def close(self) -> None:
        """Drains the queue, syncs the last done flags and closes the file."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        if self._error is None:
            try:
                self.writer.close()
            except OSError as e:
                self._error = e
                self.writer.abandon()
        else:
            self.writer.abandon()
        self.check()


def _write_failure(e: BaseException, path) -> StopRun:
    """The one line for a failed write; the caller prefixes the dataset's path."""
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC:  # h5py keeps the errno but buries the reason in HDF5's own text
        detail = "the disk is full (No space left on device)"
    elif code:
        detail = f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    else:
        detail = one_line(e, 160)
    return StopRun(f"writing failed: {detail}; the file keeps every finished pair — "
                   "free space or fix the cause, then run again with --resume", device="disk")


@dataclass
class _Event:
    kind: str  # "pair" | "reference"
    index: int  # pair row or reference index
    block: int


@dataclass
class Engine:
    rig: Rig
    writer: RunWriter
    settings: RunSettings
    stop_requested: threading.Event = field(default_factory=threading.Event)
    progress: Callable[[int, int, str], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    # Watchers of the run (console.view.RunView, the API's callbacks): objects with any of
    # on_frame(kind, gray, frame, what), on_progress(done, total, block_label),
    # on_reference(index, block_label, correlation), on_finished(exit_code, message). See _notify.
    observers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        f = self.writer.file
        self._objects = _PackedPatterns(dataset(f, "objects/pattern"))
        self._pair_block = read_array(f, "pairs/block")
        self._pair_object = read_array(f, "pairs/object_index")
        self._pair_repeat = read_array(f, "pairs/repeat")
        self._distance = read_array(f, "blocks/distance_mm")
        self._diffuser = read_strings(dataset(f, "blocks/diffuser"))
        self._block_exposure = read_array(f, "blocks/exposure_us")
        self._block_done = read_array(f, "blocks/done")
        self._dark_n = int(np.asarray(f["dark"].attrs["n_frames"]))
        self._dark_done = read_array(f, "dark/done")
        self._ref_block = read_array(f, "stability/block")
        self._ref_before = read_array(f, "stability/before_row")
        self._ref_done = read_array(f, "stability/done")
        self._ref_pattern = read_array(f, "stability/pattern")
        self.done = read_array(f, "pairs/done")
        self._frame_shape = tuple(dataset(f, "pairs/speckle").shape[1:])
        self.monitor = StabilityMonitor(self.settings.stability.threshold)
        ref_frames = dataset(f, "stability/frame")
        for i in np.flatnonzero(self._ref_done):  # baselines of a resumed run, from the file
            b = int(self._ref_block[i])
            if not self.monitor.has_baseline(b):
                self.monitor.set_baseline(b, np.asarray(ref_frames[i]))
        self._clock: Clock = getattr(self.rig, "clock", REAL_CLOCK)  # the devices' time base (hardware.clock)
        gray_pi = self.settings.slm.gray_pi
        self._gray_pi = np.uint8(self.rig.lut.gray_pi if gray_pi == "auto" else gray_pi)
        self._block: int | None = None
        self._exposure_us = float("nan")
        self._pairs_written = int(self.done.sum())
        self._darks = self._load_darks()  # (exposure, frame) of each dark captured: reused at that exposure
        self.capture_s = 0.0  # time in show+settle+capture, for the log and the benchmark
        self.frames = 0  # frames captured: pairs, exposure probes, darks, references

    # -- the plan as a sequence of events --------------------------------------------------
    def _events(self) -> list[_Event]:
        m = len(self._pair_block)
        refs: dict[int, list[int]] = {}
        for i, r in enumerate(self._ref_before):
            refs.setdefault(int(r), []).append(i)
        out: list[_Event] = []
        for row in range(m + 1):
            out += [_Event("reference", i, int(self._ref_block[i])) for i in refs.get(row, [])]
            if row < m:
                out.append(_Event("pair", row, int(self._pair_block[row])))
        return out

    def block_label(self, b: int) -> str:
        """``block 3/12: diffuser 120 at 20 mm``: numbered from 1 in run order, as ``plan`` lists them."""
        where = f"diffuser {self._diffuser[b]} at {self._distance[b]:g} mm"
        return f"block {b + 1}/{len(self._diffuser)}: {where}"

    # -- running -----------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        total = len(self.done)
        w = _Writer(self.writer, self.settings.queue_frames)
        self.writer_thread = w
        w.start()
        code, message, device = EXIT_OK, "", None
        t_run = time.perf_counter()
        try:
            for ev in self._events():
                if self.stop_requested.is_set():
                    code = EXIT_INTERRUPTED
                    message = "interrupted: finished the current pair and closed the file"
                    break
                if ev.kind == "pair" and self.done[ev.index]:
                    continue
                if ev.kind == "reference" and self._ref_done[ev.index]:
                    continue
                w.check()
                if ev.block != self._block:
                    self._enter_block(ev.block, w)
                if ev.kind == "pair":
                    self._pair(ev.index, w)
                else:
                    self._reference(ev.index, w)
        except StopRun as e:
            code, message, device = EXIT_STOPPED, str(e), e.device
        finally:
            try:
                w.close()
            except StopRun as e:
                code, message, device = EXIT_STOPPED, str(e), e.device
        done = self.writer.done_count
        if code == EXIT_OK:
            message = f"complete: {done}/{total} pairs"
        log.info("run ended (exit %d): %s", code, message)
        log.info("timing: %.1f s running, %d frames, devices (show, settle, capture) %.1f s, "
                 "writer thread %.1f s", time.perf_counter() - t_run, self.frames, self.capture_s, w.busy_s)
        self._notify("on_finished", code, message)
        return RunOutcome(code, message, done, total, device)

    def _notify(self, event: str, *args) -> None:
        """Calls ``event`` on each observer that has it. An observer must return at once (hand the
        data over, never wait); one that raises is dropped with a log line: it never stops, slows
        or changes the run."""
        for obs in list(self.observers):
            fn = getattr(obs, event, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - a watcher's failure is not the run's
                log.warning("observer %s dropped: its %s failed (%s: %s)", type(obs).__name__, event,
                            type(e).__name__, e)
                self.observers.remove(obs)

    # -- device operations with retries -------------------------------------------------------
    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        retry = self.settings.retry
        delay = retry.backoff_s
        for attempt in range(retry.max_retries + 1):
            try:
                return fn()
            except (DriverMissing, DeviceNotFound) as e:
                raise StopRun(f"{e} (while {what}; not retried)", device=e.device) from None
            except DeviceError as e:
                if attempt == retry.max_retries:
                    raise StopRun(f"{e.device}: {what} failed {attempt + 1} times ({e}); stopped cleanly, "
                                  "finished pairs kept — fix the device and run again with --resume",
                                  device=e.device) from None
                log.warning("%s: %s (attempt %d/%d), retrying in %.2f s", what, e, attempt + 1,
                            retry.max_retries + 1, delay)
                self.sleep(delay)
                delay = min(delay * 2, retry.backoff_max_s)
        raise AssertionError("unreachable")

    def _show_and_capture(self, pattern01: np.ndarray, key: tuple, what: str):
        """Shows the pattern, waits settle_ms after the flip, captures; retried as one step."""
        s, rig = self.settings, self.rig
        gray = np.multiply(pattern01, self._gray_pi, dtype=np.uint8)  # 0 → gray 0, 1 → the π level

        def step():
            t0 = time.perf_counter()
            flip = rig.slm.show_gray(gray)  # on the rig's clock (the simulated rig's is virtual)
            wait = flip + s.slm.settle_ms / 1000.0 - self._clock.monotonic()
            if wait > 0:
                self._clock.sleep(wait)
            frame = rig.camera.capture(s.timeout_ms, s.camera.average, key=key)
            self.capture_s += time.perf_counter() - t0
            self.frames += 1
            if frame.image.shape != self._frame_shape:
                raise StopRun(f"camera: delivered a {frame.image.shape} frame but the run's frames are "
                              f"{self._frame_shape} (camera ROI); check the rig and protocol",
                              device="camera")
            return frame

        frame = self._retry(what, step)
        self._notify("on_frame", key[0], gray, frame, what)
        return frame

    def _clip_level(self) -> int:
        """The output value at which the sensor really clips: a colour DCC1645C in mono8 under 633 nm
        light clips in its red channel well below 255 (``saturation_level``, hardware/sim/sensor.py
        and the uc480 driver); cameras without one clip at ``max_value``."""
        cam = self.rig.camera
        return int(getattr(cam, "saturation_level", None) or cam.max_value)

    def _configure(self, exposure_us: float) -> float:
        return float(self._retry("setting the camera exposure",
                                 lambda: self.rig.camera.configure(self.settings.camera.roi_px, exposure_us)))

    # -- blocks --------------------------------------------------------------------------------
    def _enter_block(self, b: int, w: _Writer) -> None:
        rig, diffuser, distance = self.rig, self._diffuser[b], float(self._distance[b])
        log.info("%s", self.block_label(b))
        if rig.changer.current() != diffuser:
            self._retry(f"selecting diffuser {diffuser}", lambda: rig.changer.select(diffuser))
        here = rig.stage.distance_mm()
        if here is None or abs(here - distance) > 1e-3:
            self._retry(f"moving to {distance:g} mm", lambda: rig.stage.move_to_mm(distance))
        if self._block_done[b]:
            self._exposure_us = self._configure(float(self._block_exposure[b]))
            log.info("block %d: exposure %.1f us (stored)", b + 1, self._exposure_us)
        else:
            self._exposure_us, sat = self._decide_exposure(b)
            exp = self._exposure_us
            w.put(lambda wr: wr.write_block_exposure(b, exp, sat))
            self._block_done[b] = True
        if self._dark_n > 0 and not self._dark_done[b]:
            dark = self._reusable_dark(b)
            if dark is None:
                dark = self._dark(b)
                self._darks.append((np.float32(self._exposure_us), dark))
            w.put(lambda wr: wr.write_dark(b, dark))
            self._dark_done[b] = True
        self._block = b

    # -- dark frames: one capture per exposure setting (docs/protocol.md, "Dark frames") ---------
    def _load_darks(self) -> list[tuple[np.float32, np.ndarray]]:
        """(exposure, dark frame) of the darks already in the file, for a resumed run to reuse."""
        if self._dark_n == 0 or self.settings.dark.per != "exposure":
            return []
        frames = dataset(self.writer.file, "dark/frame")
        done = np.flatnonzero(self._dark_done & self._block_done)
        return [(np.float32(self._block_exposure[b]), np.asarray(frames[b])) for b in done]

    def _reusable_dark(self, b: int) -> np.ndarray | None:
        """A dark taken at this block's exposure (within dark.exposure_tolerance), or None."""
        if self.settings.dark.per != "exposure":
            return None
        exposure, tol = np.float32(self._exposure_us), self.settings.dark.exposure_tolerance
        for at, frame in self._darks:
            if abs(float(at) - float(exposure)) <= tol * max(float(at), float(exposure)):
                log.info("block %d: dark frame reused (taken at %.1f us; this block %.1f us)", b + 1,
                         float(at), float(exposure))
                return frame
        return None

    def _dark_source(self):
        """What blocks the laser: the rig's (hardware.dark), or for a rig built without one the
        simulated camera (renders darks) or the operator."""
        from hardware.drivers.shutter import NoDarkSource, OperatorDark

        dark = getattr(self.rig, "dark", None)
        if dark is not None:
            return dark
        return NoDarkSource() if self.settings.laser_blocked_for_dark else OperatorDark(self.rig.operator)

    def _decide_exposure(self, b: int) -> tuple[float, float]:
        s = self.settings
        if s.fixed_exposure_us is not None:
            applied = self._configure(s.fixed_exposure_us)
            log.info("block %d: exposure %.1f us (fixed)", b + 1, applied)
            return applied, float("nan")
        rows = np.flatnonzero(self._pair_block == b)
        probe_objs = list(dict.fromkeys(int(self._pair_object[r]) for r in rows))[: s.probe_objects]
        if not probe_objs and len(self._ref_pattern):
            probe_objs = [-1]
        patterns = [self._ref_pattern if o < 0 else self._objects[o] for o in probe_objs]
        diffuser, distance = self._diffuser[b], float(self._distance[b])

        def probe(exposure_us: float, iteration: int):
            applied = self._configure(exposure_us)
            frames = [self._show_and_capture(p, ("exposure", diffuser, distance, o, iteration),
                                             "capturing an exposure probe").image
                      for p, o in zip(patterns, probe_objs, strict=True)]
            return applied, frames

        auto = s.camera.auto_exposure
        res = auto_expose(probe, auto.start_us, self._clip_level(), auto)
        applied = self._configure(res.exposure_us)
        log.info("block %d: auto exposure %.1f us, p%g = %.0f counts, %.4f%% saturated, %d iterations%s",
                 b + 1, applied, auto.target_percentile, res.statistic, 100 * res.saturated_fraction,
                 res.iterations, "" if res.converged else " (NOT converged: kept the best)")
        return applied, res.saturated_fraction

    def _dark(self, b: int) -> np.ndarray:
        diffuser, distance = self._diffuser[b], float(self._distance[b])
        source = self._dark_source()
        self._move_dark_source(source, "block")
        try:
            frames = self._capture_darks(diffuser, distance)
        except BaseException:
            with contextlib.suppress(Exception):  # already failing: the run stops; the beam back if it can
                source.unblock()
            raise
        self._move_dark_source(source, "unblock")
        dark = mean_dark(frames)
        log.info("block %d: dark frame at %.1f us, mean of %d: %.2f counts (laser blocked by %s)", b + 1,
                 self._exposure_us, self._dark_n, float(dark.mean()), source.label)
        return dark

    def _move_dark_source(self, source, how: str) -> None:
        what = f"{'blocking' if how == 'block' else 'unblocking'} the laser ({source.label})"
        if getattr(source, "manual", False):
            getattr(source, how)()  # a person: asked once, never retried
        else:
            self._retry(what, getattr(source, how))

    def _capture_darks(self, diffuser: str, distance: float) -> list[np.ndarray]:
        cam, timeout_ms = self.rig.camera, self.settings.timeout_ms

        def capture_dark(i: int) -> np.ndarray:
            t0 = time.perf_counter()
            frame = self._retry("capturing a dark frame",
                                lambda: cam.capture(timeout_ms, 1, key=("dark", diffuser, distance, i)))
            self.capture_s += time.perf_counter() - t0
            self.frames += 1
            return frame.image

        return [capture_dark(i) for i in range(self._dark_n)]

    # -- pairs and references ----------------------------------------------------------------------
    def _pair(self, row: int, w: _Writer) -> None:
        b, obj, rep = int(self._pair_block[row]), int(self._pair_object[row]), int(self._pair_repeat[row])
        key = ("pair", self._diffuser[b], float(self._distance[b]), obj, rep)
        frame = self._show_and_capture(self._objects[obj], key, f"capturing pair {row + 1}")
        image, sat = frame.image, _saturated(frame, self._clip_level())
        w.put(lambda wr: wr.write_pair(row, image, frame.exposure_us, frame.timestamp_s, sat,
                                       frame.frame_index, frame.device_timestamp_s),
              wait=not self.settings.pipelined)
        self.done[row] = True
        self._pairs_written += 1
        if self.progress is not None:
            self.progress(self._pairs_written, len(self.done), self.block_label(b))
        self._notify("on_progress", self._pairs_written, len(self.done), self.block_label(b))

    def _reference(self, i: int, w: _Writer) -> None:
        b = int(self._ref_block[i])
        key = ("reference", self._diffuser[b], float(self._distance[b]), i)
        frame = self._show_and_capture(self._ref_pattern, key, "capturing the reference pattern")
        corr, ok = self.monitor.check(b, frame.image)
        image, ts = frame.image, frame.timestamp_s
        w.put(lambda wr: wr.write_reference(i, image, corr, ts))
        self._ref_done[i] = True
        log.info("reference %d (%s): correlation %.4f", i, self.block_label(b), corr)
        self._notify("on_reference", i, self.block_label(b), corr)
        if ok:
            return
        threshold = self.settings.stability.threshold
        msg = (f"stability: reference correlation {corr:.3f} < threshold {threshold:g} "
               f"({self.block_label(b)}, before pair {int(self._ref_before[i]) + 1})")
        log.warning(msg)
        if self.settings.stability.on_drift == "log":
            return
        op = self.rig.operator
        if (self.settings.stability.on_drift == "ask" and getattr(op, "interactive", False)
                and op.ask_yes_no(f"{msg}. Continue anyway?", False)):
            log.warning("operator chose to continue despite drift")
            return
        raise StopRun(f"{msg}; stopped cleanly — check the rig, then run again with --resume",
                      device="stability")


class _PackedPatterns:
    """The run's binary objects held in memory as bits (1500 faces of 800×800: 120 MB), so showing
    a pattern never touches the file the writer thread is writing."""

    def __init__(self, ds, batch: int = 64):
        self.shape = ds.shape
        self._bits = np.empty((ds.shape[0], ds.shape[1], (ds.shape[2] + 7) // 8), np.uint8)
        for a in range(0, ds.shape[0], batch):
            # gzip-compressed: bit rot shows here, as one line naming the dataset
            rows = read_checked(ds, ds.file.filename, np.s_[a:a + batch])
            self._bits[a:a + batch] = np.packbits(rows != 0, axis=-1)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        return np.unpackbits(self._bits[i], axis=-1, count=self.shape[2])


def _saturated(frame, max_value: int) -> float:
    sat = getattr(frame, "saturated_fraction", None)
    if sat is None:
        return float(np.count_nonzero(frame.image >= max_value)) / frame.image.size
    return float(sat)

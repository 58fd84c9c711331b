"""What every real camera driver shares: a centred ROI, exposure in µs, averaged capture.

The public methods (``configure``, ``capture``) validate and convert units; subclasses talk to
their vendor API only in the ``_..._hw`` hooks, and translate vendor exceptions in
``_translate_errors``. ``PylablibCameraDriver`` implements the hooks on pylablib's common
camera interface (``IBinROICamera``/``IExposureCamera``), which both ``UC480Camera`` (DCC1645C)
and ``ThorlabsTLCamera`` (TSI cameras) provide.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import time
from collections.abc import Iterator

import numpy as np

from hardware.errors import DeviceError
from hardware.interfaces import Frame, FrameKey
from speckle_core.errors import UserError

# One grabbed frame: (image, the camera's frame counter or None, the camera's clock in s or None).
Grabbed = tuple[np.ndarray, int | None, float | None]

MAX_AVERAGE = 1000


class CameraDriverBase:
    """A real camera behind the :class:`hardware.interfaces.Camera` interface."""

    device = "camera"

    def __init__(self, bit_depth: int):
        self._bit_depth = int(bit_depth)
        self._exposure_us: float | None = None
        self._roi: tuple[int, int, int, int] | None = None  # (row0, col0, rows, cols) applied
        self._closed = False

    # -- the interface --------------------------------------------------------------------------
    @property
    def max_value(self) -> int:
        return (1 << self._bit_depth) - 1

    @property
    def roi(self) -> tuple[int, int, int, int] | None:
        """The ROI applied on the sensor: (first row, first column, rows, columns)."""
        return self._roi

    def configure(self, roi_px: tuple[int, int], exposure_us: float) -> float:
        """Sets a centred ROI of (rows, cols) pixels and the exposure; returns the exposure applied (µs)."""
        rows, cols = _check_roi(roi_px)
        if not (isinstance(exposure_us, numbers.Real) and math.isfinite(exposure_us) and exposure_us > 0):
            raise ValueError(f"camera exposure_us must be a positive number (got {exposure_us!r})")
        with self._translate_errors("configuring"):
            sensor_rows, sensor_cols = self._sensor_px_hw()
            if rows > sensor_rows or cols > sensor_cols:
                raise UserError(f"camera roi_px {rows}x{cols} does not fit the {sensor_rows}x{sensor_cols} "
                                "sensor (rows x cols)")
            pos_step, size_step = self._roi_steps_hw()
            if rows % size_step or cols % size_step:
                raise UserError(f"camera roi_px {rows}x{cols}: this camera needs sizes in multiples of "
                                f"{size_step} px")
            row0 = (sensor_rows - rows) // 2 // pos_step * pos_step
            col0 = (sensor_cols - cols) // 2 // pos_step * pos_step
            applied = self._set_roi_hw(row0, col0, rows, cols)
            if applied != (row0, col0, rows, cols):
                raise DeviceError(self.device, f"asked for ROI (row0, col0, rows, cols) = "
                                  f"{(row0, col0, rows, cols)} but the camera applied {applied}")
            self._roi = applied
            self._exposure_us = float(self._set_exposure_hw(float(exposure_us) * 1e-6)) * 1e6
        return self._exposure_us

    def capture(self, timeout_ms: float, average: int = 1, key: FrameKey | None = None) -> Frame:
        """One frame, or the rounded mean of ``average`` frames, each within ``timeout_ms``.

        Frames are taken after this call starts, never from before it (a fresh acquisition).
        ``saturated_fraction`` is the share of pixels at ``max_value`` in ANY of the averaged
        frames, so averaging cannot hide clipping. The frame index and device timestamp are
        those of the first frame; all of them are in ``meta``.
        """
        exposure_us = self._exposure_us
        if self._roi is None or exposure_us is None:
            raise DeviceError(self.device, "capture before configure(): set the ROI and exposure first")
        if not (isinstance(timeout_ms, numbers.Real) and timeout_ms > 0):
            raise ValueError(f"timeout_ms must be > 0 (got {timeout_ms!r})")
        if isinstance(average, bool) or not isinstance(average, int) or not 1 <= average <= MAX_AVERAGE:
            raise ValueError(f"average must be an integer 1..{MAX_AVERAGE} (got {average!r})")
        with self._translate_errors("capturing", timeout_ms=timeout_ms):
            grabbed = self._grab_hw(average, timeout_ms / 1000.0)
        if len(grabbed) < average:
            raise DeviceError(self.device, f"asked for {average} frames but got {len(grabbed)} (frames lost)")
        images = [np.asarray(g[0]) for g in grabbed[:average]]
        shape = images[0].shape
        if len(shape) != 2 or any(im.shape != shape for im in images):
            raise DeviceError(self.device, f"expected single-channel frames, got shapes "
                                           f"{sorted({im.shape for im in images})}")
        saturated = np.zeros(shape, dtype=bool)
        for im in images:
            saturated |= im >= self.max_value
        if average == 1:
            image = images[0]
        else:
            mean = np.mean(np.stack(images), axis=0)
            image = np.rint(mean).astype(images[0].dtype)
        first = grabbed[0]
        return Frame(
            image=image,
            exposure_us=float(exposure_us),
            timestamp_s=time.time(),
            frame_index=None if first[1] is None else int(first[1]),
            device_timestamp_s=None if first[2] is None else float(first[2]),
            saturated_fraction=float(saturated.mean()),
            meta={"key": key, "average": average, "frame_indices": [g[1] for g in grabbed[:average]],
                  "device_timestamps_s": [g[2] for g in grabbed[:average]]},
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._translate_errors("closing"):
            self._close_hw()

    # -- hooks ----------------------------------------------------------------------------------
    def _sensor_px_hw(self) -> tuple[int, int]:
        """(rows, cols) of the whole sensor."""
        raise NotImplementedError

    def _roi_steps_hw(self) -> tuple[int, int]:
        """(position step, size step) in pixels that the sensor's ROI accepts."""
        raise NotImplementedError

    def _set_roi_hw(self, row0: int, col0: int, rows: int, cols: int) -> tuple[int, int, int, int]:
        """Sets the ROI; returns the one applied, read back, as (row0, col0, rows, cols)."""
        raise NotImplementedError

    def _set_exposure_hw(self, exposure_s: float) -> float:
        """Sets the exposure; returns the one applied, in seconds."""
        raise NotImplementedError

    def _grab_hw(self, n_frames: int, timeout_s: float) -> list[Grabbed]:
        """Acquires ``n_frames`` new frames, each within ``timeout_s``; raises the vendor's timeout."""
        raise NotImplementedError

    def _close_hw(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _translate_errors(self, what: str, timeout_ms: float | None = None) -> Iterator[None]:
        """Turns vendor exceptions into :mod:`hardware.errors` ones (subclasses override)."""
        yield


def _check_roi(roi_px) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in roi_px)
        ok = (rows, cols) == tuple(roi_px) and rows > 0 and cols > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"camera roi_px must be two positive integers (rows, cols) (got {roi_px!r})")
    return rows, cols


class PylablibCameraDriver(CameraDriverBase):
    """The hooks on pylablib's camera interface (``UC480Camera``, ``ThorlabsTLCamera``).

    ``cam`` is an open pylablib camera (or a test fake with the same methods). A capture starts
    a fresh acquisition into a small ring buffer, waits for ``n`` frames since its start, reads
    them with their frame info, and stops.
    """

    def __init__(self, cam, bit_depth: int):
        super().__init__(bit_depth)
        self._cam = cam
        self._buffer_frames = 0

    def _sensor_px_hw(self) -> tuple[int, int]:
        width, height = self._cam.get_detector_size()
        return int(height), int(width)

    def _roi_steps_hw(self) -> tuple[int, int]:
        hlim, vlim = self._cam.get_roi_limits()
        pos_step = max(int(hlim.pstep), int(vlim.pstep), 1)
        size_step = max(int(hlim.sstep), int(vlim.sstep), 1)
        return pos_step, size_step

    def _set_roi_hw(self, row0: int, col0: int, rows: int, cols: int) -> tuple[int, int, int, int]:
        self._buffer_frames = 0  # frame buffers are sized to the ROI: set them up again at the next capture
        hstart, hend, vstart, vend, _, _ = self._cam.set_roi(col0, col0 + cols, row0, row0 + rows, 1, 1)
        return int(vstart), int(hstart), int(vend - vstart), int(hend - hstart)

    def _set_exposure_hw(self, exposure_s: float) -> float:
        return float(self._cam.set_exposure(exposure_s))

    def _grab_hw(self, n_frames: int, timeout_s: float) -> list[Grabbed]:
        cam = self._cam
        wanted = max(4, 2 * n_frames)
        if wanted != self._buffer_frames:
            cam.setup_acquisition(nframes=wanted)
            self._buffer_frames = wanted
        cam.start_acquisition()
        try:
            cam.wait_for_frame(since="start", nframes=n_frames, timeout=(timeout_s * n_frames, timeout_s))
            frames, infos = cam.read_multiple_images(return_info=True)
        finally:
            cam.stop_acquisition()
        return [(frame, *self._frame_info(info)) for frame, info in zip(frames, infos, strict=True)]

    def _frame_info(self, info) -> tuple[int | None, float | None]:
        """(camera frame counter, camera clock in s) from the vendor's frame info (may be None)."""
        raise NotImplementedError

    def _close_hw(self) -> None:
        self._cam.close()

"""The console server's frame pump: turns a source's newest frame, SLM pattern, status and stability
series into messages that every connected page's sender sends (``console.server``).

Two paces:

- **live** (``speckle-lab live``): a frame is taken from the source's one-slot buffer as soon as a
  page has room for it (fewer than ``MAX_IN_FLIGHT`` frames not yet drawn), at most ``max_fps``: the
  camera's own rate, at the page's pace. Status goes out as soon as it changes (a command's effect).
- **paced** (``acquire --view``): the source makes frames far faster than anyone needs to glance at
  them, and every millisecond of CPU the view spends, here or in the browser, is the run's. The pump
  wakes once per ``1 / max_fps`` seconds, takes the newest frame without waiting on the buffer, and
  sends it with the status, the SLM pattern and the new stability points in one batch, so the page
  redraws once per tick. Frames wider than ``display_px`` are binned down for display (the page
  scales them up); the statistics are computed on the full frame, once per frame shown.

Without a page connected the pump sleeps: no frame is prepared, no status serialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from console.encoding import SLM_MAGIC, bin_down, encode_image
from console.source import FrameItem, Source
from console.stats import frame_stats

if TYPE_CHECKING:
    from console.server import Page

log = logging.getLogger("speckle_lab.console")

MAX_IN_FLIGHT = 2  # frames sent to a page but not yet drawn
SLM_THUMB_PX = 256  # the SLM pattern is sent at most this size (a binary face reads well at it)
POLL_S = 0.1  # live pace: how long one wait for a frame or for room lasts


@dataclass
class Prepared:
    """One frame ready to send: encodings made on demand, statistics once."""

    seq: int
    item: FrameItem  # the frame as shown (binned down when the source's frames are large)
    stats: dict
    encoded: dict[str, bytes] = field(default_factory=dict)
    stats_text: str = ""  # the stats message, serialised once for every page

    def message(self, encoding: str) -> bytes:
        msg = self.encoded.get(encoding)
        if msg is None:
            it = self.item
            msg = encode_image(it.image, seq=self.seq, time_s=it.time_s, max_value=it.max_value or 255,
                               encoding=encoding, exposure_us=it.exposure_us)
            self.encoded[encoding] = msg
        return msg


def full_scale(image: np.ndarray) -> int:
    """The full-scale value of a frame whose camera did not say: 255 for 8 bits, else the smallest
    2^n - 1 (n >= 8) that holds its maximum."""
    if image.dtype == np.uint8:
        return 255
    return (1 << max(int(image.max()).bit_length(), 8)) - 1


def prepare(seq: int, item: FrameItem, display_px: int | None = None,
            encodings: tuple[str, ...] = ("raw",)) -> Prepared:
    """Statistics of the full frame, the frame as shown (binned to at most ``display_px``) and its
    ``encodings``. Runs in a worker thread, never in the source's."""
    if item.max_value is None:
        item = dataclasses.replace(item, max_value=full_scale(item.image))
    top = int(item.max_value or 255)
    stats = frame_stats(item.image, top, item.black_level, item.saturation_level).to_json()
    camera_saturated = item.info.get("camera_saturated")  # the camera's own count, where it has one
    if camera_saturated is not None:
        stats["saturated_fraction"] = max(stats["saturated_fraction"], float(camera_saturated))
    shown = bin_down(item.image, display_px)
    stats.update(type="stats", seq=seq, time_s=item.time_s, exposure_us=item.exposure_us,
                 shape=list(item.image.shape), shown=list(shown.shape), info=item.info)
    if shown is not item.image:
        item = dataclasses.replace(item, image=shown)
    p = Prepared(seq, item, stats, stats_text=json.dumps(stats))
    for encoding in encodings:
        p.message(encoding)
    return p


def slm_thumbnail(gray: np.ndarray, version: int) -> bytes:
    step = max(1, math.ceil(max(gray.shape) / SLM_THUMB_PX))
    return encode_image(gray[::step, ::step], seq=version, time_s=time.time(), magic=SLM_MAGIC)


class Pump:
    """Turns the source's newest frame, SLM pattern and status into messages, for every page.

    Live pace: a frame is taken from the source only when some page has room for it, so frames are
    made, prepared and sent at the pace of the fastest page, and a live camera captures no frame
    that nobody would see. Paced: see the module's docstring."""

    def __init__(self, source: Source, max_fps: float | None, display_px: int | None = None,
                 paced: bool = False):
        self.source = source
        self.min_interval_s = 1.0 / max_fps if max_fps else 0.0
        self.display_px = display_px
        self.paced = paced and self.min_interval_s > 0
        self.frame: Prepared | None = None
        self.slm: tuple[int, bytes] | None = None
        self.status: tuple[int, str] | None = None
        self.stability_total = 0  # points of the source's stability series seen so far
        self.pages: set[Page] = set()
        self.changed = asyncio.Condition()
        self.attached = asyncio.Event()  # set while at least one page is connected
        self.frames_prepared = 0
        self.stopping = False
        self._seq = 0
        self._status_seen = self._slm_seen = -1

    @property
    def clients(self) -> int:
        return len(self.pages)

    async def stop(self, task: asyncio.Task, wait_s: float = 2.0) -> None:
        """Ends ``run`` (its task): by cancelling it and, should a cancellation be lost (Python
        3.11's ``wait_for`` can swallow one that lands as its inner wait ends), by the flag that
        ``run`` checks on every turn."""
        self.stopping = True
        self.attached.set()
        task.cancel()
        await asyncio.wait({task}, timeout=wait_s)
        if not task.done():
            log.warning("the frame pump did not stop within %.0f s", wait_s)

    def add(self, page: Page) -> None:
        self.pages.add(page)
        self.attached.set()

    def discard(self, page: Page) -> None:
        self.pages.discard(page)
        if not self.pages:
            self.attached.clear()

    def room(self) -> bool:
        """Whether a page has room for a new frame and has been sent the current one (a frame
        prepared but not yet sent is not replaced: that would capture frames nobody sees)."""
        current = self.frame.seq if self.frame is not None else -1
        return any(page.room() and page.sent_frame >= current for page in self.pages)

    async def run(self) -> None:
        while not self.stopping:
            if not self.pages:
                await self.attached.wait()  # nobody watches: nothing to prepare
                continue
            if self.paced:
                await self._tick()
            else:
                await self._step()

    async def _step(self) -> None:
        """Live pace: the next frame as soon as a page has room, then any new status / pattern."""
        got = await self._next_frame()
        changed = got is not None
        if got is not None:
            self.frame = await asyncio.to_thread(prepare, *got, self.display_px, self._encodings())
            self.frames_prepared += 1
        changed |= self._new_status()
        changed |= await self._new_slm()
        changed |= self._new_points()
        if changed:
            await self._notify()
        if got is not None and self.min_interval_s:
            await asyncio.sleep(self.min_interval_s)

    async def _tick(self) -> None:
        """Paced: the newest frame (without waiting for one), the status, the pattern and the new
        stability points, in one batch; then sleep out the rest of the interval."""
        t0 = time.monotonic()
        changed = False
        seq, item = self.source.frames.latest()
        if item is not None and seq > self._seq and self.room():
            self._seq = seq
            self.frame = await asyncio.to_thread(prepare, seq, item, self.display_px, self._encodings())
            self.frames_prepared += 1
            changed = True
        changed |= self._new_status()
        changed |= await self._new_slm()
        changed |= self._new_points()
        if changed:
            await self._notify()
        await asyncio.sleep(max(self.min_interval_s - (time.monotonic() - t0), 0.01))

    def _encodings(self) -> tuple[str, ...]:
        return tuple({page.encoding for page in self.pages}) or ("raw",)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _next_frame(self):
        """The newest frame when a page has room for it, else None after a short wait."""
        if not self.room():
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait_for(self.room), POLL_S)
            return None
        got = await asyncio.to_thread(self.source.frames.wait_newer, self._seq, POLL_S)
        if got is not None:
            self._seq = got[0]
        return got

    def _new_status(self) -> bool:
        v = self.source.status_version()
        if v == self._status_seen:
            return False
        self._status_seen = v
        self.status = (v, json.dumps({"type": "status", **self.source.status()}, default=str))
        return True

    def _new_points(self) -> bool:
        """Whether the source's stability series (a run's reference correlations) has grown."""
        total = getattr(self.source, "stability_total", 0)
        if total == self.stability_total:
            return False
        self.stability_total = total
        return True

    async def _new_slm(self) -> bool:
        slm_seq, gray = self.source.slm.latest()
        if slm_seq == self._slm_seen or gray is None or not self.pages:
            return False
        self._slm_seen = slm_seq
        self.slm = (slm_seq, await asyncio.to_thread(slm_thumbnail, gray, slm_seq))
        return True

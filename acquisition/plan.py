"""The run plan: a protocol on a rig, laid out pair by pair, before anything moves.

``make_plan(protocol, rig)`` validates the protocol against the rig (every diffuser in the changer's
slots, every distance within the stage's travel, the ROI on the sensor, the objects the size of the
SLM window, one-line ``UserError``s naming the value) and lays out:

- **the pairs, ordered so slow moves are fewest**: all blocks of one diffuser together (one diffuser
  change each: a swap disturbs the optics and, on a manual changer, needs a person), diffusers in the
  order the protocol first names them; within a diffuser the distances snake (ascending, then
  descending for the next diffuser, ...), so the stage does not return to its start at every
  diffuser change; within a block the faces in object order, the repeats of a face adjacent (the SLM
  is not reloaded in between). 4 diffusers × 3 distances: 4 diffuser selections and 9 stage moves.
  One exception: a manual stage with a motorised changer nests the other way (distances outer,
  diffusers snaking), because then the person's steps are the slowest moves: 3 instead of 9;
- the device moves, and which of them a person must do (a rig's ``stage.kind`` / ``changer.kind``
  = "manual"), plus dark frames when the rig has no dark source (``hardware.dark``: the wheel's
  blank slot, a shutter; else a person blocks the laser);
- the reference (stability) captures: before every ``reference_every``-th pair of a block and once
  after its last pair; the dark captures (``DarkPlan``): one per exposure setting, so one for a
  fixed exposure and up to one per block for auto exposure (``dark.per = "block"``: one per block);
- which devices are simulated (a mixed rig: real SLM and camera, simulated stage or changer);
- the estimated duration and disk need (the ``Timings`` below). The objects need not exist yet for
  ``speckle-lab plan`` (``allow_missing_faces``): they are then marked missing.

``build_objects(plan)`` then reads and binarises the faces (slow: the engine calls it once when the
run file is laid out). ``plan_command`` is ``speckle-lab plan``: it only lists the face names (it
never decodes or binarises an image), so it is fast even for 1,500 faces in ``lfw.tgz``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from acquisition.sources import FaceSource
from protocols import ProtocolFile, load_protocol
from protocols.schema import block_ref
from speckle_core.errors import UserError

if TYPE_CHECKING:
    from hardware.rig import RigFile

# -- timings for the estimate ----------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    """Per-device times for the duration estimate (nominal: measure yours, see bench/)."""

    flip_ms: float  # SLM: from show to the panel changing (render + wait for the next vsync)
    readout_ms: float  # camera: per frame on top of the exposure
    overhead_ms: float  # software per pair (the engine's own time; bench/bench_acquire.py)
    stage_mm_per_s: float  # stage travel speed
    stage_fixed_s: float  # per stage move: acceleration, settling, read-back
    wheel_s_per_slot: float  # filter wheel, per slot step
    wheel_fixed_s: float  # per wheel move: settling and read-back
    manual_s: float  # a person doing one step (swap a diffuser, move the camera, block the laser)
    probe_captures: int  # auto exposure: captures per block (3 probe objects × ~4 iterations)
    exposure_is_wall_time: bool = True  # False on the simulated rig: an exposure is computed, not waited


# Real rig. SLM: EXULUS-HD2 over HDMI at 60 Hz: a flip lands on one of the next vsyncs, 1.5 frames
# = 25 ms on average. Camera: DCC1645C, 25 fps at full frame (Thorlabs spec sheet) = 40 ms readout
# per frame; an 800×800 ROI is faster, so this is an upper bound. Stage: MTS50-Z8 on a KDC101,
# 2.4 mm/s maximum velocity (Thorlabs spec), plus ~1 s for acceleration, settling and the position
# read-back. Wheel: FW102C, about 1 s between adjacent positions (Thorlabs manual, high-speed mode)
# plus 0.5 s settling. A person: a minute per step (read the prompt, do it, confirm).
REAL_TIMINGS = Timings(flip_ms=25.0, readout_ms=40.0, overhead_ms=5.0, stage_mm_per_s=2.4, stage_fixed_s=1.0,
                       wheel_s_per_slot=1.0, wheel_fixed_s=0.5, manual_s=60.0, probe_captures=12)
# Simulated rig: moves are instant, and the whole pair (model, capture, write) takes the issue's
# required 1/30 s (>= 30 pairs/s on 2 cores); bench/bench_acquire.py measures the real figure.
SIM_TIMINGS = Timings(flip_ms=0.0, readout_ms=0.0, overhead_ms=1000.0 / 30.0, stage_mm_per_s=float("inf"),
                      stage_fixed_s=0.0, wheel_s_per_slot=0.0, wheel_fixed_s=0.0, manual_s=0.0,
                      probe_captures=12, exposure_is_wall_time=False)

# -- the plan ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRow:
    """One planned capture: a row of ``/pairs``, in plan order."""

    row: int  # position in the plan (and in /pairs)
    block: int  # index into RunPlan.blocks
    role: str  # "train" | "validation"
    diffuser: str  # e.g. "120"
    distance_mm: float  # camera distance from the focal plane
    object_index: int  # row in /objects
    repeat: int  # 0 .. repeats-1


@dataclass(frozen=True)
class PlanBlock:
    """Consecutive rows with one diffuser and one distance (one exposure, one dark frame)."""

    index: int
    diffuser: str
    distance_mm: float
    role: str
    first_row: int
    pairs: int  # rows in this block: faces × repeats
    repeats: int
    table: int = -1  # the protocol's [[blocks]] table it comes from (0-based; shown 1-based)


@dataclass(frozen=True)
class Move:
    """A slow device move before ``before_row``: the changer to a diffuser, or the stage to a distance."""

    before_row: int
    device: str  # "changer" | "stage"
    target: str  # diffuser name, or the distance in mm as text
    origin: str | None  # where it was (None: unknown, at the start of the run)
    manual: bool  # a person does it
    estimate_s: float

    def describe(self) -> str:
        what = "diffuser" if self.device == "changer" else "distance"
        unit = "" if self.device == "changer" else " mm"
        frm = f"{self.origin}{unit} → " if self.origin is not None else ""
        who = " (by hand)" if self.manual else ""
        return f"{what} {frm}{self.target}{unit}{who}"


@dataclass(frozen=True)
class Estimate:
    """Duration (s) and disk (bytes), each with its parts for the printout."""

    duration_s: float
    duration_parts: dict[str, float]
    disk_bytes: int
    disk_parts: dict[str, int]


@dataclass(frozen=True)
class RunPlan:
    protocol: ProtocolFile
    rig: RigFile
    source_label: str  # where the faces come from
    faces_available: int | None  # images the source holds (None: the source is missing)
    rows: tuple[PlanRow, ...]
    blocks: tuple[PlanBlock, ...]
    moves: tuple[Move, ...]
    manual_steps: tuple[str, ...]  # what a person must do, in order
    reference_before_rows: tuple[int, ...]  # a reference capture before each of these rows ...
    reference_blocks: tuple[int, ...]  # ... belonging to these blocks (len(rows) = after the last)
    dark_frames: int  # per block
    gray_pi: int  # resolved: the protocol's, or the rig LUT's π level
    settle_ms: float  # the larger of the protocol's and the rig's
    roi_px: tuple[int, int]
    bytes_per_pixel: int
    timings: Timings
    estimate: Estimate
    face_names: tuple[str, ...] = field(default=(), repr=False)  # every name the source holds, sorted
    faces_missing: str | None = None  # why the source could not be listed (plan only; acquire refuses)
    darks: DarkPlan | None = None  # dark captures, their source and cost

    @property
    def config(self):
        return self.protocol.model

    @property
    def pairs_total(self) -> int:
        return len(self.rows)


def reference_schedule(blocks: tuple[PlanBlock, ...], every: int) -> tuple[list[int], list[int]]:
    """(before_row, block) of each reference capture: every ``every`` pairs of a block and after its end."""
    before, owner = [], []
    if every <= 0:
        return before, owner
    for b in blocks:
        for k in range(0, b.pairs, every):
            before.append(b.first_row + k)
            owner.append(b.index)
        before.append(b.first_row + b.pairs)
        owner.append(b.index)
    return before, owner


def _order_blocks(cfg, distance_major: bool = False) -> list[tuple[str, float, str, int, int]]:
    """(diffuser, distance, role, repeats, [[blocks]] table index) in capture order.

    Diffuser-major (the default): diffusers in the protocol's order, the distances of each snaking.
    Distance-major (a manual stage with a motorised changer: the person's steps are the slowest):
    distances ascending, the diffusers of each snaking."""
    items: list[tuple[str, float, str, int, int]] = []
    for t, b in enumerate(cfg.blocks):
        items.extend((b.diffuser, float(d), b.role, b.repeats, t) for d in b.distances_mm)
    diff_rank = {d: i for i, d in enumerate(dict.fromkeys(b.diffuser for b in cfg.blocks))}
    if distance_major:
        outer = lambda it: it[1]  # noqa: E731
        inner = lambda it: diff_rank[it[0]]  # noqa: E731
    else:
        outer = lambda it: diff_rank[it[0]]  # noqa: E731
        inner = lambda it: it[1]  # noqa: E731
    groups: dict[float, list] = {}
    for it in sorted(items, key=lambda it: (outer(it), inner(it))):
        groups.setdefault(outer(it), []).append(it)
    out: list[tuple[str, float, str, int, int]] = []
    at = None
    for group in groups.values():
        if at is not None and abs(inner(group[-1]) - at) < abs(inner(group[0]) - at):
            group.reverse()  # start from the end nearer where the inner device is
        out.extend(group)
        at = inner(group[-1])
    return out


def _wheel_steps(slots: dict[str, str], a: str | None, b: str) -> int:
    if a is None:
        return 3  # unknown start: half a 6-position wheel
    by_name = {v: int(k) for k, v in slots.items()}
    n = 6 if max(by_name.values()) <= 6 else 12  # FW102C: 6 positions, FW212C: 12
    d = abs(by_name[a] - by_name[b]) % n
    return min(d, n - d)


def _validate(pf: ProtocolFile, rig_file) -> None:
    cfg, rig = pf.model, rig_file.config
    src = pf.path
    rig_name = str(rig_file.path) if rig_file.path else "the default simulated rig"
    names = rig.changer.diffusers
    for i, b in enumerate(cfg.blocks):
        if b.diffuser not in names:
            raise UserError(f"{src}: {block_ref(i)}.diffuser: {b.diffuser!r} is not in the changer slots of "
                            f"{rig_name} ({', '.join(names)})")
        lo, hi = rig.stage.travel_mm
        for d in b.distances_mm:
            pos = rig.stage.zero_mm + d
            if not lo <= pos <= hi:
                raise UserError(f"{src}: {block_ref(i)}.distances_mm: {d:g} mm puts the stage at {pos:g} mm, "
                                f"outside its travel {lo:g}..{hi:g} mm "
                                f"(stage.zero_mm = {rig.stage.zero_mm:g} in {rig_name})")
    roi, sensor = cfg.camera.roi_px, rig.camera.sensor_px
    if roi[0] > sensor[0] or roi[1] > sensor[1]:
        raise UserError(f"{src}: camera.roi_px: {roi[0]}x{roi[1]} does not fit the {sensor[0]}x{sensor[1]} "
                        f"sensor of {rig_name}")
    if tuple(cfg.faces.target_px) != tuple(rig.slm.window_px):
        raise UserError(f"{src}: faces.target_px: {list(cfg.faces.target_px)} differs from the SLM window "
                        f"{list(rig.slm.window_px)} (slm.window_px in {rig_name})")
    if cfg.slm.stroke_mode != "any" and cfg.slm.stroke_mode != rig.slm.stroke_mode:
        raise UserError(f"{src}: slm.stroke_mode: the protocol requires {cfg.slm.stroke_mode!r} but "
                        f"{rig_name} sets {rig.slm.stroke_mode!r} (slm.stroke_mode)")


def _bytes_per_pixel(rig) -> int:
    """8-bit output modes store 1 byte a pixel; 10/12/16-bit modes 2."""
    mode = rig.camera.color_mode.lower()
    return 1 if rig.camera.kind == "sim" or mode.endswith("8") or mode.endswith("8p") else 2


def _list_faces(pf: ProtocolFile, allow_missing: bool) -> tuple[str, list[str], str | None]:
    """(source label, names, None) — or, when the source does not exist and ``allow_missing``,
    (label, [], the reason): the plan is still laid out for ``faces.count`` objects."""
    from acquisition.faces import check_count, open_source
    from acquisition.sources import missing_source_message, resolve_source

    cfg = pf.model.faces
    if allow_missing and not cfg.embedded:
        p = resolve_source(cfg.source, pf.folder)
        if not p.exists():
            return f"missing {p}", [], missing_source_message(p, f"{pf.path}: ")
    source = open_source(cfg.source, pf.folder, str(pf.path))
    names = source.names()
    check_count(source, names, cfg.count)
    return source.label, names, None


def make_plan(protocol_file: ProtocolFile | str | Path, rig_file: RigFile | str | Path | None = None,
              allow_missing_faces: bool = False) -> RunPlan:
    """Lays out a protocol on a rig. ``protocol_file``: a path or ProtocolFile; ``rig_file``: a path,
    a RigFile, or None (the default simulated rig). Lists the face names; decodes no image.

    ``allow_missing_faces`` (``speckle-lab plan``): a ``faces.source`` that does not exist (LFW not
    downloaded yet) does not stop the plan; ``RunPlan.faces_missing`` says why."""
    from hardware.rig import RigFile, load_rig

    pf = protocol_file if isinstance(protocol_file, ProtocolFile) else load_protocol(protocol_file)
    rf = rig_file if isinstance(rig_file, RigFile) else load_rig(rig_file)
    _validate(pf, rf)
    cfg, rig = pf.model, rf.config
    label, names, missing = _list_faces(pf, allow_missing_faces)

    manual_stage = rig.stage.kind == "manual"
    manual_changer = rig.changer.kind == "manual"
    rows: list[PlanRow] = []
    blocks: list[PlanBlock] = []
    order = _order_blocks(cfg, distance_major=manual_stage and not manual_changer)
    for bi, (diffuser, dist, role, repeats, table) in enumerate(order):
        first = len(rows)
        for obj in range(cfg.faces.objects_total):  # each face and its variants (faces.variants)
            for rep in range(repeats):
                rows.append(PlanRow(len(rows), bi, role, diffuser, dist, obj, rep))
        blocks.append(PlanBlock(bi, diffuser, dist, role, first, len(rows) - first, repeats, table))

    timings = SIM_TIMINGS if rig.simulated else REAL_TIMINGS
    moves, steps = _moves_and_steps(blocks, rig, timings)
    darks = _dark_plan(cfg, rig, blocks, timings)
    if darks.manual and darks.captures:
        steps.append(darks.step)

    ref_before, ref_block = reference_schedule(tuple(blocks), cfg.stability.reference_every)
    gray_pi = rf.lut().gray_pi if cfg.slm.gray_pi == "auto" else int(cfg.slm.gray_pi)
    settle_ms = max(cfg.slm.settle_ms, rig.slm.settle_ms)
    bpp = _bytes_per_pixel(rig)
    est = _estimate(cfg, rig, len(rows), blocks, moves, len(ref_before), timings, settle_ms, bpp, darks)
    return RunPlan(pf, rf, label, None if missing else len(names), tuple(rows), tuple(blocks), tuple(moves),
                   tuple(steps), tuple(ref_before), tuple(ref_block), cfg.dark.frames, gray_pi, settle_ms,
                   cfg.camera.roi_px, bpp, timings, est, tuple(names), missing, darks)


def _moves_and_steps(blocks: list[PlanBlock], rig, timings: Timings) -> tuple[list[Move], list[str]]:
    """The slow device moves before each block, and the steps a person must do for them."""
    manual_stage = rig.stage.kind == "manual"
    manual_changer = rig.changer.kind == "manual"
    moves: list[Move] = []
    steps: list[str] = []
    cur_diff: str | None = None
    cur_dist: float | None = None
    for b in blocks:
        if b.diffuser != cur_diff:
            t = (timings.manual_s if manual_changer else
                 timings.wheel_fixed_s + timings.wheel_s_per_slot * _wheel_steps(rig.changer.slots, cur_diff,
                                                                                   b.diffuser))
            moves.append(Move(b.first_row, "changer", b.diffuser, cur_diff, manual_changer, t))
            if manual_changer:
                steps.append(f"before pair {b.first_row + 1}: put diffuser {b.diffuser} in the beam")
            cur_diff = b.diffuser
        if b.distance_mm != cur_dist:
            span = 25.0 if cur_dist is None else abs(b.distance_mm - cur_dist)  # unknown start: half travel
            t = timings.manual_s if manual_stage else timings.stage_fixed_s + span / timings.stage_mm_per_s
            moves.append(Move(b.first_row, "stage", f"{b.distance_mm:g}",
                              None if cur_dist is None else f"{cur_dist:g}", manual_stage, t))
            if manual_stage:
                steps.append(f"before pair {b.first_row + 1}: set the camera {b.distance_mm:g} mm from the "
                             "focal plane")
            cur_dist = b.distance_mm
    return moves, steps


@dataclass(frozen=True)
class DarkPlan:
    """Dark captures: how many (at most), by what, and the time of one block-and-unblock."""

    frames: int  # averaged per capture
    captures: int  # at most: 1 for a fixed exposure shared by every block, else one per block
    exact: bool  # False: auto exposure decides how many distinct exposures there are
    source: str  # what blocks the laser (hardware.dark)
    manual: bool  # a person does it
    switch_s: float  # blocking + unblocking once

    @property
    def step(self) -> str:
        times = "once" if self.captures == 1 else (f"{'up to ' if not self.exact else ''}{self.captures} "
                                                   "times (once per exposure setting)")
        return (f"{times}: block the laser for {self.frames} dark frames, then unblock it (no [shutter] or "
                "changer.dark_slot in the rig file)")


def _dark_plan(cfg, rig, blocks: list[PlanBlock], t: Timings) -> DarkPlan:
    from hardware.dark import describe_dark_source

    info = describe_dark_source(rig)
    d = cfg.dark
    shared = d.per == "exposure" and not cfg.camera.auto  # one fixed exposure for every block
    captures = 0 if d.frames == 0 else (1 if shared else len(blocks))
    exact = shared or d.per == "block"
    if rig.simulated:
        switch = 0.0
    elif info.manual:
        switch = 2 * t.manual_s
    elif rig.shutter.kind == "mff101":
        switch = 2 * 1.5  # MFF101 transit 0.3–2.8 s (its transit_time; Thorlabs default 500 ms) + settling
    elif rig.shutter.kind == "ksc101":
        switch = 2 * 0.05  # SH05: 10 ms opening time (Thorlabs spec) + the USB round trip
    else:  # the wheel's blank slot: there and back
        switch = 2 * (t.wheel_fixed_s + 3 * t.wheel_s_per_slot)
    return DarkPlan(d.frames, captures, exact, info.label, info.manual, switch)


def _estimate(cfg, rig, n_pairs: int, blocks, moves, n_refs: int, t: Timings, settle_ms: float,
              bpp: int, darks: DarkPlan) -> Estimate:
    cam = cfg.camera
    exposure_us = cam.auto_exposure.start_us if cam.auto else float(cam.exposure_us)
    exposure_s = exposure_us / 1e6 if t.exposure_is_wall_time else 0.0
    frame_s = (exposure_s + t.readout_ms / 1e3) * cam.average
    pair_s = t.flip_ms / 1e3 + settle_ms / 1e3 + frame_s + t.overhead_ms / 1e3
    parts = {
        "pairs": n_pairs * pair_s,
        "references": n_refs * pair_s,
        "moves": sum(m.estimate_s for m in moves),
        "auto exposure": (len(blocks) * t.probe_captures * pair_s) if cam.auto else 0.0,
        "dark frames": darks.captures * (darks.frames * frame_s + darks.switch_s),
    }
    frame_bytes = cam.roi_px[0] * cam.roi_px[1] * bpp
    h, w = cfg.faces.target_px
    disk = {
        "frames": n_pairs * frame_bytes,
        "objects": cfg.faces.objects_total * h * w,
        "references and darks": (n_refs + len(blocks)) * frame_bytes + h * w,
        "tables": n_pairs * 64 + 1_000_000,  # per-pair columns, names, attributes, HDF5 overhead
    }
    return Estimate(sum(parts.values()), parts, sum(disk.values()), disk)


# -- objects -------------------------------------------------------------------------------------------


def build_objects(plan: RunPlan):
    """Reads and binarises the faces: (patterns uint8 (N, H, W) 0/1, names, splits, skipped).

    ``skipped`` lists "name: reason" for every image that could not be read or binarised; each was
    replaced by the next candidate of the selection, so N = faces.count × (1 + len(faces.variants)):
    each face followed by its variants (``acquisition.faces.with_variants``).
    """
    import numpy as np

    from acquisition.faces import load_faces, open_source, with_variants

    cfg = plan.config.faces
    source = _BinarisingSource(open_source(cfg.source, plan.protocol.folder, str(plan.protocol.path)), cfg)
    faces = load_faces(source, cfg.count, cfg.holdout, cfg.seed, list(plan.face_names) or None,
                       cfg.holdout_match)
    h, w = cfg.target_px
    patterns = np.empty((len(faces.images), h, w), dtype=np.uint8)
    for i, obj in enumerate(faces.images):
        patterns[i] = obj
    patterns, names, splits = with_variants(patterns, faces.names, faces.splits, cfg.variants)
    return patterns, names, splits, faces.skipped


def faces_sheet(plan: RunPlan, path: str | Path, n: int = 12) -> Path:
    """A contact sheet of the run's first ``n`` selected faces and their binarised objects.

    The first ``n`` faces of a selection are the same whatever ``faces.count`` (the selection order
    depends only on the names and the seed), so this shows faces the run will use."""
    from acquisition.binarise import binarise, contact_sheet
    from acquisition.faces import load_faces, open_source

    cfg = plan.config.faces
    n = max(1, min(n, cfg.count))
    source = open_source(cfg.source, plan.protocol.folder, str(plan.protocol.path))
    faces = load_faces(source, n, 0, cfg.seed, list(plan.face_names) or None)
    objects = [binarise(g, cfg) for g in faces.images]
    b = cfg.binarise
    rows, cols = cfg.target_px
    how = f"{b.method}{' inverted' if b.invert else ''}, {cfg.interpolation} to {rows}x{cols}"
    return contact_sheet(faces.images, objects, faces.names, path, title=f"face -> binary object ({how})")


class _BinarisingSource(FaceSource):
    """Wraps a FaceSource so images are binarised as they are read (one face in memory at a time);
    a face that cannot be binarised (crop too large, no contrast) is skipped like an unreadable one."""

    def __init__(self, source, faces_cfg):
        self._source = source
        self._cfg = faces_cfg
        self.label = source.label
        self.origin = source.origin

    def names(self):
        return self._source.names()

    def read(self, wanted):
        from acquisition.binarise import binarise

        for name, img, why in self._source.read(wanted):
            if img is None:
                yield name, None, why
                continue
            try:
                yield name, binarise(img, self._cfg), ""
            except ValueError as e:
                yield name, None, str(e)


# -- speckle-lab plan: the printout is in acquisition.plan_report ----------------------------------------

from acquisition.plan_report import check_disk, format_plan, plan_command  # noqa: E402, F401 - re-exported

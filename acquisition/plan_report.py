"""``speckle-lab plan``: the plan printed for a person, and the disk check (``acquisition.plan``
lays the plan out; this module only reads it).

The printout names the protocol and the rig (which devices are simulated: a MIXED rig says so), the
objects (or that they are missing), the blocks in run order with the ``[[blocks]]`` table each comes
from, the device moves, the reference captures, the dark captures and what blocks the laser, what a
person must do, the estimated duration and the disk need.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from protocols.schema import block_ref
from speckle_core.errors import UserError

if TYPE_CHECKING:
    from acquisition.plan import RunPlan



def _fmt_s(s: float) -> str:
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min" if h else (f"{m} min {sec:02d} s" if m else f"{sec} s")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def check_disk(plan: RunPlan, out_path: str | None) -> tuple[Path, int]:
    """(folder, free bytes) where the run would go; UserError when the plan's disk need does not fit."""
    folder = Path(out_path).expanduser().resolve().parent if out_path else Path.cwd()
    if not folder.is_dir():
        raise UserError(f"--out {out_path}: folder {folder} does not exist")
    free = shutil.disk_usage(folder).free
    need = plan.estimate.disk_bytes
    if need > free:
        raise UserError(f"--out {out_path or '.'}: the run needs {_fmt_bytes(need)} (uncompressed) but only "
                        f"{_fmt_bytes(free)} is free in {folder}")
    return folder, free


def _faces_line(plan: RunPlan) -> str:
    f = plan.config.faces
    held = (f"holdout: names matching {f.holdout_match!r}" if f.holdout_match is not None
            else f"{f.count - f.holdout} train, {f.holdout} holdout (whole persons)")
    how = f"seed {f.seed}; binarised {f.binarise.method} at {f.target_px[0]}x{f.target_px[1]}"
    if f.variants:
        how += (f"; each with {len(f.variants)} variant(s) ({', '.join(f.variants)}): "
                f"{f.objects_total} objects")
    if plan.faces_missing:
        return (f"{f.kind}: {f.count} MISSING ({plan.faces_missing}); the estimate below assumes "
                f"{f.count} {f.kind} ({held}; {how})")
    return f"{f.kind}: {f.count} of {plan.faces_available} in {plan.source_label} ({held}; {how})"


def _rig_devices(rig) -> str:
    if rig.rig_kind == "simulated":
        return "every device simulated"
    if rig.rig_kind == "real":
        return "every device real"
    sim = ", ".join(rig.simulated_devices)
    return f"MIXED: {sim} simulated (nothing moves; the run file says so), SLM and camera real"


def _darks_line(plan: RunPlan) -> str:
    d = plan.darks
    if d is None or d.captures == 0:
        return "dark frames: none (dark.frames = 0)"
    per = "per exposure setting" if plan.config.dark.per == "exposure" else "per block"
    count = ("1 capture (one fixed exposure)" if d.captures == 1 and d.exact else
             f"{'up to ' if not d.exact else ''}{d.captures} captures")
    return f"dark frames: {d.frames} {per}, {count}; the laser blocked by {d.source}"


def format_plan(plan: RunPlan, folder: Path | None = None, free: int | None = None) -> str:
    cfg, rig = plan.config, plan.rig.config
    lines = [f"protocol {plan.protocol.path}: {cfg.name}",
             f"rig: {plan.rig.path or 'default simulated rig'} ({rig.name}); {_rig_devices(rig)}",
             _faces_line(plan),
             f"pairs: {plan.pairs_total} in {len(plan.blocks)} blocks, in this order:",
             f"  {'block':>5}  {'diffuser':>8}  {'distance':>8}  {'role':<10}  {'pairs':>6}  {'rows':<13}  "
             "from the protocol's"]
    for b in plan.blocks:
        rows = f"{b.first_row + 1}-{b.first_row + b.pairs}"
        lines.append(f"  {b.index + 1:>5}  {b.diffuser:>8}  {b.distance_mm:>5g} mm  {b.role:<10}  "
                     f"{b.pairs:>6}  {rows:<13}  {block_ref(b.table)}")
    by_role: dict[str, int] = {}
    for b in plan.blocks:
        by_role[b.role] = by_role.get(b.role, 0) + b.pairs
    lines.append("  per role: " + ", ".join(f"{r} {n}" for r, n in by_role.items()))
    changes = [m for m in plan.moves if m.device == "changer"]
    stage = [m for m in plan.moves if m.device == "stage"]
    lines.append(f"device moves: {len(changes)} diffuser selections, {len(stage)} stage moves")
    for m in plan.moves:
        lines.append(f"  before pair {m.before_row + 1}: {m.describe()}  (~{_fmt_s(m.estimate_s)})")
    every = cfg.stability.reference_every
    lines.append(f"stability: {len(plan.reference_before_rows)} reference captures "
                 + (f"(every {every} pairs of a block and at its end; threshold {cfg.stability.threshold}, "
                    f"below it: {cfg.stability.on_drift})" if every else "(monitor off)"))
    exp = "auto per block" if cfg.camera.auto else f"{cfg.camera.exposure_us:g} µs"
    lines.append(f"camera: ROI {plan.roi_px[0]}x{plan.roi_px[1]}, exposure {exp}, "
                 f"average {cfg.camera.average}; SLM: π at gray {plan.gray_pi}, settle {plan.settle_ms:g} ms")
    lines.append(_darks_line(plan))
    if plan.manual_steps:
        n = len(plan.manual_steps)
        lines.append(f"a person must ({n} step{'s' if n != 1 else ''}; run attended, not --unattended):")
        lines.extend(f"  - {s}" for s in plan.manual_steps)
    else:
        lines.append("a person must: nothing (every move is motorised or simulated)")
    e = plan.estimate
    lines.append(f"estimated duration: {_fmt_s(e.duration_s)} ("
                 + ", ".join(f"{k} {_fmt_s(v)}" for k, v in e.duration_parts.items() if v > 0) + ")")
    lines.append(f"  from {'simulated' if rig.simulated else 'nominal device'} timings "
                 "(acquisition/plan.py; bench/bench_acquire.py measures)")
    if plan.faces_missing:
        lines.append(f"NOTE: the {cfg.faces.kind} are missing: acquire refuses until faces.source exists")
    where = f"; {_fmt_bytes(free)} free in {folder}" if free is not None else ""
    lines.append(f"disk need: {_fmt_bytes(e.disk_bytes)} uncompressed ("
                 + ", ".join(f"{k} {_fmt_bytes(v)}" for k, v in e.disk_parts.items()) + f"){where}")
    return "\n".join(lines)


def plan_command(protocol_path: str, rig_path: str | None, out_path: str | None) -> int:
    """``speckle-lab plan``: prints the plan; UserError (exit 2) when it is invalid or the disk too small."""
    from acquisition.plan import make_plan

    plan = make_plan(protocol_path, rig_path, allow_missing_faces=True)
    folder, free = check_disk(plan, out_path)
    print(format_plan(plan, folder, free))
    return 0

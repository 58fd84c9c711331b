"""``compare.md``: the tables of ``speckle-lab compare`` (``reconstruction.compare``) as Markdown.

Rows are the cells (evaluation group, then diffuser and distance), columns the models; each entry is
``mean [95 % interval]`` with its n (pairs / faces). The differences table marks a paired difference
``*`` when its 95 % interval excludes 0 (from at least ``MIN_FACES`` faces) and ``**`` when it also
survives Holm's correction over every cell and metric of that pair of models. ``—``: no interval (one
face). The closing lines say, for each pair and each group overall,
which model is ahead or that the data cannot tell them apart.
"""

from __future__ import annotations

import math

from reconstruction.compare_stats import MIN_FACES

TABLE_METRICS = ("pcc", "ssim")
NAMES = {"pcc": "PCC", "ssim": "SSIM", "jaccard": "Jaccard", "psnr": "PSNR (dB)"}
GROUP_TITLES = {"validation": "seen faces at the unseen distance",
                "test": "model-selection faces (they chose best.pt: optimistic)",
                "holdout": "held-out faces, never trained on"}


def _num(v, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _ci(c: dict, fmt: str = ".3f") -> str:
    return f"{_num(c['mean'], fmt)} [{_num(c['lo'], fmt)}, {_num(c['hi'], fmt)}]"


_CLOCK_NAMES = {"wall": "wall-time", "cpu": "CPU-time (the process's CPU seconds per thread)"}


def _budget(result: dict) -> str:
    s = result["settings"]
    what = (f"the same {s['epochs']} epochs" if s.get("epochs") is not None
            else f"the same {_CLOCK_NAMES[s.get('clock', 'wall')]} budget of {s['budget_minutes']:g} min per "
                 "model and seed")
    return (f"Each model trained with {what}, seeds {', '.join(map(str, s['seeds']))}, "
            f"{s['image_size']}×{s['image_size']}, batch {s['batch_size']}, learning rate {s['lr']:g} "
            f"(÷10 at 50 % and 75 % of its epochs), loss {s['loss']}; scored on `best.pt`.")


def _training_rows(result: dict) -> list[str]:
    rows = ["| model | seed | epochs planned | trained for | est. s/epoch |",
            "| --- | --- | --- | --- | --- |"]
    seeds = result["settings"]["seeds"]
    for label, plans in result["training"].items():
        for seed, p in zip(seeds, plans, strict=True):
            est = p.get("est_s_per_epoch")
            est_text = "—" if est is None or (isinstance(est, float) and math.isnan(est)) else f"{est:.1f}"
            stopped = " (budget spent: stopped early)" if p.get("budget_spent") else ""
            rows.append(f"| {label} | {seed} | {p['epochs']} | {p['trained_s'] / 60:.1f} min{stopped} | "
                        f"{est_text} |")
    return rows


def _metric_table(result: dict, metric: str) -> list[str]:
    labels = list(result["cells"])
    cells = list(result["cells"][labels[0]])
    rows = [f"| {NAMES[metric]}: cell | n pairs / faces | " + " | ".join(labels) + " |",
            "| --- | --- | " + " | ".join("---" for _ in labels) + " |"]
    for cell in cells:
        c0 = result["cells"][labels[0]][cell][metric]
        entries = [_ci(result["cells"][lab][cell][metric]) for lab in labels]
        rows.append(f"| {cell} | {c0['n']} / {c0['clusters']} | " + " | ".join(entries) + " |")
    return rows


def _diff_table(result: dict) -> list[str]:
    pairs = list(result["differences"])
    head = " | ".join(f"{p}: {NAMES[m]}" for p in pairs for m in TABLE_METRICS)
    rows = [f"| cell | {head} |", "| --- | " + " | ".join("---" for _ in pairs for _ in TABLE_METRICS) + " |"]
    cells = list(result["differences"][pairs[0]])
    for cell in cells:
        entries = []
        for p in pairs:
            for m in TABLE_METRICS:
                d = result["differences"][p][cell][m]
                mark = "**" if d.get("holm") else ("*" if d["significant"] else "")
                entries.append(f"{_ci(d, '+.3f')}{mark}")
        rows.append(f"| {cell} | " + " | ".join(entries) + " |")
    return rows


def verdicts(result: dict) -> list[str]:
    """One line per pair of models and group: who is ahead overall, or that the data cannot tell."""
    lines = []
    for pair, cells in result["differences"].items():
        a, b = pair.split(" − ")
        for cell, ms in cells.items():
            if not cell.endswith(": all"):
                continue
            group = cell.split(":")[0]
            parts = []
            for m in TABLE_METRICS:
                d = ms[m]
                if d["significant"]:
                    ahead = a if d["mean"] > 0 else b
                    parts.append(f"{ahead} ahead on {NAMES[m]} by {abs(d['mean']):.3f} "
                                 f"(95 % CI of {a} − {b}: {d['lo']:+.3f} … {d['hi']:+.3f})")
                elif ms[m]["clusters"] < MIN_FACES:
                    parts.append(f"too few faces to tell on {NAMES[m]} ({d['mean']:+.3f})")
                else:
                    parts.append(f"no significant {NAMES[m]} difference ({d['mean']:+.3f}, "
                                 f"CI {d['lo']:+.3f} … {d['hi']:+.3f})")
            title = GROUP_TITLES.get(group, group)
            lines.append(f"- **{a} vs {b}, {title}** (n = {ms['pcc']['n']} pairs of {ms['pcc']['clusters']} "
                         f"faces): {'; '.join(parts)}.")
    return lines


def render(result: dict) -> str:
    out = [f"# Model comparison on `{result['run']}`", "", _budget(result), "", *_training_rows(result), ""]
    out += ["Every entry: mean of per-image values [bootstrap 95 % interval, resampling faces, "
            f"{result['n_boot']} replicates]. Groups: " +
            "; ".join(f"`{k}` = {v}" for k, v in GROUP_TITLES.items()) + ".", ""]
    for m in TABLE_METRICS:
        out += _metric_table(result, m) + [""]
    out += ["## Paired differences", "",
            "Mean per-image difference [95 % interval, paired bootstrap over faces]. `*`: the interval "
            f"excludes 0 (cells of at least {MIN_FACES} faces only); `**`: also significant after Holm's "
            "correction over every cell and metric of the pair (Jaccard and PSNR are in compare.json).", ""]
    out += _diff_table(result) + ["", "## What the data support", ""] + verdicts(result) + [""]
    return "\n".join(out)

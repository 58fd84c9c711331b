"""The evaluation report: one self-contained HTML file (images inlined as base64 PNG).

It holds, for the evaluated model (and baselines, when given):

- a provenance block: the dataset (simulated or real, its rig and protocol, when it was taken), the
  training settings, the software version and the date of the report;
- Table 1 in the paper's layout: one row per diffuser at the validation distance, columns PCC, JI,
  SSIM, PSNR, with the paper's figures beside ours and a plain caveat (data, diffusers, input size,
  epochs, device), and the floor (the mean training face, whatever the speckle); the same tables for
  the model-selection faces and the held-out faces, each named for what it is;
- Fig. 6-style overlays, chosen to span the range of SSIM (worst to best): ground truth beside the
  prediction thresholded at 0.5, true positives white, false positives green, false negatives red;
- Fig. 7 curves: loss and SSIM over every trained epoch (train, test, validation, with the size of
  each per-epoch subset), the epoch of the evaluated checkpoint marked;
- extra figures (e.g. the demo's reconstructions grid), and a comparison of every checkpoint.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

GROUP_TITLES = {"validation": "Unseen distance, training faces (the paper's Table 1)",
                "test": "Training distances, model-selection faces (they chose the epoch of best.pt, "
                        "so these figures are optimistic; not unseen)",
                "holdout": "Held-out faces (never trained on nor used to choose the epoch), every distance"}
# The paper's Table 1 (SpT UNet, real speckle, 200x200, 4 diffusers, 0/20 mm train, 40 mm validation):
# its text gives the lower bounds over the four diffusers ("all above 0.989, 0.976, and 0.950");
# our copy of the paper has no per-diffuser figures nor PSNR values.
PAPER_TABLE1 = {"pcc": "> 0.989", "jaccard": "> 0.976", "ssim": "> 0.950", "psnr": "not given"}
COLUMNS = (("pcc", "PCC"), ("jaccard", "JI"), ("ssim", "SSIM"), ("psnr", "PSNR (dB)"))


def overlay(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3): TP white, FP green, FN red, TN black (paper, Fig. 6)."""
    p = prediction >= 0.5
    t = target >= 0.5
    rgb = np.zeros((*p.shape, 3), dtype=np.uint8)
    rgb[p & t] = (255, 255, 255)
    rgb[p & ~t] = (0, 200, 0)
    rgb[~p & t] = (220, 0, 0)
    return rgb


def png_base64(image: np.ndarray, min_px: int = 160) -> str:
    """A data URI of an image in [0, 1] (gray) or uint8 RGB, upscaled (nearest) to at least ``min_px``."""
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    scale = max(1, math.ceil(min_px / max(a.shape[:2])))
    if scale > 1:
        a = np.repeat(np.repeat(a, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(value: float, key: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.2f}" if key == "psnr" else f"{value:.4f}"


def _table(rows: list[dict], extra: list[tuple[str, dict]] = ()) -> str:
    """Rows per condition; ``extra``: (label, {metric: value or text}) rows below them."""
    head = "".join(f"<th>{t}</th>" for t in ("Diffuser", "Distance (mm)", "Pairs", *(t for _, t in COLUMNS)))
    body = "".join(
        "<tr>" + f"<td>{html.escape(str(r['diffuser']))}</td><td>{r['distance_mm']:g}</td><td>{r['n']}</td>"
        + "".join(f"<td>{_fmt(r[k], k)}</td>" for k, _ in COLUMNS) + "</tr>" for r in rows)
    for label, vals in extra:
        n = vals.get("n", "")
        body += (f"<tr class='extra'><td colspan='2'>{html.escape(label)}</td><td>{n}</td>"
                 + "".join(f"<td>{_cell(vals.get(k), k)}</td>" for k, _ in COLUMNS) + "</tr>")
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value, key: str) -> str:
    return html.escape(value) if isinstance(value, str) else _fmt(value, key)


def _curves(history: dict, best_epoch: int | None = None, sizes: dict | None = None) -> str | None:
    if not history or not history.get("epoch"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sizes or {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    ep = history["epoch"]
    for key in ("train", "test", "validation"):
        label = f"{key} ({sizes[key]} pairs)" if sizes.get(key) else key
        for ax, metric in zip(axes, ("loss", "ssim"), strict=True):
            ys = [math.nan if y is None else y for y in history.get(f"{key}_{metric}") or []]
            if ys and any(y == y for y in ys):
                ax.plot(ep[:len(ys)], ys, marker="." if len(ep) < 30 else None, label=label)
    axes[0].set(xlabel="Epoch", ylabel="Loss", title="(a) loss")
    axes[1].set(xlabel="Epoch", ylabel="SSIM", title="(b) SSIM")
    for ax in axes:
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.4", linestyle="--", linewidth=1,
                       label=f"this checkpoint (epoch {best_epoch})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _examples(examples: list[dict]) -> str:
    cells = []
    for ex in examples:
        score = f", SSIM {ex['ssim']:.3f}" if "ssim" in ex else ""
        cells.append(
            "<figure>"
            f"<img src='{png_base64(ex['input'])}' alt='speckle'>"
            f"<img src='{png_base64(ex['target'])}' alt='ground truth'>"
            f"<img src='{png_base64(ex['prediction'])}' alt='prediction'>"
            f"<img src='{png_base64(overlay(ex['prediction'], ex['target']))}' alt='overlay'>"
            f"<figcaption>row {ex['row']}: diffuser {html.escape(ex['diffuser'])}, "
            f"{ex['distance_mm']:g} mm{score} — speckle, ground truth, prediction, overlay"
            "</figcaption></figure>")
    return "".join(cells)


def _comparison(results: dict) -> str:
    groups = [g for g in GROUP_TITLES if any(g in r["summary"] for r in results.values())]
    head = "<th>Checkpoint</th><th>Model</th><th>Epoch</th><th>Group</th>" + "".join(
        f"<th>{t}</th>" for _, t in COLUMNS)
    rows = []
    for name, r in results.items():
        for g in groups:
            if g in r["summary"]:
                s = r["summary"][g]
                rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(r['model_name'])}</td>"
                            f"<td>{r['epoch']}</td><td>{g}</td>"
                            + "".join(f"<td>{_fmt(s[k], k)}</td>" for k, _ in COLUMNS) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}tr.extra td{background:#f6f6f6}
th{background:#eee}figure{display:inline-block;margin:6px;text-align:center}figure img{margin:1px;
image-rendering:pixelated;width:160px}figcaption{font-size:80%}.legend span{padding:0 6px;margin-right:6px}
.caveat{background:#fff6e0;border-left:4px solid #e0a000;padding:6px 10px}dl.prov dt{font-weight:bold}
img.wide{max-width:100%}"""


def run_provenance(run) -> dict:
    """What the report says about the dataset: simulated, real or mixed rig; protocol; when taken."""
    import re

    import h5py

    info = {"file": str(run)}
    try:
        with h5py.File(run, "r") as f:
            attrs = {k: f.attrs.get(k) for k in ("rig", "protocol", "created", "software")}
            diffusers = sorted({str(d) for d in f["pairs/diffuser"].asstr()[()]}, key=lambda d: (len(d), d))
    except (OSError, KeyError, TypeError, ValueError):
        return info
    text = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or ""))
            for k, v in attrs.items()}
    kinds = re.findall(r"^\s*kind\s*=\s*\"([^\"]+)\"", text["rig"], flags=re.M)
    sim = [k for k in kinds if k == "sim"]
    info["rig"] = ("simulated" if kinds and len(sim) == len(kinds) else
                   "mixed (some devices simulated)" if sim else "real" if kinds else "unknown")
    name = re.search(r"^\s*name\s*=\s*\"([^\"]*)\"", text["protocol"], flags=re.M)
    info.update(protocol=name.group(1) if name else "(unnamed)", created=text["created"] or "unknown",
                diffusers=diffusers)
    return info


def _software_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"speckle-lab {version('speckle-lab')}"
    except PackageNotFoundError:
        return "speckle-lab (not installed)"


def _provenance(prov: dict, results: dict) -> str:
    import datetime

    items = [("Dataset", f"<code>{html.escape(prov['file'])}</code>: "
                         f"{html.escape(prov.get('rig', 'unknown'))} rig, "
                         f"protocol {html.escape(prov.get('protocol', '?'))}, acquired "
                         f"{html.escape(prov.get('created', 'unknown'))}")]
    for name, r in results.items():
        c = r.get("train_config", {})
        items.append((f"Training ({html.escape(name)})", html.escape(
            f"{r['model_name']}, input {r['model_config']['image_size']}x{r['model_config']['image_size']}, "
            f"{_epochs_trained(r)} of {c.get('epochs', '?')} epochs, batch {c.get('batch_size', '?')}, "
            f"loss {c.get('loss', '?')}, lr {c.get('lr', '?')}, seed {c.get('seed', '?')}, "
            f"diffusers {', '.join(map(str, c.get('diffusers') or [])) or 'all'}, "
            f"device {r.get('device') or c.get('device', '?')}; evaluated checkpoint: epoch {r['epoch']}; "
            f"{r.get('split_note', '')}")))
    items.append(("Software", html.escape(_software_version())))
    items.append(("Report written", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")))
    return "<h2>Provenance</h2><dl class='prov'>" + "".join(
        f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _epochs_trained(r: dict) -> int:
    return len((r.get("history") or {}).get("epoch") or []) or r["epoch"]


def _caveat(prov: dict, r: dict) -> str:
    c = r.get("train_config", {})
    n = r["model_config"]["image_size"]
    return ("<p class='caveat'>Beside the paper, not comparable one to one: the paper trained SpT UNet "
            "on real speckle of four diffusers at 200x200 for 200 epochs on a GPU; these figures come from "
            f"{html.escape(prov.get('rig', 'an unknown'))} data, diffusers "
            f"{html.escape(', '.join(prov.get('diffusers', [])) or '?')}, input {n}x{n}, "
            f"{_epochs_trained(r)} epochs, on {html.escape(str(r.get('device') or c.get('device', '?')))}. "
            "The floor row is what always answering the mean training face scores.</p>")


def _image_file(path) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _model_section(name: str, r: dict, prov: dict, floor: dict) -> list[str]:
    parts = [f"<h2>{html.escape(name)}: {html.escape(r['model_name'])} "
             f"(<code>{html.escape(r['checkpoint'])}</code>, epoch {r['epoch']})</h2>"]
    for g, title in GROUP_TITLES.items():
        if g not in r["groups"]:
            continue
        extra = [("mean training face (the floor)", floor[g])] if g in floor else []
        if g == "validation":
            extra.insert(0, ("the paper, Table 1 (all four diffusers)", PAPER_TABLE1))
            parts.append(f"<h3>{title}</h3>" + _caveat(prov, r) + _table(r["groups"][g], extra))
        else:
            parts.append(f"<h3>{html.escape(title)}</h3>" + _table(r["groups"][g], extra))
    parts.append("<h3>Reconstructions (Fig. 6), from worst to best SSIM</h3><p class='legend'>"
                 "<span style='background:#000;color:#fff'>true positive: white</span>"
                 "<span style='background:#000;color:#0c0'>false positive: green</span>"
                 "<span style='background:#000;color:#d00'>false negative: red</span></p>")
    for g, exs in r["examples"].items():
        if exs:
            parts.append(f"<h4>{html.escape(GROUP_TITLES[g])}</h4>" + _examples(exs))
    curves = _curves(r["history"], r["epoch"], r.get("eval_sizes"))
    if curves:
        parts.append("<h3>Training curves (Fig. 7)</h3><p>Test and validation are scored each epoch on a "
                     "fixed subset (sizes in the legend); the dashed line marks this checkpoint.</p>"
                     f"<img src='{curves}' alt='loss and SSIM per epoch'>")
    return parts


def write_report(results: dict, run, path: str | Path, floor: dict | None = None,
                 figures: dict | None = None) -> Path:
    """Writes the self-contained HTML report of ``results`` (from ``evaluate_checkpoint``); ``floor``:
    the mean-training-face metrics per group; ``figures``: title → PNG file to embed."""
    from reconstruction.runtime import atomic_write

    path = Path(path)
    prov = run_provenance(run)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>speckle-lab evaluation</title>"
             f"<style>{CSS}</style></head><body><h1>speckle-lab evaluation</h1>"
             f"<p>Dataset: <code>{html.escape(str(run))}</code></p>", _provenance(prov, results)]
    if len(results) > 1:
        parts.append("<h2>Comparison</h2>" + _comparison(results))
    for title, fig in (figures or {}).items():
        uri = _image_file(fig)
        if uri:
            t = html.escape(title)
            parts.append(f"<h2>{t}</h2><img class='wide' src='{uri}' alt='{t}'>")
    for name, r in results.items():
        parts.extend(_model_section(name, r, prov, floor or {}))
    parts.append("</body></html>")
    text = "".join(parts)
    atomic_write(path, lambda fh: fh.write(text), mode="w", what="report")
    return path

"""The evaluation report: one self-contained HTML file (images inlined as base64 PNG).

It holds, for the evaluated model (and baselines, when given):

- Table 1 in the paper's layout: one row per diffuser at the validation distance, columns PCC, JI,
  SSIM, PSNR; the same tables for the test faces and the held-out faces;
- Fig. 6-style overlays: ground truth beside the prediction thresholded at 0.5, true positives white,
  false positives green, false negatives red (true negatives black);
- Fig. 7 curves: loss and SSIM per epoch (train, test, validation) from the checkpoint's history;
- a comparison table of every checkpoint's overall means per group.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np

GROUP_TITLES = {"validation": "Validation distance, seen faces (the paper's Table 1)",
                "test": "Training distances, test faces", "holdout": "Held-out faces, every distance"}
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


def _table(rows: list[dict], first: tuple[str, str] = ("diffuser", "Diffuser")) -> str:
    head = "".join(f"<th>{t}</th>" for _, t in (first, ("distance_mm", "Distance (mm)"), ("n", "Pairs"),
                                                 *COLUMNS))
    body = "".join(
        "<tr>" + f"<td>{html.escape(str(r[first[0]]))}</td><td>{r['distance_mm']:g}</td><td>{r['n']}</td>"
        + "".join(f"<td>{_fmt(r[k], k)}</td>" for k, _ in COLUMNS) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _curves(history: dict) -> str | None:
    if not history or not history.get("epoch"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    ep = history["epoch"]
    for key, label in (("train", "train"), ("test", "test"), ("validation", "validation")):
        for ax, metric in zip(axes, ("loss", "ssim"), strict=True):
            ys = history.get(f"{key}_{metric}")
            if ys and any(y == y for y in ys):
                ax.plot(ep, ys, marker="." if len(ep) < 30 else None, label=label)
    axes[0].set(xlabel="Epoch", ylabel="Loss", title="(a) loss")
    axes[1].set(xlabel="Epoch", ylabel="SSIM", title="(b) SSIM")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _examples(examples: list[dict]) -> str:
    cells = []
    for ex in examples:
        cells.append(
            "<figure>"
            f"<img src='{png_base64(ex['input'])}' alt='speckle'>"
            f"<img src='{png_base64(ex['target'])}' alt='ground truth'>"
            f"<img src='{png_base64(ex['prediction'])}' alt='prediction'>"
            f"<img src='{png_base64(overlay(ex['prediction'], ex['target']))}' alt='overlay'>"
            f"<figcaption>row {ex['row']}: diffuser {html.escape(ex['diffuser'])}, "
            f"{ex['distance_mm']:g} mm — speckle, ground truth, prediction, overlay</figcaption></figure>")
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
td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}figure{display:inline-block;margin:6px;text-align:center}figure img{margin:1px;
image-rendering:pixelated;width:160px}figcaption{font-size:80%}.legend span{padding:0 6px;margin-right:6px}"""


def write_report(results: dict, run, path: str | Path) -> Path:
    """Writes the self-contained HTML report of ``results`` (from ``evaluate_checkpoint``)."""
    path = Path(path)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>speckle-lab evaluation</title>"
             f"<style>{CSS}</style></head><body><h1>speckle-lab evaluation</h1>"
             f"<p>Dataset: <code>{html.escape(str(run))}</code></p>"]
    if len(results) > 1:
        parts.append("<h2>Comparison</h2>" + _comparison(results))
    for name, r in results.items():
        parts.append(f"<h2>{html.escape(name)}: {html.escape(r['model_name'])} "
                     f"(<code>{html.escape(r['checkpoint'])}</code>, epoch {r['epoch']})</h2>")
        for g, title in GROUP_TITLES.items():
            if g in r["groups"]:
                parts.append(f"<h3>{title}</h3>" + _table(r["groups"][g]))
        parts.append("<h3>Reconstructions (Fig. 6)</h3><p class='legend'>"
                     "<span style='background:#000;color:#fff'>true positive: white</span>"
                     "<span style='background:#000;color:#0c0'>false positive: green</span>"
                     "<span style='background:#000;color:#d00'>false negative: red</span></p>")
        for g, exs in r["examples"].items():
            if exs:
                parts.append(f"<h4>{GROUP_TITLES[g]}</h4>" + _examples(exs))
        curves = _curves(r["history"])
        if curves:
            parts.append(f"<h3>Training curves (Fig. 7)</h3>"
                         f"<img src='{curves}' alt='loss and SSIM per epoch'>")
    parts.append("</body></html>")
    path.write_text("".join(parts), encoding="utf-8")
    return path

"""Evaluation of checkpoints on a run: metrics per diffuser and distance, ``metrics.json``, ``report.html``.

Groups of pairs (each broken down by diffuser and distance):

- ``validation``: the validation role (the paper: 40 mm) on the seen, training-split faces: Table 1;
- ``test``: the training distances on the faces the run kept out as its test set (stored in the
  checkpoint's ``train_config.test_objects``);
- ``holdout``: the held-out faces (``/objects/split == "holdout"``) at every distance, never trained on.

Metrics are computed per image and averaged (``reconstruction.metrics``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from speckle_core.errors import UserError

METRICS = ("pcc", "ssim", "jaccard", "psnr")
EVAL_CHUNK = 256  # pairs predicted and scored at a time


def predict_positions(model, cache, positions, device, batch_size: int = 16) -> np.ndarray:
    """Sigmoid outputs (K, N, N) float32 for cache positions."""
    import torch

    from reconstruction.runtime import autocast, to_device

    out = np.empty((len(positions), cache.image_size, cache.image_size), dtype=np.float32)
    model.eval()
    with torch.no_grad():
        for i in range(0, len(positions), batch_size):
            x, _ = cache.batch(positions[i:i + batch_size])
            with autocast(device):
                logits = model.forward_logits(to_device(x, device))
            out[i:i + len(x)] = logits.float().sigmoid()[:, 0].cpu().numpy()
    return out


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def group_metrics(index, positions, per_image: dict[str, np.ndarray]) -> dict:
    """Summary and per-(diffuser, distance) means of per-image metrics."""
    rows = []
    diff = index.diffuser[positions]
    dist = index.distance_mm[positions]
    for d in sorted(set(diff.tolist()), key=lambda s: (len(s), s)):
        for z in sorted(set(dist[diff == d].tolist())):
            sel = (diff == d) & np.isclose(dist, z)
            rows.append({"diffuser": d, "distance_mm": float(z), "n": int(sel.sum()),
                         **{m: _mean(per_image[m][sel]) for m in METRICS}})
    summary = {"n": len(positions), **{m: _mean(per_image[m]) for m in METRICS}}
    return {"summary": summary, "by_condition": rows}


def _groups(index, test_objects) -> dict[str, np.ndarray]:
    groups = {"validation": index.select(roles=["validation"], faces=["train"])}
    if test_objects:
        groups["test"] = index.select(roles=["train"], faces=["train"], objects=test_objects)
    groups["holdout"] = index.select(faces=["holdout"])
    return {k: v for k, v in groups.items() if len(v)}


def evaluate_checkpoint(path: str | Path, run: str | Path, device="auto", batch_size: int = 16,
                        fallback_dir: Path | None = None, n_examples: int = 4) -> dict:
    """Metrics of one checkpoint on a run, plus a few example predictions for the report."""
    from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint
    from reconstruction.data import prepare_cache
    from reconstruction.metrics import all_per_image
    from reconstruction.runtime import pick_device

    state = load_checkpoint(path)
    dev = pick_device(device)
    model = model_from_checkpoint(state, path).to(dev)
    size = int(state["model_config"]["image_size"])
    cache = prepare_cache(run, size, fallback_dir=fallback_dir)
    idx = cache.index
    test_objects = state["train_config"].get("test_objects") or []
    result = {"checkpoint": str(path), "model_name": state["model_config"]["name"],
              "model_config": state["model_config"], "epoch": int(state["epoch"]),
              "history": state["history"], "groups": {}, "summary": {}, "examples": {}}
    for name, pos in _groups(idx, test_objects).items():
        parts = []
        for i in range(0, len(pos), EVAL_CHUNK):  # bounded memory on big runs
            chunk = pos[i:i + EVAL_CHUNK]
            pred = predict_positions(model, cache, chunk, dev, batch_size)
            parts.append(all_per_image(pred, cache.labels[idx.object_index[chunk]].astype(np.float32)))
        per = {m: np.concatenate([p[m] for p in parts]) for m in METRICS}
        g = group_metrics(idx, pos, per)
        result["groups"][name] = g["by_condition"]
        result["summary"][name] = g["summary"]
        # examples: the first pair of each diffuser (up to n_examples), for the Fig. 6 overlays
        picks, seen = [], set()
        for k, p in enumerate(pos):
            d = idx.diffuser[p]
            if d not in seen and len(picks) < n_examples:
                seen.add(d)
                picks.append(k)
        ex_pos = pos[picks]
        ex_pred = predict_positions(model, cache, ex_pos, dev, batch_size)
        ex_x, ex_y = cache.batch(ex_pos)
        result["examples"][name] = [
            {"row": int(idx.rows[p]), "diffuser": str(idx.diffuser[p]),
             "distance_mm": float(idx.distance_mm[p]), "input": ex_x[j, 0].numpy(),
             "prediction": ex_pred[j], "target": ex_y[j, 0].numpy()}
            for j, p in enumerate(ex_pos)]
    if not result["groups"]:
        raise UserError(f"{run}: no done pairs to evaluate "
                        "(no validation role, test faces or held-out faces)")
    return result


def _jsonable(result: dict) -> dict:
    from reconstruction.runtime import json_safe

    return json_safe({k: v for k, v in result.items() if k not in ("examples",)})


def evaluate_checkpoints(ckpts: dict, run: str | Path, out_dir: str | Path, device="auto",
                         batch_size: int = 16) -> dict:
    """Evaluates named checkpoints (the first is the model, the others baselines) on ``run``.

    Writes ``out_dir/metrics.json`` and ``out_dir/report.html``; returns the metrics dict with
    ``files`` (paths written) added.
    """
    from reconstruction.report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not ckpts:
        raise UserError("evaluate: no checkpoint given")
    results = {name: evaluate_checkpoint(p, run, device, batch_size, fallback_dir=out)
               for name, p in ckpts.items()}
    metrics = {"run": str(run), "models": {n: _jsonable(r) for n, r in results.items()}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, allow_nan=False))
    report = write_report(results, run, out / "report.html")
    metrics["files"] = {"metrics": str(out / "metrics.json"), "report": str(report)}
    return metrics

"""Evaluation of checkpoints on a run: metrics per diffuser and distance, ``metrics.json``, ``report.html``.

Groups of pairs (each broken down by diffuser and distance), named for what they are:

- ``validation``: the validation role (the paper: 40 mm, a distance never trained on) on the faces the
  model trained on, never its test faces: Table 1;
- ``test``: the training distances on the faces the run kept out to choose ``best.pt`` (stored in the
  checkpoint's ``train_config.test_objects``). They picked the epoch, so their figures are optimistic:
  the report calls them model-selection faces, never unseen;
- ``holdout``: the held-out faces at every distance, never trained on nor used to choose the epoch;
  a held-out face whose person (``speckle_core.person.person_of``) also appears among the training
  faces is left out.

The checkpoint records the identity of its run (``reconstruction.data.run_identity``). On another
run file with the same objects, the stored face indices hold; on a file with other objects the test
faces are found again by name (and the result says so), and without names evaluation is refused.

Metrics are computed per image and averaged (``reconstruction.metrics``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from reconstruction.train_config import check_int
from speckle_core.errors import UserError

METRICS = ("pcc", "ssim", "jaccard", "psnr")
EVAL_CHUNK = 256  # pairs predicted and scored at a time
N_EXAMPLES = 6  # Fig. 6 examples per group, spread over the range of SSIM


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


def eval_groups(index, test_objects) -> dict[str, np.ndarray]:
    """Positions of the validation, test and holdout groups (see the module docstring); empty ones dropped."""
    from reconstruction.data import object_persons, training_faces

    seen = sorted(set(training_faces(index).tolist()) - set(test_objects or []))
    groups = {"validation": index.select(roles=["validation"], faces=["train"], objects=seen)}
    if test_objects:
        groups["test"] = index.select(roles=["train"], faces=["train"], objects=test_objects)
    persons = object_persons(index)
    trained = set(persons[seen].tolist()) | set(persons[list(test_objects or [])].tolist())
    unseen = [o for o in np.flatnonzero(index.object_split == "holdout") if persons[o] not in trained]
    groups["holdout"] = index.select(faces=["holdout"], objects=unseen)
    return {k: v for k, v in groups.items() if len(v)}


def resolve_test_objects(state: dict, index, run) -> tuple[list[int], str]:
    """The checkpoint's test faces as object indices of ``run``, and how they were found (one line)."""
    from reconstruction.data import run_identity

    stored = state.get("run_identity") or {}
    test_objects = list(state["train_config"].get("test_objects") or [])
    if not stored:
        return test_objects, "checkpoint predates run identities: test faces taken by index"
    if stored.get("objects_sha256") == run_identity(run)["objects_sha256"]:
        return test_objects, "same objects as the training run: test faces by index"
    names = state.get("test_faces")
    if names is None or index.object_name is None:
        raise UserError(f"{run}: holds other objects than the run the checkpoint was trained on "
                        f"({stored.get('run', 'unknown')}), and no face names to match them by")
    where = {str(n): i for i, n in enumerate(index.object_name)}
    found = [where[n] for n in names if n in where]
    return found, (f"other objects than the training run: {len(found)} of {len(names)} test faces "
                   "found again by name")


def _examples(model, cache, pos, per_ssim, dev, batch_size, n) -> list[dict]:
    """``n`` pairs spread over the range of SSIM (worst, quantiles, best), for the Fig. 6 overlays."""
    idx = cache.index
    order = np.argsort(per_ssim, kind="stable")
    spread = np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)
    picks = list(dict.fromkeys(order[spread].tolist()))  # worst to best
    ex_pos = pos[picks]
    ex_pred = predict_positions(model, cache, ex_pos, dev, batch_size)
    ex_x, ex_y = cache.batch(ex_pos)
    return [{"row": int(idx.rows[p]), "diffuser": str(idx.diffuser[p]),
             "distance_mm": float(idx.distance_mm[p]), "ssim": float(per_ssim[k]),
             "input": ex_x[j, 0].numpy(), "prediction": ex_pred[j], "target": ex_y[j, 0].numpy()}
            for j, (k, p) in enumerate(zip(picks, ex_pos, strict=True))]


def _score_group(model, cache, pos, dev, batch_size) -> dict[str, np.ndarray]:
    from reconstruction.metrics import all_per_image

    idx = cache.index
    parts = []
    for i in range(0, len(pos), EVAL_CHUNK):  # bounded memory on big runs
        chunk = pos[i:i + EVAL_CHUNK]
        pred = predict_positions(model, cache, chunk, dev, batch_size)
        parts.append(all_per_image(pred, cache.labels[idx.object_index[chunk]].astype(np.float32)))
    return {m: np.concatenate([p[m] for p in parts]) for m in METRICS}


def full_history(path: Path, state: dict) -> dict:
    """Every trained epoch's history: ``history.json`` beside the checkpoint when it continues the
    checkpoint's own (``best.pt`` stops at its epoch), else the checkpoint's."""
    own = state["history"]
    beside = Path(path).with_name("history.json")
    try:
        hist = json.loads(beside.read_text())
    except (OSError, ValueError):
        return own
    n = len(own.get("epoch", []))
    if isinstance(hist, dict) and hist.get("epoch", [])[:n] == own.get("epoch", []) and \
            hist.get("train_loss", [])[:n] == own.get("train_loss", []):
        return hist
    return own


def check_batch_size(batch_size) -> None:
    """``--batch-size`` within train's bounds: 0 would loop forever, a negative one would score nothing
    and report empty metrics."""
    check_int("batch_size", batch_size)


def evaluate_checkpoint(path: str | Path, run: str | Path, device="auto", batch_size: int = 16,
                        fallback_dir: Path | None = None, n_examples: int = N_EXAMPLES,
                        per_image: bool = False) -> dict:
    """Metrics of one checkpoint on a run, plus examples for the report.

    ``per_image=True`` adds ``result["per_image"][group]``: ``positions`` (into the cache index),
    ``object_index`` and one array per metric, aligned.
    """
    from reconstruction.checkpoint import load_checkpoint, model_from_checkpoint
    from reconstruction.data import prepare_cache
    from reconstruction.runtime import pick_device

    check_batch_size(batch_size)
    state = load_checkpoint(path)
    dev = pick_device(device)
    model = model_from_checkpoint(state, path, device=dev, batch=batch_size).to(dev)
    size = int(state["model_config"]["image_size"])
    cache = prepare_cache(run, size, fallback_dir=fallback_dir)
    idx = cache.index
    test_objects, split_note = resolve_test_objects(state, idx, run)
    result = {"checkpoint": str(path), "model_name": state["model_config"]["name"],
              "model_config": state["model_config"], "epoch": int(state["epoch"]),
              "history": full_history(Path(path), state), "train_config": state["train_config"],
              "eval_sizes": state.get("eval_sizes", {}), "split_note": split_note,
              "device": state.get("device"),
              "groups": {}, "summary": {}, "examples": {}}
    if per_image:
        result["per_image"] = {}
    for name, pos in eval_groups(idx, test_objects).items():
        per = _score_group(model, cache, pos, dev, batch_size)
        g = group_metrics(idx, pos, per)
        result["groups"][name] = g["by_condition"]
        result["summary"][name] = g["summary"]
        result["examples"][name] = _examples(model, cache, pos, per["ssim"], dev, batch_size, n_examples)
        if per_image:
            result["per_image"][name] = {"positions": pos, "object_index": idx.object_index[pos], **per}
    if not result["groups"]:
        raise UserError(f"{run}: no done pairs to evaluate "
                        "(no validation role, test faces or held-out faces)")
    return result


def floor_metrics(run, image_size: int, out: Path, test_objects) -> dict:
    """The floor: metrics of always answering the mean training face, whatever the speckle (faces are
    alike, so it is far from zero; a model has learned from the speckle only where it beats it)."""
    from reconstruction.data import prepare_cache, training_faces
    from reconstruction.metrics import all_per_image

    cache = prepare_cache(run, image_size, fallback_dir=out)
    idx = cache.index
    seen = sorted(set(training_faces(idx).tolist()) - set(test_objects))
    if not seen:
        return {}
    mean = cache.labels[seen].astype(np.float32).mean(axis=0)
    result = {}
    for name, pos in eval_groups(idx, test_objects).items():
        target = cache.labels[idx.object_index[pos]].astype(np.float32)
        per = all_per_image(np.broadcast_to(mean, target.shape).copy(), target)
        result[name] = {"n": int(len(pos)), **{k: float(np.mean(v)) for k, v in per.items()}}
    return result


def _jsonable(result: dict) -> dict:
    from reconstruction.runtime import json_safe

    return json_safe({k: v for k, v in result.items() if k not in ("examples", "per_image")})


def evaluate_checkpoints(ckpts: dict, run: str | Path, out_dir: str | Path, device="auto",
                         batch_size: int = 16, figures: dict | None = None) -> dict:
    """Evaluates named checkpoints (the first is the model, the others baselines) on ``run``.

    Writes ``out_dir/metrics.json`` and ``out_dir/report.html`` (``figures``: title → PNG path to embed);
    returns the metrics dict with ``files`` (paths written) added.
    """
    from reconstruction.report import write_report
    from reconstruction.runtime import write_json
    from speckle_core.fileio import check_output_dir

    if not ckpts:
        raise UserError("evaluate: no checkpoint given")
    check_batch_size(batch_size)
    out = check_output_dir(out_dir, inputs=[run, *ckpts.values()], what="evaluation output folder")
    results = {name: evaluate_checkpoint(p, run, device, batch_size, fallback_dir=out)
               for name, p in ckpts.items()}
    first = next(iter(results.values()))
    floor = floor_metrics(run, int(first["model_config"]["image_size"]), out,
                          first["train_config"].get("test_objects") or [])
    metrics = {"run": str(run), "models": {n: _jsonable(r) for n, r in results.items()},
               "floor_mean_training_face": floor}
    write_json(out / "metrics.json", metrics)
    report = write_report(results, run, out / "report.html", floor=floor, figures=figures)
    metrics["files"] = {"metrics": str(out / "metrics.json"), "report": str(report)}
    return metrics

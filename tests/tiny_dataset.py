"""A small run file (the contract of docs/design.md, "The run file"), written with plain h5py (test helper).

The speckle of each pair is a fixed random linear map of its object (one map per diffuser, slightly
perturbed per distance), so a model can learn something in a few steps. Distances 0 and 20 mm are
role "train", 40 mm is role "validation"; the last object is a held-out face; a few rows are left
``done = False`` like a run that stopped early.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from speckle_core.runfile import FORMAT


def write_tiny_dataset(path: str | Path, n_objects: int = 6, pattern_px: int = 32, frame_shape=(40, 48),
                       diffusers=("120", "600"), distances=(0.0, 20.0, 40.0), with_role: bool = True,
                       n_not_done: int = 1, seed: int = 0) -> Path:
    path = Path(path)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:pattern_px, :pattern_px] / pattern_px
    patterns = []
    for i in range(n_objects):  # blobs: face-like dense binary objects
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        blob = ((xx - cx) ** 2 + ((yy - cy) / rng.uniform(0.7, 1.3)) ** 2) < r * r
        blob ^= (xx > 0.5) & (i % 2 == 1) & (yy > 0.6)
        patterns.append(blob.astype(np.uint8))
    patterns = np.stack(patterns)
    n_in = patterns[0].size
    n_out = frame_shape[0] * frame_shape[1]
    maps = {d: rng.normal(size=(n_out, n_in)) / np.sqrt(n_in) for d in diffusers}

    rows = []
    for d in diffusers:
        for z in distances:
            for o in range(n_objects):
                rows.append((d, z, o))
    m = len(rows)
    speckle = np.zeros((m, *frame_shape), dtype=np.uint8)
    for k, (d, z, o) in enumerate(rows):
        field = maps[d] @ patterns[o].ravel().astype(float) + z / 400.0
        inten = field**2
        speckle[k] = np.clip(inten / (inten.max() + 1e-9) * 250, 0, 255).reshape(frame_shape).astype(np.uint8)
    done = np.ones(m, dtype=bool)
    if n_not_done:
        done[-n_not_done:] = False
        speckle[-n_not_done:] = 0

    sdt = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["protocol"] = "# tiny test protocol\n"
        f.attrs["rig"] = "# tiny test rig\n"
        f.attrs["created"] = "2026-01-01T00:00:00+00:00"
        f.attrs["software"] = "{}"
        g = f.create_group("objects")
        g["pattern"] = patterns
        g.create_dataset("name", data=np.array([f"face_{i}" for i in range(n_objects)], dtype=object),
                         dtype=sdt)
        g.create_dataset("split", data=np.array(["holdout" if i == n_objects - 1 else "train"
                                                 for i in range(n_objects)], dtype=object), dtype=sdt)
        p = f.create_group("pairs")
        p["speckle"] = speckle
        p["object_index"] = np.array([r[2] for r in rows], dtype=np.int32)
        p.create_dataset("diffuser", data=np.array([r[0] for r in rows], dtype=object), dtype=sdt)
        p["distance_mm"] = np.array([r[1] for r in rows], dtype=np.float32)
        p["exposure_us"] = np.full(m, 1000.0, dtype=np.float32)
        p["timestamp"] = np.arange(m, dtype=np.float64)
        p["done"] = done
        if with_role:
            p.create_dataset("role", data=np.array(["validation" if r[1] >= 40 else "train" for r in rows],
                                                   dtype=object), dtype=sdt)
    return path


TINY_MODEL = {"model": "unet", "model_args": {"base_channels": 4}, "image_size": 16}


def train_tiny(run: str | Path, out_dir: str | Path, epochs: int = 1, **overrides):
    """Trains the tiny CNN on ``run`` (seconds on a CPU); returns the history."""
    from reconstruction.train import TrainConfig, train

    cfg = TrainConfig(run=str(run), out_dir=str(out_dir), epochs=epochs, **{**TINY_MODEL, **overrides})
    return train(cfg, progress=False, log=lambda *_: None)

"""Faces and plan timings: `speckle-lab plan` on the paper's protocol and build_objects for its faces.

Builds an archive the size of LFW (13,233 JPEGs of 250×250, made from the embedded faces with a
little noise, ~12 kB each: ~160 MB, where LFW's lfw.tgz is 173 MB) in a temporary folder, then
measures:

- make_plan (what `speckle-lab plan` does: one names-only pass over the archive, the 18,000 rows);
- build_objects (read, decode, crop, resize to 800×800, Otsu) per face, for the paper's 1,500.

Run: `OMP_NUM_THREADS=2 nice .venv/bin/python bench/bench_faces.py [--images N] [--faces N]`.
"""

from __future__ import annotations

import argparse
import io
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def build_archive(path: Path, n_images: int) -> None:
    from skimage.data import lfw_subset

    faces = lfw_subset()[:100]
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tf:
        for i in range(n_images):
            person = f"Person_{i // 3:05d}"
            big = np.asarray(Image.fromarray((faces[i % 100] * 255).astype(np.uint8)).resize((250, 250)))
            noisy = np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(noisy).convert("RGB").save(buf, "JPEG", quality=90)
            info = tarfile.TarInfo(f"lfw/{person}/{person}_{i % 3 + 1:04d}.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tf.addfile(info, buf)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=13_233, help="images in the archive (LFW: 13,233)")
    ap.add_argument("--faces", type=int, default=1500, help="faces.count (paper: 1,500)")
    args = ap.parse_args()

    from acquisition.plan import build_objects, make_plan
    from protocols import shipped

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        build_archive(tmp / "lfw.tgz", args.images)
        size_mb = (tmp / "lfw.tgz").stat().st_size / 1e6
        print(f"archive: {args.images} images, {size_mb:.0f} MB, built in {time.perf_counter() - t0:.1f} s")
        text = shipped("paper-2023").read_text().replace("count = 1500", f"count = {args.faces}")
        (tmp / "paper.toml").write_text(text)

        t0 = time.perf_counter()
        plan = make_plan(tmp / "paper.toml", None)
        t_plan = time.perf_counter() - t0
        print(f"make_plan (speckle-lab plan): {t_plan:.2f} s for {plan.pairs_total} pairs "
              f"({args.images} names listed)")

        t0 = time.perf_counter()
        patterns, names, splits, skipped = build_objects(plan)
        t_obj = time.perf_counter() - t0
        print(f"build_objects: {t_obj:.1f} s for {len(names)} faces = {1e3 * t_obj / len(names):.1f} ms/face "
              f"({patterns.nbytes / 1e6:.0f} MB of patterns, {len(skipped)} skipped)")


if __name__ == "__main__":
    main()

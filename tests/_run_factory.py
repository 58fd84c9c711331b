"""Builders of small run layouts for the dataset, engine and inspect tests (numpy only)."""

from __future__ import annotations

import numpy as np

from speckle_core.runfile import BlockSpec, RunLayout


def tiny_layout(n_objects: int = 3, frame_shape=(16, 16), pattern_shape=(8, 8), diffusers=("120", "220"),
                distances=(0.0, 20.0), dtype=np.uint8, dark_frames: int = 2, references: bool = True,
                protocol_text: str = "# tiny protocol\n", rig_text: str = "# tiny rig\n") -> RunLayout:
    rng = np.random.default_rng(0)
    patterns = (rng.random((n_objects, *pattern_shape)) > 0.5).astype(np.uint8)
    blocks, pair_block, pair_object = [], [], []
    for d in diffusers:
        for z in distances:
            blocks.append(BlockSpec(d, float(z), "validation" if z >= 40 else "train"))
            for o in range(n_objects):
                pair_block.append(len(blocks) - 1)
                pair_object.append(o)
    ref_rows, ref_blocks = [], []
    if references:
        for b in range(len(blocks)):
            first = pair_block.index(b)
            ref_rows += [first, first + n_objects]
            ref_blocks += [b, b]
    return RunLayout(
        protocol_text=protocol_text, rig_text=rig_text, patterns=patterns,
        names=[f"face_{i}" for i in range(n_objects)],
        splits=["holdout" if i == n_objects - 1 else "train" for i in range(n_objects)],
        blocks=blocks, pair_block=np.array(pair_block), pair_object=np.array(pair_object),
        pair_repeat=np.zeros(len(pair_block), dtype=int), frame_shape=frame_shape,
        frame_dtype=np.dtype(dtype),
        skipped=["bad.jpg: truncated"], dark_frames=dark_frames,
        reference_pattern=patterns[0] if references else None,
        reference_before_row=ref_rows, reference_block=ref_blocks, software={"test": "1"})


def frame_for(row: int, shape=(16, 16), dtype=np.uint8) -> np.ndarray:
    """A recognisable frame for pair ``row``: checks the right bytes land in the right row."""
    rng = np.random.default_rng(1000 + row)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)

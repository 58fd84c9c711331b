"""Writes examples/quickstart.ipynb and examples/lab-session.ipynb from the cells below, and runs them.

    .venv/bin/python scripts/make_notebooks.py          # write and execute both (outputs kept)

The notebooks use only the public API (``import speckle_lab as sl``) on the simulated rig, with the
small protocol and rig files in examples/. ``tests/test_notebooks.py`` executes them headless, so a
change that breaks an example fails ``make test``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

QUICKSTART = [
    ("md", """# speckle-lab quickstart

The whole pipeline from Python on the **simulated rig**: show a face on the SLM and capture its speckle,
run a small protocol, read the run file, train a tiny model and look at a reconstruction. Every step is
the same code path as the `speckle-lab` command of the same name. It runs in well under a minute on a
laptop CPU."""),
    ("code", """from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from skimage.data import lfw_subset
from skimage.transform import resize

import speckle_lab as sl

RIG = "tiny-sim-rig.toml"          # the simulated rig with a 64×64 SLM window
PROTOCOL = "tiny-protocol.toml"    # 12 embedded LFW faces, 2 diffusers, 0/20/40 mm"""),
    ("md", """## 1. Open the rig, show a face, capture its speckle

`sl.open_rig()` opens every device of a rig file (the simulated rig by default) and closes them on
leaving the `with` block. `rig.slm.show()` takes a 0/1 object and shows it at the rig's π level.
With this 64×64 window the speckle grain (about 25 camera pixels, as on the full 800×800 rig) spans
a good part of the 48×48 frame."""),
    ("code", """face = resize(lfw_subset()[0], (64, 64)) > 0.5          # a binarised LFW face
with sl.open_rig(RIG, roi_px=(48, 48)) as rig:
    rig.changer.select("600")
    rig.stage.move_to_mm(20.0)
    rig.slm.show(face)
    frame = rig.camera.capture(exposure_us=3000)

print(f"frame {frame.image.shape}, max {frame.image.max()}, saturated {frame.saturated_fraction:.2%}")
fig, ax = plt.subplots(1, 2, figsize=(6, 3))
ax[0].imshow(face, cmap="gray")
ax[0].set_title("object on the SLM")
ax[1].imshow(frame.image, cmap="gray")
ax[1].set_title("speckle, 600 grit, 20 mm")
for a in ax:
    a.axis("off")"""),
    ("md", """## 2. Plan and run a small protocol

`sl.plan()` is the dry run (`speckle-lab plan`); `sl.acquire()` runs it into an HDF5 run file,
calling `on_pair` after each pair. A stopped run raises `sl.RunStopped`; `resume=True` continues it."""),
    ("code", """print(sl.plan(PROTOCOL, RIG))"""),
    ("code", """run_path = Path("runs/quickstart.h5")
run_path.parent.mkdir(exist_ok=True)
run_path.unlink(missing_ok=True)            # start afresh each time the notebook runs
seen = []
sl.acquire(PROTOCOL, run_path, RIG, on_pair=lambda event: seen.append(event.done))
print(f"captured {len(seen)} pairs of {seen and max(seen)} into {run_path}")"""),
    ("md", """## 3. Read the run file

`sl.open_run()` selects pairs by role, diffuser and distance and returns numpy arrays."""),
    ("code", """with sl.open_run(run_path) as run:
    print("diffusers", run.diffusers, "distances (mm)", run.distances_mm, "pairs", run.pairs_done)
    sel = run.select(role="validation", diffuser="1500", distance_mm=40)
    frames, objects = sel.frames(limit=4), sel.objects()[:4]

fig, ax = plt.subplots(2, 4, figsize=(8, 4))
for i in range(4):
    ax[0, i].imshow(objects[i], cmap="gray")
    ax[1, i].imshow(frames[i], cmap="gray")
for a in ax.ravel():
    a.axis("off")
ax[0, 0].set_title("objects")
ax[1, 0].set_title("speckle at 40 mm")"""),
    ("md", """## 4. Train a tiny model for a few seconds, and reconstruct

A CNN UNet narrowed to 8 channels at 32×32 for 2 epochs: enough to see the pipeline work, not to
reproduce the paper (see `docs/model.md` and `speckle-lab compare`)."""),
    ("code", """history = sl.train(run_path, "runs/quickstart-model", model="unet", device="cpu",
                   model_args={"base_channels": 8}, image_size=32, epochs=2, batch_size=8, lr=3e-3)
for key in ("epoch", "train_ssim", "validation_ssim", "epoch_s"):
    print(f"{key:>16}:", np.round(history[key], 3))"""),
    ("code", """with sl.open_run(run_path) as run:
    sel = run.select(role="validation", split="holdout")
    rows, truth = sel.rows[:3], sel.objects()[:3]
written = sl.predict("runs/quickstart-model/best.pt", [f"{run_path}:{','.join(map(str, rows))}"],
                     "runs/quickstart-pred", device="cpu")
outputs = [p for p in written if p.stem.endswith(tuple(f"row{r}" for r in rows))]
fig, ax = plt.subplots(2, len(outputs), figsize=(3 * len(outputs), 6))
for i, p in enumerate(outputs):
    ax[0, i].imshow(truth[i], cmap="gray")
    ax[1, i].imshow(plt.imread(p), cmap="gray")
for a in ax.ravel():
    a.axis("off")
ax[0, 0].set_title("held-out face")
ax[1, 0].set_title("reconstruction, 40 mm")"""),
]

LAB_SESSION = [
    ("md", """# A lab session on a real rig, from Python

The order a person follows on a new bench (README, "Bringing up a rig"), written against the same API
as the quickstart. It runs here on the simulated rig; on your bench set `RIG` to your rig file
(a copy of `hardware/rigs/lab-example.toml` with your devices' addresses, checked with
`speckle-lab devices`). Use `speckle-lab live --rig RIG` for a live view while you align."""),
    ("code", """from pathlib import Path

import numpy as np

import speckle_lab as sl

RIG = "tiny-sim-rig.toml"          # your rig file here
PROTOCOL = "tiny-protocol.toml"    # your protocol here (protocols/paper-2023.toml for the paper's)"""),
    ("md", """## 1. Check each device by hand

The devices are the rig file's; each closes when the `with` block ends, even after an error."""),
    ("code", """with sl.open_rig(RIG, roi_px=(48, 48)) as rig:
    print("simulated" if rig.simulated else "real", "rig; diffusers:", rig.changer.diffusers)
    for name in rig.changer.diffusers:
        rig.changer.select(name)
        assert rig.changer.current() == name
    print("stage at", rig.stage.move_to_mm(40.0), "mm")
    rig.slm.blank()
    flat = rig.camera.capture(exposure_us=1000).image
    print(f"flat (blank) SLM through {rig.changer.current()} grit: mean {flat.mean():.1f} counts")"""),
    ("md", """## 2. Exposure: bright enough, never saturated

The acquisition's auto exposure does this per block; here by hand, to see the camera's response.
The mean must grow linearly with the exposure until the sensor clips. The DCC1645C is a colour
sensor: under red light its red pixels clip long before the grey value reaches 255, so watch the
saturated share, not the maximum."""),
    ("code", """with sl.open_rig(RIG, roi_px=(48, 48)) as rig:
    rig.changer.select("600")
    rig.stage.move_to_mm(0.0)
    rig.slm.show(np.ones(rig.slm.window_shape, dtype=bool))
    for exposure_us in (250, 500, 1000, 2000, 4000):
        f = rig.camera.capture(exposure_us=exposure_us)
        print(f"{exposure_us:5d} µs: mean {f.image.mean():6.1f}, saturated {f.saturated_fraction:.3%}")"""),
    ("md", """## 3. Plan, check the disk, run, resume

`sl.plan(..., out=...)` refuses when the disk has no room. A run that stops (Ctrl-C, a device that
keeps failing, drift while unattended) raises `sl.RunStopped`; the file is valid and
`resume=True` continues it where it stopped."""),
    ("code", """out = Path("runs/lab-session.h5")
out.parent.mkdir(exist_ok=True)
out.unlink(missing_ok=True)
plan = sl.plan(PROTOCOL, RIG, out=out)
print(f"{plan.pairs} pairs, about {plan.duration_s:.0f} s, {plan.disk_bytes / 1e6:.1f} MB")
try:
    sl.acquire(PROTOCOL, out, RIG)
except sl.RunStopped as stop:
    print("stopped:", stop, "- resuming")
    sl.acquire(PROTOCOL, out, RIG, resume=True)"""),
    ("md", """## 4. Look at what was captured

Per block: pairs done, the exposure chosen, and the speckle contrast σ/μ (about 1 for fully
developed speckle; lower where light passes the diffuser unscattered)."""),
    ("code", """with sl.open_run(out) as run:
    for diffuser in run.diffusers:
        for z in run.distances_mm:
            sel = run.select(diffuser=diffuser, distance_mm=z)
            frames = sel.frames().astype(float)
            contrast = float(np.mean(frames.std(axis=(1, 2)) / frames.mean(axis=(1, 2))))
            print(f"{diffuser:>5} grit, {z:4.0f} mm: {len(sel):3d} pairs, contrast {contrast:.2f}")"""),
    ("md", """## 5. Next

`speckle-lab calibrate phase|settle|twin` measure the π level, the settle time and fit the simulated
rig to your bench (docs/calibration.md); `speckle-lab compare` trains models under one budget and
reports them with confidence intervals (docs/model.md)."""),
]


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
                for kind, src in cells]
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout_s: int = 300) -> nbformat.NotebookNode:
    """Runs every cell in a fresh kernel with ``cwd`` as the working folder; raises on any error."""
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
                   extra_arguments=["--HistoryManager.enabled=False"]).execute()
    return nb


NOTEBOOKS = {"quickstart.ipynb": QUICKSTART, "lab-session.ipynb": LAB_SESSION}


def main() -> int:
    for name, cells in NOTEBOOKS.items():
        nb = execute(notebook(cells), EXAMPLES)
        nbformat.write(nb, EXAMPLES / name)
        print(f"wrote and ran examples/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

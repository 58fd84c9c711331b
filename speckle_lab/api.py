"""speckle-lab from Python: the same steps as the CLI, as functions (``import speckle_lab as sl``).

Each function takes the same files and options as the command it mirrors, and the command is a
thin layer over it (``speckle_lab/cli.py`` maps the exceptions below to exit codes). Nothing here
calls ``sys.exit`` or prints unless asked to.

Failure classes (the message is the one line the CLI prints):

- :class:`UserError`: bad input (a file, key or value; the CLI's exit 2);
- :class:`DeviceError`: a device failed (exit 1), ``.device`` names it;
- :class:`NotAvailableError`: a part that is not installed (exit 1);
- :class:`RunStopped`: an acquisition stopped before its end (a device that kept failing, drift
  while unattended, Ctrl-C): the file is valid, ``acquire(..., resume=True)`` continues it.

>>> import speckle_lab as sl                                          # doctest: +SKIP
>>> with sl.open_rig() as rig:                                        # the simulated rig
...     rig.slm.show(face)                                            # a 0/1 object at the π level
...     frame = rig.camera.capture(exposure_us=2000)                  # frame.image: numpy (H, W)
>>> print(sl.plan("protocols/quick.toml"))
>>> sl.acquire("protocols/quick.toml", "run.h5", on_pair=lambda e: print(e.done, e.total))
>>> with sl.open_run("run.h5") as run:
...     frames = run.select(role="validation", diffuser="600").frames()
>>> sl.train("run.h5", "model/", model="unet", epochs=2, image_size=32)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hardware.errors import DeviceError
from speckle_core.errors import NotAvailableError, UserError
from speckle_core.runfile.selection import RunData, Selection
from speckle_lab.interactive import LabRig

__all__ = [
    "DeviceError", "LabRig", "NotAvailableError", "PairEvent", "Plan", "RunData", "RunStopped", "Selection",
    "UserError",    "acquire", "evaluate", "open_rig", "open_run", "plan", "predict", "train",
]


class RunStopped(RuntimeError):
    """An acquisition stopped before its end; the file is valid and can be resumed.

    ``exit_code`` is the CLI's (1: a device or drift, 130/143/129: interrupted), ``path`` the run.
    """

    def __init__(self, message: str, exit_code: int, path: Path):
        super().__init__(message)
        self.exit_code, self.path = exit_code, path


# -- the rig ------------------------------------------------------------------------------------------

def open_rig(rig: str | Path | None = None, *, roi_px: tuple[int, int] = (800, 800),
             exposure_us: float = 1000.0, interactive: bool = True) -> LabRig:
    """Opens every device of a rig file (the simulated rig when ``rig`` is None).

    ``roi_px`` (rows, cols) and ``exposure_us`` are the camera's starting settings. A manual stage or
    changer asks at the console when ``interactive`` (else refuses such a step). Use it in a
    ``with`` block, which closes every device:

    >>> with open_rig() as rig:                                       # doctest: +SKIP
    ...     rig.changer.select("600"); rig.stage.move_to_mm(20.0)
    ...     rig.slm.show(pattern01); image = rig.camera.capture().image
    """
    from acquisition.acquire import make_operator
    from hardware.rig import build_rig, load_rig
    from speckle_lab.interactive import lab_rig

    opened = build_rig(load_rig(rig), make_operator(unattended=not interactive))
    return lab_rig(opened, roi_px=roi_px, exposure_us=exposure_us)


# -- plan -----------------------------------------------------------------------------------------------

@dataclass
class Plan:
    """A dry run of a protocol on a rig: ``str(plan)`` is what ``speckle-lab plan`` prints.

    ``run_plan`` is the full :class:`acquisition.plan.RunPlan` (rows, blocks, moves, estimate).
    """

    run_plan: object
    text: str

    @property
    def pairs(self) -> int:
        return int(self.run_plan.pairs_total)

    @property
    def duration_s(self) -> float:
        return float(self.run_plan.estimate.duration_s)

    @property
    def disk_bytes(self) -> int:
        return int(self.run_plan.estimate.disk_bytes)

    def __str__(self) -> str:
        return self.text


def plan(protocol: str | Path, rig: str | Path | None = None, out: str | Path | None = None) -> Plan:
    """``speckle-lab plan``: the pairs, their order, device moves, manual steps, duration (s) and disk
    need (bytes) of ``protocol`` on ``rig``; with ``out``, checks that its disk has room.

    >>> p = plan("protocols/quick.toml"); p.pairs, round(p.duration_s)   # doctest: +SKIP
    (600, 9)
    """
    from acquisition.plan import check_disk, format_plan, make_plan

    run_plan = make_plan(str(protocol), None if rig is None else str(rig), allow_missing_faces=True)
    folder, free = check_disk(run_plan, None if out is None else str(out))
    return Plan(run_plan, format_plan(run_plan, folder, free))


# -- acquire --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairEvent:
    """What ``acquire(on_pair=...)`` is told after each pair: pairs ``done`` of ``total``, and the
    current ``block`` ("600 grit, 20 mm, train")."""

    done: int
    total: int
    block: str


class _PairObserver:
    """Adapts ``on_pair`` to the engine's observer protocol (``acquisition.engine.Engine.observers``)."""

    def __init__(self, on_pair: Callable[[PairEvent], object]):
        self.on_pair = on_pair

    def on_progress(self, done: int, total: int, block: str) -> None:
        self.on_pair(PairEvent(int(done), int(total), str(block)))


def acquire(protocol: str | Path, out: str | Path, rig: str | Path | None = None, *, resume: bool = False,
            unattended: bool = True, on_pair: Callable[[PairEvent], object] | None = None,
            progress: bool = False) -> Path:
    """``speckle-lab acquire``: runs ``protocol`` on ``rig`` into the run file ``out``.

    ``on_pair(event)`` is called after each pair (:class:`PairEvent`: ``done``, ``total``,
    ``block``); it must return quickly. One that raises is dropped (and logged); the run goes on.
    ``resume=True`` continues a stopped run exactly where it stopped. ``unattended`` (the default
    here) refuses, before anything moves, a protocol that needs a person. Returns ``out`` when the
    run is complete; raises :class:`RunStopped` when it stopped early (the file is valid: resume it).

    >>> acquire("protocols/quick.toml", "run.h5", on_pair=lambda e: print(e.done, e.total))  # doctest: +SKIP
    PosixPath('run.h5')
    """
    from acquisition.acquire import run_acquisition

    out = Path(out)
    observers = (_PairObserver(on_pair),) if on_pair is not None else ()
    outcome = run_acquisition(str(protocol), out, None if rig is None else str(rig), resume=resume,
                              unattended=unattended, progress=progress, observers=observers)
    if outcome.exit_code != 0:
        raise RunStopped(f"{out}: {outcome.message}", outcome.exit_code, out)
    return out


# -- read -----------------------------------------------------------------------------------------------

def open_run(path: str | Path) -> RunData:
    """Opens a run file read-only; ``run.select(role=, diffuser=, distance_mm=, split=)`` picks pairs
    and ``.frames()`` / ``.objects()`` return numpy arrays.

    >>> with open_run("run.h5") as run:                                # doctest: +SKIP
    ...     sel = run.select(diffuser="600", distance_mm=40)
    ...     sel.frames().shape, sel.objects().shape
    ((90, 800, 800), (90, 200, 200))
    """
    return RunData.open(path)


# -- train, evaluate, predict ---------------------------------------------------------------------------

def train(run: str | Path, out: str | Path, *, resume: bool = False, progress: bool = False,
          log: Callable[[str], None] | None = None, **options) -> dict:
    """``speckle-lab train``: trains a model on ``run``; writes ``out/last.pt``, ``best.pt``,
    ``history.json``. ``options`` are the CLI's, by their ``TrainConfig`` names (``model``,
    ``epochs``, ``image_size``, ``batch_size``, ``lr``, ``loss``, ``seed``, ``device``, ...).
    With ``resume=True`` an ``epochs`` option extends a finished run. Returns the history: a list
    per key (``epoch``, ``lr``, ``train_loss``, ``train_ssim``, ``test_ssim``, ``validation_ssim``,
    ``epoch_s``), one entry per epoch, as in ``history.json``.

    >>> train("run.h5", "model", model="unet", epochs=2, image_size=32)  # doctest: +SKIP
    """
    from reconstruction.train import train as run_training
    from reconstruction.train_config import TrainConfig

    epochs = options.get("epochs") if resume else None
    cfg = TrainConfig(run=str(run), out_dir=str(out), **options)
    return run_training(cfg, resume=resume, progress=progress, log=log or (lambda _msg: None), epochs=epochs)


def evaluate(checkpoint: str | Path, run: str | Path, out: str | Path, *, baseline: str | Path | None = None,
             device: str = "auto", batch_size: int = 16) -> dict:
    """``speckle-lab evaluate``: metrics (PCC, SSIM, Jaccard, PSNR) of ``checkpoint`` on ``run`` by
    split and distance; writes ``out/metrics.json`` and ``out/report.html``. Returns the metrics.

    >>> evaluate("model/best.pt", "run.h5", "eval")["models"]["model"]["summary"]  # doctest: +SKIP
    """
    from reconstruction.evaluate import evaluate_checkpoints

    ckpts = {"model": str(checkpoint)}
    if baseline is not None:
        ckpts["baseline"] = str(baseline)
    return evaluate_checkpoints(ckpts, str(run), str(out), device=device, batch_size=batch_size)


def predict(checkpoint: str | Path, inputs: list[str | Path] | str | Path, out: str | Path = "predictions",
            *, device: str = "auto") -> list[Path]:
    """``speckle-lab predict``: reconstructs objects from frames (PNG, TIFF, .npy) or run rows
    (``"run.h5:0-9"``); writes PNGs into ``out`` and returns their paths.

    >>> predict("model/best.pt", ["run.h5:0-3"], "pred")               # doctest: +SKIP
    """
    from reconstruction.predict import predict_inputs

    items = [str(inputs)] if isinstance(inputs, str | Path) else [str(i) for i in inputs]
    return [Path(p) for p in predict_inputs(str(checkpoint), items, str(out), device=device)]

"""The one entry point of a run, :func:`run_acquisition`: plan, preflight, file, log, progress, Ctrl-C.

``speckle-lab acquire`` (:func:`acquire_command`), the demo and a lab's own scripts all start runs
through :func:`run_acquisition`; it takes paths or already-loaded files (``ProtocolFile``,
``RigFile``), so each file is read once per run.

Order of a run:

1. read and validate the protocol and rig (one-line errors, exit 2), make the plan, and translate
   both into the run's settings once (``acquisition.settings.RunSettings.from_plan``);
2. the output: without ``--resume`` an existing file is an error (captured data is never
   overwritten); with ``--resume`` the file's ``protocol`` and ``rig`` texts must equal the files
   given (or exit 2); with ``--resume`` and no file yet (never started, or killed while the file
   was laid out: only ``RUN.h5.creating`` exists) a new run starts;
3. preflight, before any device moves: a protocol needing a person (manual stage or changer, dark
   frames on a real rig) with a non-interactive operator is refused (exit 2); then the rig is
   opened and the SLM's stroke mode and window size are checked against the protocol (exit 2);
4. the file is laid out (fresh run) and the engine runs with a live progress bar (pairs/s, ETA,
   current block) and a log beside the dataset (``RUN.log``); Ctrl-C, SIGTERM (systemd, docker,
   ``timeout``, SLURM) and SIGHUP (a dropped SSH session) finish the current pair, flush, log the end
   and exit 130 / 143 / 129; a device that keeps failing stops the run cleanly (exit 1, naming it).

Safety (issue #12): the run file and its log are outputs that may be neither an input nor another
run file, checkpoint or protocol; ``RUN.h5.lock`` (PID and host) keeps a second process off the
same run even with HDF5's locking off; a resumed file held open by another program is refused; the
disk must hold the rest of the run before the layout starts (a full disk during the layout is one
line, and no ``.creating`` file is left).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from acquisition.engine import EXIT_INTERRUPTED, Engine, RunOutcome
from acquisition.progress import LOG_EVERY_S, ProgressLog
from acquisition.settings import RunSettings
from speckle_core.errors import UserError
from speckle_core.fileio import (
    check_free_space,
    check_not_input,
    check_output_parent,
    describe_os_error,
    is_disk_full,
    other_openers,
    output_lock,
    sniff_kind,
)
from speckle_core.h5safety import contain_hdf5_write_failure, mentions_enospc
from speckle_core.runfile import (
    CREATING_SUFFIX,
    BlockSpec,
    RunLayout,
    RunWriter,
    check_resumable,
    create_run,
    open_run,
)
from speckle_core.signals import GracefulStop

if TYPE_CHECKING:
    from hardware.rig import RigFile
    from protocols import ProtocolFile

log = logging.getLogger("speckle_lab.acquire")


# -- plan → file layout ---------------------------------------------------------------------------

def layout_from_plan(plan, objects, frame_dtype, camera_settings: dict | None = None) -> RunLayout:
    """The file layout of a fresh run from ``acquisition.plan.RunPlan`` and ``build_objects(plan)``;
    ``camera_settings`` are the camera's read-back settings (``Camera.settings`` where it has them)."""
    patterns, names, splits, skipped = objects
    blocks = [BlockSpec(b.diffuser, float(b.distance_mm), b.role) for b in plan.blocks]
    rows = plan.rows
    # The reference pattern is the first object: a face scatters into the camera window as the run's
    # objects do (a pixel-scale random pattern diffracts outside the relay pupil: a black frame).
    patterns = np.asarray(patterns, dtype=np.uint8)
    reference = patterns[0] if plan.reference_before_rows and len(patterns) else None
    return RunLayout(
        protocol_text=plan.protocol.text, rig_text=plan.rig.text, patterns=patterns,
        names=list(names), splits=list(splits), skipped=list(skipped), blocks=blocks,
        pair_block=np.array([r.block for r in rows], dtype=np.int64),
        pair_object=np.array([r.object_index for r in rows], dtype=np.int64),
        pair_repeat=np.array([r.repeat for r in rows], dtype=np.int64), frame_shape=tuple(plan.roi_px),
        frame_dtype=np.dtype(frame_dtype), dark_frames=int(plan.dark_frames), reference_pattern=reference,
        reference_before_row=list(plan.reference_before_rows), reference_block=list(plan.reference_blocks),
        rig_kind=plan.rig.config.rig_kind, simulated_devices=list(plan.rig.config.simulated_devices),
        camera_settings=dict(camera_settings or {}))


# -- output file checks ------------------------------------------------------------------------------

LAYOUT_MARGIN_BYTES = 2**20  # beyond the plan's estimate: HDF5 metadata, the log, rounding


def log_path_for(out: Path) -> Path:
    return out.with_suffix(".log")


def check_out_path(out: Path, inputs: list[Path]) -> Path:
    """The run file and its log (``RUN.log``) are outputs: neither may be an input, a folder, nor
    (the log) a run file, checkpoint or protocol; the folder must exist and be writable. Returns the
    log's path."""
    if out.is_dir():
        raise UserError(f"{out}: is a directory; --out names the run file (e.g. {out / 'run.h5'})")
    check_not_input(out, inputs, "run file")
    check_output_parent(out, "run file")
    log_file = log_path_for(out)
    if log_file == out:
        raise UserError(f"{out}: the run's log is written beside it as {log_file.name}; name the run "
                        "file with another suffix (RUN.h5)")
    if log_file.is_dir():
        raise UserError(f"{log_file}: is a directory, but the run's log goes there; choose another --out")
    check_not_input(log_file, inputs, "run's log")
    kind = sniff_kind(log_file)
    if kind is not None:
        raise UserError(f"{log_file}: holds a {kind}, but the run's log would be appended to it; "
                        "choose another --out")
    return log_file


def check_room(out: Path, plan, fresh: bool) -> None:
    """Before laying out (or resuming) a run: the disk must hold what is still to be written.

    A fresh run needs the plan's estimate; a resumed one the part of its preallocated file that has
    no blocks on disk yet (frames are laid out sparse and filled as they are captured)."""
    if fresh:
        need = int(plan.estimate.disk_bytes)
    else:
        st = out.stat()
        need = max(int(st.st_size) - int(st.st_blocks) * 512, 0)
    check_free_space(out, need, "rest of the run" if not fresh else "run", LAYOUT_MARGIN_BYTES)


def check_not_open_elsewhere(out: Path) -> None:
    """A notebook or viewer holding the run file would read half-written rows (or, writing, tear
    them); HDF5's own lock misses it when HDF5_USE_FILE_LOCKING=FALSE, so /proc is asked too."""
    holders = other_openers(out)
    if holders:
        raise UserError(f"{out}: open in another program ({', '.join(holders)}); close it there "
                        "(e.g. the notebook's h5py.File) and run again")

def check_output(out: Path, resume: bool, protocol_text: str, rig_text: str, protocol_path: str,
                 rig_name: str) -> bool:
    """Returns True when a fresh file must be laid out; raises UserError for every conflict."""
    creating = out.with_name(out.name + CREATING_SUFFIX)
    if not resume:
        if out.exists():
            raise UserError(f"{out}: already exists; add --resume to continue that run, "
                            "or choose another --out")
        return True
    if not out.exists():
        # Nothing captured yet (never started, or killed while laying out the file, leaving only
        # RUN.h5.creating): start afresh, so `--resume` can always be given, e.g. by a night script.
        log.info("%s: no run to resume%s: starting a new run", out,
                 " (only a half-made file from a kill during creation)" if creating.exists() else "")
        return True
    with open_run(out) as f:
        check_resumable(f, out)
        stored_protocol, stored_rig = str(f.attrs["protocol"]), str(f.attrs["rig"])
    check_same_meaning(out, "protocol", stored_protocol, protocol_text, protocol_path)
    check_same_meaning(out, "rig", stored_rig, rig_text, rig_name)
    return False


def check_same_meaning(out: Path, what: str, stored: str, given: str, given_name: str) -> None:
    """A run resumes only with the protocol (rig) it was started with, compared by meaning: comments,
    order, quoting and defaults written out do not matter; the keys that differ are named."""
    from hardware.rig import rig_config_model
    from protocols.schema import ProtocolConfig
    from speckle_core.meaning import describe, differences

    if stored == given:
        return
    try:  # the rig model as load_rig validates it: widened by any installed device plugins
        diffs = differences(ProtocolConfig if what == "protocol" else rig_config_model(), stored, given)
    except ValueError as e:  # the stored text no longer validates (an older speckle-lab): by text
        diffs = [f"(the stored {what} does not validate now: {e}; compared as text)"]
    if diffs:
        raise UserError(f"{out}: was started with a different {what} than {given_name}: "
                        f"{describe(diffs)} (stored → given); resume with the {what} it was started "
                        f"with: speckle-lab inspect {out} --{what} > {what}.toml")
    log.info("%s: the %s file differs from the stored one only in form (comments, layout); resuming",
             out, what)


# -- live progress, log file, Ctrl-C ----------------------------------------------------------------------

@contextlib.contextmanager
def run_log(out: Path):
    """Appends this run's log to RUN.log beside the dataset."""
    path = log_path_for(out)
    try:
        handler = _QuietFileHandler(path, encoding="utf-8")
    except OSError as e:
        raise UserError(f"{path}: cannot write the run's log ({describe_os_error(e)})") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("speckle_lab")
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


class _QuietFileHandler(logging.FileHandler):
    """A log that cannot be written (a full disk) must not print logging's traceback over the run's
    one-line message: the failure is kept (``failure``) and the run goes on (its data matter more
    than its log); a run that then ends well says so on its last line."""

    failure: str | None = None

    def flush(self) -> None:  # logging's close() flushes: a full disk must not raise there either
        try:
            super().flush()
        except OSError:
            self.handleError(None)

    def close(self) -> None:
        try:
            super().close()  # closing the file flushes its buffer once more
        except OSError:
            self.handleError(None)

    def handleError(self, record: logging.LogRecord | None) -> None:  # noqa: N802 - logging's name
        if self.failure is None:
            exc = sys.exc_info()[1]
            self.failure = describe_os_error(exc) if exc else "unknown error"
            LOG_FAILURES[self.baseFilename] = self.failure


LOG_FAILURES: dict[str, str] = {}  # log file -> why it could not be written (this process)


def stop_on_signals(stop: threading.Event) -> GracefulStop:
    """First Ctrl-C, SIGTERM or SIGHUP: finish the current pair, flush, stop cleanly (exit 130, 143,
    129). A second one interrupts at once."""
    return GracefulStop(stop, "stopping after the current pair (again to abort at once)")


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, already: int):
    """Yields a callback ``(done, total, block_label)`` driving a rich bar (pairs/s, ETA, block)."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    class Rate(TextColumn):
        def __init__(self):
            super().__init__("")

        def render(self, task):
            from rich.text import Text

            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} pairs/s" if speed else "- pairs/s")

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TaskProgressColumn(), Rate(), TextColumn("ETA"), TimeRemainingColumn(),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting", total=total, completed=already)

        def update(done: int, total_: int, label: str) -> None:
            bar.update(task, completed=done, description=label)

        yield update


# -- the run --------------------------------------------------------------------------------------------

def run_acquisition(protocol: ProtocolFile | str | Path, out: str | Path,
                    rig: RigFile | str | Path | None = None, *, resume: bool = False,
                    unattended: bool = False, progress: bool = False, operator=None,
                    observers: tuple = (), log_every_s: float = LOG_EVERY_S) -> RunOutcome:
    """Runs a protocol on a rig into the run file ``out``: the one entry point of a run.

    ``protocol``: a path or a loaded ``ProtocolFile``; ``rig``: a path, a loaded ``RigFile``, or None
    (the simulated rig). ``resume`` continues ``out``; ``operator`` (default: the console, or nobody
    when ``unattended`` or without a terminal) is asked to do what the rig cannot. Bad input raises a
    one-line UserError before any device moves; how the run ended is in the returned ``RunOutcome``
    (``exit_code`` 0 complete, 1 stopped cleanly, 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). ``observers``
    watch the run (``Engine.observers``: frames, progress, references, the end; e.g.
    ``console.view.RunView``). Without ``progress`` (the live bar) a line of progress is printed to
    stderr and the log every ``log_every_s`` seconds (``acquisition.progress``).
    """
    from acquisition.plan import make_plan
    from hardware.rig import RigFile, load_rig
    from protocols import ProtocolFile, load_protocol

    out = Path(out)
    protocol_file = protocol if isinstance(protocol, ProtocolFile) else load_protocol(protocol)
    rig_file = rig if isinstance(rig, RigFile) else load_rig(rig)
    inputs = [Path(p) for p in (protocol_file.path, rig_file.path) if p is not None]
    check_out_path(out, inputs)
    plan = make_plan(protocol_file, rig_file)
    settings = RunSettings.from_plan(plan)
    # One process per run file: RUN.h5.lock (PID and host) is held until the run ends, whatever
    # HDF5's own locking does (NFS setups turn it off); a second run is refused naming the first.
    with output_lock(out, "run file"):
        return _run_locked(out, resume, unattended, progress, operator, protocol_file, rig_file, plan,
                           settings, observers, log_every_s)


def _run_locked(out: Path, resume: bool, unattended: bool, progress: bool, operator, protocol_file,
                rig_file, plan, settings, observers: tuple = (), log_every_s: float = LOG_EVERY_S
                ) -> RunOutcome:
    from acquisition.plan import build_objects
    from hardware.rig import build_rig

    fresh = check_output(out, resume, protocol_file.text, rig_file.text, str(protocol_file.path),
                         str(rig_file.path) if rig_file.path else "the default simulated rig")
    if not fresh:
        check_not_open_elsewhere(out)
    check_room(out, plan, fresh)
    operator = operator if operator is not None else make_operator(unattended)
    preflight_people(settings, rig_file, operator)
    opened = build_rig(rig_file, operator)
    try:
        preflight_devices(opened, settings)
        with run_log(out) as log_path:
            log.info("acquire %s -> %s (%s), %d pairs", protocol_file.path, out,
                     "new run" if fresh else "resume", plan.pairs_total)
            if fresh:
                t0 = time.perf_counter()
                objects = build_objects(plan)
                for skipped in objects[3]:
                    log.warning("face skipped: %s", skipped)
                dtype = np.uint8 if opened.camera.max_value <= 255 else np.uint16
                camera_settings = getattr(opened.camera, "settings", None) or {}
                lay_out(out, layout_from_plan(plan, objects, dtype, camera_settings))
                log.info("laid out %s in %.1f s", out, time.perf_counter() - t0)
            outcome = _run_engine(opened, out, settings, progress, observers, log_every_s)
    finally:
        with contextlib.suppress(Exception):
            opened.close()
    outcome.log_path = log_path
    failure = LOG_FAILURES.pop(os.path.abspath(log_path), None)
    if failure is not None and outcome.exit_code == 0:
        outcome.message += f"; the log {log_path} is incomplete ({failure})"
    return outcome


def lay_out(out: Path, layout: RunLayout) -> None:
    """``create_run``, with a full disk (or another write error) as one line and no ``.creating``
    file left behind.

    ``check_room`` has made sure the disk holds the run before this is called; this is for a disk
    that fills meanwhile. HDF5 meets ENOSPC during a layout as an OSError or as a RuntimeError at
    close ("... errno = 28 ..."), prints tracebacks from h5py's deallocators, and used to crash
    (SIGSEGV, SIGBUS) at exit: ``contain_hdf5_write_failure`` handles all three.
    """
    creating = out.with_name(out.name + CREATING_SUFFIX)
    try:
        with contain_hdf5_write_failure(creating):
            create_run(out, layout)
    except (OSError, RuntimeError) as e:
        full = is_disk_full(e) or mentions_enospc(e)
        if not full and not isinstance(e, OSError):
            raise
        reason = "the disk is full (No space left on device)" if full else describe_os_error(e)
        raise UserError(f"{out}: cannot lay out the run file: {reason}; free space and run again") from None


def acquire_command(protocol_path: str, out_path: str, rig_path: str | None, *, resume: bool,
                    unattended: bool, progress: bool, observers: tuple = ()) -> int:
    """``speckle-lab acquire``: runs it, prints how it ended on one line, returns the exit code."""
    outcome = run_acquisition(protocol_path, out_path, rig_path, resume=resume, unattended=unattended,
                              progress=progress, observers=observers)
    stream = sys.stdout if outcome.exit_code == 0 else sys.stderr
    tail = ""
    if outcome.exit_code != 0 and outcome.pairs_done < outcome.pairs_total and Path(out_path).exists():
        command = resume_command(protocol_path, out_path, rig_path, unattended=unattended, progress=progress)
        log.info("to continue: %s", command)
        tail = f"; to continue, run: {command}"
    print(f"{out_path}: {outcome.message} (log: {outcome.log_path}){tail}", file=stream)
    return outcome.exit_code


def resume_command(protocol_path: str, out_path: str, rig_path: str | None, *, unattended: bool = False,
                   progress: bool = True) -> str:
    """The exact command that continues this run (same files, same options, plus --resume), quoted for
    a POSIX shell."""
    import shlex

    argv = ["speckle-lab", "acquire", str(protocol_path)]
    if rig_path:
        argv += ["--rig", str(rig_path)]
    argv += ["--out", str(out_path), "--resume"]
    if unattended:
        argv.append("--unattended")
    if not progress:
        argv.append("--no-progress")
    return shlex.join(argv)


def _run_engine(rig, out: Path, settings: RunSettings, progress: bool, observers: tuple = (),
                log_every_s: float = LOG_EVERY_S) -> RunOutcome:
    writer = RunWriter(out, settings.sync_interval_s)
    try:
        engine = Engine(rig, writer, settings, observers=list(observers))
    except BaseException:
        writer.close()
        raise
    total, already = len(engine.done), int(engine.done.sum())
    with stop_on_signals(engine.stop_requested) as stop, progress_bar(progress, total, already) as cb, \
            (contextlib.nullcontext() if progress else ProgressLog(total, already, log_every_s)) as plog:
        engine.progress = cb if plog is None else plog.update
        outcome = engine.run()
    if outcome.exit_code == EXIT_INTERRUPTED and stop.signum is not None:
        outcome.exit_code = stop.exit_code  # 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP
        outcome.message = f"stopped by {stop.name}: {outcome.message}"
        log.info("stopped by %s: exit %d", stop.name, outcome.exit_code)
    return outcome


# -- preflight -------------------------------------------------------------------------------------------

def make_operator(unattended: bool):
    """The person at the rig: the console, or nobody (``--unattended`` or no terminal)."""
    from hardware.drivers.manual import ConsoleOperator, UnattendedOperator

    if unattended or not sys.stdin.isatty():
        return UnattendedOperator()
    return ConsoleOperator()


def needs_a_person(settings: RunSettings, rig_file) -> list[tuple[str, str]]:
    """What only a person can do in this run, each with the options that would remove the need:
    [(what, fix)], empty when the run can go unattended."""
    from hardware.dark import describe_dark_source

    rig = rig_file.config
    where = rig_file.path or "the rig file"
    out = []
    if rig.stage.kind == "manual":
        out.append(("moving the camera (stage.kind = 'manual')",
                    f"a KDC101 stage: stage.kind = 'kinesis' and stage.serial in {where}"))
    if rig.changer.kind == "manual":
        out.append(("swapping diffusers (changer.kind = 'manual')",
                    f"an FW102C wheel: changer.kind = 'fw102c' and changer.port in {where}"))
    if settings.dark.frames > 0 and describe_dark_source(rig).manual:
        wheel = ("changer.dark_slot = the FW102C's blank slot, or " if rig.changer.kind == "fw102c"
                 else "")
        out.append(("blocking the laser for dark frames (no dark source in the rig file)",
                    f"{wheel}a [shutter] (kind = 'mff101' or 'ksc101', with its serial) in {where}, "
                    "or dark.frames = 0 in the protocol"))
    return out


def preflight_people(settings: RunSettings, rig_file, operator) -> None:
    """Refuses, before anything moves, a run that needs a person when nobody will answer, naming
    what is missing and the options that would fix it."""
    if getattr(operator, "interactive", False):
        return
    needs = needs_a_person(settings, rig_file)
    if needs:
        what = "; ".join(w for w, _ in needs)
        fixes = "; ".join(f for _, f in needs)
        raise UserError(f"this run needs a person ({what}) but it is unattended or has no terminal; "
                        f"to run it unattended set {fixes}; or run it attended, in a terminal")


def preflight_devices(rig, settings: RunSettings) -> None:
    """Checks the opened rig against the protocol before the first frame."""
    required = settings.required_stroke_mode
    if required is not None:
        mode = rig.slm.stroke_mode()
        if mode != required:
            raise UserError(f"SLM phase-stroke mode is {mode!r} but the protocol requires {required!r}; "
                            "set it on the EXULUS (or in the rig file's slm.stroke_mode)")
    window, target = tuple(rig.slm.window_shape), settings.target_px
    if target is not None and window != tuple(target):
        raise UserError(f"SLM window is {window[0]}x{window[1]} px but the protocol's patterns are "
                        f"{target[0]}x{target[1]} (faces.target_px; rig file slm.window_px)")

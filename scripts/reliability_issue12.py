"""The trials of issue 12 ("Lose nothing, let nothing in"), for scripts/reliability_report.py.

One function per class of defect; each adds rows to the report's table (cases tried, cases handled
as required, the first case that was not). Everything goes through the real ``speckle-lab`` command
(in-process, or in a child process where a crash, a hang or a signal must be seen as such).

- outputs that would destroy data (inspect, predict, train, evaluate, acquire, demo);
- crafted run files (tests/_crafted_runs.py) through inspect, train and ``acquire --resume``;
- a fuzz of run-file metadata (tests/test_runfile_fuzz.py's generator);
- SIGTERM / SIGHUP / Ctrl-C during ``acquire`` (then ``--resume``) and SIGTERM during ``train``;
- two processes on one output (HDF5 locking on and off), a notebook holding a run open;
- full disks before and during the layout, during the run, and under ``train``'s cache;
- memory and size bombs, special files;
- numbers that are not numbers (training options), and click usage errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = [
    "--model",
    "unet",
    "--model-arg",
    "base_channels=4",
    "--image-size",
    "16",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--device",
    "cpu",
    "--quiet",
]


def quiet_run(argv: list[str]) -> tuple[int, str]:
    from speckle_lab.cli import run

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run(argv)
    return code, err.getvalue()


def child(
    argv: list[str],
    timeout_s: float = 300,
    env: dict | None = None,
    code: str | None = None,
    memory_cap: int | None = None,
) -> subprocess.CompletedProcess | None:
    """``speckle-lab ARGV`` (or ``python -c CODE ARGV``) in a child; None when it timed out."""

    def cap():
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    cmd = [sys.executable, "-c", code, *argv] if code else [sys.executable, "-m", "speckle_lab.cli", *argv]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=full_env, cwd=ROOT, preexec_fn=cap
        )
    except subprocess.TimeoutExpired:
        return None


def one_line(code: int, err: str, want: int = 2) -> bool:
    lines = err.strip().splitlines()
    return code == want and len(lines) == 1 and "Traceback" not in err


class Count:
    """Counts cases and keeps the first failure's description."""

    def __init__(self):
        self.tried = self.good = 0
        self.first_bad = ""

    def __call__(self, ok: bool, what: str) -> None:
        self.tried += 1
        self.good += bool(ok)
        if not ok and not self.first_bad:
            self.first_bad = what[:240]


# -- fixtures ------------------------------------------------------------------------------------------


def _tiny_acquisition(work: Path):
    import tests._run_files as R
    from tests.test_locks import TINY

    protocol = R.write_toml(work / "tiny.toml", TINY)
    rig = R.write_toml(work / "tiny-rig.toml", R.TINY_SIM_RIG)
    run_file = work / "tiny.h5"
    assert quiet_run(R.acquire_argv(protocol, rig, run_file))[0] == 0
    return protocol, rig, run_file


def _checkpoint(work: Path) -> Path:
    from tests.tiny_dataset import train_tiny, write_tiny_dataset

    run_file = write_tiny_dataset(work / "ckpt-run.h5")
    train_tiny(run_file, work / "ckpt")
    return work / "ckpt" / "last.pt"


# -- outputs that would destroy data ------------------------------------------------------------------


def output_trials(table, work: Path) -> None:
    import torch
    from PIL import Image

    from tests.tiny_dataset import write_tiny_dataset

    print("output trials", flush=True)
    run_file = write_tiny_dataset(work / "x.h5")
    other = write_tiny_dataset(work / "other.h5", seed=1)
    disguised = work / "disguised.png"
    shutil.copy(other, disguised)
    protocol_png = work / "protocol.png"
    protocol_png.write_text('name = "x"\n[camera]\nroi_px = [8, 8]\n')
    ckpt_png = work / "ckpt.png"
    torch.save({"a": 1}, ckpt_png)
    frames = work / "frames"
    frames.mkdir()
    frame = frames / "frame.png"
    Image.fromarray((torch.rand(40, 48) * 255).byte().numpy()).save(frame)
    ckpt = _checkpoint(work)
    protocol, rig, tiny_run = _tiny_acquisition(work)
    data_log = work / "data.log"
    shutil.copy(tiny_run, data_log)
    a_file = work / "a-file.txt"
    a_file.write_text("precious")
    cases = [
        ("inspect RUN --sheet RUN", ["inspect", str(run_file), "--sheet", str(run_file)], [run_file]),
        ("inspect RUN --sheet OTHER.h5", ["inspect", str(run_file), "--sheet", str(other)], [other]),
        (
            "inspect --sheet a .png holding a run file",
            ["inspect", str(run_file), "--sheet", str(disguised)],
            [disguised],
        ),
        (
            "inspect --sheet a .png holding a protocol",
            ["inspect", str(run_file), "--sheet", str(protocol_png)],
            [protocol_png],
        ),
        (
            "inspect --sheet a .png holding a checkpoint",
            ["inspect", str(run_file), "--sheet", str(ckpt_png)],
            [ckpt_png],
        ),
        ("inspect --sheet a folder", ["inspect", str(run_file), "--sheet", str(frames)], [frame]),
        (
            "inspect --sheet inside a file",
            ["inspect", str(run_file), "--sheet", str(a_file / "s.png")],
            [a_file],
        ),
        ("inspect --sheet NAME.jpg", ["inspect", str(run_file), "--sheet", str(work / "s.jpg")], []),
        (
            "predict CKPT frames/frame.png --out frames",
            ["predict", str(ckpt), str(frame), "--out", str(frames)],
            [frame],
        ),
        ("predict --out a file", ["predict", str(ckpt), str(frame), "--out", str(a_file)], [a_file]),
        ("train RUN --out RUN", ["train", str(run_file), "--out", str(run_file), *TINY_TRAIN], [run_file]),
        ("train --out a file", ["train", str(run_file), "--out", str(a_file), *TINY_TRAIN], [a_file]),
        ("evaluate --out the checkpoint", ["evaluate", str(ckpt), str(run_file), "--out", str(ckpt)], [ckpt]),
        (
            "evaluate --out the run file",
            ["evaluate", str(ckpt), str(run_file), "--out", str(run_file)],
            [run_file],
        ),
        (
            "acquire --out the protocol (--resume)",
            [
                "acquire",
                str(protocol),
                "--rig",
                str(rig),
                "--out",
                str(protocol),
                "--resume",
                "--unattended",
                "--no-progress",
            ],
            [protocol],
        ),
        (
            "acquire --out run.log",
            [
                "acquire",
                str(protocol),
                "--rig",
                str(rig),
                "--out",
                str(work / "run.log"),
                "--unattended",
                "--no-progress",
            ],
            [],
        ),
        (
            "acquire whose log would land on a run file",
            [
                "acquire",
                str(protocol),
                "--rig",
                str(rig),
                "--out",
                str(work / "data.hdf5"),
                "--unattended",
                "--no-progress",
            ],
            [data_log],
        ),
        (
            "acquire --out a folder",
            [
                "acquire",
                str(protocol),
                "--rig",
                str(rig),
                "--out",
                str(frames),
                "--unattended",
                "--no-progress",
            ],
            [frame],
        ),
        ("demo --out a file", ["demo", "--out", str(a_file), "--fast", "--no-progress"], [a_file]),
    ]
    c = Count()
    for what, argv, precious in cases:
        before = {p: p.read_bytes() for p in precious}
        code, err = quiet_run(argv)
        intact = all(p.read_bytes() == b for p, b in before.items())
        c(one_line(code, err) and intact, f"{what}: exit {code}, intact {intact}: {err.strip()[:160]}")
    table.add(
        "an output that is an input, a run file, a checkpoint or a protocol, a folder, inside a file",
        c.tried,
        c.good,
        "exit 2, one line, every file intact",
        c.first_bad,
    )


# -- crafted run files ----------------------------------------------------------------------------------


def crafted_trials(table, work: Path) -> None:
    import tests._run_files as R
    from speckle_core.errors import UserError
    from speckle_core.runfile import open_run
    from tests._crafted_runs import CASES, VICTIM_BYTES, make_victim
    from tests.test_safety_runfiles import good_run

    print("crafted run-file trials", flush=True)
    protocol, rig, tiny_run = _tiny_acquisition(work)
    per = {"inspect": Count(), "train": Count(), "open_run": Count(), "acquire --resume": Count()}
    for i, (name, (craft, where)) in enumerate(CASES.items()):
        folder = work / f"case{i}"
        folder.mkdir()
        victim = make_victim(folder)
        if "read" in where:
            path = good_run(folder / "run.h5")
            craft(path, victim)
            code, err = quiet_run(["inspect", str(path), "--sheet", str(folder / "s.png")])
            per["inspect"](
                one_line(code, err) and str(path) in err and victim.read_bytes() == VICTIM_BYTES,
                f"{name}: exit {code}: {err.strip()[:160]}",
            )
            code, err = quiet_run(["train", str(path), "--out", str(folder / "model"), *TINY_TRAIN])
            per["train"](
                one_line(code, err) and str(path) in err and victim.read_bytes() == VICTIM_BYTES,
                f"{name}: exit {code}: {err.strip()[:160]}",
            )
            if name != "bit-rot-pattern":  # found when the objects are decompressed, not on open
                try:
                    open_run(path).close()
                    ok = False
                except UserError:
                    ok = True
                except Exception:  # noqa: BLE001 - anything but a one-line refusal is a failure
                    ok = False
                per["open_run"](ok and victim.read_bytes() == VICTIM_BYTES, name)
        if "resume" in where:
            path = folder / "resume.h5"
            shutil.copy(tiny_run, path)
            craft(path, victim)
            code, err = quiet_run(R.acquire_argv(protocol, rig, path, resume=True))
            per["acquire --resume"](
                one_line(code, err) and victim.read_bytes() == VICTIM_BYTES,
                f"{name}: exit {code}: {err.strip()[:160]}",
            )
    for command, c in per.items():
        table.add(
            f"crafted run files (external storage/links, virtual datasets, types, UTF-8, bit rot, "
            f"...) to {command}",
            c.tried,
            c.good,
            "refused: exit 2, one line naming the file, the file outside the run untouched",
            c.first_bad,
        )


def fuzz_trials(table, work: Path, n: int) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    import tests.test_runfile_fuzz as F
    from speckle_core.errors import UserError
    from speckle_core.runfile import RunWriter
    from tests.test_safety_runfiles import good_run

    print("metadata fuzz trials", flush=True)
    base = good_run(work / "base.h5")
    counts = {"inspect": Count(), "acquire --resume (the writer's checks)": Count(), "train": Count()}
    crash = work / "crash.log"
    os.environ["SPECKLE_LAB_CRASH_LOG"] = str(crash)

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @given(mutation=F.mutations())
    def one(mutation):
        folder = Path(tempfile_dir(work))
        path = folder / "run.h5"
        shutil.copy(base, path)
        F.apply(path, mutation)
        code, err = quiet_run(["inspect", str(path), "--sheet", str(folder / "s.png")])
        ok = (
            code in (0, 2)
            and not crash.exists()
            and (code == 0 or (one_line(code, err) and str(path) in err))
        )
        counts["inspect"](ok, f"{mutation}: exit {code}: {err.strip()[:160]}")
        try:
            RunWriter(path).close()
            ok = True
        except UserError as e:
            ok = str(path) in str(e)
        except Exception as e:  # noqa: BLE001 - counted
            ok = False
            err = repr(e)
        counts["acquire --resume (the writer's checks)"](ok, f"{mutation}: {err[:160]}")
        if counts["train"].tried < max(1, n // 5):
            code, err = quiet_run(["train", str(path), "--out", str(folder / "m"), *TINY_TRAIN])
            ok = code in (0, 2) and not crash.exists() and (code == 0 or one_line(code, err))
            counts["train"](ok, f"{mutation}: exit {code}: {err.strip()[:160]}")
        with contextlib.suppress(OSError):
            crash.unlink()
        shutil.rmtree(folder, ignore_errors=True)

    one()
    for command, c in counts.items():
        table.add(
            f"run-file metadata fuzzed (attributes, strings, dtypes, shapes) to {command}",
            c.tried,
            c.good,
            "exit 0, or exit 2 with one line naming the file; no crash log",
            c.first_bad,
        )


_counter = [0]


def tempfile_dir(work: Path) -> Path:
    _counter[0] += 1
    d = work / f"fuzz{_counter[0]}"
    d.mkdir()
    return d


# -- signals -------------------------------------------------------------------------------------------


def signal_trials(table, work: Path, n: int) -> None:
    import tests._run_files as R
    import tests.test_signals as S
    from speckle_core.signals import exit_code_for

    print("signal trials", flush=True)
    # 48 pairs at >= 150 ms each (the test's 24 doubled): every signal lands while pairs are captured
    slow = {**S.SLOW_PROTOCOL, "faces": {**S.SLOW_PROTOCOL["faces"], "count": 16}}
    protocol, rig, whole = R.uninterrupted_run(work, "slow", slow, run=lambda a: quiet_run(a)[0])
    for signum, times in ((signal.SIGTERM, n), (signal.SIGHUP, n), (signal.SIGINT, 1)):
        c = Count()
        for k in range(times):
            out = work / f"{signum.name}-{k}.h5"
            proc = S.start_acquire(protocol, rig, out)
            try:
                S.wait_for_pairs(out, proc)
                time.sleep(0.5 * k)  # spread the moments over the run
                proc.send_signal(signum)
                _, err = proc.communicate(timeout=120)
                done = R.assert_done_rows_hold_the_reference_frames(whole, out)
                ended = "run ended" in out.with_suffix(".log").read_text()
                resumed = quiet_run(R.acquire_argv(protocol, rig, out, resume=True))[0] == 0
                R.assert_same_run(whole, out)
                ok = (
                    proc.returncode == exit_code_for(signum)
                    and ended
                    and resumed
                    and done > 0
                    and "Traceback" not in err
                )
                c(ok, f"exit {proc.returncode}, log ended {ended}, {done} done: {err.strip()[-160:]}")
            except AssertionError as e:
                proc.kill()
                c(False, str(e)[:200])
        table.add(
            f"{signum.name} to `acquire` mid-run, then `--resume`",
            c.tried,
            c.good,
            f"exit {exit_code_for(signum)}, done rows right, the log ends, resumed to the same bytes",
            c.first_bad,
        )
    _train_sigterm(table, work)


def _train_sigterm(table, work: Path) -> None:
    from tests.tiny_dataset import write_tiny_dataset

    run_file = write_tiny_dataset(work / "train-run.h5", n_objects=12)
    out = work / "train-out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "speckle_lab.cli",
        "train",
        str(run_file),
        "--out",
        str(out),
        "--model",
        "unet",
        "--model-arg",
        "base_channels=4",
        "--image-size",
        "16",
        "--epochs",
        "200",
        "--batch-size",
        "2",
        "--device",
        "cpu",
        "--quiet",
    ]
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    t_end = time.monotonic() + 300
    while time.monotonic() < t_end and proc.poll() is None and not (out / "last.pt").exists():
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    from reconstruction.checkpoint import load_checkpoint

    try:
        load_checkpoint(out / "last.pt")
        loads = True
    except Exception:  # noqa: BLE001 - counted
        loads = False
    ok = proc.returncode == 143 and "Traceback" not in err and loads and not list(out.glob("*.tmp*"))
    table.add(
        "SIGTERM to `train` mid-run",
        1,
        int(ok),
        "exit 143, last.pt loads, no temporary file left",
        f"exit {proc.returncode}, last.pt loads {loads}: {err.strip()[-160:]}",
    )


# -- two processes, one output -------------------------------------------------------------------------

HOLD = (
    "import sys, time\nfrom speckle_core.fileio import output_lock\noutput_lock(sys.argv[1]).acquire()\n"
    "print('ready', flush=True)\ntime.sleep(120)\n"
)
NOTEBOOK = (
    "import sys, time, h5py\nf = h5py.File(sys.argv[1], 'r')\nprint('ready', flush=True)\ntime.sleep(120)\n"
)


def _holder(code: str, path: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    proc.stdout.readline()
    return proc


def concurrency_trials(table, work: Path) -> None:
    import tests._run_files as R
    from tests.tiny_dataset import write_tiny_dataset

    print("two-processes trials", flush=True)
    protocol, rig, tiny_run = _tiny_acquisition(work)
    run_file = write_tiny_dataset(work / "t.h5")
    for locking in ("TRUE", "FALSE"):
        os.environ["HDF5_USE_FILE_LOCKING"] = locking
        env = {"HDF5_USE_FILE_LOCKING": locking}
        rows = {
            "a second `acquire` on the same --out": (
                HOLD,
                work / f"a-{locking}.h5",
                lambda p: R.acquire_argv(protocol, rig, p),
            ),
            "`acquire --resume` while a notebook holds the file": (
                NOTEBOOK,
                tiny_run,
                lambda p: R.acquire_argv(protocol, rig, p, resume=True),
            ),
            "a second `train` on the same --out": (
                HOLD,
                work / f"train-{locking}",
                lambda p: ["train", str(run_file), "--out", str(p), *TINY_TRAIN],
            ),
        }
        for what, (code, path, argv) in rows.items():
            proc = _holder(code, path, env)
            try:
                rc, err = quiet_run(argv(path))
            finally:
                proc.kill()
                proc.wait()
            ok = one_line(rc, err) and f"PID {proc.pid}" in err
            table.add(
                f"{what} (HDF5_USE_FILE_LOCKING={locking})",
                1,
                int(ok),
                "exit 2, one line naming the other process's PID",
                err.strip()[:200],
            )
    os.environ.pop("HDF5_USE_FILE_LOCKING", None)


# -- full disks ----------------------------------------------------------------------------------------


def _mount(mnt: Path, size: str = "8m") -> bool:
    mnt.mkdir(exist_ok=True)
    return (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        == 0
    )


def _umount(mnt: Path) -> None:
    if subprocess.run(["umount", str(mnt)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _clear(mnt: Path) -> None:
    for p in mnt.iterdir():
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def disk_layout_trials(table, work: Path) -> None:
    import tests._run_files as R
    import tests.test_disk_full as D

    print("full-disk (layout, cache) trials", flush=True)
    protocol, rig, whole = R.uninterrupted_run(work, "disk", D.DISK_PROTOCOL, run=lambda a: quiet_run(a)[0])
    mnt = work / "mnt"
    if not _mount(mnt):
        table.add("full disk before/while laying out a run (tmpfs)", 0, 0, "skipped: mounting needs root")
        return
    try:
        for mode, margins, expect in (
            (
                "check",
                (0, 24, 32, 40, 64, 256, 1024),
                "refused before the layout: exit 2, one line naming "
                "the disk full with needed vs free, nothing left",
            ),
            (
                "bypass",
                (0, 8, 16, 24, 32, 40, 48, 64),
                "HDF5 met ENOSPC while laying out: exit 2, one line, no crash, no .creating left",
            ),
        ):
            c = Count()
            for k in margins:
                _clear(mnt)
                D.fill(mnt, k * 1024)
                res = child(
                    [
                        "bypass" if mode == "bypass" else "check",
                        *R.acquire_argv(protocol, rig, mnt / "run.h5"),
                    ],
                    code=D.LAYOUT_CHILD,
                )
                ok = (
                    res is not None
                    and one_line(res.returncode, res.stderr)
                    and "full" in res.stderr
                    # no run file and no half-made .creating (a run.log of the attempt may stay)
                    and not {"run.h5", "run.h5.creating"} & {p.name for p in mnt.iterdir()}
                )
                said = res.stderr.strip() if res else "hung"
                c(ok, f"{k} KiB left: exit {res and res.returncode}: {said[:160]}")
            what = (
                "a disk with 0-1 MiB left before `acquire` lays out its file"
                if mode == "check"
                else "a disk that fills between the free-space check and the layout (0-64 KiB left)"
            )
            table.add(what, c.tried, c.good, expect, c.first_bad)
        c = Count()
        for k in (10, 30, 60, 90):
            _clear(mnt)
            out = mnt / "run.h5"
            code, err = _fill_during_run(mnt, out, protocol, rig, k)
            try:
                D.stopped_for_lack_of_space(code, err, out, whole)
                (mnt / "ballast").unlink()
                resumed = quiet_run(R.acquire_argv(protocol, rig, out, resume=True))[0] == 0
                R.assert_same_run(whole, out)
                c(resumed, err)
            except AssertionError as e:
                c(False, f"after {k} frames: {str(e)[:160]}")
        table.add(
            "a real 8 MiB tmpfs filled by another program during the run (after 10/30/60/90 frames), "
            "space freed, `--resume`",
            c.tried,
            c.good,
            "exit 1, one line saying the disk is full, file valid, resumed to the same bytes",
            c.first_bad,
        )
        _train_cache_full(table, mnt)
    finally:
        _umount(mnt)


def _fill_during_run(mnt: Path, out: Path, protocol, rig, after: int):
    import tests._run_files as R
    import tests.test_disk_full as D
    from speckle_core.runfile import RunWriter

    original, frames = RunWriter.write_pair, [0]

    def write_pair(self, *args, **kwargs):
        frames[0] += 1
        if frames[0] == after:
            D.fill(mnt)
        return original(self, *args, **kwargs)

    RunWriter.write_pair = write_pair
    try:
        return quiet_run(R.acquire_argv(protocol, rig, out))
    finally:
        RunWriter.write_pair = original


def _train_cache_full(table, mnt: Path) -> None:
    import tests.test_disk_full as D
    from tests.tiny_dataset import write_tiny_dataset

    c = Count()
    for k in (0, 16, 64, 256):
        _clear(mnt)
        run_file = write_tiny_dataset(mnt / "run.h5", n_objects=12)
        D.fill(mnt, k * 1024)
        res = child(
            [
                "train",
                str(run_file),
                "--out",
                str(mnt / "out"),
                "--model",
                "unet",
                "--model-arg",
                "base_channels=4",
                "--image-size",
                "64",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        left = [p.name for p in mnt.rglob("*") if ".tmp" in p.name]
        ok = (
            res is not None
            and res.returncode in (1, 2)
            and len(res.stderr.strip().splitlines()) == 1
            and "full" in res.stderr
            and "Traceback" not in res.stderr
            and not left
            and res.returncode > 0
        )
        c(
            ok,
            f"{k} KiB left: exit {res and res.returncode}: {(res.stderr.strip() if res else 'hung')[:160]} "
            f"left {left}",
        )
    table.add(
        "`train` with 0-256 KiB left for its cache and checkpoints",
        c.tried,
        c.good,
        "one line naming the full disk, no temporary file left",
        c.first_bad,
    )


# -- bombs and special files -------------------------------------------------------------------------------


def bomb_trials(table, work: Path) -> None:
    import numpy as np

    import tests.test_safety_bombs as B

    print("bomb trials", flush=True)
    ckpt = _checkpoint(work)
    header = B.npy_header_only(work / "header.npy", (60000, 60000))
    sparse = B.sparse_npy(work / "sparse.npy", 50000)
    fifo = work / "fifo.npy"
    os.mkfifo(fifo)
    faces_fifo = work / "faces-fifo.tgz"
    os.mkfifo(faces_fifo)
    folder = work / "faces"
    folder.mkdir()
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 40), dtype=np.uint8)).save(
            folder / f"face_{i}.png"
        )
    with open(folder / "huge.png", "wb") as fh:
        fh.truncate(3 * 10**9)
    os.mkfifo(folder / "pipe.png")
    zero = work / "zero.npy"
    zero.symlink_to("/dev/zero")
    (work / "p1").mkdir()
    (work / "p2").mkdir()
    big_ckpt = _huge_checkpoint(ckpt, work / "wide.pt")
    run_file = ckpt.parent.parent / "ckpt-run.h5"
    cases = [
        (
            "predict: a .npy header claiming 60000² pixels",
            ["predict", str(ckpt), str(header), "--out", str(work / "o")],
            (2,),
        ),
        (
            "predict: a real sparse 50000² .npy",
            ["predict", str(ckpt), str(sparse), "--out", str(work / "o")],
            (2,),
        ),
        ("predict: a FIFO as a frame", ["predict", str(ckpt), str(fifo), "--out", str(work / "o")], (2,)),
        ("predict: /dev/zero as a frame", ["predict", str(ckpt), str(zero), "--out", str(work / "o")], (2,)),
        (
            "plan: a FIFO as faces.source",
            ["plan", str(B.protocol_with_source(work / "p1", faces_fifo))],
            (2,),
        ),
        (
            "acquire: a 3 GB file and a FIFO in the faces folder",
            [
                "acquire",
                str(B.protocol_with_source(work / "p2", folder)),
                "--out",
                str(work / "faces.h5"),
                "--unattended",
                "--no-progress",
            ],
            (0, 1, 2),
        ),
        (
            "train --image-size 100000",
            ["train", str(run_file), "--out", str(work / "t1"), "--image-size", "100000", "--quiet"],
            (2,),
        ),
        (
            "evaluate: a checkpoint with base_channels = 10^6",
            ["evaluate", str(big_ckpt), str(run_file), "--out", str(work / "e1")],
            (2,),
        ),
    ]
    c = Count()
    for what, argv, codes in cases:
        t0 = time.monotonic()
        res = child(argv, timeout_s=300, memory_cap=3 * 2**30)
        ok = (
            res is not None
            and res.returncode in codes
            and "Traceback" not in res.stderr
            and (res.returncode != 2 or len(res.stderr.strip().splitlines()) == 1)
        )
        c(
            ok,
            f"{what}: exit {res and res.returncode} in {time.monotonic() - t0:.0f} s: "
            f"{(res.stderr.strip() if res else 'hung')[:160]}",
        )
    table.add(
        "memory and size bombs, special files (in a child capped at 3 GiB, 300 s)",
        c.tried,
        c.good,
        "refused from the header or skipped: exit 2 and one line (the faces folder: its good faces used), "
        "no hang, no MemoryError",
        c.first_bad,
    )


def _huge_checkpoint(ckpt: Path, out: Path) -> Path:
    import torch

    state = torch.load(ckpt, weights_only=True)
    state["model_config"] = {
        **state["model_config"],
        "model_args": {**state["model_config"].get("model_args", {}), "base_channels": 10**6},
    }
    torch.save(state, out)
    return out


# -- numbers and usage ---------------------------------------------------------------------------------------


def option_trials(table, work: Path) -> None:
    from tests.tiny_dataset import write_tiny_dataset

    print("option trials", flush=True)
    run_file = write_tiny_dataset(work / "run.h5")
    base = [
        "train",
        str(run_file),
        "--out",
        str(work / "o"),
        "--model",
        "unet",
        "--model-arg",
        "base_channels=4",
        "--image-size",
        "16",
        "--epochs",
        "1",
        "--quiet",
    ]
    bad = [
        ["--lr", "inf"],
        ["--lr", "nan"],
        ["--lr", "-1"],
        ["--weight-decay", "-1"],
        ["--weight-decay", "nan"],
        ["--eval-max", "-1"],
        ["--batch-size", "0"],
        ["--test-fraction", "1.5"],
        ["--clip-grad-norm", "-1"],
        ["--epochs", "0"],
    ]
    c = Count()
    for i, extra in enumerate(bad):
        base[3] = str(work / f"o{i}")  # a fresh --out each: an existing one would be refused anyway
        code, err = quiet_run([*base, *extra])
        c(one_line(code, err), f"{' '.join(extra)}: exit {code}: {err.strip()[:160]}")
    table.add(
        "training options that are not numbers or out of range (inf, NaN, negative, zero)",
        c.tried,
        c.good,
        "exit 2, one line naming the option",
        c.first_bad,
    )
    usage = [
        ["acquire"],
        ["inspect"],
        ["train", "x.h5"],
        ["train", "x.h5", "--out", "o", "--lr", "fast"],
        ["nosuchcommand"],
        ["plan", "--rigg", "x"],
        ["predict"],
        ["evaluate", "a.pt"],
    ]
    c = Count()
    for argv in usage:
        code, err = quiet_run(argv)
        c(one_line(code, err), f"{' '.join(argv)}: exit {code}: {err.strip()[:160]}")
    table.add(
        "click usage errors (missing argument, unknown option or command, bad type)",
        c.tried,
        c.good,
        "exit 2, one line",
        c.first_bad,
    )

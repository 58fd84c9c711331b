"""Reruns the reliability trials of issues 8 and 12 at a larger scale than the test suite, and prints
the table of docs/reliability.md: what was tried, how many times, and what happened.

    .venv/bin/python scripts/reliability_report.py [--kills 20] [--mutations 1000] [--signals 3]
        [--fuzz 200] [--only GROUP,...] [--out DIR]

Trials (all on the simulated rig, through the real ``speckle-lab`` command):

- SIGKILL: kills during file creation (halfway, before the rename), as the done flags are written,
  and at random moments (seeded), each followed by ``--resume``; after every kill the file must open
  with plain h5py with every done row holding the uninterrupted run's frame, and the final file
  must equal the uninterrupted run (tests/test_kill_resume.py);
- device faults at set rates, one device at a time and all at once, and devices that keep failing
  (tests/test_faults.py);
- a full disk: ENOSPC on a frame write and on fsync (tests/test_disk_full.py);
- issue 12 (scripts/reliability_issue12.py): outputs that would destroy data, crafted run files,
  fuzzed run-file metadata, signals, two processes on one output, full disks before, during and
  after the layout and under train's cache (a real tmpfs, as root), memory and size bombs, options
  that are not numbers, click usage errors;
- the bad-input corpus (tests/test_bad_input.py) and generated protocol mutations
  (tests/test_protocol_properties.py).

Each row counts outcomes; a row whose "bad" count is non-zero names what went wrong (first case).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")


class Table:
    def __init__(self):
        self.rows: list[tuple[str, int, str, str]] = []

    def add(self, what: str, tried: int, good: int, expected: str, bad_note: str = "") -> None:
        outcome = f"{good}/{tried} {expected}"
        if tried - good:
            outcome += f"; {tried - good} not: {bad_note}"
        self.rows.append((what, tried, outcome, ""))
        print(f"  {what}: {outcome}", flush=True)

    def markdown(self) -> str:
        lines = ["| trial | times | what happened |", "| --- | ---: | --- |"]
        lines += [f"| {w} | {n} | {o} |" for w, n, o, _ in self.rows]
        return "\n".join(lines)


def quiet_run(argv: list[str]) -> tuple[int, str]:
    from speckle_lab.cli import run

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run(argv)
    return code, err.getvalue()


def quiet_exit_code(argv: list[str]) -> int:
    return quiet_run(argv)[0]


# -- SIGKILL ------------------------------------------------------------------------------------------


def kill_trials(table: Table, work: Path, n_kills: int) -> None:
    import tests._run_files as R
    import tests.test_kill_resume as K

    print("SIGKILL trials", flush=True)
    launcher = K.Launcher()
    try:
        protocol = R.write_toml(work / "kill.toml", K.KILL_PROTOCOL)
        rig = R.write_toml(work / "rig.toml", R.TINY_SIM_RIG)
        whole = work / "whole.h5"
        child = launcher.start(R.acquire_argv(protocol, rig, whole))
        while K.run_starts(whole.with_suffix(".log")) == 0 and child.poll() is None:
            time.sleep(0.002)
        t0 = time.monotonic()
        assert child.wait() == 0
        case = (protocol, rig, whole, time.monotonic() - t0)

        creation_ok = creation = 0
        for i in range(3):
            creation += 2
            try:
                K.kill_during_creation(launcher, case, work / f"c{i}.h5")
                creation_ok += 2
            except AssertionError as e:
                print("   ", e)
        table.add(
            "SIGKILL while the file is created (halfway through the layout; before the rename)",
            creation,
            creation_ok,
            "left no run file, only `RUN.h5.creating`; `--resume` started afresh",
        )

        rng = random.Random(2026)
        trace: list = []
        runs = same = 0
        kills = 0
        failures = []
        while kills < n_kills:
            runs += 1
            part = work / f"part{runs}.h5"
            try:
                got, _ = K.kill_at_random_until_done(
                    launcher, case, part, rng, runs == 1, trace, already=kills, target=n_kills
                )
                kills += got
                R.assert_same_run(whole, part)
                same += 1
            except AssertionError as e:
                failures.append(str(e)[:200])
            if runs > 4 * n_kills:
                break
        random_kills = [t for t in trace if t[0] == "random" and t[2] != 0]
        sync_kills = [t for t in trace if t[0] == "sync"]
        table.add(
            "SIGKILL at random moments of a run (seeded delays), then `--resume`",
            len(random_kills),
            len(random_kills),
            "left a file that plain h5py opens, done rows = the uninterrupted run's "
            f"frames, no done flag lost (pairs done after each: {[t[3] for t in random_kills]})",
        )
        table.add(
            "SIGKILL as the done flags are written (frames and metadata already fsync'ed)",
            len(sync_kills),
            len(sync_kills),
            "left a valid file; resumed to the same bytes",
        )
        table.add(
            "killed-and-resumed runs compared with an uninterrupted run",
            runs,
            same,
            "equal byte for byte in /objects, /pairs (timestamps aside), block exposures, darks, references",
            "; ".join(failures[:1]),
        )
    finally:
        launcher.close()


# -- faults ------------------------------------------------------------------------------------------


def fault_trials(table: Table, work: Path) -> None:
    import tests._run_files as R
    import tests.test_faults as F

    print("fault trials", flush=True)
    protocol, _, whole = R.uninterrupted_run(work, "faults", F.FAULT_PROTOCOL, run=quiet_exit_code)
    for fault, rate, logged in F.EACH:
        out = work / f"{fault}.h5"
        code, err = quiet_run(
            R.acquire_argv(protocol, R.write_toml(work / f"{fault}.toml", F.faulty_rig({fault: rate})), out)
        )
        log = out.with_suffix(".log").read_text() if out.with_suffix(".log").exists() else ""
        retries = sum(1 for line in log.splitlines() if logged in line and "retrying" in line)
        good = 0
        try:
            assert code == 0, err
            R.assert_same_run(whole, out)
            good = 1
        except AssertionError as e:
            err = str(e)[:160]
        table.add(
            f"{fault} at rate {rate} per operation (retries 100, no backoff)",
            1,
            good,
            f"completed every pair, {retries} faults retried and logged, data = the fault-free run",
            err,
        )
    out = work / "moderate.h5"
    code, err = quiet_run(
        R.acquire_argv(protocol, R.write_toml(work / "moderate.toml", F.faulty_rig(F.MODERATE)), out)
    )
    retries = out.with_suffix(".log").read_text().count("retrying")
    try:
        assert code == 0, err
        R.assert_same_run(whole, out)
        good = 1
    except AssertionError as e:
        good, err = 0, str(e)[:160]
    rates = ", ".join(f"{k} {v}" for k, v in F.MODERATE.items())
    table.add(
        f"all five faults at once ({rates})",
        1,
        good,
        f"completed, {retries} retries logged, data = the fault-free run",
        err,
    )
    for fault, rate, retries_allowed, device in F.STUBBORN:
        p = R.write_toml(
            work / f"s-{fault}.toml",
            {**F.FAULT_PROTOCOL, "retry": {**F.FAULT_PROTOCOL["retry"], "max_retries": retries_allowed}},
        )
        out = work / f"stubborn-{fault}.h5"
        code, err = quiet_run(
            R.acquire_argv(p, R.write_toml(work / f"sr-{fault}.toml", F.faulty_rig({fault: rate})), out)
        )
        lines = err.strip().splitlines()
        done = 0
        try:
            assert code == 1 and len(lines) == 1 and f"{device}:" in lines[0], err
            done = R.assert_done_rows_hold_the_reference_frames(whole, out)
            good = 1
        except AssertionError as e:
            good, err = 0, str(e)[:160]
        table.add(
            f"{fault} at rate {rate}, {retries_allowed} retries (a device that keeps failing)",
            1,
            good,
            f"stopped cleanly: exit 1, one line naming `{device}`, {done} finished pairs kept with "
            "the fault-free bytes",
            err,
        )


# -- disk full ------------------------------------------------------------------------------------------


def enospc_after(kind: str, k: int) -> tuple[Callable[[], None], Callable[[], None]]:
    """(inject, undo): inject makes the (k+1)-th frame write ("frame write") or fsync ("fsync")
    and every later one fail with ENOSPC; undo restores h5py's and os's originals."""
    import h5py

    original_set, original_fsync, calls = h5py.Dataset.__setitem__, os.fsync, [0]

    def setitem(ds, key, value):
        if ds.name == "/pairs/speckle":
            calls[0] += 1
            if calls[0] > k:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_set(ds, key, value)

    def fsync(fd):
        calls[0] += 1
        if calls[0] > k:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original_fsync(fd)

    def inject() -> None:
        if kind == "fsync":
            os.fsync = fsync
        else:
            h5py.Dataset.__setitem__ = setitem

    def undo() -> None:
        h5py.Dataset.__setitem__, os.fsync = original_set, original_fsync

    return inject, undo


def disk_trials(table: Table, work: Path) -> None:
    import tests._run_files as R
    import tests.test_disk_full as D

    print("disk-full trials", flush=True)
    protocol, rig, whole = R.uninterrupted_run(work, "disk", D.DISK_PROTOCOL, run=quiet_exit_code)

    def trial(name: str, out: Path, inject, undo) -> tuple[bool, bool, str]:
        inject()
        try:
            code, err = quiet_run(R.acquire_argv(protocol, rig, out))
        finally:
            undo()
        D.stopped_for_lack_of_space(code, err, out, whole)
        assert quiet_run(R.acquire_argv(protocol, rig, out, resume=True))[0] == 0
        R.assert_same_run(whole, out)
        line = err.strip()
        message = line.split("; to continue, run:")[0]  # then the exact --resume command, naming it again
        clear = (
            bool(re.search(r"no space left|disk is full|ENOSPC", line, re.I)) and message.count(str(out)) == 1
        )
        return True, clear, line

    for kind, points in (("frame write", (5, 30, 60, 100)), ("fsync", (3, 6, 9, 12))):
        good = clear = 0
        example = ""
        for k in points:
            out = work / f"{kind.replace(' ', '-')}-{k}.h5"
            inject, undo = enospc_after(kind, k)
            try:
                ok, is_clear, example = trial(kind, out, inject, undo)
                good += ok
                clear += is_clear
            except AssertionError as e:
                example = str(e)[:200]
        table.add(
            f"ENOSPC injected at the {kind} (after {', '.join(map(str, points))} calls)",
            len(points),
            good,
            f"exit 1, one line, file valid, `--resume` completed to the same bytes; message says the disk "
            f"is full and names the file once in {clear}/{len(points)}",
            example,
        )

    # the real small filesystem, filled during the run: scripts/reliability_issue12.disk_layout_trials


# -- bad input ---------------------------------------------------------------------------------------------


def bad_input_trials(table: Table, work: Path, n_mutations: int) -> None:
    import tests.test_bad_input as B

    print("bad-input corpus", flush=True)
    groups = {
        "protocol files": B.PROTOCOL_CASES,
        "rig files": B.RIG_CASES,
        "face sources (images, archives)": B.FACE_CASES,
        "run files (HDF5) to inspect/train/evaluate/resume": B.RUN_CASES,
        "checkpoints to evaluate/predict": B.CHECKPOINT_CASES,
        "predict inputs": B.PREDICT_INPUT_CASES,
    }
    cwd = os.getcwd()
    for group, cases in groups.items():
        good, bad = 0, []
        for case in cases:
            d = work / "bad" / case.id
            d.mkdir(parents=True)
            crash = d / "crash.log"
            os.environ["SPECKLE_LAB_CRASH_LOG"] = str(crash)
            os.chdir(d)
            try:
                argv = case.make(d)
                code, err = quiet_run(argv)
            finally:
                os.chdir(cwd)
            lines = err.strip().splitlines()
            marker = list((work / "bad").rglob(B.MARKER))
            ok = (
                code == 2
                and len(lines) == 1
                and "Traceback" not in err
                and not crash.exists()
                and not marker
                and (case.names is None or case.names.lower() in lines[0].lower())
            )
            good += ok
            if not ok:
                why = "crash" if crash.exists() else f"exit {code}" if code != 2 else "message"
                bad.append(f"{case.id} ({why})")
        table.add(
            f"bad input: {group}",
            len(cases),
            good,
            "exit 2, one line naming the file/key/value, no traceback, no payload ran",
            ", ".join(bad),
        )
    os.environ.pop("SPECKLE_LAB_CRASH_LOG", None)

    import resource

    good, bad = 0, []
    for kind, make in B.SPECIAL_FILES.items():
        d = work / "special" / kind
        d.mkdir(parents=True)
        path = make(d)
        env = {**os.environ, "SPECKLE_LAB_CRASH_LOG": str(d / "crash.log")}
        try:
            res = subprocess.run(
                [sys.executable, "-m", "speckle_lab.cli", "plan", path], capture_output=True, text=True,
                timeout=10, env=env, cwd=ROOT,
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 * 2**29, 3 * 2**29)),
            )
            lines = res.stderr.strip().splitlines()
            if res.returncode == 2 and len(lines) == 1:
                good += 1
            else:
                bad.append(f"{kind} (exit {res.returncode}: {lines[-1][:80] if lines else ''})")
        except subprocess.TimeoutExpired:
            bad.append(f"{kind} (still reading after 10 s)")
    table.add("bad input: special files as a protocol (/dev/zero, a FIFO)", 2, good,
              "exit 2, one line", ", ".join(bad))

    from hypothesis import HealthCheck, Phase, given, settings

    import tests.test_protocol_properties as P
    from speckle_core.errors import UserError

    outcomes: collections.Counter = collections.Counter()
    examples: dict = {}
    folder = work / "mutations"
    folder.mkdir()

    @settings(
        max_examples=n_mutations,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=P.mutated())
    def scan(case):
        doc, key, what = case
        kind = (
            "unknown key"
            if what.startswith("unknown")
            else "beyond bound"
            if " beyond " in what
            else "wrong type"
            if "(was" in what
            else "NaN/inf/1e30"
        )
        try:
            P.load_doc(folder, doc)
            result = "accepted"
        except UserError as e:
            result = (
                "refused, key named" if key in str(e) and "\n" not in str(e) else "refused, key not named"
            )
        except Exception as e:  # noqa: BLE001 - tallied
            result = f"crashed ({type(e).__name__})"
        outcomes[(kind, result)] += 1
        examples.setdefault((kind, result), what)

    scan()
    for kind in ("wrong type", "beyond bound", "NaN/inf/1e30", "unknown key"):
        tried = sum(n for (k, _), n in outcomes.items() if k == kind)
        good = outcomes[(kind, "refused, key named")]
        bad = [
            f"{r} ×{n}, e.g. `{examples[(k, r)]}`"
            for (k, r), n in outcomes.items()
            if k == kind and r != "refused, key named"
        ]
        table.add(
            f"generated protocol, one value mutated: {kind}",
            tried,
            good,
            "refused with one line naming the key",
            "; ".join(bad),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20, help="random SIGKILLs (default 20)")
    ap.add_argument("--mutations", type=int, default=1000, help="generated protocol mutations (default 1000)")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--signals", type=int, default=3, help="SIGTERMs and SIGHUPs to acquire (default 3 each)")
    ap.add_argument("--fuzz", type=int, default=200, help="fuzzed run-file metadata cases (default 200)")
    ap.add_argument("--only", default=None,
                    help="comma-separated groups: kill,faults,disk,bad,outputs,crafted,fuzz,signals,"
                         "concurrency,disk-layout,bombs,options (default: all)")
    args = ap.parse_args()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    table = Table()
    t0 = time.monotonic()
    try:
        import scripts.reliability_issue12 as I12

        groups = (
            ("kill", lambda d: kill_trials(table, d, args.kills)),
            ("faults", lambda d: fault_trials(table, d)),
            ("disk", lambda d: disk_trials(table, d)),
            ("bad", lambda d: bad_input_trials(table, d, args.mutations)),
            # issue 12
            ("outputs", lambda d: I12.output_trials(table, d)),
            ("crafted", lambda d: I12.crafted_trials(table, d)),
            ("fuzz", lambda d: I12.fuzz_trials(table, d, args.fuzz)),
            ("signals", lambda d: I12.signal_trials(table, d, args.signals)),
            ("concurrency", lambda d: I12.concurrency_trials(table, d)),
            ("disk-layout", lambda d: I12.disk_layout_trials(table, d)),
            ("bombs", lambda d: I12.bomb_trials(table, d)),
            ("options", lambda d: I12.option_trials(table, d)),
        )
        only = set(args.only.split(",")) if args.only else None
        for name, fn in groups:
            if only is not None and name not in only:
                continue
            d = work / name
            d.mkdir()
            fn(d)
    finally:
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n(took {time.monotonic() - t0:.0f} s)\n")
    print(table.markdown())


if __name__ == "__main__":
    main()

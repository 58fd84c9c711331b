"""Acquisition speed: the software's own cost per pair, and end to end on the simulated rig.

1. **Software overhead** — the engine on a zero-latency fake rig (the SLM flips, the camera returns
   a ready 800×800 frame, instantly): every millisecond per pair is speckle-lab's (pattern → gray,
   queueing, the writer thread's HDF5 write, flushes and fsyncs). Target < 5 ms per pair. Also
   reports how long the writer thread was busy, and the same run with the writer made synchronous
   (queue of 1, each put waits for the write) to show what the pipelining buys.
2. **End to end** — ``speckle-lab acquire`` on the simulated rig (800×800 frames, the protocol
   ``protocols/quick.toml`` with no progress bar), pairs/s including auto exposure, darks and
   references. Target >= 30 pairs/s. Skipped with a note when the simulated rig or the protocol
   is not available.
3. **``--view``** — ``speckle-lab acquire`` on the simulated rig without and with ``--view`` and one
   headless chromium page watching, alternated, each run in its own process: pairs/s over the
   capture phase and in steady state, and the CPU the acquire process and the browser spent.
   Target: less than 5 % of the pairs/s lost to the view.

Usage: ``python bench/bench_acquire.py [--pairs 300] [--skip-sim] [--skip-view]``, or only the
third part: ``--only-view [--view-pairs 400] [--view-repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acquisition.engine import Engine  # noqa: E402
from acquisition.settings import RunSettings  # noqa: E402
from hardware.interfaces import Frame  # noqa: E402
from hardware.lut import PhaseLUT  # noqa: E402
from protocols.schema import CameraConfig  # noqa: E402
from speckle_core.runfile import BlockSpec, RunLayout, RunWriter, create_run  # noqa: E402

SHAPE = (800, 800)


class _ZeroSLM:
    window_shape = SHAPE

    def show_gray(self, gray):
        return time.monotonic()

    def read_back(self):
        return np.zeros(SHAPE, np.uint8)

    def stroke_mode(self):
        return "full-wave"

    def close(self):
        pass


class _ZeroCamera:
    max_value = 255

    def __init__(self):
        rng = np.random.default_rng(0)
        self._frames = [rng.integers(0, 200, SHAPE, dtype=np.uint8) for _ in range(4)]
        self._n = 0
        self._exposure = 1000.0

    def configure(self, roi_px, exposure_us):
        self._exposure = exposure_us
        return exposure_us

    def capture(self, timeout_ms, average=1, key=None):
        self._n += 1
        return Frame(self._frames[self._n % 4], self._exposure, time.time(), self._n)

    def close(self):
        pass


class _Mover:
    diffusers = ("120",)

    def __init__(self):
        self._v = None

    def select(self, d):
        self._v = d

    def current(self):
        return self._v

    def move_to_mm(self, z):
        self._v = z
        return z

    def distance_mm(self):
        return self._v

    def close(self):
        pass


def software_overhead(pairs: int, folder: str, synchronous: bool) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    n_obj = 50
    layout = RunLayout(
        protocol_text="", rig_text="", patterns=(rng.random((n_obj, *SHAPE)) > 0.5).astype(np.uint8),
        names=[str(i) for i in range(n_obj)], splits=["train"] * n_obj,
        blocks=[BlockSpec("120", 0.0, "train")], pair_block=np.zeros(pairs, int),
        pair_object=np.arange(pairs) % n_obj, pair_repeat=np.arange(pairs) // n_obj,
        frame_shape=SHAPE, frame_dtype=np.dtype(np.uint8))
    path = Path(folder) / f"overhead_{synchronous}.h5"
    create_run(path, layout)
    rig = SimpleNamespace(slm=_ZeroSLM(), camera=_ZeroCamera(), stage=_Mover(), changer=_Mover(),
                          operator=None, lut=PhaseLUT.linear(256))
    settings = RunSettings(camera=CameraConfig(roi_px=SHAPE, exposure_us=1000.0), pipelined=not synchronous)
    eng = Engine(rig, RunWriter(path, settings.sync_interval_s), settings)
    t0 = time.perf_counter()
    out = eng.run()
    wall = time.perf_counter() - t0
    assert out.exit_code == 0, out.message
    os.remove(path)
    return wall / pairs * 1e3, eng.writer_thread.busy_s / pairs * 1e3


def _log_time(line: str) -> float:
    import datetime as dt

    return dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def end_to_end(folder: str) -> str:
    proto = ROOT / "protocols" / "quick.toml"
    if not proto.exists():
        return "skipped: protocols/quick.toml is not there yet"
    from acquisition.acquire import run_acquisition

    out = Path(folder) / "quick.h5"
    t0 = time.perf_counter()
    try:
        code = run_acquisition(proto, out, None, resume=False, unattended=True, progress=False).exit_code
    except Exception as e:  # noqa: BLE001 - report and go on
        return f"skipped: the simulated run failed ({type(e).__name__}: {e})"
    wall = time.perf_counter() - t0
    import h5py

    with h5py.File(out) as f:
        n = int(f["pairs/done"][...].sum())
        shape = f["pairs/speckle"].shape[1:]
        refs, darks = int(f["stability/done"][...].sum()), int(f["dark/done"][...].sum())
    lines = out.with_suffix(".log").read_text().splitlines()
    laid = next(_log_time(x) for x in lines if " laid out " in x)
    ended = next(_log_time(x) for x in lines if " run ended " in x)
    # steady state: pairs per second between two reference captures of one block (pairs only)
    refs_t = [(_log_time(x), x.split("(")[1].split(")")[0]) for x in lines if " reference " in x]
    spans = [(b[0] - a[0]) for a, b in zip(refs_t, refs_t[1:], strict=False) if a[1] == b[1]]
    import tomllib

    every = tomllib.loads(proto.read_text()).get("stability", {}).get("reference_every", 50)
    steady = every / float(np.median(spans)) if spans else float("nan")
    capture_s = ended - laid
    timing = next(x for x in lines if " timing: " in x).split("timing: ")[1]
    run_s = float(timing.split(" s running")[0])
    dev_s = float(timing.split("capture) ")[1].split(" s")[0])
    frames = int(timing.split(" frames")[0].split(", ")[-1])
    engine_ms = (run_s - dev_s) / max(frames, 1) * 1e3
    return "\n".join([
        f"exit {code}: {n} pairs of {shape[0]}x{shape[1]} in {wall:.1f} s = {n / wall:.1f} pairs/s overall",
        f"  set-up (plan, faces, file layout): {wall - capture_s:.1f} s",
        f"  capture phase: {capture_s:.1f} s = {n / capture_s:.1f} pairs/s, including auto exposure, "
        f"{darks} dark frames and {refs} references",
        f"  steady state (pairs between two references of a block): {steady:.1f} pairs/s (target >= 30)",
        f"  of the capture phase the simulated devices took {dev_s:.1f} s for {frames} frames (pairs, "
        f"exposure probes, darks, references); the engine's own share: {engine_ms:.1f} ms per frame"])


EMBEDDED_FACES = 100  # faces source "embedded": scikit-image's lfw_subset
VIEW_PROTOCOL = """
name = "view overhead"
[faces]
source = "embedded"
count = {count}
seed = 0
holdout = 0
target_px = [800, 800]
[slm]
gray_pi = "auto"
settle_ms = 0
[camera]
roi_px = [800, 800]
exposure_us = 3000
[[blocks]]
diffuser = "1500"
distances_mm = {distances}
[dark]
frames = 0
[stability]
reference_every = 10
on_drift = "log"
"""


def view_protocol(pairs: int) -> str:
    """The --view comparison's protocol: about ``pairs`` pairs of the embedded faces (100 at most),
    at as many camera distances as that takes."""
    blocks = -(-pairs // EMBEDDED_FACES)
    return VIEW_PROTOCOL.format(count=-(-pairs // blocks), distances=[10 * i for i in range(blocks)])


def _run_rate(out: Path) -> tuple[float, float]:
    """(pairs/s over the capture phase, steady pairs/s between references) from a run's log."""
    lines = out.with_suffix(".log").read_text().splitlines()
    laid = next(_log_time(x) for x in lines if " laid out " in x)
    ended = next(_log_time(x) for x in lines if " run ended " in x)
    n = int(next(x for x in lines if " run ended " in x).split("complete: ")[1].split("/")[0])
    refs = [_log_time(x) for x in lines if " reference " in x]
    spans = np.diff(refs)
    return n / (ended - laid), (10 / float(np.median(spans)) if len(spans) else float("nan"))


def _browser_cpu_s() -> float:
    """CPU seconds so far of the chromium processes (and playwright's driver) below this one."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name() or "node" in child.name():
                t = child.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _watch(page, proc, port: int) -> int:
    """Opens the view page in the tab ``page`` (opened before the run: a user's browser is already
    running) while the run ``proc`` goes on; the frames the page drew, at the end."""
    import socket

    while proc.poll() is None:  # wait for the port here: a browser tab refused fails to an error page
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:  # not listening yet
            time.sleep(0.05)
    if proc.poll() is None:
        page.goto(f"http://127.0.0.1:{port}/", timeout=30_000)
    proc.wait()
    return page.evaluate("window.speckle ? window.speckle.framesDrawn : 0")


def view_overhead(folder: str, pairs: int, repeats: int) -> str:
    """``acquire`` on the simulated rig (800×800) without and with ``--view`` and one headless
    chromium page attached, alternated ``repeats`` times (the machine's load drifts), each run in
    its own process as a user runs it. The CPU of the acquire process and of the browser are
    read too: on a 2-core machine the run is CPU-bound, and the view's cost is the sum of both."""
    import socket
    import subprocess

    from tests import browser

    why = browser.missing()
    if why:
        return f"skipped: {why}"
    proto = Path(folder) / "view.toml"
    proto.write_text(view_protocol(pairs))
    warm = Path(folder) / "warm.toml"  # one short run first: the sim's compiled kernels, file caches
    warm.write_text(view_protocol(5))
    subprocess.run([sys.executable, "-m", "speckle_lab.cli", "acquire", str(warm), "--out",
                    str(Path(folder) / "warm.h5"), "--unattended", "--no-progress"], capture_output=True)
    import resource

    rates: dict[str, list[tuple[float, float]]] = {"plain": [], "view": []}
    cpu: dict[str, list[float]] = {"plain": [], "view": []}  # CPU seconds of the acquire process
    browser_cpu: list[float] = []
    drawn = []
    with browser.chromium() as b:
        for i in range(repeats):
            for kind in ("plain", "view"):
                out = Path(folder) / f"{kind}{i}.h5"
                argv = [sys.executable, "-m", "speckle_lab.cli", "acquire", str(proto), "--out", str(out),
                        "--unattended", "--no-progress"]
                if kind == "view":
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", 0))
                        port = s.getsockname()[1]
                    argv += ["--view", str(port)]
                page = b.new_page(viewport={"width": 1280, "height": 900}) if kind == "view" else None
                b0 = _browser_cpu_s()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if page is not None:
                    drawn.append(_watch(page, proc, port))
                    browser_cpu.append(_browser_cpu_s() - b0)
                    page.close()
                err = proc.communicate()[1]
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[kind].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                if proc.returncode != 0:
                    return f"skipped: the {kind} run failed: {err.strip()[-200:]}"
                rates[kind].append(_run_rate(out))
                if kind == "view" and not drawn[-1]:
                    return "skipped: the page never attached to the run"
    return _view_report(rates, cpu, browser_cpu, drawn)


def _view_report(rates: dict, cpu: dict, browser_cpu: list[float], drawn: list[int]) -> str:
    plain = np.median([r[0] for r in rates["plain"]])
    view = np.median([r[0] for r in rates["view"]])
    plain_s = np.median([r[1] for r in rates["plain"]])
    view_s = np.median([r[1] for r in rates["view"]])
    # each view run against the plain run just before it (the load drifts less within a pair)
    paired = [100 * (1 - v[0] / p[0]) for p, v in zip(rates["plain"], rates["view"], strict=True)]
    paired_s = [100 * (1 - v[1] / p[1]) for p, v in zip(rates["plain"], rates["view"], strict=True)]
    return "\n".join([
        f"without --view: {plain:.2f} pairs/s (capture phase), {plain_s:.2f} pairs/s steady; runs "
        + ", ".join(f"{r[0]:.2f}/{r[1]:.2f}" for r in rates["plain"]),
        f"  with --view and one chromium page attached: {view:.2f} pairs/s, {view_s:.2f} steady; runs "
        + ", ".join(f"{r[0]:.2f}/{r[1]:.2f}" for r in rates["view"]) + f"; frames drawn by the page: {drawn}",
        f"  lost to the view: {100 * (1 - view / plain):.1f} % (capture phase), "
        f"{100 * (1 - view_s / plain_s):.1f} % (steady); target < 5 %",
        "  run by run (each view run against the plain run before it): capture phase "
        + ", ".join(f"{x:.1f}" for x in paired) + f" % (median {np.median(paired):.1f}); steady "
        + ", ".join(f"{x:.1f}" for x in paired_s) + f" % (median {np.median(paired_s):.1f})",
        f"  CPU of the acquire process (all threads, whole run incl. start-up and layout): "
        f"{np.median(cpu['plain']):.2f} s without, {np.median(cpu['view']):.2f} s with the view; "
        f"the browser (loading the page included): {np.median(browser_cpu):.2f} s per view run"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--view-pairs", type=int, default=400, help="pairs per run of the --view comparison")
    ap.add_argument("--view-repeats", type=int, default=3, help="runs of each kind, alternated")
    ap.add_argument("--skip-view", action="store_true", help="skip the --view comparison")
    ap.add_argument("--only-view", action="store_true", help="only the --view comparison")
    args = ap.parse_args()
    if args.only_view:
        with tempfile.TemporaryDirectory(dir=ROOT / "bench") as d:
            print(f"acquire --view overhead, simulated rig 800x800, {args.view_pairs} pairs per run, load "
                  f"{os.getloadavg()[0]:.2f}:\n  {view_overhead(d, args.view_pairs, args.view_repeats)}")
            print(f"  load average (1 min) after: {os.getloadavg()[0]:.2f}")
        return
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as d:
        ms, busy = software_overhead(args.pairs, d, synchronous=False)
        print(f"software overhead, zero-latency fake rig, {SHAPE[0]}x{SHAPE[1]} frames, {args.pairs} pairs: "
              f"{ms:.2f} ms/pair ({1e3 / ms:.0f} pairs/s; target < 5 ms); "
              f"writer thread busy {busy:.2f} ms/pair")
        ms_sync, _ = software_overhead(args.pairs, d, synchronous=True)
        print(f"  same with each capture waiting for its write (not pipelined): {ms_sync:.2f} ms/pair")
        if not args.skip_sim:
            print(f"end to end, simulated rig, quick protocol:\n  {end_to_end(d)}")
        if not args.skip_view:
            print(f"acquire --view overhead, simulated rig 800x800, {args.view_pairs} pairs per run, load "
                  f"{os.getloadavg()[0]:.2f}:\n  {view_overhead(d, args.view_pairs, args.view_repeats)}")


if __name__ == "__main__":
    main()

"""Runs every benchmark in bench/ and rewrites bench/RESULTS.md with their output (``make bench``).

Each ``bench/bench_*.py`` script prints its own figures; this runner records them verbatim,
under a description of the machine they were measured on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_description() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
    except ImportError:
        mem = "unknown"
    versions = []
    for mod in ("numpy", "scipy", "h5py", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} missing")
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return [
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores; memory {mem}; GPU: {gpu}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}",
        f"- Libraries: {', '.join(versions)}",
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", nargs="*", help="run only these bench scripts (names without .py)")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    args = ap.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem in args.only]
    sections, failed = [], 0
    for script in scripts:
        print(f"== {script.name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        took = time.perf_counter() - t0
        out = proc.stdout.rstrip()
        print(out)
        if proc.returncode != 0:
            failed += 1
            out += f"\n\n[exit code {proc.returncode}]\n" + proc.stderr.strip()[-2000:]
        sections.append(f"## {script.stem}\n\n({took:.0f} s)\n\n```\n{out}\n```\n")
    # long or device-specific runs recorded on their own (``bench_train.py --record``, GPU runs)
    extra_notes = sorted(HERE.glob("RESULTS-*.md"))
    text = "\n".join([
        "# Benchmark results",
        "",
        "Written by `make bench` (`bench/run_all.py`); every figure below was printed by the script",
        "named in its heading, on this machine:",
        "",
        *machine_description(),
        "",
        *sections,
    ])
    for note in extra_notes:
        text += "\n" + note.read_text()
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""SLM display window: time to open, to show one 800×800 pattern (upload, draw, flip) and to read it back.

Runs the real driver (hardware/drivers/exulus_display.py) in a private Xvfb with Mesa's software
GL, so the figures measure the driver's own overhead on this CPU, not a real 60 Hz vsync: on the
rig, each flip also waits for the next vertical blank (up to 16.7 ms at 60 Hz).
Usage: ``python bench/bench_slm_display.py [--flips 100]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=100)
    args = parser.parse_args()

    from tests.xvfb import Head, XvfbServer, xvfb_missing_reason

    reason = xvfb_missing_reason()
    if reason is not None:
        print(f"skipped: {reason}")
        return 0
    from hardware.drivers.exulus_display import ExulusDisplay

    heads = [Head("OPERATOR", 0, 0, 1280, 1024, primary=True), Head("SLM", 1280, 0, 1920, 1200)]
    with XvfbServer(3200, 1200, heads) as server:
        os.environ["DISPLAY"] = server.display
        t0 = time.perf_counter()
        slm = ExulusDisplay("auto")
        open_s = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        patterns = [rng.integers(0, 256, (800, 800), dtype=np.uint8) for _ in range(8)]
        show_ms, read_ms = [], []
        try:
            for i in range(args.flips):
                t = time.perf_counter()
                slm.show_gray(patterns[i % len(patterns)])
                show_ms.append((time.perf_counter() - t) * 1e3)
                t = time.perf_counter()
                back = slm.read_back()
                read_ms.append((time.perf_counter() - t) * 1e3)
                if not np.array_equal(back, patterns[i % len(patterns)]):
                    print(f"read-back mismatch at flip {i}")
                    return 1
        finally:
            slm.close()
    show, read = np.array(show_ms), np.array(read_ms)
    print(f"Xvfb + Mesa llvmpipe, 1920x1200 panel, 800x800 window, {args.flips} flips (no real vsync)")
    print(f"open window                 {open_s * 1e3:8.1f} ms")
    print(f"show_gray  median / p95     {np.median(show):8.2f} / {np.percentile(show, 95):.2f} ms")
    print(f"read_back  median / p95     {np.median(read):8.2f} / {np.percentile(read, 95):.2f} ms")
    print("every read-back matched the pattern shown")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The lab console's speed: frames of 800×800 delivered to a real browser, and their latency.

1. **Per frame costs** on the server: the statistics (histogram, contrast, grain, sharpness) and
   each encoding of a simulated 800×800 speckle frame (raw 8-bit, JPEG q90, PNG): milliseconds and
   bytes, so the choice of JPEG for the page's default link is measured, not assumed.
2. **The console alone**: a source putting pre-made 800×800 frames into the one-slot buffer at
   30 frames/s, served to headless chromium (Debian's, through playwright): frames/s drawn on the
   page's canvas and the latency from capture (the frame's timestamp) to pixels in the page (after
   ``putImageData``, and at the next animation frame: on screen), median and 95th percentile. Both
   ends read the same host clock.
3. **``speckle-lab live`` on the simulated rig** (800×800, default rig), the same figures; the
   simulated camera's own frame rate bounds it, and is printed beside it.

Target: >= 15 frames/s of 800×800 delivered to the browser. The 1-minute load average is printed
before and after: the machine may be shared.

Usage: ``python bench/bench_live.py [--seconds 8] [--skip-sim] [--encoding jpeg|raw]`` (JPEG, the
page's default link, by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.encoding import encode_image  # noqa: E402
from console.server import ServerThread, bind, build_app, url_of  # noqa: E402
from console.source import FrameItem  # noqa: E402
from console.stats import frame_stats  # noqa: E402
from console.view import RunView  # noqa: E402

SHAPE = (800, 800)


def speckle_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Fully developed 8-bit speckle, grain ~10 px (a circular pupil), mean ~40 counts."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(SHAPE[0]) * SHAPE[0]
    pupil = (f[:, None] ** 2 + f[None, :] ** 2) <= 40**2
    out = []
    for _ in range(n):
        field = np.fft.ifft2(pupil * (rng.normal(size=SHAPE) + 1j * rng.normal(size=SHAPE)))
        intensity = np.abs(field) ** 2
        out.append(np.clip(np.rint(intensity / intensity.mean() * 40), 0, 255).astype(np.uint8))
    return out


def timed(fn, repeats: int = 20) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def per_frame_costs(frame: np.ndarray) -> None:
    ms = timed(lambda: frame_stats(frame, 255))
    print(f"statistics of one {SHAPE[0]}x{SHAPE[1]} frame: {ms:.1f} ms")
    for enc in ("raw", "jpeg", "png"):
        size = len(encode_image(frame, seq=1, time_s=0.0, encoding=enc))
        ms = timed(lambda enc=enc: encode_image(frame, seq=1, time_s=0.0, encoding=enc))
        print(f"  encoding {enc:4s}: {ms:6.2f} ms, {size / 1e3:6.0f} kB per frame "
              f"({size * 15 / 1e6:.1f} MB/s at 15 frames/s)")


def cpu_seconds() -> tuple[float, dict[str, float]]:
    """CPU seconds so far of this process (the server, the source, the camera) and of the chromium
    processes below it by their kind (browser, renderer, gpu-process, utility: the network
    service): the load-independent cost of the frames."""
    import psutil

    me = psutil.Process()
    browser: dict[str, float] = {}
    for child in me.children(recursive=True):
        try:
            if "chrom" in child.name():
                types = [a.split("=", 1)[1] for a in child.cmdline() if a.startswith("--type=")]
                kind = types[0] if types else "browser"
                t = child.cpu_times()
                browser[kind] = browser.get(kind, 0.0) + t.user + t.system
        except psutil.Error:
            pass
    t = me.cpu_times()
    return t.user + t.system, browser


def watch(url: str, seconds: float, encoding: str, counter=lambda: 0) -> dict:
    """Opens the page in headless chromium, lets it run ``seconds``, returns what the page saw
    (and the rate of ``counter()``, e.g. the camera's frames, over the same seconds)."""
    from tests import browser

    why = browser.missing()
    if why:
        raise SystemExit(f"bench_live: {why}")
    with browser.chromium() as b:
        page = b.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_function("window.speckle && window.speckle.framesDrawn > 2", timeout=60_000)
        if page.input_value("#encoding") != encoding:
            page.select_option("#encoding", encoding)
            time.sleep(1.0)
        page.evaluate("window.speckle.latenciesMs = []; window.speckle.paintLatenciesMs = []; "
                      "window.speckle.measurePaint = true;")
        n0, c0, t0 = page.evaluate("window.speckle.framesDrawn"), counter(), time.monotonic()
        cpu0 = cpu_seconds()
        time.sleep(seconds)
        cpu1 = cpu_seconds()
        n1, c1, t1 = page.evaluate("window.speckle.framesDrawn"), counter(), time.monotonic()
        lat = page.evaluate("window.speckle.latenciesMs")
        paint = page.evaluate("window.speckle.paintLatenciesMs")
        draw = page.evaluate("window.speckle.drawMs")
        page.close()
    frames = max(n1 - n0, 1)
    return {"fps": (n1 - n0) / (t1 - t0), "counter_rate": (c1 - c0) / (t1 - t0),
            "server_ms": (cpu1[0] - cpu0[0]) / frames * 1e3,
            "browser_ms": {k: (v - cpu0[1].get(k, 0.0)) / frames * 1e3 for k, v in cpu1[1].items()},
            "lat": np.array(lat), "paint": np.array(paint), "frames": n1 - n0,
            "draw": np.array(draw)}


def report(label: str, seen: dict, extra: str = "") -> None:
    lat, paint = seen["lat"], seen["paint"]

    def q(a, p):
        return float(np.percentile(a, p)) if len(a) else float("nan")

    print(f"{label}: {seen['fps']:.1f} frames/s delivered to the browser ({seen['frames']} frames; "
          f"target >= 15){extra}")
    print(f"    latency capture -> pixels drawn: median {q(lat, 50):.0f} ms, p95 {q(lat, 95):.0f} ms; "
          f"-> next animation frame (on screen): median {q(paint, 50):.0f} ms, p95 {q(paint, 95):.0f} ms; "
          f"the page's decode+draw: median {q(seen['draw'], 50):.1f} ms")
    server, parts = seen["server_ms"], seen["browser_ms"]
    browser = sum(parts.values())
    detail = ", ".join(f"{k} {v:.0f}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
    print(f"    CPU per frame delivered: {server:.0f} ms in the speckle-lab process, {browser:.0f} ms in "
          f"chromium ({detail}); on two idle cores (the two side by side) that caps it at "
          f"{1000 / max(server, browser, 1e-9):.0f} frames/s")


def console_alone(seconds: float, encoding: str, fps: float = 30.0) -> None:
    view = RunView(total=1)
    frames = speckle_frames(4)
    stop = threading.Event()

    def produce():
        i, period, nxt = 0, 1.0 / fps, time.monotonic()
        while not stop.is_set():
            view.frames.put(FrameItem(frames[i % len(frames)], 255, time.time(), 1000.0))
            i += 1
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))

    sock = bind("127.0.0.1", 0)
    server = ServerThread(build_app(view), sock).start()
    threading.Thread(target=produce, daemon=True).start()
    try:
        seen = watch(url_of(sock), seconds, encoding)
    finally:
        stop.set()
        server.stop()
    report(f"console alone, {fps:.0f} frames/s of {SHAPE[0]}x{SHAPE[1]} offered, {encoding}", seen,
           f"; {view.frames.dropped} offered frames dropped as stale")


def live_on_sim(seconds: float, encoding: str) -> None:
    from console.live import live_session

    sock = bind("127.0.0.1", 0)
    with live_session(None, max_fps=60.0, snapshot_dir=ROOT / "bench" / "snapshots-unused") as session:
        server = ServerThread(build_app(session), sock).start()
        try:
            session.command({"cmd": "slm", "pattern": "face", "face": 0})
            session.command({"cmd": "auto_exposure"})
            seen = watch(url_of(sock), seconds, encoding, counter=lambda: session.captured)
        finally:
            server.stop()
    report(f"speckle-lab live, simulated rig {SHAPE[0]}x{SHAPE[1]}, {encoding}", seen,
           f"; the simulated camera captured {seen['counter_rate']:.1f} frames/s meanwhile")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--encoding", default="jpeg", choices=("jpeg", "raw"))
    args = ap.parse_args()
    print(f"load average (1 min) before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    per_frame_costs(speckle_frames(1)[0])
    console_alone(args.seconds, args.encoding)
    if not args.skip_sim:
        live_on_sim(args.seconds, args.encoding)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""Takes the README's screenshots of the console with headless chromium (Debian's /usr/bin/chromium
through playwright): ``docs/img/live.png`` (``speckle-lab live`` on the simulated rig: a face on the
SLM behind the 1500-grit diffuser, auto exposure) and ``docs/img/live-view.png`` (``acquire --view``
on a short run of the quick protocol's faces).

Usage: ``python scripts/live_screenshot.py [--out docs/img]``.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console.live import live_session  # noqa: E402
from console.server import ServerThread, bind, build_app, url_of  # noqa: E402
from tests import browser  # noqa: E402

VIEWPORT = {"width": 1280, "height": 900}
RUN_PROTOCOL = """
name = "screenshot run"
[faces]
source = "embedded"
count = 60
holdout = 0
target_px = [800, 800]
[camera]
roi_px = [800, 800]
exposure_us = "auto"
[[blocks]]
diffuser = "1500"
distances_mm = [0, 20]
[dark]
frames = 1
[stability]
reference_every = 10
on_drift = "log"
"""


def live_png(b, out: Path) -> None:
    sock = bind("127.0.0.1", 0)
    with live_session(None, max_fps=15.0, snapshot_dir=tempfile.mkdtemp()) as session:
        server = ServerThread(build_app(session, title="speckle-lab live — simulated rig"), sock).start()
        try:
            session.command({"cmd": "diffuser", "name": "1500"})
            session.command({"cmd": "slm", "pattern": "face", "face": 3})
            session.command({"cmd": "auto_exposure"})
            page = b.new_page(viewport=VIEWPORT)
            page.goto(url_of(sock))
            page.wait_for_function("window.speckle.framesDrawn > 20", timeout=120_000)
            page.select_option("#slm-pattern", "face")
            page.fill("#slm-face", "3")
            page.screenshot(path=str(out))
            page.close()
        finally:
            server.stop()


def view_png(b, out: Path) -> None:
    with tempfile.TemporaryDirectory() as d:
        proto = Path(d) / "run.toml"
        proto.write_text(RUN_PROTOCOL)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        argv = [sys.executable, "-m", "speckle_lab.cli", "acquire", str(proto), "--out",
                str(Path(d) / "run.h5"), "--unattended", "--no-progress", "--view", str(port)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            page = b.new_page(viewport=VIEWPORT)
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=2000)
                    break
                except Exception:  # noqa: BLE001 - not listening yet
                    if proc.poll() is not None:
                        raise SystemExit("the run ended before its view came up") from None
                    time.sleep(0.1)
            page.wait_for_function("window.speckle.status && window.speckle.status.run.done >= 75",
                                   timeout=300_000)
            page.screenshot(path=str(out))
            page.close()
        finally:
            proc.wait(300)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    args = ap.parse_args()
    why = browser.missing()
    if why:
        raise SystemExit(f"live_screenshot: {why}")
    out = Path(args.out)
    with browser.chromium() as b:
        live_png(b, out / "live.png")
        print(f"wrote {out / 'live.png'}")
        view_png(b, out / "live-view.png")
        print(f"wrote {out / 'live-view.png'}")


if __name__ == "__main__":
    main()

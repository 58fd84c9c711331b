"""The body of ``speckle-lab live``: check the rig file and the port first (one-line errors, exit 2),
then open the rig, serve the page until Ctrl-C, and close the rig."""

from __future__ import annotations

import sys
from pathlib import Path

from console.server import bind, build_app, host_warning, serve, url_of
from speckle_core.errors import UserError
from speckle_core.fileio import nearest_existing


def live_command(rig_path: str | None, port: int, host: str, protocol_path: str | None,
                 snapshot_dir: str, max_fps: float) -> int:
    from console.live import live_session
    from hardware.rig import load_rig
    from protocols import load_protocol

    load_rig(rig_path)  # a bad rig file: one line, exit 2, before anything listens or opens
    if protocol_path is not None:
        load_protocol(protocol_path)
    check_snapshot_dir(snapshot_dir)
    sock = bind(host, port)
    try:
        warning = host_warning(host)
        if warning:
            print(f"speckle-lab: {warning}", file=sys.stderr)
        with live_session(rig_path, protocol_path=protocol_path, snapshot_dir=snapshot_dir,
                          max_fps=max_fps) as session:
            print(f"speckle-lab live: {url_of(sock)} (Ctrl-C to stop; from another machine: "
                  f"ssh -L {sock.getsockname()[1]}:localhost:{sock.getsockname()[1]} THIS-PC)", flush=True)
            serve(build_app(session, title=f"speckle-lab live — {session.rig.config.name}"), sock)
    finally:
        sock.close()
    return 0


def check_snapshot_dir(snapshot_dir: str) -> None:
    """``--snapshots`` must be (or be creatable as) a folder: a file there, or under one, is refused at
    start (one line, exit 2), not when the snapshot button is first pressed. Nothing is created yet."""
    folder = Path(snapshot_dir)
    probe = nearest_existing(folder)
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == folder else f"is under {probe}, a file"
        raise UserError(f"--snapshots {folder}: {where}, expected a folder for the snapshots")

"""The body of ``speckle-lab live``: check the rig file and the port first (one-line errors, exit 2),
then open the rig, serve the page until Ctrl-C, and close the rig."""

from __future__ import annotations

import sys

from console.server import bind, build_app, host_warning, serve, url_of


def live_command(rig_path: str | None, port: int, host: str, protocol_path: str | None,
                 snapshot_dir: str, max_fps: float) -> int:
    from console.live import live_session
    from hardware.rig import load_rig
    from protocols import load_protocol

    load_rig(rig_path)  # a bad rig file: one line, exit 2, before anything listens or opens
    if protocol_path is not None:
        load_protocol(protocol_path)
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

"""``speckle-lab acquire … --view [PORT]``: the run, with the console page watching it read-only."""

from __future__ import annotations

from pathlib import Path

from console.server import bind
from console.view import RunView, start_view


def acquire_with_view(port: int, *, protocol: str, out_path: str, rig_path: str | None, **options) -> int:
    """Checks the files the run would refuse first (a bad protocol or rig file, an --out that cannot
    be the run file: one line, exit 2, before the view prints its address), binds the port (in use:
    the same), then runs the acquisition with a ``RunView`` among its observers, served from a daemon
    thread. ``options`` are the rest of ``acquire``'s options (resume, unattended, progress), passed
    on as they are."""
    from acquisition.acquire import acquire_command, check_out_path, check_output
    from hardware.rig import load_rig
    from protocols import load_protocol

    protocol_file = load_protocol(protocol)
    rig_file = load_rig(rig_path)
    out = Path(out_path)
    check_out_path(out, [Path(p) for p in (protocol_file.path, rig_file.path) if p is not None])
    if not options.get("resume"):  # an existing --out is refused (resume's own checks stay the run's)
        check_output(out, False, protocol_file.text, rig_file.text, str(protocol_file.path), "")
    threshold = protocol_file.model.stability.threshold
    sock = bind("127.0.0.1", port)
    view = RunView(title=f"acquire {protocol} -> {out_path}", threshold=threshold)
    with start_view(view, sock, title=f"speckle-lab run — {out_path}"):
        code = acquire_command(protocol, out_path, rig_path, observers=(view,), **options)
    return code

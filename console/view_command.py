"""``speckle-lab acquire … --view [PORT]``: the run, with the console page watching it read-only."""

from __future__ import annotations

from console.server import bind
from console.view import RunView, start_view


def acquire_with_view(port: int, *, protocol: str, out_path: str, rig_path: str | None, **options) -> int:
    """Binds the port first (in use: one line, exit 2, before anything moves), then runs the
    acquisition with a ``RunView`` among its observers, served from a daemon thread. ``options``
    are the rest of ``acquire``'s options (resume, unattended, progress), passed on as they are."""
    from acquisition.acquire import acquire_command
    from protocols import load_protocol

    threshold = load_protocol(protocol).model.stability.threshold  # bad protocol: one line, exit 2
    sock = bind("127.0.0.1", port)
    view = RunView(title=f"acquire {protocol} -> {out_path}", threshold=threshold)
    with start_view(view, sock, title=f"speckle-lab run — {out_path}"):
        code = acquire_command(protocol, out_path, rig_path, observers=(view,), **options)
    return code

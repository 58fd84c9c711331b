"""``speckle-lab live``. Imports only click at load time."""

from __future__ import annotations

import functools

import click


@click.command()
@click.option("--rig", "rig_path", default=None, help="rig TOML file (default: the simulated rig)")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port of the page")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; anything but 127.0.0.1 lets that network drive the rig")
@click.option("--protocol", "protocol_path", default=None,
              help="protocol whose faces the SLM can show (default: protocols/quick.toml)")
@click.option("--snapshots", "snapshot_dir", default="snapshots", show_default=True,
              help="folder the snapshot button saves into")
@click.option("--max-fps", default=30.0, show_default=True, type=click.FloatRange(0.1, 1000),
              help="capture at most this many frames a second")
def live(rig_path: str | None, port: int, host: str, protocol_path: str | None, snapshot_dir: str,
         max_fps: float) -> int:
    """Live view of the rig in the browser: frame, histogram, speckle figures, controls."""
    from console.live_command import live_command

    return live_command(rig_path, port, host, protocol_path, snapshot_dir, max_fps)


VIEW_HELP = ("watch the run in the browser: serve the console page, read-only, on 127.0.0.1:PORT "
             "(default 8765); several tabs may watch; it never slows or stops the run")


def add_view_option(acquire: click.Command) -> click.Command:
    """Gives ``speckle-lab acquire`` its ``--view [PORT]``. Registered from ``speckle_lab.cli``: the
    acquisition layer sits below the console and cannot import it, so the console wraps its command."""
    if any(p.name == "view" for p in acquire.params):
        return acquire
    acquire.params.append(click.Option(["--view"], type=click.IntRange(0, 65535), is_flag=False,
                                       flag_value=8765, default=None, metavar="[PORT]", help=VIEW_HELP))
    run_plain = acquire.callback

    @functools.wraps(run_plain)
    def callback(view: int | None = None, **kwargs):
        if view is None:
            return run_plain(**kwargs)
        from console.view_command import acquire_with_view

        return acquire_with_view(view, **kwargs)

    acquire.callback = callback
    return acquire

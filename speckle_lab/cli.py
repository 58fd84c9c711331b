"""The ``speckle-lab`` console command (docs/design.md, "CLI").

Each area registers its own commands: ``hardware.cli`` (devices), ``acquisition.cli`` (plan,
acquire, inspect), ``reconstruction.cli`` (train, evaluate, predict) and ``speckle_lab.demo``.
Those modules import only click at load time, so ``speckle-lab --help`` stays fast and never
imports torch. Exit codes: 0 success, 2 bad input (one line), 1 anything else, 130 Ctrl-C,
143 SIGTERM, 129 SIGHUP (128 + the signal, after the same clean stop as Ctrl-C).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path

import click

from hardware.errors import DeviceError
from speckle_core.errors import NotAvailableError, UserError
from speckle_core.fileio import describe_os_error, is_disk_full
from speckle_core.signals import Terminated, exit_code_for, terminate_as_interrupt
from speckle_core.text import one_line
from speckle_lab import __version__

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="speckle-lab")
def cli() -> None:
    """Acquisition and SpT UNet reconstruction for imaging through scattering media."""


def _register() -> None:
    from acquisition.cli import acquire, inspect, plan
    from calibration.cli import calibrate
    from console.cli import add_view_option, live
    from hardware.cli import devices
    from reconstruction.cli import evaluate, predict, train
    from reconstruction.compare_cli import compare
    from speckle_lab.demo import demo

    for command in (devices, plan, acquire, inspect, live, train, evaluate, predict, compare, demo,
                    calibrate):
        cli.add_command(command)
    add_view_option(acquire)  # acquire --view [PORT]: the console watching the run


_register()


def _error(prefix: str, message: str) -> None:
    line = one_line(message)  # exactly one line
    click.echo(f"speckle-lab: {prefix}{line}", err=True)


def _crash_log(exc: BaseException) -> Path | None:
    """Writes the traceback of an unexpected error to a file, so the terminal gets one line."""
    try:
        path = Path(os.environ.get("SPECKLE_LAB_CRASH_LOG", Path.home() / ".speckle-lab-crash.log"))
        path.write_text("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and exits with) the exit code (docs/design.md, "Exit codes")."""
    code = run(argv)
    # The command is over and its outcome printed: a stop signal now (a dropped SSH session, a late
    # SIGTERM) must not turn a finished run's exit code into a kill by signal during shutdown.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, signal.SIG_IGN)
    h5safety = sys.modules.get("speckle_core.h5safety")
    if h5safety is not None and h5safety.hdf5_unusable():
        # HDF5 could not close a file on a full disk: its exit handler would crash (SIGSEGV) after
        # the one-line message. Leave now, with the code the message goes with.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    # SIGTERM (systemd, docker, timeout, SLURM) and SIGHUP (a dropped SSH session) are handled as
    # Ctrl-C: `finally` blocks run, temporary files go, exit 128 + signal (speckle_core.signals).
    with terminate_as_interrupt():
        try:
            return _run(argv)
        except KeyboardInterrupt as e:  # a signal that arrived while reporting
            return _interrupted(e)


def _interrupted(e: BaseException) -> int:
    code = exit_code_for(e.signum) if isinstance(e, Terminated) else EXIT_INTERRUPTED
    with contextlib.suppress(OSError, ValueError):
        _error("", f"interrupted ({e})" if isinstance(e, Terminated) else "interrupted")
    return code


def _usage_error(e: click.ClickException) -> int:
    """Click's usage errors (three lines: usage, hint, error) as one line naming the command."""
    ctx = getattr(e, "ctx", None)
    where = f"{ctx.command_path}: " if ctx is not None else ""
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    _error("error: ", f"{where}{e.format_message()}{hint}")
    return EXIT_BAD_INPUT


def _run(argv: list[str] | None) -> int:  # noqa: C901 - one except clause per exit code
    try:
        result = cli.main(args=argv, prog_name="speckle-lab", standalone_mode=False)
        return int(result) if isinstance(result, int) else EXIT_OK
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort as e:
        # click turns a KeyboardInterrupt raised in a command into Abort: the signal is its cause
        cause = e.__cause__ or e.__context__
        return _interrupted(cause if isinstance(cause, KeyboardInterrupt) else KeyboardInterrupt())
    except click.ClickException as e:  # usage errors: bad option, missing argument, no such file
        return _usage_error(e)
    except KeyboardInterrupt as e:
        return _interrupted(e)
    except UserError as e:
        _error("error: ", str(e))
        return EXIT_BAD_INPUT
    except NotAvailableError as e:
        _error("", str(e))
        return EXIT_ERROR
    except DeviceError as e:  # a device that cannot be opened or fails outside a run: named, one line
        _error("error: ", str(e))
        return EXIT_ERROR
    except OSError as e:
        if not is_disk_full(e) or os.environ.get("SPECKLE_LAB_DEBUG"):
            return _unexpected(e)
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _error("error: ", f"{where}{describe_os_error(e)}; free space and run again")
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, details in a file
        return _unexpected(e)


def _unexpected(e: Exception) -> int:
    if os.environ.get("SPECKLE_LAB_DEBUG"):
        raise e
    where = _crash_log(e)
    tail = f" (traceback in {where})" if where else ""
    _error("error: ", f"{type(e).__name__}: {e}{tail}")
    return EXIT_ERROR


if __name__ == "__main__":
    main()

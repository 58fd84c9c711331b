"""SIGTERM and SIGHUP handled as Ctrl-C (issue #12, "Signals and a dropped SSH session").

systemd, docker, ``timeout`` and SLURM stop a process with SIGTERM; a dropped SSH session sends
SIGHUP. Left to their default action they kill the process at once: no flush, no end to the log,
temporary files left behind. speckle-lab treats them as Ctrl-C:

- :func:`terminate_as_interrupt` (installed by the CLI for every command) turns SIGTERM / SIGHUP
  into a :class:`Terminated` exception, a ``KeyboardInterrupt``: every ``finally`` runs, temporary
  files are removed, and the CLI exits with the conventional code 128 + signal number (143 for
  SIGTERM, 129 for SIGHUP; Ctrl-C stays 130).
- :class:`GracefulStop` (``acquire``, ``train``) makes the first SIGINT / SIGTERM / SIGHUP set an
  event that the loop checks between pairs or steps (finish the current one, flush, log, exit
  ``stop.exit_code``); a second signal interrupts at once.

After SIGHUP the terminal is gone: writing to it fails (EIO), so a terminal on stdout/stderr is
replaced by ``/dev/null`` and the run goes on writing only its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM / SIGHUP; handled wherever Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(SIGNAL_NAMES.get(signum, f"signal {signum}"))
        self.signum = int(signum)


def exit_code_for(signum: int) -> int:
    """The shell's convention: 128 + the signal number (SIGINT 130, SIGTERM 143, SIGHUP 129)."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    return SIGNAL_NAMES.get(signum, f"signal {signum}")


def detach_terminal() -> None:
    """Points stdout and stderr at /dev/null when they are a terminal (after SIGHUP the terminal is
    gone and every write to it would fail)."""
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def terminate_as_interrupt():
    """While active, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    if not _in_main_thread():
        yield
        return

    def handler(signum, frame):
        if signum == signal.SIGHUP:
            detach_terminal()
        raise Terminated(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class GracefulStop:
    """First SIGINT / SIGTERM / SIGHUP: set ``event`` (the loop finishes its current step, flushes
    and stops); a second one raises at once (KeyboardInterrupt, or Terminated).

    ``signum`` is the first signal received (None: none), ``exit_code`` its conventional code.
    Usable as a context manager; outside the main thread it installs nothing.
    """

    def __init__(self, event: threading.Event | None = None, message: str | None = None):
        self.event = event if event is not None else threading.Event()
        self.signum: int | None = None
        self.message = message
        self._old: dict = {}

    @property
    def exit_code(self) -> int:
        return exit_code_for(self.signum if self.signum is not None else signal.SIGINT)

    @property
    def name(self) -> str:
        return signal_name(self.signum if self.signum is not None else signal.SIGINT)

    def _handler(self, signum, frame):
        if signum == signal.SIGHUP:
            detach_terminal()
        if self.event.is_set():
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise Terminated(signum)
        self.signum = signum
        self.event.set()
        if self.message:
            with contextlib.suppress(OSError, ValueError):
                print(f"\n{signal_name(signum)}: {self.message}", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if _in_main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

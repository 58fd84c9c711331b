"""The person at the rig, and the movers they stand in for (a manual stage, a manual diffuser swap).

A manual device prompts the operator ("Put the 220-grit diffuser in, then press Enter"), waits,
and logs the answer to the ``speckle_lab.operator`` logger, which the run log records. Manual
devices carry ``manual = True``; the acquisition engine refuses, before anything moves, a run that
needs one when ``operator.interactive`` is False.
"""

from __future__ import annotations

import logging
import math
import numbers
import sys
from typing import TextIO

from hardware.errors import DeviceError
from speckle_core.errors import UserError

log = logging.getLogger("speckle_lab.operator")

ABORT = "q"


class ConsoleOperator:
    """Prompts on the terminal. Interactive only when stdin is a TTY; "q" or end of input aborts."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self._in = stdin if stdin is not None else sys.stdin
        self._out = stdout if stdout is not None else sys.stdout

    @property
    def interactive(self) -> bool:
        try:
            return bool(self._in.isatty())
        except (AttributeError, ValueError):  # closed or not a real stream
            return False

    def request(self, instruction: str) -> str:
        """Shows ``instruction``, waits for Enter, returns (and logs) what was typed before it."""
        if not self.interactive:
            raise DeviceError("operator", f"no terminal to ask: {instruction}")
        answer = self._ask(f"{instruction} ({ABORT} + Enter aborts): ", instruction)
        log.info("operator asked: %s | answered: %r", instruction, answer)
        return answer

    def ask_yes_no(self, question: str, default: bool = False) -> bool:
        if not self.interactive:
            log.info("operator asked: %s | no terminal, default %s", question, "yes" if default else "no")
            return default
        hint = "[Y/n]" if default else "[y/N]"
        while True:
            answer = self._ask(f"{question} {hint} ", question).lower()
            if answer in ("", "y", "yes", "n", "no"):
                result = default if answer == "" else answer.startswith("y")
                log.info("operator asked: %s | answered: %s", question, "yes" if result else "no")
                return result
            self._out.write("Please answer y or n (q aborts).\n")

    def _ask(self, prompt: str, what: str) -> str:
        self._out.write(prompt)
        self._out.flush()
        line = self._in.readline()
        if not line:  # end of input
            log.warning("operator asked: %s | end of input: aborting", what)
            raise DeviceError("operator", f"end of input while waiting for: {what}")
        answer = line.strip()
        if answer.lower() == ABORT:
            log.warning("operator asked: %s | aborted", what)
            raise DeviceError("operator", f"aborted by the operator at: {what}")
        return answer


class UnattendedOperator:
    """Nobody at the rig (``--unattended`` or no terminal): any manual step is an error."""

    interactive = False

    def request(self, instruction: str) -> str:
        raise DeviceError("operator", f"unattended run, nobody to ask: {instruction}")

    def ask_yes_no(self, question: str, default: bool = False) -> bool:
        log.info("operator asked: %s | unattended, default %s", question, "yes" if default else "no")
        return default


class ManualStage:
    """A camera the operator moves by hand to the distance asked for."""

    device = "stage"
    manual = True

    def __init__(self, operator):
        self.operator = operator
        self._distance_mm: float | None = None

    def move_to_mm(self, distance_mm: float) -> float:
        if not (isinstance(distance_mm, numbers.Real) and math.isfinite(distance_mm)):
            raise ValueError(f"stage: distance must be a number of mm (got {distance_mm!r})")
        where = ("to the focal plane of L2 (0 mm)" if distance_mm == 0
                 else f"to {distance_mm:g} mm behind the focal plane of L2")
        self.operator.request(f"Move the camera {where}, then press Enter")
        self._distance_mm = float(distance_mm)
        return self._distance_mm

    def distance_mm(self) -> float | None:
        """The distance last confirmed by the operator; None before the first move."""
        return self._distance_mm

    def close(self) -> None:
        pass


class ManualDiffuserChanger:
    """Diffusers the operator swaps by hand."""

    device = "changer"
    manual = True

    def __init__(self, operator, diffusers):
        names = tuple(str(d) for d in diffusers)
        if not names or len(set(names)) != len(names):
            raise UserError(f"changer.slots: the diffusers must be distinct and at least one (got {names})")
        self.operator = operator
        self._diffusers = names
        self._current: str | None = None

    @property
    def diffusers(self) -> tuple[str, ...]:
        return self._diffusers

    def select(self, diffuser: str) -> None:
        if diffuser not in self._diffusers:
            raise UserError(f"changer: diffuser {diffuser!r} is not one of the rig's diffusers "
                            f"({', '.join(self._diffusers)})")
        if self._current == diffuser:
            return
        take_out = f"Take the {self._current}-grit diffuser out, then put" if self._current else "Put"
        self.operator.request(f"{take_out} the {diffuser}-grit diffuser in, then press Enter")
        self._current = diffuser

    def current(self) -> str | None:
        """The diffuser last confirmed by the operator; None before the first swap."""
        return self._current

    def close(self) -> None:
        pass

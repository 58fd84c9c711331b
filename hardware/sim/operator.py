"""A scripted stand-in for the person at the rig, for tests and unattended simulated runs."""

from __future__ import annotations

from collections.abc import Iterable

from hardware.errors import DeviceError

ABORT = object()  # an answer that aborts, as a person pressing Ctrl-C at the prompt would


class ScriptedOperator:
    """Answers prompts from a list, in order, and records every prompt in ``prompts``.

    ``request`` takes the next answer as a string; ``ask_yes_no`` takes it as a bool (or "y"/"yes"
    / "n"/"no"). The answer :data:`ABORT` raises ``DeviceError("operator", ...)``. When the list
    is used up, the operator just presses Enter: ``request`` returns "" and ``ask_yes_no`` its
    default.
    """

    def __init__(self, answers: Iterable[object] = (), interactive: bool = True):
        self._answers = list(answers)
        self._interactive = bool(interactive)
        self.prompts: list[str] = []

    @property
    def interactive(self) -> bool:
        return self._interactive

    def _next(self, prompt: str) -> object | None:
        self.prompts.append(prompt)
        if not self._answers:
            return None
        answer = self._answers.pop(0)
        if answer is ABORT:
            raise DeviceError("operator", f"aborted at: {prompt}")
        return answer

    def request(self, instruction: str) -> str:
        answer = self._next(instruction)
        return "" if answer is None else str(answer)

    def ask_yes_no(self, question: str, default: bool = False) -> bool:
        answer = self._next(question)
        if answer is None:
            return default
        if isinstance(answer, bool):
            return answer
        text = str(answer).strip().lower()
        if text in ("y", "yes"):
            return True
        if text in ("n", "no"):
            return False
        if text == "":
            return default
        raise ValueError(f"scripted answer {answer!r} to a yes/no question must be a bool or y/n")

"""Manual devices and operators: prompts, logged answers, aborts, unattended refusal."""

import io
import logging

import pytest

from hardware.drivers.manual import ConsoleOperator, ManualDiffuserChanger, ManualStage, UnattendedOperator
from hardware.errors import DeviceError
from speckle_core.errors import UserError


class TTYInput(io.StringIO):
    def isatty(self):
        return True


def console(text):
    out = io.StringIO()
    return ConsoleOperator(stdin=TTYInput(text), stdout=out), out


class RecordingOperator:
    interactive = True

    def __init__(self):
        self.asked = []

    def request(self, instruction):
        self.asked.append(instruction)
        return "done"

    def ask_yes_no(self, question, default=False):
        return default


def test_console_is_interactive_only_on_a_tty():
    assert console("")[0].interactive
    assert not ConsoleOperator(stdin=io.StringIO(""), stdout=io.StringIO()).interactive


def test_request_prints_the_instruction_and_returns_the_answer(caplog):
    op, out = console("swapped, slight tilt\n")
    with caplog.at_level(logging.INFO, logger="speckle_lab.operator"):
        assert op.request("Put the 220-grit diffuser in, then press Enter") == "swapped, slight tilt"
    assert "Put the 220-grit diffuser in, then press Enter" in out.getvalue()
    assert "swapped, slight tilt" in caplog.text


def test_q_aborts_with_an_operator_error():
    op, _ = console("q\n")
    with pytest.raises(DeviceError, match="operator: aborted by the operator"):
        op.request("Move the camera")


def test_end_of_input_aborts():
    op, _ = console("")
    with pytest.raises(DeviceError, match="operator: end of input"):
        op.request("Move the camera")


def test_console_without_a_tty_refuses_to_ask():
    op = ConsoleOperator(stdin=io.StringIO("\n"), stdout=io.StringIO())
    with pytest.raises(DeviceError, match="no terminal"):
        op.request("Move the camera")


def test_yes_no_uses_the_default_on_empty_and_asks_again_on_nonsense():
    op, out = console("maybe\n\n")
    assert op.ask_yes_no("Continue?", default=True) is True
    assert "Please answer y or n" in out.getvalue()
    assert console("y\n")[0].ask_yes_no("Continue?") is True


def test_unattended_operator_refuses_requests_and_takes_defaults():
    op = UnattendedOperator()
    assert op.interactive is False
    with pytest.raises(DeviceError, match="unattended run, nobody to ask: Put"):
        op.request("Put the 120-grit diffuser in")
    assert op.ask_yes_no("Continue?", default=False) is False


def test_manual_stage_prompts_with_the_distance_and_remembers_it():
    op = RecordingOperator()
    stage = ManualStage(op)
    assert stage.manual and stage.distance_mm() is None
    assert stage.move_to_mm(20) == 20.0
    assert op.asked == ["Move the camera to 20 mm behind the focal plane of L2, then press Enter"]
    assert stage.distance_mm() == 20.0


def test_manual_stage_at_zero_names_the_focal_plane():
    op = RecordingOperator()
    ManualStage(op).move_to_mm(0)
    assert op.asked == ["Move the camera to the focal plane of L2 (0 mm), then press Enter"]


def test_manual_changer_prompts_for_the_swap():
    op = RecordingOperator()
    changer = ManualDiffuserChanger(op, ("120", "220"))
    assert changer.manual and changer.current() is None
    changer.select("220")
    changer.select("220")  # already in: no prompt
    changer.select("120")
    assert op.asked == ["Put the 220-grit diffuser in, then press Enter",
                        "Take the 220-grit diffuser out, then put the 120-grit diffuser in, then press Enter"]
    assert changer.current() == "120"


def test_manual_changer_refuses_an_unknown_diffuser():
    with pytest.raises(UserError, match="'999' is not one of the rig's diffusers"):
        ManualDiffuserChanger(RecordingOperator(), ("120",)).select("999")


def test_aborted_swap_leaves_the_diffuser_unknown():
    op, _ = console("q\n")
    changer = ManualDiffuserChanger(op, ("120",))
    with pytest.raises(DeviceError):
        changer.select("120")
    assert changer.current() is None

"""An unattended run is refused only for what needs a person, naming it and the options that fix it;
a rig with a dark source (the wheel's blank slot, a shutter) runs darks unattended."""

from types import SimpleNamespace

import pytest

from acquisition.acquire import needs_a_person, preflight_people
from acquisition.settings import RunSettings
from hardware.rig import RigConfig
from protocols.schema import CameraConfig, DarkConfig
from speckle_core.errors import UserError
from tests._fake_rig import FakeOperator

REAL = {"slm": {"kind": "exulus"}, "camera": {"kind": "uc480"}, "stage": {"kind": "kinesis"}}
DARKS = RunSettings(camera=CameraConfig(roi_px=(16, 16)), dark=DarkConfig(frames=8))


def rig_file(**sections):
    return SimpleNamespace(config=RigConfig.model_validate({**REAL, **sections}), path="my-rig.toml")


def test_the_papers_rig_without_a_dark_source_is_refused_naming_the_darks_and_the_fixes():
    rig = rig_file(changer={"kind": "fw102c", "port": "COM4"})
    with pytest.raises(UserError) as e:
        preflight_people(DARKS, rig, FakeOperator())
    msg = str(e.value)
    assert "blocking the laser for dark frames" in msg
    for fix in ("changer.dark_slot", "[shutter]", "mff101", "ksc101", "dark.frames = 0", "my-rig.toml"):
        assert fix in msg
    assert "motorised stage" not in msg  # the old advice, wrong for this rig
    assert "\n" not in msg


@pytest.mark.parametrize("sections", [
    {"changer": {"kind": "fw102c", "port": "COM4", "dark_slot": 6}},
    {"changer": {"kind": "fw102c", "port": "COM4"}, "shutter": {"kind": "mff101", "serial": "37000001"}},
    {"changer": {"kind": "fw102c", "port": "COM4"}, "shutter": {"kind": "ksc101", "serial": "68000001"}},
])
def test_a_rig_with_a_dark_source_runs_darks_unattended(sections):
    assert needs_a_person(DARKS, rig_file(**sections)) == []
    preflight_people(DARKS, rig_file(**sections), FakeOperator())


def test_each_manual_device_is_named_with_its_motorised_replacement():
    rig = rig_file(stage={"kind": "manual"}, changer={"kind": "manual"})
    needs = needs_a_person(DARKS.replace(dark={"frames": 0}), rig)
    assert [w for w, _ in needs] == ["moving the camera (stage.kind = 'manual')",
                                     "swapping diffusers (changer.kind = 'manual')"]
    assert "stage.kind = 'kinesis'" in needs[0][1] and "changer.kind = 'fw102c'" in needs[1][1]


def test_the_simulated_rig_never_needs_a_person():
    assert needs_a_person(DARKS, SimpleNamespace(config=RigConfig(), path=None)) == []

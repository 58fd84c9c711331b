"""Dark sources at the vendor boundary: an MFF101 flip mount and an SH05 on a KSC101 through fakes of
pylablib's classes, the filter wheel's blank slot, and the rig's choice among them."""

import pytest

from hardware.dark import ShutterConfig, build_dark_source, describe_dark_source
from hardware.drivers.shutter import (
    FlipMountShutter,
    NoDarkSource,
    OperatorDark,
    SolenoidShutter,
    WheelDarkSlot,
)
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout
from hardware.interfaces import DarkSource
from hardware.rig import RigConfig
from tests.vendor_fakes_shutter import fake_vendor


def no_sleep(_s):
    pass


def flip(vendor=None, **cfg):
    vendor = vendor or fake_vendor()
    shutter = FlipMountShutter.from_config(ShutterConfig(kind="mff101", serial="37000001", **cfg), vendor)
    shutter._sleep = no_sleep
    return shutter, vendor.opened[0]


def test_flip_mount_blocks_at_its_blocked_state_and_waits_for_the_transit():
    shutter, mff = flip(blocked_state=1)
    shutter.block()
    assert mff.moves == [1] and mff.state == 1 and shutter.blocked() is True
    shutter.unblock()
    assert mff.moves == [1, 0] and shutter.blocked() is False


def test_flip_mount_already_in_place_does_not_move():
    shutter, mff = flip(blocked_state=0)
    shutter.block()
    assert mff.moves == []


def test_a_flip_mount_that_never_arrives_is_a_device_timeout():
    shutter, mff = flip(timeout_s=0.05)
    mff.stuck = True
    with pytest.raises(DeviceTimeout, match="still moving"):
        shutter.block()


def test_a_missing_flip_mount_is_device_not_found_naming_its_serial():
    with pytest.raises(DeviceNotFound, match="MFF101 at '37000001'"):
        FlipMountShutter.from_config(ShutterConfig(kind="mff101", serial="37000001"),
                                     fake_vendor(missing=("37000001",)))


def ksc(**cfg):
    vendor = fake_vendor()
    shutter = SolenoidShutter.from_config(ShutterConfig(kind="ksc101", serial="68000001", **cfg), vendor)
    return shutter, vendor.opened[0]


def test_ksc101_is_put_in_manual_mode_and_opened_at_start():
    shutter, dev = ksc()
    assert dev.sent[0] == (0x04C0, 1, 0x01)  # SET_SOL_OPERATINGMODE, channel 1, manual
    assert (0x04CB, 1, 0x01) in dev.sent and dev.state == 0x01  # SET_SOL_STATE ON: open
    assert shutter.blocked() is False


def test_ksc101_block_closes_the_sh05_and_reads_it_back():
    shutter, dev = ksc()
    shutter.block()
    assert dev.sent[-2:] == [(0x04CB, 1, 0x02), (0x04CC, 1, 0)] and shutter.blocked() is True
    shutter.unblock()
    assert dev.state == 0x01


def test_a_ksc101_that_ignores_the_command_is_a_device_error():
    shutter, dev = ksc()
    dev.ignores_state = True
    with pytest.raises(DeviceError, match="reports state 1"):
        shutter.block()


class FakeChanger:
    def __init__(self):
        self.slot, self.names = 1, {1: "120", 2: "600"}

    def current(self):
        return self.names.get(self.slot)

    def move_to_slot(self, slot):
        self.slot = slot

    def select(self, name):
        self.slot = {v: k for k, v in self.names.items()}[name]


def test_the_wheels_blank_slot_blocks_and_returns_to_the_diffuser():
    changer = FakeChanger()
    changer.select("600")
    dark = WheelDarkSlot(changer, 6)
    dark.block()
    assert changer.slot == 6 and changer.current() is None
    dark.unblock()
    assert changer.current() == "600"


def test_the_operator_is_asked_to_block_and_unblock():
    asked = []
    dark = OperatorDark(type("Op", (), {"request": lambda self, s: asked.append(s)})())
    dark.block()
    dark.unblock()
    assert dark.manual and [a.split()[0] for a in asked] == ["Block", "Unblock"]


def rig(**sections) -> RigConfig:
    base = {"slm": {"kind": "exulus"}, "camera": {"kind": "uc480"}, "stage": {"kind": "kinesis"},
            "changer": {"kind": "fw102c", "port": "COM4"}}
    base.update(sections)
    return RigConfig.model_validate(base)


@pytest.mark.parametrize("sections, kind, manual", [
    ({}, OperatorDark, True),
    ({"changer": {"kind": "fw102c", "port": "COM4", "dark_slot": 6}}, WheelDarkSlot, False),
    ({"shutter": {"kind": "mff101", "serial": "37000001"}}, FlipMountShutter, False),
    ({"shutter": {"kind": "ksc101", "serial": "68000001"}}, SolenoidShutter, False),
])
def test_the_rig_file_chooses_the_dark_source(sections, kind, manual):
    cfg = rig(**sections)
    dark = build_dark_source(cfg, FakeChanger(), object(), vendor=fake_vendor())
    assert isinstance(dark, kind) and isinstance(dark, DarkSource) and dark.manual is manual
    assert describe_dark_source(cfg).manual is manual


def test_the_simulated_rig_needs_no_dark_source():
    cfg = RigConfig()
    assert isinstance(build_dark_source(cfg, None, None), NoDarkSource)
    assert not describe_dark_source(cfg).manual

"""FW102C changer end to end: driver → pylablib FW → pyserial → a pty → fake wheel firmware."""

import pytest

from hardware.drivers.fw_wheel import FilterWheelChanger
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout
from hardware.rig import ChangerConfig
from speckle_core.errors import UserError
from tests.vendor_fakes_fw102c import FakeFW102C

SLOTS = {"1": "120", "2": "220", "3": "600", "4": "1500"}


@pytest.fixture
def firmware():
    with FakeFW102C() as fw:
        yield fw


def open_changer(fw, slots=SLOTS, timeout_s=2.0):
    return FilterWheelChanger.from_config(ChangerConfig(kind="fw102c", port=fw.port, slots=slots,
                                                        timeout_s=timeout_s))


def test_diffusers_come_from_the_slot_map_in_slot_order(firmware):
    changer = open_changer(firmware, {"3": "600", "1": "120"})
    assert changer.diffusers == ("120", "600")
    changer.close()


def test_select_turns_the_wheel_with_the_real_protocol(firmware):
    changer = open_changer(firmware)
    changer.select("600")
    assert firmware.position == 3
    assert "pos=3" in firmware.received and firmware.received[-1] == "pos?"
    changer.close()


def test_a_far_slot_is_reached_without_crossing_the_wheel_boundary(firmware):
    changer = open_changer(firmware)
    changer.select("1500")  # slot 1 -> 4 on a 6-slot wheel: pylablib steps through 2 and 3
    assert firmware.position == 4
    assert [c for c in firmware.received if c.startswith("pos=")] == ["pos=2", "pos=3", "pos=4"]
    changer.close()


def test_current_reads_the_position_from_the_wheel(firmware):
    changer = open_changer(firmware)
    firmware.position = 4
    assert changer.current() == "1500"
    firmware.position = 6
    assert changer.current() is None  # an empty slot
    changer.close()


def test_jammed_wheel_fails_the_read_back(firmware):
    changer = open_changer(firmware)
    firmware.jammed = True
    with pytest.raises(DeviceError, match="asked for slot 2 .* reports slot 1"):
        changer.select("220")
    changer.close()


def test_unknown_diffuser_is_a_user_error_listing_the_wheel(firmware):
    changer = open_changer(firmware)
    with pytest.raises(UserError, match=r"'999' is not in the wheel .*1=120, 2=220"):
        changer.select("999")
    changer.close()


def test_slot_beyond_the_wheel_is_refused(firmware):
    with pytest.raises(UserError, match="slot 8 does not exist on this 6-slot wheel"):
        open_changer(firmware, {"1": "120", "8": "220"})


def test_silent_firmware_times_out_quickly(firmware):
    changer = open_changer(firmware, timeout_s=0.2)
    firmware.silent = True
    with pytest.raises(DeviceTimeout, match=r"did not answer within 0.2 s"):
        changer.current()
    changer.close()


def test_silent_wheel_at_open_is_a_timeout(firmware):
    firmware.silent = True
    with pytest.raises(DeviceTimeout, match="opening the wheel"):
        open_changer(firmware, timeout_s=0.2)


def test_absent_port_is_device_not_found_naming_it():
    cfg = ChangerConfig(kind="fw102c", port="/dev/ttyUSB-no-such-wheel")
    with pytest.raises(DeviceNotFound, match=r"cannot open the FW102C's port '/dev/ttyUSB-no-such-wheel'"):
        FilterWheelChanger.from_config(cfg)


def test_missing_port_in_rig_file_is_a_user_error():
    with pytest.raises(UserError, match="changer.port"):
        FilterWheelChanger.from_config(ChangerConfig(kind="fw102c"))


def test_the_blank_dark_slot_is_reached_and_the_diffuser_restored(firmware):
    from hardware.drivers.shutter import WheelDarkSlot

    changer = open_changer(firmware)
    changer.select("600")
    dark = WheelDarkSlot(changer, 6)
    dark.block()
    assert firmware.position == 6 and changer.current() is None
    dark.unblock()
    assert firmware.position == 3 and changer.current() == "600"
    with pytest.raises(UserError, match="slot 9 does not exist"):
        changer.move_to_slot(9)
    changer.close()

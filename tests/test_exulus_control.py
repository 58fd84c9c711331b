"""EXULUS control port through a fake EXULUS_COMMAND_LIB with Thorlabs' names and return codes."""

import inspect
import textwrap

import pytest

from hardware.drivers.exulus_control import FUNCTIONS, ExulusControl, load_library
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from tests.vendor_fakes_exulus import FakeExulusLib

# Argument names of Thorlabs' EXULUS_COMMAND_LIB.py wrappers (its EXULUSOpen(serialNo, nBaud, timeout),
# getters/setters (hdl, value)).
THORLABS_ARGS = {"EXULUSListDevices": [], "EXULUSOpen": ["serialNo", "nBaud", "timeout"],
                 "EXULUSClose": ["hdl"]}


def control(lib=None):
    lib = lib or FakeExulusLib()
    return ExulusControl.open("M00123456", library=lib), lib


def test_fake_library_has_thorlabs_function_names_and_arguments():
    lib = FakeExulusLib()
    for name in FUNCTIONS:
        params = list(inspect.signature(getattr(lib, name)).parameters)
        assert params == THORLABS_ARGS.get(name, ["hdl", "value"]), name


def test_open_uses_38400_baud_and_whole_seconds():
    _, lib = control()
    assert lib.opened_with == [("M00123456", 38400, 3)]


def test_stroke_mode_reads_full_wave_as_code_0():
    ctl, lib = control()
    assert ctl.stroke_mode() == "full-wave"
    lib.stroke = 1
    assert ctl.stroke_mode() == "half-wave"


def test_set_stroke_mode_writes_and_reads_back():
    ctl, lib = control()
    ctl.set_stroke_mode("half-wave")
    assert lib.stroke == 1


def test_a_setting_that_does_not_stick_is_a_device_error():
    ctl, lib = control()
    lib.ignore_sets = True
    with pytest.raises(DeviceError, match="half-wave but it reads full-wave"):
        ctl.set_stroke_mode("half-wave")


def test_unknown_stroke_mode_is_refused():
    ctl, _ = control()
    with pytest.raises(ValueError, match="quarter"):
        ctl.set_stroke_mode("quarter-wave")


def test_set_flips_and_test_pattern():
    ctl, lib = control()
    ctl.set_flips(horizontal=True, vertical=False)
    ctl.set_test_pattern(True)
    assert (lib.hflip, lib.vflip, lib.pattern) == (1, 0, 1)
    assert ctl.flips() == (True, False) and ctl.test_pattern()


def test_nak_fails_the_communication_check():
    ctl, lib = control()
    lib.ack = 0x09
    with pytest.raises(DeviceError, match="NAK"):
        ctl.check_communication()


def test_nak_at_open_closes_the_port():
    lib = FakeExulusLib()
    lib.ack = 0x09
    with pytest.raises(DeviceError, match="NAK"):
        ExulusControl.open("M00123456", library=lib)
    assert not lib.open_handles


def test_library_timeout_code_is_device_timeout():
    ctl, lib = control()
    lib.ret = 0xEB
    with pytest.raises(DeviceTimeout, match="reading the phase-stroke mode"):
        ctl.stroke_mode()


def test_negative_return_is_device_error():
    ctl, lib = control()
    lib.ret = -1
    with pytest.raises(DeviceError, match=r"setting the horizontal flip failed \(code -1\)"):
        ctl.set_flips(False, True)


def test_absent_device_is_not_found_listing_what_is_there():
    with pytest.raises(DeviceNotFound, match=r"'COM9' .*M00123456 \(EXULUS-HD2\)"):
        ExulusControl.open("COM9", library=FakeExulusLib())


def test_close_releases_the_handle_and_later_calls_fail():
    ctl, lib = control()
    ctl.close()
    assert not lib.open_handles
    with pytest.raises(DeviceError, match="closed"):
        ctl.stroke_mode()


def test_missing_library_says_what_to_install(tmp_path):
    with pytest.raises(DriverMissing, match=r"EXULUS_COMMAND_LIB.py is not in .*EXULUS software"):
        load_library(str(tmp_path))


def test_library_not_on_the_path_says_what_to_install():
    with pytest.raises(DriverMissing, match=r"not installed; install Thorlabs' EXULUS software"):
        load_library(None)


def test_missing_dll_names_it(tmp_path):
    # The shape of Thorlabs' module: it loads the DLL from its own folder when imported.
    (tmp_path / "EXULUS_COMMAND_LIB.py").write_text(textwrap.dedent("""
        import os
        from ctypes import cdll
        EXULUSLib = cdll.LoadLibrary(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "exulus_command_library.dll"))
    """))
    with pytest.raises(DriverMissing, match=r"could not load exulus_command_library.dll"):
        load_library(str(tmp_path))


def test_open_imports_the_library_from_its_folder(tmp_path):
    (tmp_path / "EXULUS_COMMAND_LIB.py").write_text(
        "from tests.vendor_fakes_exulus import FakeExulusLib\n"
        "_lib = FakeExulusLib()\n"
        + "".join(f"{name} = _lib.{name}\n" for name in FUNCTIONS))
    ctl = ExulusControl.open("M00123456", library_dir=str(tmp_path))
    assert ctl.stroke_mode() == "full-wave"
    ctl.close()

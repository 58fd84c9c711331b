"""KDC101 + MTS50-Z8 stage driver against a fake KinesisMotor: mm outside, metres inside."""

import inspect

import pytest
from pylablib.devices.Thorlabs import KinesisMotor, ThorlabsError

from hardware.drivers.kinesis_stage import KinesisStage
from hardware.errors import DeviceError, DeviceNotFound, DeviceTimeout, DriverMissing
from hardware.rig import StageConfig
from speckle_core.errors import UserError
from tests.vendor_fakes_kinesis import FakeKinesisMotor, fake_vendor


def stage(zero_mm=5.0, **kw):
    motor = FakeKinesisMotor("27000001", scale="MTS50-Z8")
    motor.homed = True
    return KinesisStage(motor, zero_mm=zero_mm, vendor=fake_vendor(), **kw), motor


def test_fake_has_the_signatures_of_pylablibs_kinesismotor():
    for name, member in inspect.getmembers(FakeKinesisMotor, inspect.isfunction):
        if not name.startswith("_") or name == "__init__":
            assert inspect.signature(member) == inspect.signature(getattr(KinesisMotor, name)), name


def test_move_is_in_metres_inside_with_the_zero_offset():
    st, motor = stage(zero_mm=5.0)
    assert st.move_to_mm(20.0) == pytest.approx(20.0)
    assert motor.target_m == pytest.approx(0.025)


def test_distance_reads_back_from_the_stage():
    st, motor = stage(zero_mm=5.0)
    motor.position_m = 0.045
    assert st.distance_mm() == pytest.approx(40.0)


def test_stage_mounted_toward_the_lens_moves_down_from_zero():
    st, motor = stage(zero_mm=45.0, direction="toward")
    assert st.move_to_mm(40.0) == pytest.approx(40.0)
    assert motor.target_m == pytest.approx(0.005)
    motor.position_m = 0.025
    assert st.distance_mm() == pytest.approx(20.0)


def test_toward_mounting_refuses_a_distance_below_the_travel():
    st, motor = stage(zero_mm=30.0, direction="toward")
    with pytest.raises(UserError, match="stage position -10 mm.*direction = 'toward'"):
        st.move_to_mm(40.0)
    assert motor.target_m is None


def test_direction_comes_from_the_rig_file():
    vendor = fake_vendor()
    cfg = StageConfig(kind="kinesis", serial="27000001", home_on_start=True, zero_mm=45.0,
                      direction="toward")
    st = KinesisStage.from_config(cfg, vendor=vendor)
    st.move_to_mm(20.0)
    assert vendor.opened[0].target_m == pytest.approx(0.025)


def test_unknown_direction_in_the_rig_file_is_refused():
    with pytest.raises(ValueError, match="direction"):
        StageConfig(kind="kinesis", serial="1", direction="up")


def test_distance_is_unknown_before_homing():
    st, motor = stage()
    motor.homed = False
    assert st.distance_mm() is None


def test_move_before_homing_is_refused():
    st, motor = stage()
    motor.homed = False
    with pytest.raises(DeviceError, match="not homed"):
        st.move_to_mm(20.0)
    assert motor.target_m is None


def test_read_back_off_target_is_a_device_error():
    st, motor = stage(tolerance_um=5.0)
    motor.miss_m = 20e-6
    with pytest.raises(DeviceError, match=r"asked for 25.0000 mm, read back 25.0200 mm"):
        st.move_to_mm(20.0)


def test_read_back_within_tolerance_is_accepted():
    st, motor = stage(tolerance_um=5.0)
    motor.miss_m = 3e-6
    assert st.move_to_mm(20.0) == pytest.approx(20.003)


def test_target_outside_travel_is_one_line_naming_the_value():
    st, motor = stage(zero_mm=15.0)
    with pytest.raises(UserError,
                       match=r"distance 40 mm needs stage position 55 mm, outside the travel 0\.\.50"):
        st.move_to_mm(40.0)
    assert motor.target_m is None


def test_stuck_move_times_out_and_stops_the_motor():
    st, motor = stage(move_timeout_s=0.5)
    motor.stuck = True
    with pytest.raises(DeviceTimeout, match="within 0.5 s"):
        st.move_to_mm(20.0)
    assert motor.stopped


def test_communication_error_is_a_device_error():
    st, motor = stage()
    motor.fail["get_position"] = ThorlabsError("unexpected command received")
    with pytest.raises(DeviceError, match="unexpected command received"):
        st.distance_mm()


def test_homing_on_start_from_config():
    vendor = fake_vendor()
    cfg = StageConfig(kind="kinesis", serial="27000001", home_on_start=True, zero_mm=2.0)
    st = KinesisStage.from_config(cfg, vendor=vendor)
    assert vendor.opened[0].homed and vendor.opened[0].scale == "MTS50-Z8"
    assert st.distance_mm() == pytest.approx(-2.0)


def test_zero_outside_travel_is_refused():
    with pytest.raises(UserError, match="zero_mm 60"):
        KinesisStage(FakeKinesisMotor("1"), zero_mm=60.0, vendor=fake_vendor())


def test_missing_serial_is_a_user_error():
    with pytest.raises(UserError, match="stage.serial"):
        KinesisStage.from_config(StageConfig(kind="kinesis"), vendor=fake_vendor())


def test_non_metric_scale_is_refused_and_closed():
    vendor = fake_vendor()
    with pytest.raises(DeviceError, match="not metres"):
        KinesisStage.from_config(StageConfig(kind="kinesis", serial="1", scale="step"), vendor=vendor)
    assert vendor.opened[0].closed


def test_absent_port_through_real_pylablib_is_device_not_found():
    cfg = StageConfig(kind="kinesis", serial="/dev/ttyUSB97")
    with pytest.raises(DeviceNotFound, match="no KDC101 at '/dev/ttyUSB97'"):
        KinesisStage.from_config(cfg)


def test_missing_ftdi_driver_is_driver_missing():
    def no_ft232(*a, **k):
        raise ValueError("could not find backend ft232: pyft232 package is missing.")

    with pytest.raises(DriverMissing, match="FTDI D2XX"):
        KinesisStage.from_config(StageConfig(kind="kinesis", serial="27000001"),
                                 vendor=fake_vendor(motor_factory=no_ft232))

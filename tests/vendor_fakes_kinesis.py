"""A fake pylablib ``KinesisMotor`` (same signatures, real pylablib exceptions), in metres."""

from __future__ import annotations

from types import SimpleNamespace

from pylablib.devices.Thorlabs import ThorlabsError, ThorlabsTimeoutError
from pylablib.devices.Thorlabs.base import ThorlabsBackendError


class FakeKinesisMotor:
    def __init__(self, conn, scale="step", default_channel=1, is_rack_system=False):
        self.conn, self.scale = conn, scale
        self.position_m = 0.0123  # where it happens to be at power-on
        self.homed = False
        self.target_m = None
        self.stuck = False  # True: the move never finishes (wait_move times out)
        self.miss_m = 0.0  # where the move ends up relative to the target (a slipping motor)
        self.stopped = False
        self.closed = False
        self.fail: dict[str, Exception] = {}

    def _check(self, name):
        if name in self.fail:
            raise self.fail[name]

    def get_scale_units(self):
        return "m" if self.scale in ("MTS50-Z8", "stage") else "step"

    def is_homed(self, channel=None):
        self._check("is_homed")
        return self.homed

    def home(self, sync=True, force=False, channel=None, timeout=None):
        self._check("home")
        if self.stuck:
            raise ThorlabsTimeoutError()
        self.homed, self.position_m = True, 0.0

    def move_to(self, position, channel=None, scale=True):
        self._check("move_to")
        self.target_m = position

    def wait_move(self, channel=None, timeout=None):
        self._check("wait_move")
        if self.stuck:
            raise ThorlabsTimeoutError()
        self.position_m = self.target_m + self.miss_m

    def get_position(self, channel=None, scale=True):
        self._check("get_position")
        return self.position_m

    def stop(self, immediate=False, sync=True, channel=None, timeout=None):
        self.stopped = True

    def close(self):
        self.closed = True


def fake_vendor(motor_factory=FakeKinesisMotor, devices=()):
    opened: list[FakeKinesisMotor] = []

    def open_motor(*args, **kwargs):
        motor = motor_factory(*args, **kwargs)
        opened.append(motor)
        return motor

    return SimpleNamespace(KinesisMotor=open_motor, ThorlabsError=ThorlabsError,
                           ThorlabsTimeoutError=ThorlabsTimeoutError,
                           ThorlabsBackendError=ThorlabsBackendError,
                           list_kinesis_devices=lambda: list(devices), opened=opened)

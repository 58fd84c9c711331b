"""Fakes of pylablib's ``Thorlabs.MFF`` (flip mount) and ``Thorlabs.BasicKinesisDevice`` speaking the
KSC101's APT solenoid messages: same signatures as pylablib, real pylablib exceptions."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

from pylablib.devices.Thorlabs import ThorlabsError, ThorlabsTimeoutError

CommShort = namedtuple("CommShort", ["messageID", "param1", "param2", "source", "dest"])


class FakeMFF:
    """An MFF101: ``move_to_state`` starts a transit that lasts ``transit_polls`` ``get_state`` calls."""

    def __init__(self, conn):
        self.conn = conn
        self.state = 0
        self.target = None
        self.transit_polls = 2
        self._left = 0
        self.stuck = False  # the mount never arrives (something in its way)
        self.moves: list[int] = []
        self.closed = False

    def move_to_state(self, state, channel=None):
        self.moves.append(int(state))
        self.target, self._left = int(state), self.transit_polls

    def get_state(self, channel=None):
        if self.target is not None:
            if self._left > 0 or self.stuck:
                self._left -= 1
                return None  # moving: pylablib returns None between the limit switches
            self.state, self.target = self.target, None
        return self.state

    def close(self):
        self.closed = True


class FakeKSC101:
    """A KSC101 solenoid controller: records every APT message; answers REQ_SOL_STATE (0x04CC)."""

    def __init__(self, conn, timeout=3.0, is_rack_system=False):
        self.conn = conn
        self.sent: list[tuple[int, int, int]] = []
        self.mode = None
        self.state = 2  # the SH05 powers up closed
        self.ignores_state = False  # an open interlock: SET_SOL_STATE has no effect
        self.closed = False

    def send_comm(self, messageID, param1=0, param2=0, source=0x01, dest="host"):
        self.sent.append((messageID, param1, param2))
        if messageID == 0x04C0:
            self.mode = param2
        elif messageID == 0x04CB and not self.ignores_state and self.mode == 0x01:
            self.state = param2

    def query(self, messageID, param1=0, param2=0, source=0x01, dest="host", replyID=-1, flush="auto"):
        self.sent.append((messageID, param1, param2))
        if messageID != 0x04CC:
            raise ThorlabsError(f"unexpected query 0x{messageID:04x}")
        return CommShort(0x04CD, param1, self.state, 0x50, 0x01)

    def close(self):
        self.closed = True


def fake_vendor(missing=()):
    """A ``pylablib.devices.Thorlabs`` stand-in; serial numbers in ``missing`` are not found."""
    opened: list = []

    def opener(cls):
        def open_device(conn, *args, **kwargs):
            if conn in missing:
                raise ThorlabsError(f"device {conn} not found")
            dev = cls(conn, *args, **kwargs)
            opened.append(dev)
            return dev
        return open_device

    return SimpleNamespace(MFF=opener(FakeMFF), BasicKinesisDevice=opener(FakeKSC101),
                           ThorlabsError=ThorlabsError, ThorlabsTimeoutError=ThorlabsTimeoutError,
                           opened=opened)

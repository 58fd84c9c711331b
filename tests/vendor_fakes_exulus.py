"""A fake ``EXULUS_COMMAND_LIB``: Thorlabs' function names and return conventions, no DLL.

Getters fill ``value[0]``; calls return 0 on success, negative on failure, 0xEB on time-out.
"""

from __future__ import annotations


class FakeExulusLib:
    def __init__(self, devices=(("M00123456", "EXULUS-HD2"),)):
        self.devices = [list(d) for d in devices]
        self.open_handles: set[int] = set()
        self.stroke = 0  # 0 full wave, 1 half wave
        self.hflip = self.vflip = self.pattern = 0
        self.ack = 0x06
        self.ret = 0  # returned by every device call (0xEB: time-out, -1: failure)
        self.ignore_sets = False  # a device that acknowledges but does not change
        self.opened_with: list[tuple] = []

    def EXULUSListDevices(self):
        return [d.copy() for d in self.devices]

    def EXULUSOpen(self, serialNo, nBaud, timeout):
        self.opened_with.append((serialNo, nBaud, timeout))
        if serialNo not in [d[0] for d in self.devices]:
            return -1
        self.open_handles.add(0)
        return 0

    def EXULUSIsOpen(self, serialNo):
        return int(bool(self.open_handles))

    def EXULUSClose(self, hdl):
        if hdl not in self.open_handles:
            return -1
        self.open_handles.discard(hdl)
        return 0

    def _get(self, hdl, value, current):
        if self.ret == 0:
            value[0] = current
        return self.ret

    def _set(self, name, value):
        if self.ret == 0 and not self.ignore_sets:
            setattr(self, name, value)
        return self.ret

    def EXULUSCheckCommunication(self, hdl, value):
        return self._get(hdl, value, self.ack)

    def EXULUSGetPhaseStrokeMode(self, hdl, value):
        return self._get(hdl, value, self.stroke)

    def EXULUSSetPhaseStrokeMode(self, hdl, value):
        return self._set("stroke", value)

    def EXULUSGetScreenHorizontalFlip(self, hdl, value):
        return self._get(hdl, value, self.hflip)

    def EXULUSSetScreenHorizontalFlip(self, hdl, value):
        return self._set("hflip", value)

    def EXULUSGetScreenVerticalFlip(self, hdl, value):
        return self._get(hdl, value, self.vflip)

    def EXULUSSetScreenVerticalFlip(self, hdl, value):
        return self._set("vflip", value)

    def EXULUSGetTestPatternStatus(self, hdl, value):
        return self._get(hdl, value, self.pattern)

    def EXULUSSetTestPatternStatus(self, hdl, value):
        return self._set("pattern", value)

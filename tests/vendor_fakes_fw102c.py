"""A fake FW102C firmware on the master side of a pseudo-terminal.

It speaks the wheel's ASCII protocol (Thorlabs FW102C manual, "Command Line Interface"): each
command ends in CR; the wheel echoes it followed by CR, answers a query with the value and CR,
then prints the prompt "> ". Unknown commands get "Command error CMD_NOT_DEFINED", bad values
"Command error CMD_ARG_INVALID". The driver opens the slave side (``port``) through pylablib and
pyserial exactly as it would open /dev/ttyUSB0.

``silent`` makes the firmware swallow everything (a hung wheel); ``jammed`` makes "pos=N"
accepted but leaves the wheel where it is.
"""

from __future__ import annotations

import os
import select
import threading
import tty


class FakeFW102C:
    IDN = "THORLABS FW102C/FW212C Filter Wheel version 1.07"

    def __init__(self, pcount: int = 6, position: int = 1):
        self.pcount = pcount
        self.position = position
        self.speed = 1
        self.trig = 0
        self.sensors = 0
        self.silent = False
        self.jammed = False
        self.received: list[str] = []
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no line discipline: bytes pass as they are, no local echo
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-fw102c", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- firmware ------------------------------------------------------------------------------
    def _run(self) -> None:
        line = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:
                continue
            try:
                data = os.read(self._master, 1024)
            except OSError:
                return
            for byte in data:
                ch = bytes([byte])
                if ch == b"\r":
                    self._command(line.decode(errors="replace"))
                    line = b""
                elif ch != b"\n":
                    line += ch

    def _command(self, cmd: str) -> None:
        self.received.append(cmd)
        if self.silent:
            return
        reply = self._reply(cmd.strip())
        out = cmd + "\r" + (reply + "\r" if reply is not None else "") + "> "
        os.write(self._master, out.encode())

    def _reply(self, cmd: str) -> str | None:
        queries = {"*idn?": self.IDN, "pos?": self.position, "pcount?": self.pcount, "speed?": self.speed,
                   "trig?": self.trig, "sensors?": self.sensors}
        if cmd in queries:
            return str(queries[cmd])
        if cmd == "save":
            return None
        name, eq, value = cmd.partition("=")
        if not eq or name not in ("pos", "pcount", "speed", "trig", "sensors"):
            return "Command error CMD_NOT_DEFINED"
        try:
            n = int(value)
        except ValueError:
            return "Command error CMD_ARG_INVALID"
        if name == "pos":
            if not 1 <= n <= self.pcount:
                return "Command error CMD_ARG_INVALID"
            if not self.jammed:
                self.position = n
        elif name == "pcount":
            if n not in (6, 12):
                return "Command error CMD_ARG_INVALID"
            self.pcount = n
        else:
            setattr(self, name, n)
        return None

"""Device errors. Drivers translate vendor exceptions into these, naming the device."""


class DeviceError(RuntimeError):
    """A device failed. ``device`` names it (e.g. "camera", "stage", "wheel", "slm")."""

    def __init__(self, device: str, message: str):
        super().__init__(f"{device}: {message}")
        self.device = device


class DeviceTimeout(DeviceError):
    """The device did not answer in time; the engine may retry."""


class DeviceNotFound(DeviceError):
    """No device at the given id, serial, port or monitor."""


class DriverMissing(DeviceError):
    """A vendor package, DLL or driver is not installed; the message says which and where to get it."""

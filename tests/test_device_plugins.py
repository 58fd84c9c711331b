"""A lab's own device kinds, from an installed package's ``speckle_lab.devices`` entry points.

The plugin package below (a toy camera with its own rig-file key, and the test fakes as its SLM,
stage and wheel) is installed into a temporary folder on ``sys.path`` as pip would leave it (the
module and its dist-info with the entry points); speckle-lab is not edited. Rig files then accept
its kinds, validate its own keys, and ``build_rig`` opens its devices.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hardware import plugins, rig
from hardware.drivers.manual import UnattendedOperator
from speckle_core.errors import UserError

# What pip writes when it installs a package whose pyproject.toml declares these entry points:
# [project.entry-points."speckle_lab.devices"] toyslm = "labtoys:SLM_PLUGIN", ...
DIST_INFO = {
    "METADATA": "Metadata-Version: 2.1\nName: lab-toy-devices\nVersion: 0.1\n",
    "entry_points.txt": """[speckle_lab.devices]
toyslm = labtoys:SLM_PLUGIN
toycam = labtoys:CAMERA_PLUGIN
toystage = labtoys:STAGE_PLUGIN
toywheel = labtoys:WHEEL_PLUGIN
""",
}

PLUGIN_MODULE = '''
"""A lab's own devices: a camera with its own rig-file key; the SLM, stage and wheel reuse the
test fakes (each implements its hardware.interfaces Protocol)."""
import time
from typing import Literal

import numpy as np

from hardware.interfaces import Frame
from hardware.plugins import DevicePlugin
from hardware.rig import CameraConfig
from tests._fake_rig import FakeChanger, FakeSLM, FakeStage


class ToyCameraConfig(CameraConfig):
    kind: Literal["toycam"] = "toycam"
    brightness: float = 1.0  # the toy's own key


class ToyCamera:
    max_value = 255

    def __init__(self, brightness):
        self.brightness = brightness
        self.roi = (8, 8)
        self.closed = False

    def configure(self, roi_px, exposure_us):
        self.roi = tuple(roi_px)
        return float(exposure_us)

    def capture(self, timeout_ms, average=1, key=None):
        image = np.full(self.roi, min(255, int(100 * self.brightness)), np.uint8)
        return Frame(image=image, exposure_us=100.0, timestamp_s=time.time())

    def close(self):
        self.closed = True


SLM_PLUGIN = DevicePlugin(role="slm", kind="toyslm", open=lambda cfg, op: FakeSLM(tuple(cfg.window_px)))
CAMERA_PLUGIN = DevicePlugin(role="camera", kind="toycam", open=lambda cfg, op: ToyCamera(cfg.brightness),
                             config_model=ToyCameraConfig)
STAGE_PLUGIN = DevicePlugin(role="stage", kind="toystage", open=lambda cfg, op: FakeStage())
WHEEL_PLUGIN = DevicePlugin(role="changer", kind="toywheel", open=lambda cfg, op: FakeChanger())
'''

TOY_RIG = """
name = "toy rig from a plugin package"
[slm]
kind = "toyslm"
window_px = [16, 16]
[camera]
kind = "toycam"
brightness = 2.0
[stage]
kind = "toystage"
[changer]
kind = "toywheel"
slots = { 1 = "120", 2 = "600" }
"""


def _clear_caches() -> None:
    plugins.device_plugins.cache_clear()
    rig._widened.cache_clear()


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The toy plugin package as installed: its module and its dist-info (with the entry points)
    in a folder on sys.path, where importlib.metadata finds installed distributions."""
    site = tmp_path_factory.mktemp("site")
    (site / "labtoys.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    dist_info = site / "lab_toy_devices-0.1.dist-info"
    dist_info.mkdir()
    for name, text in DIST_INFO.items():
        (dist_info / name).write_text(text)
    sys.path.insert(0, str(site))
    _clear_caches()
    yield site
    sys.path.remove(str(site))
    sys.modules.pop("labtoys", None)
    _clear_caches()


def write_rig(folder: Path, text: str) -> Path:
    path = folder / "toy-rig.toml"
    path.write_text(text)
    return path


def test_installed_kinds_are_found_by_role(installed):
    found = plugins.device_plugins()
    toys = {("slm", "toyslm"), ("camera", "toycam"), ("stage", "toystage"), ("changer", "toywheel")}
    assert toys <= set(found)


def test_a_rig_file_of_plugin_kinds_loads_with_the_plugins_own_keys(installed, tmp_path):
    rig_file = rig.load_rig(write_rig(tmp_path, TOY_RIG))
    assert rig_file.config.camera.kind == "toycam" and rig_file.config.camera.brightness == 2.0
    assert rig_file.config.rig_kind == "real"


def test_build_rig_opens_the_plugin_devices(installed, tmp_path):
    opened = rig.build_rig(rig.load_rig(write_rig(tmp_path, TOY_RIG)), UnattendedOperator())
    try:
        assert opened.camera.configure((4, 6), 50.0) == 50.0
        frame = opened.camera.capture(100.0)
        assert frame.image.shape == (4, 6) and frame.image[0, 0] == 200  # brightness 2.0 from the file
        assert opened.slm.window_shape == (16, 16)
        opened.changer.select("600")
        assert opened.changer.current() == "600" and opened.stage.move_to_mm(20.0) == 20.0
    finally:
        opened.close()
    assert opened.camera.closed


def test_a_misspelt_plugin_key_is_a_one_line_error_naming_it(installed, tmp_path):
    path = write_rig(tmp_path, TOY_RIG.replace("brightness = 2.0", "brightnes = 2.0"))
    with pytest.raises(UserError, match="camera: brightnes: unknown key") as e:
        rig.load_rig(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_an_unknown_kind_is_still_refused(installed, tmp_path):
    with pytest.raises(UserError, match="camera: kind: must be one of .*'toycam' \\(got 'toycamera'\\)"):
        rig.load_rig(write_rig(tmp_path, TOY_RIG.replace('kind = "toycam"', 'kind = "toycamera"')))


def test_without_a_plugin_the_kind_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [])
    _clear_caches()
    try:
        with pytest.raises(UserError, match="slm.kind: Input should be 'sim' or 'exulus' \\(got 'toyslm'\\)"):
            rig.load_rig(write_rig(tmp_path, TOY_RIG))
    finally:
        _clear_caches()

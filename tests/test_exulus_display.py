"""The EXULUS-HD2 display window, checked pixel for pixel in a real X server (Xvfb).

The Xvfb desktop has three monitors side by side, like a lab PC with a spare screen:
0 = the operator's primary 1920×1200, 1 = a 1280×1024, 2 = the SLM 1920×1200.
What is on screen is read back from the X server itself (XGetImage on the root window).
"""

from __future__ import annotations

import logging
import sys
import types

import numpy as np
import pytest

from hardware.drivers import exulus_display
from hardware.drivers.exulus import ExulusSLM
from hardware.drivers.exulus_display import ExulusDisplay, check_gray, list_monitors, window_origin_px
from hardware.drivers.monitors import Monitor, choose_monitor
from hardware.errors import DeviceError, DeviceNotFound
from hardware.lut import PhaseLUT
from hardware.rig import SlmConfig
from speckle_core.errors import UserError
from tests.xvfb import Head, XvfbServer, screenshot_rgb, xvfb_missing_reason

pytestmark = pytest.mark.timeout(120)

HEADS = [
    Head("OPERATOR", 0, 0, 1920, 1200, primary=True),
    Head("SIDE", 1920, 0, 1280, 1024),
    Head("SLM", 3200, 0, 1920, 1200),
]
SLM_HEAD, OPERATOR_HEAD = HEADS[2], HEADS[0]
PANEL = (1200, 1920)
WINDOW = (800, 800)

needs_xvfb = pytest.mark.skipif(xvfb_missing_reason() is not None, reason=str(xvfb_missing_reason()))


@pytest.fixture(scope="module")
def xserver():
    reason = xvfb_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with XvfbServer(5120, 1200, HEADS) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", server.display)
        yield server


def random_pattern(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, WINDOW, dtype=np.uint8)


def expected_panel(pattern: np.ndarray, origin=(200, 560)) -> np.ndarray:
    """The full 1920×1200 frame: the pattern in its window, black elsewhere, as RGB."""
    frame = np.zeros(PANEL, np.uint8)
    r, c = origin
    frame[r:r + pattern.shape[0], c:c + pattern.shape[1]] = pattern
    return np.repeat(frame[..., None], 3, axis=2)


def screen_of(server: XvfbServer, head: Head) -> np.ndarray:
    return screenshot_rgb(server.display, head.x, head.y, head.width, head.height)


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text
    return text


# ------------------------------------------------------------------ in the X server


@needs_xvfb
def test_shown_pattern_is_on_the_slm_screen_pixel_for_pixel(xserver):
    pattern = random_pattern(1)
    with ExulusDisplay("auto") as slm:
        slm.show_gray(pattern)
        on_screen = screen_of(xserver, SLM_HEAD)
    np.testing.assert_array_equal(on_screen, expected_panel(pattern))


@needs_xvfb
def test_read_back_matches_the_shown_pattern(xserver):
    pattern = random_pattern(2)
    with ExulusDisplay("auto") as slm:
        slm.show_gray(pattern)
        back = slm.read_back()
    assert back.dtype == np.uint8 and back.shape == WINDOW
    np.testing.assert_array_equal(back, pattern)


@needs_xvfb
def test_second_pattern_replaces_the_first(xserver):
    first, second = random_pattern(3), random_pattern(4)
    with ExulusDisplay("auto") as slm:
        slm.show_gray(first)
        slm.show_gray(second)
        on_screen = screen_of(xserver, SLM_HEAD)
        back = slm.read_back()
    np.testing.assert_array_equal(on_screen, expected_panel(second))
    np.testing.assert_array_equal(back, second)


@needs_xvfb
def test_panel_is_black_before_the_first_pattern(xserver):
    with ExulusDisplay("auto") as slm:
        on_screen = screen_of(xserver, SLM_HEAD)
        back = slm.read_back()
    assert not on_screen.any() and not back.any()


@needs_xvfb
def test_window_offset_shifts_the_pattern(xserver):
    pattern = random_pattern(5)
    with ExulusDisplay("auto", window_offset_px=(-150, 300)) as slm:
        slm.show_gray(pattern)
        on_screen = screen_of(xserver, SLM_HEAD)
        assert slm.origin_px == (50, 860)
    np.testing.assert_array_equal(on_screen, expected_panel(pattern, origin=(50, 860)))


@needs_xvfb
def test_other_monitors_are_left_alone(xserver):
    with ExulusDisplay("auto") as slm:
        slm.show_gray(np.full(WINDOW, 255, np.uint8))
        operator = screen_of(xserver, OPERATOR_HEAD)
    assert not operator.any()


@needs_xvfb
def test_show_returns_the_monotonic_flip_time(xserver):
    import time

    with ExulusDisplay("auto") as slm:
        before = time.monotonic()
        flip_s = slm.show_gray(random_pattern(6))
        after = time.monotonic()
    assert before <= flip_s <= after


@needs_xvfb
def test_list_monitors_reports_every_head_and_the_primary(xserver):
    monitors = list_monitors()
    assert [(m["x"], m["y"], m["width"], m["height"], m["primary"]) for m in monitors] == [
        (h.x, h.y, h.width, h.height, h.primary) for h in HEADS]
    assert [m["index"] for m in monitors] == [0, 1, 2]


@needs_xvfb
def test_auto_picks_the_non_primary_1920x1200_head(xserver):
    with ExulusDisplay("auto") as slm:
        assert slm.monitor.index == 2


@needs_xvfb
def test_primary_screen_is_refused_by_index(xserver):
    with pytest.raises(DeviceError) as e:
        ExulusDisplay(0)
    assert "primary" in one_line(e) and "allow_primary" in one_line(e)


@needs_xvfb
def test_primary_screen_is_used_when_forced(xserver):
    pattern = random_pattern(7)
    with ExulusDisplay(0, allow_primary=True) as slm:
        slm.show_gray(pattern)
        on_screen = screen_of(xserver, OPERATOR_HEAD)
    np.testing.assert_array_equal(on_screen, expected_panel(pattern))


@needs_xvfb
def test_monitor_of_the_wrong_size_is_refused(xserver):
    with pytest.raises(DeviceNotFound) as e:
        ExulusDisplay(1)
    assert "1280x1024" in one_line(e)


@needs_xvfb
def test_missing_monitor_index_is_a_clear_error(xserver):
    with pytest.raises(DeviceNotFound) as e:
        ExulusDisplay(7)
    assert "no monitor 7" in one_line(e)


@needs_xvfb
def test_bad_shape_is_a_one_line_error_and_the_window_lives_on(xserver):
    with ExulusDisplay("auto") as slm:
        with pytest.raises(ValueError) as e:
            slm.show_gray(np.zeros((600, 800), np.uint8))
        assert "(800, 800)" in one_line(e) and "(600, 800)" in one_line(e)
        pattern = random_pattern(8)
        slm.show_gray(pattern)
        np.testing.assert_array_equal(slm.read_back(), pattern)


@needs_xvfb
def test_bad_dtype_is_a_one_line_error(xserver):
    with ExulusDisplay("auto") as slm, pytest.raises(ValueError) as e:
        slm.show_gray(np.zeros(WINDOW, np.float64))
    assert "uint8" in one_line(e) and "float64" in one_line(e)


@needs_xvfb
def test_show_after_close_is_a_clear_error(xserver):
    slm = ExulusDisplay("auto")
    slm.close()
    slm.close()  # idempotent
    with pytest.raises(DeviceError) as e:
        slm.show_gray(random_pattern(9))
    assert "closed" in one_line(e)


@needs_xvfb
def test_a_second_window_in_the_process_is_refused(xserver):
    with ExulusDisplay("auto"), pytest.raises(DeviceError) as e:
        ExulusDisplay("auto")
    assert "already open" in one_line(e)


@needs_xvfb
def test_error_on_the_display_thread_reaches_the_caller(xserver, monkeypatch):
    def broken(self):
        raise RuntimeError("GL lost")

    with ExulusDisplay("auto") as slm:
        monkeypatch.setattr(exulus_display._Window, "read_back", broken)
        with pytest.raises(DeviceError) as e:
            slm.read_back()
        assert e.value.device == "slm" and "GL lost" in one_line(e)
        slm.show_gray(random_pattern(10))  # the window survives the failed request


@needs_xvfb
def test_exulus_slm_from_rig_config_shows_and_reads_back(xserver, caplog):
    cfg = SlmConfig(kind="exulus", monitor="auto", window_offset_px=(10, -20))
    pattern = PhaseLUT.linear().binary_to_gray(random_pattern(11) > 127)
    with ExulusSLM.from_config(cfg, PhaseLUT.linear()) as slm:
        assert slm.window_shape == WINDOW
        slm.show_gray(pattern)
        np.testing.assert_array_equal(slm.read_back(), pattern)
        on_screen = screen_of(xserver, SLM_HEAD)
        with caplog.at_level(logging.WARNING):
            assert slm.stroke_mode() == "full-wave"
        assert "not read from the device" in caplog.text
    np.testing.assert_array_equal(on_screen, expected_panel(pattern, origin=(210, 540)))


class FakeControl:
    """Stands in for hardware.drivers.exulus_control.ExulusControl."""

    opened: list[tuple] = []

    def __init__(self, mode: str):
        self.mode, self.closed = mode, False

    @classmethod
    def open(cls, port, library_dir, timeout_s):
        cls.opened.append((port, library_dir, timeout_s))
        cls.last = cls("half-wave")
        return cls.last

    def stroke_mode(self):
        return self.mode

    def close(self):
        self.closed = True


@pytest.fixture
def fake_control_module(monkeypatch):
    module = types.ModuleType("hardware.drivers.exulus_control")
    module.ExulusControl = FakeControl
    FakeControl.opened = []
    monkeypatch.setitem(sys.modules, "hardware.drivers.exulus_control", module)
    return FakeControl


@needs_xvfb
def test_stroke_mode_is_read_from_the_device_when_controlled(xserver, fake_control_module, caplog):
    cfg = SlmConfig(kind="exulus", control="exulus-dll", control_port="COM5", control_library="C:/lib")
    with caplog.at_level(logging.WARNING), ExulusSLM.from_config(cfg, PhaseLUT.linear()) as slm:
        assert slm.stroke_mode() == "half-wave"
    assert "rig file declares slm.stroke_mode = 'full-wave'" in caplog.text
    assert fake_control_module.opened == [("COM5", "C:/lib", pytest.approx(3.0))]
    assert fake_control_module.last.closed


@needs_xvfb
def test_control_is_closed_when_the_display_cannot_open(xserver, fake_control_module):
    cfg = SlmConfig(kind="exulus", monitor=7, control="exulus-dll", control_port="COM5")
    with pytest.raises(DeviceNotFound):
        ExulusSLM.from_config(cfg, PhaseLUT.linear())
    assert fake_control_module.last.closed


# ------------------------------------------------------------------ no X server needed


def test_no_display_gives_no_monitors_and_a_clear_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert list_monitors() == []
    with pytest.raises(DeviceNotFound) as e:
        ExulusDisplay("auto")
    assert "no monitor found" in one_line(e)


def test_window_is_centred_on_the_panel():
    assert window_origin_px(PANEL, WINDOW, (0, 0)) == (200, 560)


def test_window_leaving_the_panel_is_refused():
    with pytest.raises(ValueError, match="leaves the 1200x1920 panel"):
        window_origin_px(PANEL, WINDOW, (201, 0))


def test_rig_offset_off_the_panel_names_the_key():
    cfg = SlmConfig(kind="exulus", window_offset_px=(0, -561))
    with pytest.raises(UserError) as e:
        ExulusSLM.from_config(cfg, PhaseLUT.linear())
    assert one_line(e).startswith("slm.window_offset_px:")


def test_control_without_a_port_names_the_key():
    cfg = SlmConfig(kind="exulus", control="exulus-dll")
    with pytest.raises(UserError) as e:
        ExulusSLM.from_config(cfg, PhaseLUT.linear())
    assert one_line(e).startswith("slm.control_port:")


def test_non_array_gray_is_refused():
    with pytest.raises(ValueError, match="got list"):
        check_gray([[0]], WINDOW)


def _monitors(*specs) -> list[Monitor]:
    return [Monitor(i, x, 0, w, h, primary) for i, (x, w, h, primary) in enumerate(specs)]


def test_auto_refuses_a_lone_primary_1920x1200():
    monitors = _monitors((0, 1920, 1200, True), (1920, 1280, 1024, False))
    with pytest.raises(DeviceError, match="primary screen"):
        choose_monitor(monitors, "auto")
    assert choose_monitor(monitors, "auto", allow_primary=True).index == 0


def test_auto_with_two_candidate_slms_asks_for_an_index():
    monitors = _monitors((0, 1280, 1024, True), (1280, 1920, 1200, False), (3200, 1920, 1200, False))
    with pytest.raises(DeviceNotFound, match="set slm.monitor"):
        choose_monitor(monitors, "auto")


def test_auto_without_a_1920x1200_monitor_says_so():
    with pytest.raises(DeviceNotFound, match="no 1920x1200 monitor"):
        choose_monitor(_monitors((0, 1280, 1024, True)), "auto")

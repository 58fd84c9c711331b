"""``speckle-lab devices``: every backend is listed, each probe isolated, exit 0 with nothing attached."""

import importlib.machinery
import json
import subprocess
import sys
import types

from hardware.drivers import discovery
from hardware.drivers.discovery import (
    ProbeResult,
    format_results,
    probe_exulus_library,
    probe_monitors,
    run_probes,
)
from speckle_lab.cli import run


def test_devices_runs_cleanly_here_and_names_what_is_missing(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run(["devices"]) == 0
    out = capsys.readouterr().out
    for backend in ("monitors", "uc480 cameras", "TSI cameras", "Kinesis devices", "serial ports",
                    "EXULUS library"):
        assert backend in out
    assert "probe failed" not in out
    if sys.platform != "win32":  # none of the vendor software exists here: say what to install
        assert "uc480_64.dll" in out and "ThorCam" in out
        assert "EXULUS_COMMAND_LIB.py" in out


def test_devices_json_has_one_entry_per_backend(capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert run(["devices", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["backend"] for e in entries] == [p[0] for p in discovery.PROBES]


def test_a_failing_probe_does_not_stop_the_others():
    def broken(r):
        raise RuntimeError("driver exploded")

    def fine(r):
        r.found.append("thing 1")

    results = run_probes([("a", "first", broken), ("b", "second", fine)])
    assert results[0].error == "RuntimeError: driver exploded"
    assert results[1].found == ["thing 1"]
    text = format_results(results)
    assert "probe failed: RuntimeError: driver exploded" in text and "- thing 1" in text


def test_importing_the_devices_command_imports_only_click():
    code = ("import sys, hardware.cli; "
            "print(any(m in sys.modules for m in ('pylablib', 'serial', 'numpy', 'pyglet')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_monitors_come_from_the_display_driver_and_flag_the_slm(monkeypatch):
    module = types.ModuleType("hardware.drivers.exulus_display")
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None)
    module.list_monitors = lambda: [
        {"index": 0, "x": 0, "y": 0, "width": 1920, "height": 1080, "primary": True},
        {"index": 1, "x": 1920, "y": 0, "width": 1920, "height": 1200, "primary": False}]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setenv("DISPLAY", ":0")
    r = ProbeResult("monitors", "SLM")
    probe_monitors(r)
    assert r.found == ["0: 1920x1080+0+0 primary", "1: 1920x1200+1920+0  <- EXULUS-HD2 size (1920x1200)"]


def test_monitors_without_a_display_is_a_note_not_an_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    r = ProbeResult("monitors", "SLM")
    probe_monitors(r)
    assert not r.found and "DISPLAY is not set" in r.notes[0]


def test_exulus_devices_are_listed_when_the_library_is_installed(tmp_path, monkeypatch):
    (tmp_path / "EXULUS_COMMAND_LIB.py").write_text(
        "from tests.vendor_fakes_exulus import FakeExulusLib\n_lib = FakeExulusLib()\n"
        + "".join(f"{n} = _lib.{n}\n" for n in discovery_functions()))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "EXULUS_COMMAND_LIB", raising=False)
    r = ProbeResult("EXULUS library", "control")
    try:
        probe_exulus_library(r)
    finally:  # the fake library must not stay importable for later tests
        sys.modules.pop("EXULUS_COMMAND_LIB", None)
    assert r.found == ["EXULUS M00123456 (EXULUS-HD2)"] and not r.missing


def discovery_functions():
    from hardware.drivers.exulus_control import FUNCTIONS

    return FUNCTIONS

"""``acquire --view``: the console watching a run never changes, slows or stops it."""

import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import console.server
from console.view import RunView
from speckle_lab.cli import run
from tests import browser
from tests._run_files import TINY_SIM_RIG, acquire_argv, assert_same_run, uninterrupted_run, write_toml

VIEW_PROTOCOL = {
    "name": "view test",
    "faces": {"source": "embedded", "count": 8, "holdout": 1, "target_px": [32, 32]},
    "camera": {"roi_px": [48, 48], "exposure_us": "auto"},
    "blocks": [{"diffuser": "600", "distances_mm": [0, 20], "role": "train"}],
    "dark": {"frames": 1},
    "stability": {"reference_every": 4, "on_drift": "log"},
    "retry": {"max_retries": 2, "backoff_s": 0.0, "backoff_max_s": 0.0},
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(protocol, rig, run file) of the run acquired without a view."""
    return uninterrupted_run(tmp_path_factory.mktemp("view"), "view", VIEW_PROTOCOL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the view itself ---------------------------------------------------------------------------------


def test_progress_gives_the_rate_and_eta():
    times = iter([0.0, 0.0, 2.0])
    view = RunView(clock=lambda: next(times))
    view.on_progress(10, 130, "diffuser 600 at 0 mm")
    view.on_progress(30, 130, "diffuser 600 at 0 mm")  # 20 pairs in 2 s
    assert view.run["rate"] == pytest.approx(10.0)
    assert view.run["eta_s"] == pytest.approx(100 / view.run["rate"])
    assert view.status()["run"]["block"] == "diffuser 600 at 0 mm"


def test_references_are_kept_for_the_stability_plot_and_given_from_a_point_on():
    view = RunView(threshold=0.9)
    view.on_reference(0, "b", 1.0)
    view.on_reference(1, "b", 0.97)
    assert view.stability_since(0) == (0, [[0, 1.0], [1, 0.97]])
    assert view.stability_since(1) == (1, [[1, 0.97]])
    assert view.stability_since(2) == (2, [])
    assert view.status()["references"] == 2


def test_a_frame_goes_to_the_one_slot_buffer_with_the_pattern_shown():
    view = RunView()
    frame = SimpleNamespace(image=np.zeros((4, 4), np.uint8), timestamp_s=1.0, exposure_us=50.0)
    gray = np.ones((2, 2), np.uint8)
    view.on_frame("pair", gray, frame, "capturing pair 3")
    seq, item = view.frames.latest()
    assert seq == 1 and item.image is frame.image and item.info["what"] == "capturing pair 3"
    assert view.slm.latest()[1] is gray and view.run["exposure_us"] == 50.0


def test_an_observer_method_that_fails_is_disabled_and_never_raises(capsys):
    view = RunView()
    assert view.on_frame("pair", None, object(), "") is None  # no .image: fails inside
    assert "on_frame" in view.failed and "the run goes on" in capsys.readouterr().err
    frame = SimpleNamespace(image=np.zeros((2, 2), np.uint8), timestamp_s=1.0, exposure_us=1.0)
    view.on_frame("pair", None, frame, "")
    assert view.frames.seq == 0


# -- the run with a view -----------------------------------------------------------------------------------


def test_acquire_with_view_writes_the_same_bytes_as_without(reference, tmp_path):
    protocol, rig, whole = reference
    out = tmp_path / "viewed.h5"
    assert run([*acquire_argv(protocol, rig, out), "--view", "0"]) == 0
    assert_same_run(whole, out)


def test_a_view_server_that_raises_leaves_the_run_complete_and_byte_identical(reference, tmp_path,
                                                                              monkeypatch, caplog):
    protocol, rig, whole = reference

    async def broken(self, sockets=None):
        raise RuntimeError("the view server fell over")

    monkeypatch.setattr("uvicorn.Server.serve", broken)
    out = tmp_path / "server-died.h5"
    assert run([*acquire_argv(protocol, rig, out), "--view", "0"]) == 0
    assert_same_run(whole, out)
    assert "view server stopped: RuntimeError: the view server fell over (the run goes on)" in caplog.text


def test_an_observer_that_raises_is_dropped_and_the_run_is_byte_identical(reference, tmp_path, monkeypatch):
    protocol, rig, whole = reference

    def explode(self, *args):
        raise ValueError("observer bug")

    monkeypatch.setattr(RunView, "on_progress", explode)  # unguarded: the engine's own net catches it
    out = tmp_path / "observer-bug.h5"
    assert run([*acquire_argv(protocol, rig, out), "--view", "0"]) == 0
    assert_same_run(whole, out)
    assert "observer RunView dropped" in out.with_suffix(".log").read_text()


def test_acquire_view_on_a_port_in_use_is_one_line_and_exit_2_before_anything_runs(reference, tmp_path,
                                                                                   capsys):
    protocol, rig, _ = reference
    out = tmp_path / "never.h5"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        assert run([*acquire_argv(protocol, rig, out), "--view", str(s.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already in use" in err[0]
    assert not out.exists()


def test_acquire_view_with_a_bad_rig_file_is_one_line_and_exit_2_before_the_view_starts(reference, tmp_path,
                                                                                        capsys):
    protocol, _, _ = reference
    bad = tmp_path / "rig.toml"
    bad.write_text('[camera]\nkind = "webcam"\n')
    out = tmp_path / "never.h5"
    assert run([*acquire_argv(protocol, bad, out), "--view", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rig.toml" in err[0] and "watching" not in err[0]
    assert not out.exists()


def test_the_frame_pump_failing_leaves_the_run_byte_identical(reference, tmp_path,
                                                                            monkeypatch):
    protocol, rig, whole = reference

    async def broken(self):
        raise MemoryError("no room to encode")

    monkeypatch.setattr(console.server.Pump, "run", broken)
    out = tmp_path / "pump-died.h5"
    assert run([*acquire_argv(protocol, rig, out), "--view", "0"]) == 0
    assert_same_run(whole, out)


# -- in a real browser ---------------------------------------------------------------------------------------


def test_two_tabs_watch_an_acquire_view_run_to_its_end(tmp_path):
    browser.require()
    slow_rig = {**TINY_SIM_RIG, "slm": {**TINY_SIM_RIG["slm"], "settle_ms": 60.0}}  # ~4 s of pairs
    faces = {**VIEW_PROTOCOL["faces"], "count": 30}
    protocol = write_toml(tmp_path / "p.toml", {**VIEW_PROTOCOL, "faces": faces})
    rig = write_toml(tmp_path / "rig.toml", slow_rig)
    port = free_port()
    argv = [sys.executable, "-m", "speckle_lab.cli", *acquire_argv(protocol, rig, tmp_path / "run.h5"),
            "--view", str(port)]
    with browser.chromium() as b:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            pages = [b.new_page(), b.new_page()]
            deadline = time.monotonic() + 60
            for page in pages:
                while True:
                    try:
                        page.goto(f"http://127.0.0.1:{port}/")
                        break
                    except Exception:
                        assert time.monotonic() < deadline and proc.poll() is None, "the view never came up"
                        time.sleep(0.1)
            for page in pages:
                page.wait_for_function("window.speckle.readonly === true", timeout=30_000)
                page.wait_for_function("document.body.classList.contains('finished')", timeout=60_000)
                assert "complete: 60/60 pairs" in page.inner_text("#run-text")
                assert page.evaluate("window.speckle.framesDrawn") > 0
                assert "run ended" in page.inner_text("#log")
                assert page.is_hidden("#controls")
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err

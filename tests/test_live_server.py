"""The console server against a tiny simulated rig, through starlette's test client (no browser)."""

import contextlib
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from starlette.testclient import TestClient

import console.live as live_mod
from console.encoding import decode_image
from console.live import LiveSession
from console.server import build_app, host_warning
from console.view import RunView
from hardware.rig import RigConfig, RigFile, build_rig
from speckle_core.config import parse_toml_model
from speckle_lab.cli import run

TINY_LIVE_RIG = {"name": "tiny live rig", "slm": {"kind": "sim", "window_px": [32, 32]},
                 "camera": {"kind": "sim", "sensor_px": [48, 64]}, "stage": {"kind": "sim"},
                 "changer": {"kind": "sim"}, "sim": {"seed": 0}}


@pytest.fixture
def rig():
    text = tomli_w.dumps(TINY_LIVE_RIG)
    r = build_rig(RigFile(parse_toml_model(text, RigConfig, "tiny"), text, None), None)
    yield r
    r.close()


@contextlib.contextmanager
def page(session, encoding="raw"):
    """(test client, websocket) connected to a server of ``session``, past the hello; frames come
    in ``encoding`` (None: the server's default)."""
    url = "/ws" if encoding is None else f"/ws?encoding={encoding}"
    with TestClient(build_app(session)) as client, client.websocket_connect(url) as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello"
        yield client, ws


@pytest.fixture
def live(rig, tmp_path):
    session = LiveSession(rig, snapshot_dir=tmp_path / "snaps", max_fps=200).start()
    yield session
    session.stop()


def next_json(ws, kind: str, limit: int = 500) -> dict:
    """The next JSON message of type ``kind``; acknowledges frames on the way."""
    for _ in range(limit):
        msg = ws.receive()
        if msg.get("bytes") is not None:
            head, _ = decode_image(msg["bytes"])
            if head.magic == b"SPKF":
                ws.send_text(json.dumps({"cmd": "ack", "seq": head.seq}))
            continue
        m = json.loads(msg["text"])
        if m["type"] == kind:
            return m
    raise AssertionError(f"no {kind} message")


def next_frame(ws, limit: int = 500):
    for _ in range(limit):
        msg = ws.receive()
        if msg.get("bytes") is not None:
            head, image = decode_image(msg["bytes"])
            if head.magic == b"SPKF":
                ws.send_text(json.dumps({"cmd": "ack", "seq": head.seq}))
                return head, image
    raise AssertionError("no frame")


def test_the_page_is_served_with_its_script(live):
    with TestClient(build_app(live)) as client:
        assert "<canvas id=\"frame\"" in client.get("/").text
        assert "WebSocket" in client.get("/static/app.js").text


def test_frames_sent_are_the_camera_frames_pixel_for_pixel(live):
    with page(live) as (_, ws):
        head, image = next_frame(ws)
        assert np.array_equal(image, live.frame(head.seq).image)
        assert (head.height, head.width) == (48, 64)


def test_a_page_that_names_no_encoding_is_sent_jpeg_frames(live):
    with page(live, encoding=None) as (_, ws):
        head, image = next_frame(ws)
    assert head.encoding == "jpeg" and image.shape == (48, 64)


def test_an_exposure_command_reaches_the_simulated_camera(live, rig):
    with page(live) as (_, ws):
        ws.send_text(json.dumps({"cmd": "exposure", "exposure_us": 2500}))
        ok = next_json(ws, "ok")
        assert ok["exposure_us"] == 2500.0 and rig.camera.exposure_us == 2500.0


@pytest.mark.parametrize("message", [
    {"cmd": "exposure", "exposure_us": "bright"},
    {"cmd": "exposure", "exposure_us": -1},
    {"cmd": "exposure", "exposure_us": 1e15},
    {"cmd": "make_coffee"},
    {"cmd": "roi", "rows": 4000, "cols": 10},
])
def test_a_malformed_message_is_refused_and_changes_nothing(live, rig, message):
    with page(live) as (_, ws):
        before = (rig.camera.exposure_us, rig.camera.roi)
        ws.send_text(json.dumps(message))
        err = next_json(ws, "error")
        assert err["message"] and "\n" not in err["message"]
        assert (rig.camera.exposure_us, rig.camera.roi) == before


def test_a_message_that_is_not_json_is_refused(live):
    with page(live) as (_, ws):
        ws.send_text("exposure=5")
        assert "JSON" in next_json(ws, "error")["message"]


def test_slm_step_pattern_is_shown_on_the_simulated_slm(live, rig):
    with page(live) as (_, ws):
        ws.send_text(json.dumps({"cmd": "slm", "pattern": "step"}))
        next_json(ws, "ok")
        shown = rig.slm.read_back()
        assert (shown[:, :16] == 0).all() and (shown[:, 16:] == rig.lut.gray_pi).all()


def test_diffuser_and_distance_commands_move_the_simulated_motors(live, rig):
    with page(live) as (_, ws):
        ws.send_text(json.dumps({"cmd": "diffuser", "name": "220"}))
        next_json(ws, "ok")
        ws.send_text(json.dumps({"cmd": "distance", "distance_mm": 20}))
        next_json(ws, "ok")
    assert rig.changer.current() == "220" and rig.stage.distance_mm() == 20.0


def test_an_unknown_diffuser_is_refused(live, rig):
    with page(live) as (_, ws):
        ws.send_text(json.dumps({"cmd": "diffuser", "name": "9999"}))
        assert "9999" in next_json(ws, "error")["message"]
    assert rig.changer.current() == "120"


def test_snapshot_saves_the_frame_the_page_showed(live, tmp_path):
    with page(live) as (_, ws):
        head, image = next_frame(ws)
        ws.send_text(json.dumps({"cmd": "snapshot", "seq": head.seq}))
        files = next_json(ws, "ok")["files"]
    assert np.array_equal(np.load(files[1]), image)
    assert json.loads(Path(files[2]).read_text())["seq"] == head.seq


def test_auto_exposure_brings_the_99th_percentile_near_three_quarters_of_the_clip_level(live, rig):
    with page(live) as (_, ws):
        ws.send_text(json.dumps({"cmd": "slm", "pattern": "test", "period_px": 8}))
        next_json(ws, "ok")
        ws.send_text(json.dumps({"cmd": "auto_exposure"}))
        ok = next_json(ws, "ok")
    level = getattr(rig.camera, "saturation_level", rig.camera.max_value)
    assert ok["converged"] and rig.camera.exposure_us == ok["exposure_us"]
    assert ok["p99"] == pytest.approx(0.75 * level, rel=0.15) or ok["saturated_fraction"] <= 0.001


def test_a_failing_camera_is_shown_on_the_page_and_retried(live, rig, monkeypatch):
    monkeypatch.setattr(live_mod, "RETRY_FIRST_S", 0.01)
    real = rig.camera.capture
    broken = {"yes": True, "tries": 0}

    def flaky(*a, **k):
        if broken["yes"]:
            broken["tries"] += 1
            raise OSError("USB cable pulled")
        return real(*a, **k)

    rig.camera.capture = flaky
    live._retry_s = 0.01
    with page(live) as (client, ws):
        st = next_json(ws, "status")
        while st["camera"]["ok"]:
            st = next_json(ws, "status")
        assert "USB cable pulled" in st["camera"]["error"]
        assert client.get("/status").status_code == 200  # the server keeps answering
        tries = broken["tries"]
        broken["yes"] = False  # the cable is back
        while not st["camera"]["ok"]:
            st = next_json(ws, "status")
        next_frame(ws)
    assert tries >= 1


def test_the_run_view_is_read_only():
    view = RunView(total=10)
    with page(view) as (_, ws):
        ws.send_text(json.dumps({"cmd": "exposure", "exposure_us": 100}))
        assert "read-only" in next_json(ws, "error")["message"]


def run_frame(rows, cols, value=7):
    from types import SimpleNamespace

    return SimpleNamespace(image=np.full((rows, cols), value, np.uint8), timestamp_s=0.0, exposure_us=1.0,
                           saturated_fraction=0.25)


def test_the_run_view_sends_frames_binned_to_its_display_size_with_full_frame_statistics():
    view = RunView(total=3)
    view.on_frame("pair", None, run_frame(32, 48), "capturing pair 1")
    with TestClient(build_app(view, max_fps=50, display_px=16, paced=True)) as client, \
            client.websocket_connect("/ws?encoding=raw") as ws:
        ws.receive_json()
        head, image = next_frame(ws)
        stats = next_json(ws, "stats")
    assert image.shape == (10, 16) and (image == 7).all()  # binned 3x3
    assert stats["shape"] == [32, 48] and stats["shown"] == [10, 16]
    assert stats["saturated_fraction"] == 0.25  # the camera's own count (a colour sensor's red)


def test_the_run_view_sends_each_stability_point_once():
    view = RunView(total=3, threshold=0.9)
    view.on_reference(0, "b", 0.99)
    with TestClient(build_app(view, max_fps=50, paced=True)) as client, client.websocket_connect("/ws") as ws:
        ws.receive_json()
        first = next_json(ws, "stability")
        view.on_reference(1, "b", 0.95)
        view.on_reference(2, "b", 0.93)
        second = next_json(ws, "stability")
    assert first == {"type": "stability", "start": 0, "points": [[0, 0.99]]}
    assert second["start"] == 1 and second["points"] == [[1, 0.95], [2, 0.93]]


def test_with_no_page_connected_the_server_prepares_nothing(monkeypatch):
    view = RunView(total=3)
    asked = []
    monkeypatch.setattr(view, "status", lambda: asked.append(1) or {})
    with TestClient(build_app(view, max_fps=50, paced=True)) as client:
        for i in range(5):
            view.on_progress(i, 5, "b")
            view.on_frame("pair", None, run_frame(8, 8), "")
        assert client.get("/static/app.js").status_code == 200
        time.sleep(0.3)  # 15 ticks' worth: none of them may run while no page is there
    assert asked == []


def test_a_hidden_tab_is_sent_status_but_no_frames_until_it_is_shown_again():
    view = RunView(total=3)
    with TestClient(build_app(view, max_fps=50, paced=True)) as client, \
            client.websocket_connect("/ws?encoding=raw") as ws:
        ws.receive_json()
        ws.send_text(json.dumps({"cmd": "visible", "visible": False}))
        next_json(ws, "status")  # the status the page gets on connecting
        view.on_frame("pair", None, run_frame(8, 8, value=5), "")
        view.on_progress(1, 3, "b")
        got = []
        while not got or got[-1]["type"] != "status" or got[-1]["run"]["done"] != 1:
            msg = ws.receive()
            got.append({"type": "frame"} if msg.get("bytes") else json.loads(msg["text"]))
        assert {"type": "frame"} not in got
        ws.send_text(json.dumps({"cmd": "visible", "visible": True}))
        assert next_frame(ws)[1][0, 0] == 5


def test_a_host_other_than_localhost_warns_that_anyone_there_can_drive_the_rig():
    assert host_warning("127.0.0.1") is None
    assert "anyone" in host_warning("0.0.0.0")


def test_live_on_a_port_in_use_is_one_line_and_exit_2(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert run(["live", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already in use" in err[0]


def test_live_with_a_bad_rig_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "rig.toml"
    bad.write_text('[camera]\nkind = "webcam"\n')
    assert run(["live", "--rig", str(bad), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rig.toml" in err[0]


def test_live_on_another_host_warns_on_stderr_before_serving(tmp_path, monkeypatch, capsys):
    import console.live_command

    served = []
    monkeypatch.setattr(console.live_command, "serve", lambda app, sock: served.append(sock.getsockname()))
    rig = tmp_path / "rig.toml"
    rig.write_text(tomli_w.dumps(TINY_LIVE_RIG))
    assert run(["live", "--rig", str(rig), "--host", "127.0.0.2", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "anyone" in err and "drive the rig" in err
    assert served and served[0][0] == "127.0.0.2"


def test_a_page_that_disconnects_mid_stream_leaves_the_server_serving_the_next():
    from types import SimpleNamespace

    view = RunView(total=3)

    def frame(value):
        return SimpleNamespace(image=np.full((8, 8), value, np.uint8), timestamp_s=0.0, exposure_us=1.0)

    with TestClient(build_app(view)) as client:
        with client.websocket_connect("/ws?encoding=raw") as ws:
            ws.receive_json()
            view.on_frame("pair", None, frame(1), "capturing pair 0")
            next_frame(ws)
            view.on_frame("pair", None, frame(2), "capturing pair 1")  # then the tab closes, unread
        view.on_frame("pair", None, frame(3), "capturing pair 2")
        with client.websocket_connect("/ws?encoding=raw") as ws:
            ws.receive_json()
            values = [int(next_frame(ws)[1][0, 0])]  # the frame prepared when the first tab left ...
            while values[-1] != 3 and len(values) < 3:
                values.append(int(next_frame(ws)[1][0, 0]))  # ... then the newest
    assert values[-1] == 3

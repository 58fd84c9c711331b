"""End to end in a real headless browser (Debian's chromium through playwright): the console page
against a tiny simulated rig served on a real port."""

import numpy as np
import pytest
import tomli_w

from console.live import LiveSession
from console.server import ServerThread, bind, build_app, url_of
from hardware.rig import RigConfig, RigFile, build_rig
from speckle_core.config import parse_toml_model
from tests import browser
from tests.test_live_server import TINY_LIVE_RIG

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def chromium():
    browser.require()
    with browser.chromium() as b:
        yield b


@pytest.fixture
def served(tmp_path):
    """(url, session, rig) of a live session on the tiny simulated rig, served from a thread."""
    text = tomli_w.dumps(TINY_LIVE_RIG)
    rig = build_rig(RigFile(parse_toml_model(text, RigConfig, "tiny"), text, None), None)
    session = LiveSession(rig, snapshot_dir=tmp_path, max_fps=60).start()
    sock = bind("127.0.0.1", 0)
    server = ServerThread(build_app(session), sock).start()
    yield url_of(sock), session, rig
    server.stop()
    session.stop()
    rig.close()


@pytest.fixture
def page(chromium, served):
    p = chromium.new_page()
    p.goto(served[0])
    p.wait_for_function("window.speckle && window.speckle.framesDrawn > 0", timeout=WAIT_MS)
    yield p
    p.close()


def test_the_frame_counter_advances(page):
    first = int(page.inner_text("#frame-count"))
    page.wait_for_function(f"window.speckle.framesDrawn > {first + 5}", timeout=WAIT_MS)
    assert int(page.inner_text("#frame-count")) > first + 5


READ_CANVAS = """() => {
    const c = document.getElementById('frame');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const red = [];
    for (let i = 0; i < d.length; i += 4) red.push(d[i]);
    return [window.speckle.lastSeq, window.speckle.lastEncoding, c.height, c.width, red];
}"""


def drawn_frame(page, encoding):
    """(the frame's number, the canvas as an array) read in one go, after switching the link."""
    page.select_option("#encoding", encoding)
    after = page.evaluate("window.speckle.framesDrawn") + 3  # frames already in flight may be either
    done = f"window.speckle.framesDrawn > {after} && window.speckle.lastEncoding === '{encoding}'"
    page.wait_for_function(done, timeout=WAIT_MS)
    seq, enc, h, w, red = page.evaluate(READ_CANVAS)
    assert enc == encoding
    return seq, np.array(red, np.uint8).reshape(h, w)


def test_a_canvas_pixel_is_the_pixel_of_the_frame_sent_raw(page, served):
    seq, canvas = drawn_frame(page, "raw")
    frame = served[1].frame(seq)
    assert frame is not None and frame.image.any()
    for r, c in [(0, 0), (10, 17), (47, 63), (23, 40)]:
        assert canvas[r, c] == frame.image[r, c]
    assert np.array_equal(canvas, frame.image)


def test_the_jpeg_link_draws_the_frame_within_a_few_counts(page, served):
    seq, canvas = drawn_frame(page, "jpeg")
    frame = served[1].frame(seq)
    assert np.abs(canvas.astype(int) - frame.image).mean() < 2.0


def test_the_exposure_set_in_the_page_reaches_the_camera(page, served):
    _, _, rig = served
    page.fill("#exposure", "3200")
    page.click("#set-exposure")
    page.wait_for_function("window.speckle.stats && window.speckle.stats.exposure_us === 3200",
                           timeout=WAIT_MS)
    assert rig.camera.exposure_us == 3200.0


def test_an_exposure_out_of_range_is_shown_as_an_error_and_changes_nothing(page, served):
    _, _, rig = served
    before = rig.camera.exposure_us
    page.fill("#exposure", "-5")
    page.click("#set-exposure")
    page.wait_for_selector("#error:not(.hidden)", timeout=WAIT_MS)
    assert "out of range" in page.inner_text("#error")
    assert rig.camera.exposure_us == before


def test_the_statistics_are_shown(page):
    page.wait_for_function("document.getElementById('st-contrast').textContent !== '–'", timeout=WAIT_MS)
    assert page.inner_text("#st-max").isdigit()
    assert float(page.inner_text("#st-contrast")) >= 0


def test_a_failing_camera_is_shown_on_the_page(page, served):
    _, session, rig = served

    def broken(*a, **k):
        raise OSError("camera unplugged")

    rig.camera.capture = broken
    page.wait_for_selector("#camera-error:not(.hidden)", timeout=WAIT_MS)
    assert "camera unplugged" in page.inner_text("#camera-error")

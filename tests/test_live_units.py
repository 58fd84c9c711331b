"""The console's building blocks: frame messages, the one-slot buffer, command validation, snapshots."""

import json
import threading
import time

import numpy as np
import pytest

from console.commands import parse_command
from console.encoding import HEADER, bin_down, decode_header, decode_image, encode_image, to_gray8
from console.slot import LatestSlot
from console.snapshot import save_snapshot
from console.source import CommandError, FrameItem

# -- frame messages ------------------------------------------------------------------------------


def test_raw_frame_message_is_header_then_the_exact_pixels():
    img = np.random.default_rng(0).integers(0, 256, (3, 5), dtype=np.uint8)
    msg = encode_image(img, seq=7, time_s=1234.5, exposure_us=250.0)
    assert len(msg) == HEADER.size + img.size
    head, back = decode_image(msg)
    assert (head.magic, head.seq, head.width, head.height, head.time_s, head.encoding, head.exposure_us) == (
        b"SPKF", 7, 5, 3, 1234.5, "raw", 250.0)
    assert np.array_equal(back, img)


def test_png_frame_message_is_lossless():
    img = np.random.default_rng(1).integers(0, 256, (16, 24), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(img, seq=1, time_s=0, encoding="png"))[1], img)


def test_jpeg_frame_message_is_close_to_the_frame():
    img = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    head, back = decode_image(encode_image(img, seq=1, time_s=0, encoding="jpeg"))
    assert head.encoding == "jpeg" and np.abs(back.astype(int) - img).max() <= 4


def test_ten_bit_frames_are_sent_as_their_top_eight_bits():
    img = np.array([[0, 4, 1023, 512]], np.uint16)
    gray, shift = to_gray8(img, 1023)
    assert shift == 2 and gray.tolist() == [[0, 1, 255, 128]]
    assert decode_header(encode_image(img, seq=1, time_s=0, max_value=1023)).shift == 2


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="unknown encoding"):
        encode_image(np.zeros((2, 2), np.uint8), seq=1, time_s=0, encoding="webp")


def test_a_frame_wider_than_the_limit_is_binned_to_the_rounded_block_means():
    img = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9)
    small = bin_down(img, 4)  # k = 3: 6x9 -> 2x3
    expected = np.rint(img.reshape(2, 3, 3, 3).mean(axis=(1, 3)) + 1e-9).astype(np.uint8)
    assert small.dtype == np.uint8 and np.array_equal(small, expected)


def test_binning_drops_the_rows_past_the_last_whole_block_and_keeps_sixteen_bits():
    img = np.full((5, 4), 4000, np.uint16)
    img[4] = 0  # the fifth row is past the last 2x2 block
    small = bin_down(img, 3)  # k = 2
    assert small.dtype == np.uint16 and small.shape == (2, 2) and (small == 4000).all()


def test_a_frame_that_fits_is_not_binned_or_copied():
    img = np.zeros((8, 8), np.uint8)
    assert bin_down(img, 8) is img and bin_down(img, None) is img


# -- the one-slot buffer ---------------------------------------------------------------------------


def test_slot_gives_the_newest_item_and_counts_the_stale_ones_dropped():
    slot = LatestSlot()
    for i in range(5):
        slot.put(i)
    assert slot.wait_newer(0, 0) == (5, 4)
    assert slot.dropped == 4


def test_slot_put_never_waits_for_a_consumer():
    slot = LatestSlot()
    t0 = time.perf_counter()
    for i in range(10_000):
        slot.put(i)
    assert time.perf_counter() - t0 < 1.0 and slot.seq == 10_000


def test_slot_wait_newer_times_out_with_none_when_nothing_new_came():
    slot = LatestSlot()
    slot.put("a")
    assert slot.wait_newer(1, 0.01) is None


def test_slot_wakes_a_waiting_consumer_when_an_item_is_put():
    slot = LatestSlot()
    got = []
    t = threading.Thread(target=lambda: got.append(slot.wait_newer(0, 5)))
    t.start()
    slot.put("frame")
    t.join(5)
    assert got == [(1, "frame")]


# -- command validation ------------------------------------------------------------------------------


def test_a_valid_exposure_command_parses_to_a_float():
    parsed = parse_command('{"cmd": "exposure", "exposure_us": 500}')
    assert parsed == {"cmd": "exposure", "exposure_us": 500.0}


@pytest.mark.parametrize("text, says", [
    ("not json", "not a JSON"),
    ("[1, 2]", "JSON object"),
    ('{"cmd": "explode"}', "unknown command"),
    ('{"exposure_us": 5}', "unknown command"),
    ('{"cmd": "exposure"}', "missing field 'exposure_us'"),
    ('{"cmd": "exposure", "exposure_us": "fast"}', "must be a number"),
    ('{"cmd": "exposure", "exposure_us": true}', "must be a number"),
    ('{"cmd": "exposure", "exposure_us": null}', "must be a number"),
    ('{"cmd": "exposure", "exposure_us": -3}', "out of range"),
    ('{"cmd": "exposure", "exposure_us": 1e12}', "out of range"),
    ('{"cmd": "exposure", "exposure_us": 100, "gain": 2}', "unknown field 'gain'"),
    ('{"cmd": "average", "frames": 2.5}', "whole number"),
    ('{"cmd": "slm", "pattern": "zebra"}', "must be one of"),
    ('{"cmd": "visible", "visible": 0}', "true or false"),
])
def test_malformed_commands_are_refused_with_a_reason(text, says):
    with pytest.raises(CommandError, match=says):
        parse_command(text)


def test_a_tab_says_whether_it_is_visible_with_a_boolean():
    assert parse_command('{"cmd": "visible", "visible": false}') == {"cmd": "visible", "visible": False}


def test_binary_messages_are_not_commands():
    with pytest.raises(CommandError, match="not binary"):
        parse_command(None)


# -- snapshots -----------------------------------------------------------------------------------------


def _item(value: int = 9) -> FrameItem:
    return FrameItem(np.full((4, 6), value, np.uint8), 255, 1_700_000_000.25, 800.0, info={"kind": "live"})


def test_snapshot_writes_png_npy_and_settings_json_side_by_side(tmp_path):
    from PIL import Image

    png, npy, js = save_snapshot(tmp_path, _item(), {"roi": [4, 6]})
    assert png.with_suffix("") == npy.with_suffix("") == js.with_suffix("")
    assert np.array_equal(np.load(npy), _item().image)
    assert np.array_equal(np.asarray(Image.open(png)), _item().image)
    meta = json.loads(js.read_text())
    assert meta["exposure_us"] == 800.0 and meta["roi"] == [4, 6] and meta["frame_kind"] == "live"


def test_snapshot_never_overwrites_an_existing_file(tmp_path):
    first = save_snapshot(tmp_path, _item(1), {})
    second = save_snapshot(tmp_path, _item(2), {})
    assert first[0] != second[0] and second[0].name.endswith("-2.png")
    assert np.load(first[1])[0, 0] == 1 and np.load(second[1])[0, 0] == 2


def test_snapshot_skips_a_name_whose_json_alone_exists(tmp_path):
    stem = save_snapshot(tmp_path, _item(), {})[0].with_suffix("")
    for p in tmp_path.iterdir():
        p.unlink()
    stem.with_suffix(".json").write_text("mine")
    paths = save_snapshot(tmp_path, _item(), {})
    assert stem.with_suffix(".json").read_text() == "mine" and paths[0].name.endswith("-2.png")
    assert not stem.with_suffix(".png").exists()


def test_sixteen_bit_snapshot_png_keeps_the_values(tmp_path):
    from PIL import Image

    img = np.array([[0, 1023], [512, 7]], np.uint16)
    png = save_snapshot(tmp_path, FrameItem(img, 1023, 0.0, 1.0), {})[0]
    assert np.array_equal(np.asarray(Image.open(png)).astype(np.uint16), img)


def test_slot_wait_taken_returns_once_a_consumer_took_the_item():
    slot = LatestSlot()
    seq = slot.put("frame")
    assert not slot.wait_taken(seq, 0.01)
    slot.wait_newer(0, 0)
    assert slot.wait_taken(seq, 0.01)

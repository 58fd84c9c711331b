"""Memory and size bombs, and inputs that are not regular files (issue #12).

Every size is bounded before anything is allocated: a ``.npy`` or image header that claims more
pixels than a camera frame has, or more memory than the machine can spare, is refused from its
header; a faces folder's huge file or FIFO is skipped without being read; a FIFO as the faces source
is refused without blocking. Each case runs in a child process with a memory cap and a time limit,
so a regression shows as a failure, not as a machine out of memory or a hung suite.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from numpy.lib import format as npformat

from speckle_core import fileio, frames
from speckle_core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
MEMORY_CAP = 3 * 2**30  # the child may not take more than this: a bomb read whole would fail here


def cli_in_child(tmp_path: Path, *argv: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    def cap_memory():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPECKLE_LAB_CRASH_LOG": str(tmp_path / "crash.log")}
    try:
        return subprocess.run([sys.executable, "-m", "speckle_lab.cli", *argv], capture_output=True,
                              text=True, timeout=timeout_s, preexec_fn=cap_memory, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{argv}: still running after {timeout_s} s (blocked on a special file?)")


def one_line_exit_2(res: subprocess.CompletedProcess, *needles: str) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f8") -> Path:
    """A .npy whose header claims ``shape`` but which holds no data."""
    with open(path, "wb") as fh:
        npformat.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
    return path


def sparse_npy(path: Path, side: int) -> Path:
    """A real, complete ``side``² uint8 .npy, sparse on disk (it costs no space)."""
    with open(path, "wb") as fh:
        npformat.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (side, side)})
        fh.truncate(fh.tell() + side * side)
    return path


# -- frame files (predict's inputs) --------------------------------------------------------------------

def test_a_npy_header_claiming_60000_squared_pixels_is_refused_from_its_header(tmp_path):
    path = npy_header_only(tmp_path / "bomb.npy", (60000, 60000))
    with pytest.raises(UserError, match="too large for a camera frame"):
        frames.read_frame_file(path)


def test_a_real_sparse_50000_squared_npy_is_refused_before_loading(tmp_path):
    path = sparse_npy(tmp_path / "sparse.npy", 50000)
    with pytest.raises(UserError, match="too large for a"):
        frames.read_frame_file(path)


def test_a_npy_header_claiming_more_than_the_file_holds_is_truncated(tmp_path):
    path = npy_header_only(tmp_path / "short.npy", (512, 512), "<u2")
    with pytest.raises(UserError, match="truncated"):
        frames.read_frame_file(path)


def test_an_object_npy_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="unsupported pixel type"):
        frames.read_frame_file(path)


def test_a_png_claiming_a_huge_size_is_refused_from_its_header(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0)
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    with pytest.raises(UserError, match="too large|decompression bomb"):
        frames.read_frame_file(path)


def test_a_fifo_as_a_frame_is_refused_without_blocking(tmp_path):
    path = tmp_path / "frame.npy"
    os.mkfifo(path)
    with pytest.raises(UserError, match="not a regular file"):
        frames.read_frame_file(path)


def test_a_frame_that_fits_is_read(tmp_path):
    a = np.arange(32 * 48, dtype=np.uint16).reshape(32, 48)
    np.save(tmp_path / "f.npy", a)
    assert np.array_equal(frames.read_frame_file(tmp_path / "f.npy"), a)


def test_predict_refuses_a_header_bomb_in_one_line(trained, tmp_path):
    bomb = npy_header_only(tmp_path / "bomb.npy", (60000, 60000))
    _, checkpoint = trained
    res = cli_in_child(tmp_path, "predict", str(checkpoint), str(bomb), "--out", str(tmp_path / "out"))
    one_line_exit_2(res, str(bomb))


def test_predict_never_overwrites_its_input_frame(trained, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    frame = folder / "frame.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 48), dtype=np.uint8)).save(frame)
    before = frame.read_bytes()
    _, checkpoint = trained
    res = cli_in_child(tmp_path, "predict", str(checkpoint), str(frame), "--out", str(folder))
    one_line_exit_2(res)
    assert frame.read_bytes() == before


# -- faces (plan, acquire) ---------------------------------------------------------------------------

def protocol_with_source(tmp_path: Path, source: Path) -> Path:
    doc = {"name": "bombs", "faces": {"source": str(source), "count": 2, "holdout": 0, "target_px": [32, 32]},
           "camera": {"roi_px": [32, 32], "exposure_us": 500.0},
           "blocks": [{"diffuser": "120", "distances_mm": [0], "role": "train"}]}
    path = tmp_path / "p.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_a_fifo_as_the_faces_source_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "faces.tgz"
    os.mkfifo(fifo)
    res = cli_in_child(tmp_path, "plan", str(protocol_with_source(tmp_path, fifo)), timeout_s=60)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr


def test_a_faces_folder_with_a_huge_file_and_a_fifo_reads_neither(tmp_path):
    """A 3 GB (sparse) "image" and a FIFO among the faces: skipped or refused, never read whole or
    waited on; the child's 3 GiB memory cap would stop a whole read."""
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(folder / f"face_{i}.png")
    with open(folder / "huge.png", "wb") as fh:
        fh.truncate(3 * 10**9)
    os.mkfifo(folder / "pipe.png")
    protocol = protocol_with_source(tmp_path, folder)
    res = cli_in_child(tmp_path, "acquire", str(protocol), "--out", str(tmp_path / "run.h5"), "--unattended",
                       "--no-progress", timeout_s=300)
    assert res.returncode in (0, 1, 2) and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "crash.log").exists(), res.stderr


# -- the helpers -------------------------------------------------------------------------------------

def test_read_bytes_capped_refuses_a_device_and_a_big_file(tmp_path):
    with pytest.raises(UserError, match="not a regular file"):
        fileio.read_bytes_capped("/dev/zero", "image", 1000)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 2000)
    with pytest.raises(UserError, match="too large"):
        fileio.read_bytes_capped(big, "image", 1000)


def test_check_memory_refuses_more_than_the_machine_can_hold():
    with pytest.raises(UserError, match="more than this machine can hold"):
        fileio.check_memory(10 * fileio.available_memory_bytes(), "the cache", "--image-size 100000")
    fileio.check_memory(1024, "a small array", "x")

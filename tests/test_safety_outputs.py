"""Outputs never destroy data (issue #12): a command's output is never one of its inputs nor a
run file, checkpoint or protocol; it is written to a temporary file and renamed, so a failure
leaves the old file and no temporary one; bad output places are one line, exit 2.

The shared rules live in ``speckle_core.fileio``; ``inspect --sheet`` is the command that emptied
run files before.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from speckle_core import fileio
from speckle_core.errors import UserError
from speckle_lab.cli import run
from tests.tiny_dataset import write_tiny_dataset


@pytest.fixture
def run_file(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "x.h5")


def one_line_exit_2(code: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_inspect_with_the_run_itself_as_sheet_leaves_the_run_intact(run_file, capsys):
    before = run_file.read_bytes()
    code = run(["inspect", str(run_file), "--sheet", str(run_file)])
    one_line_exit_2(code, capsys.readouterr().err, str(run_file))
    assert run_file.read_bytes() == before


def test_inspect_with_another_run_file_as_sheet_leaves_it_intact(run_file, tmp_path, capsys):
    other = write_tiny_dataset(tmp_path / "other.h5", seed=1)
    before = other.read_bytes()
    code = run(["inspect", str(run_file), "--sheet", str(other)])
    one_line_exit_2(code, capsys.readouterr().err, str(other))
    assert other.read_bytes() == before


def test_inspect_refuses_a_png_named_sheet_that_holds_a_run_file(run_file, tmp_path, capsys):
    disguised = tmp_path / "sheet.png"
    shutil.copy(run_file, disguised)
    code = run(["inspect", str(run_file), "--sheet", str(disguised)])
    one_line_exit_2(code, capsys.readouterr().err, "run file")
    assert disguised.read_bytes() == run_file.read_bytes()


def test_inspect_refuses_a_sheet_that_is_a_protocol(run_file, tmp_path, capsys):
    protocol = tmp_path / "p.png"
    protocol.write_text('name = "x"\n[camera]\nroi_px = [8, 8]\n')
    code = run(["inspect", str(run_file), "--sheet", str(protocol)])
    one_line_exit_2(code, capsys.readouterr().err, "protocol")
    assert protocol.read_text().startswith('name = "x"')


def test_inspect_refuses_a_sheet_whose_parent_is_a_file(run_file, capsys):
    code = run(["inspect", str(run_file), "--sheet", str(run_file / "sheet.png")])
    one_line_exit_2(code, capsys.readouterr().err, "is a file")


def test_inspect_refuses_a_folder_as_sheet(run_file, tmp_path, capsys):
    code = run(["inspect", str(run_file), "--sheet", str(tmp_path)])
    one_line_exit_2(code, capsys.readouterr().err, "directory")


def test_inspect_overwrites_its_own_previous_sheet(run_file, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert run(["inspect", str(run_file), "--sheet", str(sheet)]) == 0
    assert run(["inspect", str(run_file), "--sheet", str(sheet)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png", "x.h5"]


def test_a_failed_sheet_write_keeps_the_old_sheet_and_no_temporary_file(run_file, tmp_path, capsys,
                                                                       monkeypatch):
    sheet = tmp_path / "sheet.png"
    old = b"\x89PNG\r\n\x1a\n old sheet"  # an earlier sheet: a PNG, which inspect may replace
    sheet.write_bytes(old)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    code = run(["inspect", str(run_file), "--sheet", str(sheet)])
    line = one_line_exit_2(code, capsys.readouterr().err, str(sheet))
    assert "disk is full" in line
    assert sheet.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png", "x.h5"]


@pytest.fixture
def read_only_folder(tmp_path):
    """A read-only tmpfs (root can write into any chmod 555 folder, not into a read-only mount)."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a read-only tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_inspect_into_a_read_only_folder_is_one_line(run_file, read_only_folder, capsys):
    code = run(["inspect", str(run_file), "--sheet", str(read_only_folder / "sheet.png")])
    one_line_exit_2(code, capsys.readouterr().err, "read-only")


# -- the helpers themselves ----------------------------------------------------------------------------

def test_sniff_kind_tells_run_files_checkpoints_and_protocols_by_content(run_file, tmp_path):
    import torch

    ckpt = tmp_path / "model.png"
    torch.save({"a": 1}, ckpt)
    toml = tmp_path / "rig.txt"
    toml.write_text("[camera]\nkind = 'sim'\n")
    png = tmp_path / "plain.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    assert [fileio.sniff_kind(p) for p in (run_file, ckpt, toml, png)] == [
        "run file", "checkpoint", "protocol", None]


def test_an_output_hard_linked_to_an_input_is_refused(tmp_path):
    src = tmp_path / "frame.png"
    src.write_bytes(b"frame")
    alias = tmp_path / "alias.png"
    os.link(src, alias)
    with pytest.raises(UserError, match="would overwrite the input"):
        fileio.check_output_file(alias, inputs=[src])


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    out = tmp_path / "metrics.json"
    out.write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_write(out, "w") as fh:
        fh.write("half")
        raise RuntimeError("writer failed")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_write_replaces_the_file_whole(tmp_path):
    out = tmp_path / "metrics.json"
    out.write_text("old")
    fileio.write_text_atomic(out, "new")
    assert out.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        fileio.check_output_dir(f)


def test_a_layout_larger_than_the_free_space_is_refused_naming_the_full_disk(tmp_path):
    free = fileio.free_bytes(tmp_path)
    with pytest.raises(UserError, match="disk full.*needs"):
        fileio.check_free_space(tmp_path / "run.h5", free + 1, "run file", margin_bytes=0)
    fileio.check_free_space(tmp_path / "run.h5", 1, "run file", margin_bytes=0)


def test_preallocate_reserves_real_blocks_not_a_sparse_file(tmp_path):
    path = tmp_path / "cache.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fileio.preallocate(fd, 4 * 2**20, path, "cache")
        st = os.fstat(fd)
    finally:
        os.close(fd)
    assert st.st_size == 4 * 2**20
    assert st.st_blocks * 512 >= 4 * 2**20

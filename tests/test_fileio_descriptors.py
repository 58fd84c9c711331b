"""speckle_core.fileio.descriptors_on: the one /proc scan behind other_openers (another process
holding a run) and h5safety's full-disk clean-up (this process's descriptors on a file)."""

from __future__ import annotations

import os
import sys

import pytest

from speckle_core.fileio import descriptors_on

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")


def test_finds_each_descriptor_this_process_holds_on_the_file(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"x")
    first, second = os.open(path, os.O_RDONLY), os.open(path, os.O_RDONLY)
    try:
        assert sorted(descriptors_on(os.stat(path))) == sorted([first, second])
    finally:
        os.close(first)
        os.close(second)
    assert descriptors_on(os.stat(path)) == []


def test_a_process_that_does_not_exist_holds_nothing(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"x")
    assert descriptors_on(os.stat(path), pid=2**31 - 1) == []

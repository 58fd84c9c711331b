"""Fixtures shared by several test modules."""

import pytest

from tests.tiny_dataset import train_tiny, write_tiny_dataset


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(run file, checkpoint) of one tiny model trained once for the whole session; read-only."""
    d = tmp_path_factory.mktemp("trained")
    run = write_tiny_dataset(d / "run.h5")
    train_tiny(run, d / "out")
    return run, d / "out" / "last.pt"

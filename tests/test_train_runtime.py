"""GPU readiness, tested on the CPU (issue #18 item 5): host syncs per epoch, device mapping under
torchrun, the process-group timeout, pinned non-blocking copies."""

import sys
import types

import pytest
import torch

from reconstruction import runtime
from speckle_core.errors import UserError
from tests.tiny_dataset import train_tiny, write_tiny_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("rt") / "run.h5")


def _count_syncs(monkeypatch):
    """Counts speckle-lab's reads of a tensor's value back to the host (a device sync on CUDA); torch's
    own CPU bookkeeping (e.g. Adam's step counters, kept on the host) is not counted."""
    calls = {"n": 0}
    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _original=original, **k):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if "/reconstruction/" in caller:
                calls["n"] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


def test_host_syncs_per_epoch_do_not_grow_with_the_number_of_steps(run, tmp_path, monkeypatch):
    calls = _count_syncs(monkeypatch)
    train_tiny(run, tmp_path / "big", batch_size=16)  # a few steps
    few = calls["n"]
    calls["n"] = 0
    train_tiny(run, tmp_path / "small", batch_size=1)  # many more steps
    assert calls["n"] == few


def test_one_sync_reads_the_whole_epoch(run, tmp_path, monkeypatch):
    reads = []
    original = torch.Tensor.tolist

    def spy(self):
        reads.append(tuple(self.shape))
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", spy)
    train_tiny(run, tmp_path / "out", epochs=2, batch_size=1)
    epoch_reads = [s for s in reads if s == (5 + 3 + 3 + 1,)]  # sums, test, validation, first bad step
    assert len(epoch_reads) == 2


def _fake_cuda(monkeypatch, n_gpus):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)


def test_under_torchrun_cuda_n_maps_each_rank_to_its_own_gpu(monkeypatch):
    _fake_cuda(monkeypatch, 4)
    assert runtime.pick_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert runtime.pick_device("cuda:2", local_rank=0) == torch.device("cuda", 2)
    assert runtime.pick_device("cuda:2", local_rank=1) == torch.device("cuda", 3)


def test_a_rank_beyond_the_gpus_is_one_line(monkeypatch):
    _fake_cuda(monkeypatch, 2)
    with pytest.raises(UserError, match=r"process 1 needs GPU cuda:2 but this machine has 2"):
        runtime.pick_device("cuda:1", local_rank=1)


def test_process_group_starts_with_a_timeout(monkeypatch):
    import torch.distributed as dist

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **k: seen.update(k))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    d = runtime.init_dist("cpu")
    assert (d.rank, d.world, d.local_rank) == (1, 2, 1)
    assert seen["backend"] == "gloo" and seen["timeout"].total_seconds() == runtime.DIST_TIMEOUT_S


def test_cpu_copies_are_plain_and_cuda_copies_pinned_channels_last(monkeypatch):
    x = torch.zeros(2, 1, 8, 8)
    assert runtime.to_device(x, torch.device("cpu")) is x
    seen = {}

    class FakeTensor:
        ndim = 4

        def pin_memory(self):
            seen["pinned"] = True
            return self

        def to(self, device, non_blocking=False):
            seen["non_blocking"] = non_blocking
            return self

        def contiguous(self, memory_format=None):
            seen["format"] = memory_format
            return self

    runtime.to_device(FakeTensor(), types.SimpleNamespace(type="cuda"))
    assert seen == {"pinned": True, "non_blocking": True, "format": torch.channels_last}


def test_autocast_is_a_no_op_on_cpu():
    with runtime.autocast(torch.device("cpu")):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_no_host_to_device_tensor_is_made_per_step(run, tmp_path, monkeypatch):
    """torch.tensor(value, device=cuda) copies from pageable host memory and waits for the stream: a
    sync per step. The step's counts are made on the device instead (a fill)."""
    made = {"n": 0}
    original = torch.tensor

    def spy(*a, **k):
        if sys._getframe(1).f_code.co_filename.replace("\\", "/").endswith("/reconstruction/epoch.py"):
            made["n"] += 1
        return original(*a, **k)

    monkeypatch.setattr(torch, "tensor", spy)
    train_tiny(run, tmp_path / "big", batch_size=16)
    few = made["n"]
    made["n"] = 0
    train_tiny(run, tmp_path / "small", batch_size=1)
    assert made["n"] == few


def test_on_cuda_a_model_gets_cudnn_benchmark_and_channels_last(monkeypatch):
    seen = {}
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: seen.update(device=d))

    class FakeModel:
        def to(self, device, memory_format=None):
            seen.update(format=memory_format)
            return self

    cuda = types.SimpleNamespace(type="cuda")
    runtime.prepare_model(FakeModel(), cuda)
    assert torch.backends.cudnn.benchmark is True
    assert seen == {"device": cuda, "format": torch.channels_last}


def test_rank_0_builds_the_cache_before_the_process_group_starts(run, tmp_path, monkeypatch):
    """Building a paper-size cache takes long minutes; the other ranks must not wait on a collective
    with the default timeout meanwhile."""
    import reconstruction.data as data
    from reconstruction.train import TrainConfig, build

    order = []

    class Stop(Exception):
        pass

    def fake_init(name):
        order.append("process group")
        raise Stop

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(data, "prepare_cache", lambda *a, **k: order.append("cache"))
    monkeypatch.setattr(runtime, "init_dist", fake_init)
    with pytest.raises(Stop):
        build(TrainConfig(run=str(run), out_dir=str(tmp_path / "o"), device="cpu"), None)
    assert order == ["cache", "process group"]

"""CPU bf16 (issue 18): used only where the CPU has it, and a bf16 run ends within 0.02 PCC of fp32."""

import pytest
import torch

from reconstruction.metrics import pcc
from reconstruction.models import build_model
from reconstruction.models.precision import ENV, cpu_bf16_supported
from reconstruction.runtime import amp_settings


@pytest.mark.parametrize(("flags", "expected"), [({"avx2", "fma"}, False), ({"avx512f", "avx512_bf16"}, True),
                                                 ({"amx_tile", "amx_bf16"}, True), ({"asimd", "bf16"}, True),
                                                 (set(), False)])
def test_bf16_only_with_native_bf16_flags(monkeypatch, flags, expected):
    monkeypatch.delenv(ENV, raising=False)
    assert cpu_bf16_supported(frozenset(flags)) is expected


@pytest.mark.parametrize(("value", "dtype"), [("1", torch.bfloat16), ("0", None)])
def test_environment_forces_cpu_autocast_on_or_off(monkeypatch, value, dtype):
    monkeypatch.setenv(ENV, value)
    assert amp_settings(torch.device("cpu")) == (dtype, False)


def _blurred_pairs(size=16, count=4):
    """Binary labels and a blurred, noisy view of them: learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(count, 1, size // 4, size // 4, generator=g) > 0.5).float()
    y = torch.nn.functional.interpolate(y, scale_factor=4.0)  # 4×4 blocks: structure a blur keeps
    x = torch.nn.functional.avg_pool2d(y, 5, stride=1, padding=2) + 0.1 * torch.rand(y.shape, generator=g)
    return x / x.amax(dim=(2, 3), keepdim=True), y


STEPS = 160  # to convergence (PCC ~0.99): early in a run bf16 and fp32 trajectories differ by more


def _final_pcc(bf16: bool) -> float:
    x, y = _blurred_pairs()
    torch.manual_seed(0)
    model = build_model("spt-unet-b", 16, base_channels=4)  # a tiny SpT UNet-B
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(STEPS):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model.forward_logits(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)  # loss in fp32
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return pcc(model(x).float(), y)


@pytest.mark.slow  # ~20 s on 2 quiet cores: bf16 is emulated on CPUs without it, and it must converge
def test_bf16_training_ends_within_0_02_pcc_of_fp32_at_the_same_seed():
    torch.set_num_threads(1)
    fp32, bf16 = _final_pcc(False), _final_pcc(True)
    assert fp32 > 0.9  # it learned, so the comparison means something
    assert abs(bf16 - fp32) < 0.02

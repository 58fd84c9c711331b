"""Which reduced precision a device computes natively (issue 18: CPU bf16 only where the CPU has it).

On a CPU, bfloat16 autocast is only faster when the hardware has bf16 arithmetic: AVX512-BF16 (Intel
Cooper Lake and later, AMD Zen 4 and later), AMX-BF16 (Intel Sapphire Rapids and later) or the Arm bf16
extension. Without it oneDNN emulates bf16 with fp32 instructions and conversions, which is slower than
plain fp32 (AVX2 machines such as this project's Zen 3 CPU). torch's own report
(``torch.backends.cpu.get_cpu_capability()``) names the vector width ("AVX2", "AVX512"), not bf16, so
the CPU's feature flags decide. ``SPECKLE_LAB_CPU_BF16=0`` turns CPU bf16 off, ``=1`` forces it (for
tests and benchmarks).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 /proc/cpuinfo "flags", Arm "Features"
ENV = "SPECKLE_LAB_CPU_BF16"


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS, Windows)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def cpu_bf16_supported(flags: frozenset[str] | None = None) -> bool:
    """True when this CPU computes bf16 natively (see the module docstring), unless ``SPECKLE_LAB_CPU_BF16``
    says otherwise."""
    forced = os.environ.get(ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool(BF16_FLAGS & (cpu_flags() if flags is None else flags))

"""Inference speed and size of the reconstruction models (issue 6, "Performance").

Per model and input size: parameters, multiply-accumulates (torch.utils.flop_counter total / 2), inference
ms/image and images/s at batch 1 and a larger batch (``torch.inference_mode``, eval mode, warm-up passes,
median of repeats), and the achieved FLOP/s (2 × MACs × images/s) as a fraction of this machine's measured
dense matmul rate (a large fp32 matmul; on GPU also the fp16/bf16 rate that mixed precision runs at).
Paper (Table 2, RTX 3090): SpT UNet at 200×200, 86.9 images/s and 23 ms per batch (16 ms per prediction in
the text). Usage: ``python bench/bench_models.py [--device cuda] [--sizes 200 64] [--batch 2]``.

Every point is also timed on the models as they were before issue 18 (``bench/legacy_models.py``: NCHW, SpT
UNet's level-1 attention as 2 heads × 4 dims), alternating old and new pass by pass in the same run, so
load from other processes hits both alike; the last column is the speed-up (old time / new time).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.legacy_models import build_legacy_model  # noqa: E402
from reconstruction.models import MODEL_NAMES, build_model  # noqa: E402
from reconstruction.models.complexity import count_macs, count_parameters  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn, device, repeats: int, warmup: int, max_seconds: float) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break
    return times


def interleaved_seconds(fns: dict, device, repeats: int, warmup: int, max_seconds: float) -> dict[str, float]:
    """Median seconds per call of each function, the functions called in turn on every repeat (so that a
    change in the machine's load during the run affects all of them alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    for _ in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[key].append(time.perf_counter() - t0)
        if time.perf_counter() - start > max_seconds:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int, max_seconds: float) -> float:
    """Best FLOP/s of an n×n @ n×n matmul (2n³ FLOP): the machine's attainable dense rate."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        sec = min(_seconds(lambda: a @ b, device, repeats=10, warmup=2, max_seconds=max_seconds))
    return 2 * n**3 / sec


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (mixed precision on cuda)")
    ap.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    ap.add_argument("--sizes", nargs="+", type=int, default=[200, 64])
    ap.add_argument("--batch", type=int, default=None, help="the larger batch (default 2 on cpu, 32 on cuda)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per point (median reported)")
    ap.add_argument("--max-seconds", type=float, default=5.0, help="stop repeating a point after this long")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    big_batch = args.batch or (32 if device.type == "cuda" else 2)
    warmup = 5 if device.type == "cuda" else 1
    amp = device.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; mixed precision: {amp_dtype if amp else 'off (fp32)'}")

    mm_n = 8192 if device.type == "cuda" else 2048
    mm_dtype = amp_dtype if amp else torch.float32
    mm_name = str(mm_dtype).removeprefix("torch.")
    rates = {f"{mm_name} before": matmul_rate(device, mm_dtype, mm_n, args.max_seconds)}
    if amp:
        rates["float32 before"] = matmul_rate(device, torch.float32, mm_n, args.max_seconds)

    rows = []
    for size in args.sizes:
        for model_name in args.models:
            models = {}
            for label, builder in (("new", build_model), ("old", build_legacy_model)):
                torch.manual_seed(0)
                models[label] = builder(model_name, size).to(device).eval()
            params, macs = count_parameters(models["new"]), count_macs(models["new"])
            for batch in (1, big_batch):
                x = torch.rand(batch, 1, size, size, device=device)

                def run(model, x=x):
                    autocast = torch.autocast("cuda", dtype=amp_dtype) if amp else contextlib.nullcontext()
                    with torch.inference_mode(), autocast:
                        model(x)

                sec = interleaved_seconds({k: (lambda m=m: run(m)) for k, m in models.items()}, device,
                                          args.repeats, warmup, 2 * args.max_seconds)
                rows.append((model_name, size, params, macs, batch, batch / sec["new"], batch / sec["old"]))
                print(f"  measured {model_name} N={size} batch={batch}: {sec['new'] * 1e3:.1f} ms/batch "
                      f"(before issue 18: {sec['old'] * 1e3:.1f})", file=sys.stderr, flush=True)
            del models
    rates[f"{mm_name} after"] = matmul_rate(device, mm_dtype, mm_n, args.max_seconds)
    # the attainable rate in the precision the models ran in: the better of before/after (load on a shared
    # machine only ever lowers a measurement)
    peak = max(rates[f"{mm_name} before"], rates[f"{mm_name} after"])
    measured = ", ".join(f"{k} {v / 1e9:,.0f} GFLOP/s" for k, v in rates.items())
    print(f"matmul rate ({mm_n}×{mm_n}): {measured}; fractions below use {peak / 1e9:,.0f} GFLOP/s")
    header = (f"{'model':<11} {'N':>4} {'params M':>8} {'GMAC':>7} {'batch':>5} {'ms/image':>9} "
              f"{'images/s':>9} {'GFLOP/s':>8} {'of matmul':>9} {'before: ms/image':>16} {'speed-up':>8}")
    print(header)
    print("-" * len(header))
    for model_name, size, params, macs, batch, ips, ips_old in rows:
        flops = 2 * macs * ips
        print(f"{model_name:<11} {size:>4} {params / 1e6:>8.2f} {macs / 1e9:>7.2f} {batch:>5} "
              f"{1e3 / ips:>9.1f} {ips:>9.2f} {flops / 1e9:>8.1f} {flops / peak:>9.1%} "
              f"{1e3 / ips_old:>16.1f} {ips / ips_old:>7.2f}×")
    print("before: the same model as it was before issue 18 (bench/legacy_models.py), timed in turn with it")
    print("(a convolution net may exceed 100 %: oneDNN's convolution kernels can outrun a plain matmul)")
    print("paper (RTX 3090, SpT UNet 200×200): 86.9 images/s, 23.0 ms/batch (Table 2), "
          "16 ms per prediction (text)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

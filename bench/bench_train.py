"""Training speed: samples/s per model, data loading from the cache, and time to reach SSIM 0.9.

1. **Training throughput** — forward + backward + Adam step of each model (``unet``, ``spt-unet``,
   ``spt-unet-b``) at each of ``--sizes`` (default 64, the demo's, and 200, the paper's), batch
   ``--batch-size`` (default 2, the paper's), mixed precision on CUDA, after a few warm-up steps.
   Samples/s, also for the same model as it was before issue 18 (``bench/legacy_models.py``), the two
   stepped in turn in the same run, and the speed-up (new samples/s / old samples/s).
2. **Data loading** — on a synthetic contract-conformant run of ``--pairs`` 800x800 uint8 frames:
   building the cache (HDF5 read + bilinear antialiased downsample to N + normalise, pairs/s), then
   random training batches read from the memory-mapped cache (samples/s), against reading and
   preprocessing each sample straight from HDF5 (what the cache avoids).
3. **Time to SSIM 0.9** — with ``--dataset RUN.h5`` (e.g. the quick demo dataset): trains
   ``--model`` at ``--size`` from scratch, prints every epoch, and reports the wall time (cache build
   included) until the training-pair and the test-face SSIM first reach 0.9, or the best SSIM after
   ``--max-epochs`` or ``--max-minutes``. ``--record FILE`` keeps the output for bench/RESULTS.md.

Usage: ``python bench/bench_train.py [--sizes 64 200] [--models unet spt-unet spt-unet-b] [--device auto]
[--dataset RUN.h5 --model spt-unet --max-epochs 30]``. Timings taken on a shared machine are
indicative only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _train_step(model, device, dtype, use_scaler, batch: int, size: int, today: bool = True):
    """A closure running one forward + backward + Adam step on a fixed random batch: today's optimizer
    (``reconstruction.train.make_optimizer``, fused Adam) or, ``today=False``, the one before issue 18
    (torch's default per-tensor Adam)."""
    import torch

    from reconstruction.train import compute_loss, make_optimizer

    opt = (make_optimizer(model.parameters(), 1e-4, 1e-5, device) if today
           else torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5))
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    x = torch.rand(batch, 1, size, size, device=device)
    y = (torch.rand(batch, 1, size, size, device=device) > 0.5).float()

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = model.forward_logits(x)
        loss = compute_loss(logits, y, "bce")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _timed_in_turn(steps: dict, n: int, device, cpu_time: bool = False) -> dict[str, float]:
    """Median seconds per step of each closure, stepping them in turn (load hits all alike). ``cpu_time``:
    this process's CPU seconds instead of wall time (on a CPU machine shared with other jobs; equal to
    the wall time of an unloaded run at one thread)."""
    import statistics

    import torch

    clock = time.process_time if cpu_time else time.perf_counter

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for step in steps.values():  # warm-up
        for _ in range(3 if device.type == "cuda" else 2):
            step()
    sync()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(n):
        for key, step in steps.items():
            t0 = clock()
            step()
            sync()
            times[key].append(clock() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_models(models, size: int, batch: int, steps: int, device, cpu_time: bool = False) -> None:
    import torch

    from bench.legacy_models import build_legacy_model
    from reconstruction.models import build_model
    from reconstruction.train import amp_settings

    dtype, use_scaler = amp_settings(device)
    import os

    clock = "CPU time of this process" if cpu_time else "wall time"
    print(f"## Training throughput at {size}x{size}, batch {batch}, {device}"
          f"{f', autocast {dtype}' if dtype else ''}, {torch.get_num_threads()} threads, {clock}; "
          "before = the model and optimizer before issue 18, stepped in turn with today's; "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for name in models:
        try:
            built = {}
            for label, builder in (("new", build_model), ("old", build_legacy_model)):
                torch.manual_seed(0)
                built[label] = builder(name, size).to(device).train()
        except (ValueError, ImportError, ModuleNotFoundError) as e:
            print(f"- {name}: not available ({e})")
            continue
        sec = _timed_in_turn({k: _train_step(m, device, dtype, use_scaler, batch, size, today=k == "new")
                              for k, m in built.items()}, steps, device, cpu_time)
        n_par = sum(p.numel() for p in built["new"].parameters()) / 1e6
        print(f"- {name} ({n_par:.2f} M parameters): {batch / sec['new']:.2f} samples/s "
              f"({sec['new'] * 1e3:.0f} ms per step of {batch}); before: {batch / sec['old']:.2f} samples/s "
              f"({sec['old'] * 1e3:.0f} ms); speed-up {sec['old'] / sec['new']:.2f}×", flush=True)


def write_synthetic_run(path: Path, n_pairs: int, frame_px: int = 800) -> None:
    import h5py

    from speckle_core.runfile import FORMAT

    rng = np.random.default_rng(0)
    n_obj = max(2, n_pairs // 2)
    sdt = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        for k, v in (("format", FORMAT), ("protocol", ""), ("rig", ""), ("created", ""),
                     ("software", "{}")):
            f.attrs[k] = v
        f["objects/pattern"] = (rng.random((n_obj, 800, 800)) > 0.5).astype(np.uint8)
        names = np.array([f"f{i}" for i in range(n_obj)], dtype=object)
        f.create_dataset("objects/name", data=names, dtype=sdt)
        f.create_dataset("objects/split", data=np.array(["train"] * n_obj, dtype=object), dtype=sdt)
        sp = f.create_dataset("pairs/speckle", shape=(n_pairs, frame_px, frame_px), dtype=np.uint8)
        for i in range(0, n_pairs, 16):
            sp[i:i + 16] = rng.integers(0, 255, (min(16, n_pairs - i), frame_px, frame_px), dtype=np.uint8)
        f["pairs/object_index"] = (np.arange(n_pairs) % n_obj).astype(np.int32)
        f.create_dataset("pairs/diffuser", data=np.array(["120"] * n_pairs, dtype=object), dtype=sdt)
        f["pairs/distance_mm"] = np.zeros(n_pairs, dtype=np.float32)
        f["pairs/exposure_us"] = np.ones(n_pairs, dtype=np.float32)
        f["pairs/timestamp"] = np.zeros(n_pairs)
        f["pairs/done"] = np.ones(n_pairs, dtype=bool)


def bench_loading(n_pairs: int, size: int, batch: int) -> None:
    import h5py

    from reconstruction.data import prepare_cache, preprocess_frames

    print(f"## Data loading: {n_pairs} pairs of 800x800 uint8 -> {size}x{size}")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "bench.h5"
        write_synthetic_run(run, n_pairs)
        t0 = time.perf_counter()
        cache = prepare_cache(run, size)
        build_s = time.perf_counter() - t0
        print(f"- cache build: {n_pairs / build_s:.0f} pairs/s ({build_s:.2f} s)")
        rng = np.random.default_rng(0)
        n_batches = max(50, 2000 // batch)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            cache.batch(rng.integers(0, n_pairs, batch))
        dt = time.perf_counter() - t0
        print(f"- batches from the cache (memory-mapped): {n_batches * batch / dt:.0f} samples/s")
        n_direct = min(n_pairs, 64)
        t0 = time.perf_counter()
        with h5py.File(run, "r") as f:
            for i in rng.integers(0, n_pairs, n_direct):
                preprocess_frames(f["pairs/speckle"][int(i)], size)
        dt = time.perf_counter() - t0
        print(f"- without the cache (HDF5 read + preprocess per sample): {n_direct / dt:.0f} samples/s")


def bench_time_to_ssim(dataset: str, model: str, size: int, max_epochs: int, device: str,
                       batch: int, lr: float, loss: str, max_minutes: float,
                       target: float = 0.9) -> None:
    """Wall time from a cold start (cache build included) until the SSIM first reaches ``target``.

    Two figures: the training-pair SSIM (how fast the model fits what it sees; the running mean over
    the epoch, in training mode) and the test SSIM (faces never trained on, at the training
    distances, scored in eval mode after the epoch). The run ends when the test SSIM reaches the
    target, after ``max_epochs`` (the learning-rate schedule is scaled to it) or after
    ``max_minutes``. Every epoch is printed, so a run that never reaches the target still shows how
    far it got and how fast.
    """
    from reconstruction.train import TrainConfig, train

    print(f"## Time to SSIM {target} on {dataset}: {model} at {size}x{size}, batch {batch}, "
          f"lr {lr:g}, loss {loss}, up to {max_epochs} epochs or {max_minutes:g} min, {device}")
    print("epoch | elapsed s | train SSIM | test SSIM | validation SSIM (unseen distance)")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(run=dataset, out_dir=str(Path(tmp) / "out"), model=model, image_size=size,
                          epochs=max_epochs, batch_size=batch, lr=lr, loss=loss, device=device)
        t0 = time.perf_counter()
        reached: dict[str, tuple[int, float]] = {}

        def stop(rec):
            elapsed = time.perf_counter() - t0
            print(f"{rec['epoch']:5d} | {elapsed:9.1f} | {rec['train_ssim']:10.3f} | "
                  f"{rec['test_ssim']:9.3f} | {rec['validation_ssim']:.3f}", flush=True)
            for key in ("train_ssim", "test_ssim"):
                if key not in reached and rec[key] >= target:
                    reached[key] = (rec["epoch"], elapsed)
            return "test_ssim" in reached or elapsed > max_minutes * 60

        hist = train(cfg, progress=False, log=lambda *_: None, stop_when=stop)
    total = time.perf_counter() - t0
    for key, label in (("train_ssim", "training pairs"), ("test_ssim", "test faces")):
        if key in reached:
            epoch, s = reached[key]
            print(f"- {label}: SSIM {target} after epoch {epoch}, {s:.1f} s")
        else:
            best = max(v for v in hist[key] if v == v)
            print(f"- {label}: SSIM {target} not reached in {len(hist[key])} epochs ({total:.1f} s); "
                  f"best {best:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64, help="image size of the loading and time-to-SSIM runs")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 200],
                    help="image sizes of the training-throughput table")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads on cpu")
    ap.add_argument("--steps", type=int, default=10,
                    help="timed steps at 64x64 (fewer at larger sizes on CPU)")
    ap.add_argument("--models", nargs="*", default=["unet", "spt-unet", "spt-unet-b"])
    ap.add_argument("--pairs", type=int, default=64, help="synthetic pairs for the loading benchmark")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dataset", default=None, help="a run file for the time-to-SSIM-0.9 benchmark")
    ap.add_argument("--model", default="spt-unet")
    ap.add_argument("--max-epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-4, help="time-to-SSIM run (the paper's 1e-4)")
    ap.add_argument("--loss", default="bce", help="time-to-SSIM run: bce, npcc or bce+npcc")
    ap.add_argument("--max-minutes", type=float, default=60.0, help="time-to-SSIM run: wall-time cap")
    ap.add_argument("--record", default=None,
                    help="also write this run's output, machine and command line to this markdown file "
                         "(e.g. bench/RESULTS-time-to-ssim.md; `make bench` appends bench/RESULTS-*.md)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time steps by this process's CPU time (a CPU machine shared with other jobs)")
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-loading", action="store_true")
    args = ap.parse_args()
    if args.record:
        return record_run(args, Path(args.record))
    return run_benchmarks(args)


def record_run(args, path: Path) -> int:
    """Runs the benchmarks, printing as usual, and writes what they printed to ``path``."""
    import contextlib
    import io
    import shlex

    from bench.run_all import machine_description

    class Tee(io.TextIOBase):
        def __init__(self):
            self.buf = io.StringIO()

        def write(self, text):
            sys.__stdout__.write(text)
            sys.__stdout__.flush()
            return self.buf.write(text)

    tee = Tee()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(tee):
        code = run_benchmarks(args)
    command = shlex.join(["python", "bench/bench_train.py", *sys.argv[1:]])
    path.write_text("\n".join([
        f"## {path.stem} (recorded by `bench_train.py --record`, {time.perf_counter() - t0:.0f} s)", "",
        f"`{command}`", "", *machine_description(), "", "```", tee.buf.getvalue().rstrip(), "```", ""]))
    return code


def run_benchmarks(args) -> int:
    from reconstruction.train import pick_device

    device = pick_device(args.device)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if not args.skip_models:
        for size in args.sizes:  # fewer steps where each costs more (~(N/64)^2), at least 3
            steps = max(3, round(args.steps * (64 / size) ** 2)) if device.type == "cpu" else args.steps
            bench_models(args.models, size, args.batch_size, steps, device, args.cpu_time)
    if not args.skip_loading:
        bench_loading(args.pairs, args.size, args.batch_size)
    if args.dataset:
        bench_time_to_ssim(args.dataset, args.model, args.size, args.max_epochs, args.device,
                           args.batch_size, args.lr, args.loss, args.max_minutes)
    else:
        print("## Time to SSIM 0.9: not run here (about 30 min; give --dataset RUN.h5, e.g. the quick "
              "demo dataset; recorded runs: bench/RESULTS-time-to-ssim-*.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

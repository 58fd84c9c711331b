"""``speckle-lab train | evaluate | predict``. Imports only click at load time (never torch)."""

from __future__ import annotations

import json

import click

from reconstruction.train_config import DEFAULTS, LOSSES, TrainConfig
from speckle_core.errors import UserError


def _model_args(pairs: tuple[str, ...]) -> dict:
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UserError(f"--model-arg: expected KEY=VALUE (got {item!r})")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


D = DEFAULTS


@click.command()
@click.argument("run")
@click.option("--out", "out_dir", required=True, help="Output folder: last.pt, best.pt, history.json.")
@click.option("--model", default=D["model"], show_default=True, help="spt-unet, spt-unet-b or unet.")
@click.option("--model-arg", "model_arg", multiple=True, metavar="KEY=VALUE",
              help="Override a model hyper-parameter (as in model.config), e.g. base_channels=16.")
@click.option("--image-size", default=D["image_size"], show_default=True, type=int,
              help="Model input N (N x N).")
@click.option("--epochs", default=D["epochs"], show_default=True, type=int,
              help="Epochs; the learning-rate schedule 1e-4/1e-5/1e-6 scales as 50%/25%/25%. With --resume: "
                   "extend a run to this many epochs.")
@click.option("--batch-size", default=D["batch_size"], show_default=True, type=int, help="Per process.")
@click.option("--loss", type=click.Choice(LOSSES), default=D["loss"], show_default=True)
@click.option("--lr", default=D["lr"], show_default=True, type=float, help="Initial learning rate.")
@click.option("--weight-decay", default=D["weight_decay"], show_default=True, type=float,
              help="Adam L2 weight.")
@click.option("--device", default=D["device"], show_default=True,
              help="auto, cpu, cuda, cuda:N or mps (under torchrun, cuda:N is the first GPU of the node's).")
@click.option("--clip-grad-norm", type=float, default=D["clip_grad_norm"],
              help="Clip the global gradient norm to this value (off by default, as in the paper).")
@click.option("--resume", is_flag=True,
              help="Continue OUT/last.pt exactly where it stopped, with the options it started with.")
@click.option("--seed", default=D["seed"], show_default=True, type=int)
@click.option("--diffuser", "diffusers", multiple=True, help="Train on these diffusers only (repeatable).")
@click.option("--max-pairs", type=int, default=D["max_pairs"], help="Use at most this many training pairs.")
@click.option("--test-fraction", default=D["test_fraction"], show_default=True, type=float,
              help="Fraction of the training faces (whole persons) kept out to choose the best epoch.")
@click.option("--eval-max", default=D["eval_max"], show_default=True, type=int,
              help="Test/validation pairs scored after each epoch (a fixed subset).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx: click.Context, run: str, out_dir: str, model: str, model_arg: tuple[str, ...], image_size: int,
          epochs: int, batch_size: int, loss: str, lr: float, weight_decay: float, device: str,
          clip_grad_norm: float | None, resume: bool, seed: int,
          diffusers: tuple[str, ...], max_pairs: int | None, test_fraction: float, eval_max: int,
          quiet: bool) -> None:
    """Train a model on RUN.h5 (works the same under torchrun for DDP)."""
    from reconstruction.train import train as run_training

    cfg = TrainConfig(run=run, out_dir=out_dir, model=model, model_args=_model_args(model_arg),
                      image_size=image_size, epochs=epochs, batch_size=batch_size, loss=loss, lr=lr,
                      weight_decay=weight_decay, seed=seed, diffusers=list(diffusers) or None,
                      max_pairs=max_pairs, test_fraction=test_fraction, eval_max=eval_max, device=device,
                      clip_grad_norm=clip_grad_norm)
    given = ctx.get_parameter_source("epochs") == click.core.ParameterSource.COMMANDLINE
    run_training(cfg, resume=resume, progress=not quiet, log=click.echo,
                 epochs=epochs if resume and given else None)


@click.command()
@click.argument("checkpoint")
@click.argument("run")
@click.option("--out", "out_dir", required=True, help="Output folder: metrics.json, report.html.")
@click.option("--baseline", default=None, help="A second checkpoint to compare with (e.g. the CNN UNet).")
@click.option("--device", default="auto", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=int)
def evaluate(checkpoint: str, run: str, out_dir: str, baseline: str | None, device: str,
             batch_size: int) -> None:
    """Evaluate a checkpoint on RUN.h5: metrics.json and a self-contained report.html."""
    from reconstruction.evaluate import evaluate_checkpoints

    ckpts = {"model": checkpoint}
    if baseline:
        ckpts["baseline"] = baseline
    result = evaluate_checkpoints(ckpts, run, out_dir, device=device, batch_size=batch_size)
    for name, res in result["models"].items():
        overall = res["summary"]
        click.echo(f"{name}: {res['split_note']}")
        click.echo(f"{name} ({res['model_name']}): " + ", ".join(
            f"{group} PCC {m['pcc']:.4f} SSIM {m['ssim']:.4f} JI {m['jaccard']:.4f} PSNR {m['psnr']:.2f}"
            for group, m in overall.items()))
    click.echo(f"wrote {result['files']['metrics']} and {result['files']['report']}")


@click.command()
@click.argument("checkpoint")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", default="predictions", show_default=True, help="Folder for the PNGs.")
@click.option("--device", default="auto", show_default=True)
@click.option("--side-by-side", is_flag=True, help="Also write NAME_side.png: input, sigmoid map, object.")
def predict(checkpoint: str, inputs: tuple[str, ...], out_dir: str, device: str, side_by_side: bool) -> None:
    """Reconstruct objects from speckle frames (PNG, TIFF, npy) or dataset rows (RUN.h5:ROWS).

    Writes NAME.png (the sigmoid map) and NAME_object.png (thresholded at 0.5) per input."""
    from reconstruction.predict import predict_inputs

    written = predict_inputs(checkpoint, list(inputs), out_dir, device=device, side_by_side=side_by_side,
                             log=lambda m: click.echo(m, err=True))
    click.echo(f"wrote {len(written)} reconstruction(s) to {out_dir}")
